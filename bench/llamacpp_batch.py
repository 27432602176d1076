"""llama.cpp's own batched decoding, through llama-cpp-python's low-level API.

The honest baseline for our concurrent streams: llama.cpp also decodes many sequences per
step (its `batched` example, its server's slots). This is the `batched` example's recipe:
one context whose KV cache holds every stream (`n_seq_max` = streams, one KV stream per
sequence, `kv_unified` off as in that example), one `llama_batch` per `llama_decode` call
where every token carries its stream's sequence id, greedy sampling from the logits.

1. Prefill: all prompts' tokens are packed into batches of up to `n_batch` tokens (as
   llama-server packs its slots' prompts), logits only at each prompt's last token, which
   gives that stream its first token.
2. Decode: one token per stream per `llama_decode` step until each has `tokens` new tokens.
EOS is not a stop (like `Llama.generate`), so every stream decodes the full count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.measure import StreamTiming

__all__ = ["BatchRun", "LlamaCppModel", "pad_context"]

KV_PAD = 256  # llama.cpp rounds each sequence's share of the context up to this


def pad_context(tokens: int) -> int:
    """Context tokens per sequence, rounded up as llama.cpp does (n_ctx_seq % 256 == 0)."""
    return -(-tokens // KV_PAD) * KV_PAD


@dataclass(frozen=True)
class BatchRun:
    """What one batched generation produced: per-stream timings and greedy token ids."""

    timings: list[StreamTiming]
    tokens: list[list[int]]
    margins: list[list[float]]  # top-1 minus top-2 logit per token (empty unless asked for)


class LlamaCppModel:
    """A GGUF loaded by llama.cpp, plus one context sized for `streams` sequences at a time.

    `context(streams, tokens_per_stream)` replaces the context (and its KV cache), so the
    cache holds only what the measured workload needs, as the `batched` example sizes it.
    """

    def __init__(self, gguf: str, threads: int, n_batch: int = 512) -> None:
        import llama_cpp as lc
        from llama_cpp._logger import set_verbose

        set_verbose(False)  # llama.cpp logs every tensor at load otherwise
        lc.llama_backend_init()
        self._lc = lc
        self.threads = threads
        self.n_batch = n_batch
        params = lc.llama_model_default_params()
        # A build with AMX (-march=native on a Xeon that has it) puts the weights in AMX
        # buffers, and 0.3.36's AMX matmul segfaults in llama_decode on this host's Xeon
        # (for Llama.generate too); without the extra buffer types it runs its AVX-512 kernels.
        self.extra_bufts = "AMX_INT8 = 1" not in self.system_info
        params.use_extra_bufts = self.extra_bufts
        self.model = lc.llama_model_load_from_file(gguf.encode(), params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {gguf}")
        self.n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))
        self.ctx: Any = None
        self.streams = 0
        self.batch = lc.llama_batch_init(n_batch, 0, 1)

    @property
    def system_info(self) -> str:
        """The instruction sets this llama.cpp build uses (e.g. `AVX2 = 1 | AVX512 = 0`)."""
        return self._lc.llama_print_system_info().decode(errors="replace").strip()

    def context(self, streams: int, tokens_per_stream: int) -> None:
        """A fresh context: `streams` KV streams of `tokens_per_stream` (rounded up) each."""
        lc = self._lc
        if self.ctx is not None:
            lc.llama_free(self.ctx)
            self.ctx = None
        params = lc.llama_context_default_params()
        params.n_ctx = streams * pad_context(tokens_per_stream)
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_seq_max = streams
        params.kv_unified = False  # one KV stream per sequence, like the `batched` example
        params.n_threads = params.n_threads_batch = self.threads
        self.ctx = lc.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a context")
        self.streams = streams

    def close(self) -> None:
        lc = self._lc
        lc.llama_batch_free(self.batch)
        if self.ctx is not None:
            lc.llama_free(self.ctx)
        lc.llama_model_free(self.model)

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One `llama_decode` of (token, position, sequence id, wants logits) entries."""
        b = self.batch
        for i, (token, pos, seq, logits) in enumerate(entries):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = int(logits)
        b.n_tokens = len(entries)
        status = self._lc.llama_decode(self.ctx, b)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status} (KV cache too small?)")

    def _logits(self, index: int) -> np.ndarray:
        """The logits of the `index`-th entry of the last decode (a view, no copy)."""
        ptr = self._lc.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _argmax(self, index: int, margins: list[float] | None) -> int:
        """Greedy pick; with `margins`, also record how far the runner-up was behind."""
        logits = self._logits(index)
        if margins is not None:
            top2 = np.partition(logits, -2)[-2:]
            margins.append(float(top2[1] - top2[0]))
        return int(logits.argmax())

    def generate(self, prompts: list[list[int]], tokens: int, margins: bool = False) -> BatchRun:
        """Greedy-decode `tokens` new tokens for every prompt at once (one stream each).

        `margins` records each pick's lead over the runner-up (costs a partition per token).
        """
        if not 0 < len(prompts) <= self.streams:
            raise ValueError(f"{len(prompts)} prompts for a context of {self.streams} streams")
        self._lc.llama_memory_clear(self._lc.llama_get_memory(self.ctx), True)
        n = len(prompts)
        out: list[list[int]] = [[] for _ in prompts]
        gaps: list[list[float]] = [[] for _ in prompts]
        first = [0.0] * n
        started = time.perf_counter()
        # 1) Prefill, all prompts packed into n_batch-token batches.
        entries = [
            (tok, pos, seq, pos == len(p) - 1)
            for seq, p in enumerate(prompts)
            for pos, tok in enumerate(p)
        ]
        for start in range(0, len(entries), self.n_batch):
            chunk = entries[start : start + self.n_batch]
            self._decode(chunk)
            for i, (_, _, seq, logits) in enumerate(chunk):
                if logits:
                    out[seq].append(self._argmax(i, gaps[seq] if margins else None))
                    first[seq] = time.perf_counter()
        # 2) Decode: one token per stream per step.
        for _ in range(tokens - 1):
            self._decode(
                [(out[s][-1], len(prompts[s]) + len(out[s]) - 1, s, True) for s in range(n)]
            )
            for s in range(n):
                out[s].append(self._argmax(s, gaps[s] if margins else None))
        ended = time.perf_counter()
        timings = [StreamTiming(started, first[s], ended, len(out[s])) for s in range(n)]
        return BatchRun(timings, out, gaps)
