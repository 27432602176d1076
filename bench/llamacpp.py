"""The llama.cpp baseline: the same GGUF, single stream, the same prompt tokens and thread count.

`llama_cpp` (extra `guru[bench]`) is optional: it compiles from source for ~12 minutes, and
Guru itself never uses it. Prompts arrive as token ids from our own chat-template encoding, so
both engines prefill exactly the same tokens; `Llama.generate` does not stop at EOS, so every
run decodes the full token count. Runs in its own worker process (no torch import), so its
peak RSS is llama.cpp's alone.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from typing import Any

from bench.measure import StreamTiming, loadavg, peak_rss_mb

__all__ = ["llamacpp_available", "run_llamacpp", "MISSING_NOTE"]

log = logging.getLogger(__name__)

MISSING_NOTE = (
    "llama.cpp baseline skipped: `llama_cpp` is not importable. Install it with "
    "`pip install -e '.[bench]'` (compiles llama.cpp, ~12 min on 2 cores)."
)


def llamacpp_available() -> bool:
    """Whether `llama_cpp` can be imported, without importing it (the import is slow-ish)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def _generate(llm: Any, ids: list[int], tokens: int) -> StreamTiming:
    """Greedy decode `tokens` new tokens after prefilling `ids` from an empty context."""
    llm.reset()  # no prompt-prefix reuse between runs: every run prefills all of `ids`
    started = time.perf_counter()
    first = started
    count = 0
    for count, _token in enumerate(
        llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0), start=1
    ):
        if count == 1:
            first = time.perf_counter()
        if count >= tokens:
            break
    return StreamTiming(started, first, time.perf_counter(), count)


def run_llamacpp(
    gguf: str, prompt_ids: list[list[int]], threads: int, round_no: int, tokens: int
) -> dict[str, Any]:
    """Load the GGUF and time one single-stream generation (after a short warm-up)."""
    try:
        from llama_cpp import Llama, __version__
    except ImportError as exc:
        return {"kind": "llamacpp", "skipped": f"{MISSING_NOTE} ({exc})"}
    start_load = loadavg()
    started = time.perf_counter()
    context = max(len(ids) for ids in prompt_ids) + tokens + 16
    llm = Llama(
        model_path=gguf,
        n_ctx=context,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        seed=0,
        verbose=False,
    )
    load_s = time.perf_counter() - started
    _generate(llm, prompt_ids[(round_no + 1) % len(prompt_ids)][:32], 8)  # warm-up
    timing = _generate(llm, prompt_ids[round_no % len(prompt_ids)], tokens)
    return {
        "kind": "llamacpp",
        "path": "llama.cpp",
        "version": __version__,
        "threads": threads,
        "round": round_no,
        "load_s": load_s,
        "single": {
            "ttft_s": timing.ttft_s,
            "decode_tps": timing.decode_tps,
            "tokens": timing.tokens,
            "aggregate_tps": timing.tokens / timing.elapsed_s,
        },
        "loadavg": {"start": start_load, "end": loadavg()},
        "peak_rss_mb": peak_rss_mb(),
    }
