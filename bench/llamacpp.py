"""The llama.cpp baseline: the same GGUF, the same prompt tokens, thread count and workload.

`llama_cpp` (extra `guru[bench]`) is optional: it compiles from source for ~12 minutes, and
Guru itself never uses it. Prompts arrive as token ids from our own chat-template encoding, so
both engines prefill exactly the same tokens. Every measurement goes through llama.cpp's own
batch API (bench/llamacpp_batch.py): one stream alone, then 4 and 8 streams decoded together
(llama.cpp's batched decoding: the honest baseline for our concurrent streams), each level on
the same prompts as our engine's run of that round, plus the time to first token of the
~1,000-token prompt. Runs in its own worker process (no torch import), so its peak RSS is
llama.cpp's alone.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from typing import Any

from bench.measure import aggregate, loadavg, peak_rss_mb

__all__ = ["llamacpp_available", "run_llamacpp", "MISSING_NOTE"]

log = logging.getLogger(__name__)

MISSING_NOTE = (
    "llama.cpp baseline skipped: `llama_cpp` is not importable. Install it with "
    "`pip install -e '.[bench]'` (compiles llama.cpp, ~12 min on 2 cores)."
)
SLACK_TOKENS = 16  # KV room beyond prompt + new tokens


def llamacpp_available() -> bool:
    """Whether `llama_cpp` can be imported, without importing it (the import is slow-ish)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def _levels(
    llm: Any, prompt_ids: list[list[int]], round_no: int, tokens: int, levels: list[int]
) -> dict[str, Any]:
    """Single stream and each concurrency level, on the prompts our engine gets that round."""
    n = len(prompt_ids)
    single = llm.generate([prompt_ids[round_no % n]], tokens).timings[0]
    out: dict[str, Any] = {
        "single": {
            "ttft_s": single.ttft_s,
            "decode_tps": single.decode_tps,
            "tokens": single.tokens,
            "aggregate_tps": single.tokens / single.elapsed_s,
        },
        "concurrency": {"1": aggregate([single])},
    }
    for level in levels:
        if level > 1:
            prompts = [prompt_ids[(round_no + i) % n] for i in range(level)]
            timings = llm.generate(prompts, tokens).timings
            out["concurrency"][str(level)] = aggregate(timings)
            # Informational: the decode steps alone (every stream's first token comes from
            # the shared prefill, so they all start decoding together).
            steps_s = timings[0].ended - max(t.first for t in timings)
            decoded = sum(t.tokens - 1 for t in timings)
            out["concurrency"][str(level)]["decode_tps"] = decoded / steps_s if steps_s else 0.0
    return out


def run_llamacpp(
    gguf: str,
    prompt_ids: list[list[int]],
    threads: int,
    round_no: int,
    tokens: int,
    levels: list[int] | None = None,
    ttft_ids: list[int] | None = None,
) -> dict[str, Any]:
    """Load the GGUF, then time the long-prompt TTFT, one stream and `levels` streams."""
    try:
        from llama_cpp import __version__

        from bench.llamacpp_batch import LlamaCppModel
    except ImportError as exc:
        return {"kind": "llamacpp", "skipped": f"{MISSING_NOTE} ({exc})"}
    levels = levels or [1, 4, 8]
    start_load = loadavg()
    started = time.perf_counter()
    llm = LlamaCppModel(gguf, threads)
    load_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "kind": "llamacpp",
        "path": "llama.cpp",
        "version": __version__,
        "library": importlib.util.find_spec("llama_cpp").origin,
        "system_info": llm.system_info,
        "extra_buffer_types": llm.extra_bufts,
        "threads": threads,
        "round": round_no,
        "load_s": load_s,
    }
    try:
        if ttft_ids:
            llm.context(1, len(ttft_ids) + SLACK_TOKENS)
            llm.generate([ttft_ids], 1)  # warm-up on the same shape, as for our engine
            long = llm.generate([ttft_ids], 1).timings[0]
            result["ttft_long"] = {"ttft_s": long.ttft_s, "prompt_tokens": len(ttft_ids)}
        streams = max(levels)
        llm.context(streams, max(map(len, prompt_ids)) + tokens + SLACK_TOKENS)
        warm = [prompt_ids[(round_no + 1 + i) % len(prompt_ids)][:32] for i in range(streams)]
        llm.generate(warm[:1], 8)  # warm-up: one stream and a full batch
        llm.generate(warm, 8)
        result.update(_levels(llm, prompt_ids, round_no, tokens, levels))
    finally:
        llm.close()
    result["loadavg"] = {"start": start_load, "end": loadavg()}
    result["peak_rss_mb"] = peak_rss_mb()
    return result
