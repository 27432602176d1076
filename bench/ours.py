"""Measure our Engine in this process: load, TTFT, decode, concurrency, quality, peak RSS.

Runs inside a fresh worker process per path and round (`python -m bench.worker ours`), so
the load time is a true warm restart (converted safetensors on disk, nothing in memory) and
peak RSS belongs to one engine alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

from bench.measure import StreamTiming, aggregate, loadavg, peak_rss_mb
from bench.prompts import LONG_PROMPTS, TTFT_PROMPT
from bench.quality import LONG_LOOP_NGRAM, QUALITY_PROMPTS, has_loop, is_correct
from core.config import Settings

__all__ = ["run_ours"]

log = logging.getLogger(__name__)

QUALITY_NEW_TOKENS = 64
QUALITY_LONG_PROMPTS = 3  # long answers checked for loops (this model loops on some in fp32)


async def _timed(engine: Any, prompt: str, max_new_tokens: int) -> StreamTiming:
    """Stream one request; the first token is the first text the caller receives."""
    from core.llm.types import Request, user

    request = Request(user(prompt), max_new_tokens=max_new_tokens, temperature=0.0)
    started = time.perf_counter()
    first: float | None = None
    async for event in engine.stream(request):
        if event.kind == "text" and first is None:
            first = time.perf_counter()
        if event.kind == "done":
            ended = time.perf_counter()
            done = event.completion
            if first is None:  # no visible text at all (e.g. only an end token)
                first = started + (done.first_token_s or done.elapsed_s)
            return StreamTiming(
                started, first, ended, done.completion_tokens, done.text, done.finish_reason
            )
    raise RuntimeError("stream ended without a completion")


async def _concurrent(engine: Any, prompts: list[str], tokens: int) -> list[StreamTiming]:
    return list(await asyncio.gather(*(_timed(engine, p, tokens) for p in prompts)))


def _token_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


async def _quality(
    engine: Any, tokenizer: Any, count: int, long_count: int, tokens: int
) -> dict[str, Any]:
    """Greedy answers one request at a time, so they never depend on batch composition.

    In a batch, bf16 results of a row change with the other rows (blocked matmul kernels), and
    which rows share a step depends on arrival timing; a gate must be reproducible.
    Returns {"short": {question: [correct, loops, text]}, "long": [[loops, text], ...]}.
    """
    short: dict[str, list[Any]] = {}
    for q in QUALITY_PROMPTS[:count]:
        t = await _timed(engine, q.question, QUALITY_NEW_TOKENS)
        looped = has_loop(_token_ids(tokenizer, t.text), t.text)
        short[q.question] = [is_correct(t.text, q.pattern), looped, t.text]
    long: list[list[Any]] = []
    for prompt in LONG_PROMPTS[:long_count]:
        t = await _timed(engine, prompt, tokens)
        ids = _token_ids(tokenizer, t.text)
        long.append([has_loop(ids, t.text, n=LONG_LOOP_NGRAM), t.text])
    return {"short": short, "long": long}


def parse_path(path: str) -> tuple[str, str, str]:
    """(kernel, dtype, weights) of a bench path: `[hf-]DTYPE`, `int4` or `auto`.

    `float32`/`bfloat16`/`float16` run the lean forward on dense weights of that dtype,
    `int4` runs it on the fp32-loaded weights packed into int4 (exact for Q4_1 GGUFs, other
    GGUF block types re-quantized: core.llm.engine.lean `_pack`), `auto` on what
    GURU_ENGINE_WEIGHTS=auto packs (exact only: Q8_0 / Q5_0 as 8-bit codes),
    and an `hf-` prefix runs transformers' forward instead (the engine before the lean one).
    """
    kernel, _, rest = path.rpartition("-")
    if rest in ("int4", "auto"):
        return kernel or "lean", "float32", rest
    return kernel or "lean", rest, "dense"


async def _measure(
    loaded: Any,
    round_no: int,
    tokens: int,
    levels: list[int],
    quality: int,
    speed: bool,
    kernel: str = "lean",
    weights: str = "dense",
) -> dict[str, Any]:
    from core.llm.engine.engine import Engine

    max_batch = max(levels, default=1)
    engine = Engine(
        loaded,
        max_batch=max(max_batch, 8),
        max_queue=256,
        max_queue_per_guild=256,
        max_new_tokens=max(tokens, QUALITY_NEW_TOKENS),
        kernel=kernel,
        weights=weights,
    )
    out: dict[str, Any] = {"loadavg": {"start": loadavg()}}
    try:
        # Warm-up: first calls allocate buffers and pick kernels; batched shapes too.
        await _timed(engine, "Say hello.", 8)
        await _concurrent(engine, ["Name a color.", "Name a fruit.", "Name a city."], 4)
        if quality:
            out["quality"] = await _quality(
                engine, loaded.tokenizer, quality, QUALITY_LONG_PROMPTS, tokens
            )
        if speed:
            # Time to first token of the ~1,000-token prompt; its first run warms that shape.
            await _timed(engine, TTFT_PROMPT, 2)
            out["ttft_long"] = {"ttft_s": (await _timed(engine, TTFT_PROMPT, 2)).ttft_s}
            n = len(LONG_PROMPTS)
            single = await _timed(engine, LONG_PROMPTS[round_no % n], tokens)
            out["single"] = {
                "ttft_s": single.ttft_s,
                "decode_tps": single.decode_tps,
                "tokens": single.tokens,
                "aggregate_tps": single.tokens / single.elapsed_s,
            }
            out["concurrency"] = {"1": aggregate([single])}
            batch_answers = [single.text]
            for level in levels:
                if level == 1:
                    continue
                prompts = [LONG_PROMPTS[(round_no + i) % n] for i in range(level)]
                timings = await _concurrent(engine, prompts, tokens)
                out["concurrency"][str(level)] = aggregate(timings)
                if level == max_batch:
                    batch_answers = [t.text for t in timings]
            # Informational: loops among the largest batch's answers (batch-dependent).
            out["batch_loops"] = sum(
                has_loop(_token_ids(loaded.tokenizer, text), text, n=LONG_LOOP_NGRAM)
                for text in batch_answers
            )
            out["batch_answers"] = len(batch_answers)
    finally:
        await engine.aclose()
    out["loadavg"]["end"] = loadavg()
    return out


def run_ours(
    settings: Settings,
    model: str,
    dtype: str,
    round_no: int,
    tokens: int,
    levels: list[int],
    quality: int,
    speed: bool = True,
) -> dict[str, Any]:
    """Load `model` as `dtype` and measure it; returns plain JSON-able numbers.

    Library imports are timed apart from `load_model`: they are the same for any model, and
    the load target is about reading the converted weights.
    """
    from core.config import force_offline_hub

    force_offline_hub()  # before transformers is imported
    started = time.perf_counter()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401 - timed import

    import core.llm.engine.engine  # noqa: F401 - timed import
    from core.llm.models.loading import load_model

    import_s = time.perf_counter() - started
    path = dtype
    kernel, dtype, weights = parse_path(path)
    settings = replace(settings, device="cpu", dtype=dtype)
    started = time.perf_counter()
    loaded = load_model(model, settings)
    load_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "kind": "ours",
        "path": path,
        "threads": settings.threads,
        "torch_threads": torch.get_num_threads(),
        "import_s": import_s,
        "load_s": load_s,
        "round": round_no,
    }
    result.update(
        asyncio.run(_measure(loaded, round_no, tokens, levels, quality, speed, kernel, weights))
    )
    result["peak_rss_mb"] = peak_rss_mb()
    return result
