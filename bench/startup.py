"""`python -m bench.startup --model M`: a warm start step by step, and where memory goes.

Prints the seconds each step of a start takes (imports, tokenizer, weights, the engine with
its packing cache, the first token) and the process's memory after each stage of a small
workload (a 200-token prompt, 8 concurrent requests, a 1,043-token prompt): VmHWM (the peak so
far, what `guru bench llm` reports as peak RSS), anonymous and file-backed RSS, and at the end
the mapped files that hold the most. /proc/self/status, because tracemalloc does not see torch.
Run it in a fresh process per measurement (it is one): nothing may be loaded before.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import replace

STARTED = time.perf_counter()
FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssFile")


def memory() -> dict[str, int]:
    """This process's memory figures in MiB."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in FIELDS:
                out[key] = int(value.split()[0]) // 1024
    return out


def mapped_files(top: int = 6) -> list[tuple[str, int]]:
    """The mappings with the most resident MiB (files by name, [heap], [anon])."""
    rss: Counter[str] = Counter()
    name = "[anon]"
    with open("/proc/self/smaps") as fh:
        for line in fh:
            parts = line.split()
            if "-" in parts[0] and not parts[0].endswith(":"):
                name = parts[5] if len(parts) > 5 else "[anon]"
            elif parts[0] == "Rss:":
                rss[name] += int(parts[1])
    return [(n, kib // 1024) for n, kib in rss.most_common(top)]


def report(step: str, since: float) -> float:
    now = time.perf_counter()
    figures = " ".join(f"{k} {v}" for k, v in memory().items())
    print(f"{step:44s} {now - since:6.2f} s   {figures}", flush=True)
    return now


async def _workload(engine, mark: float) -> float:
    from bench.prompts import LONG_PROMPTS, TTFT_PROMPT
    from core.llm.types import Request, user

    async def run(prompt: str, tokens: int) -> None:
        await engine.complete(Request(user(prompt), max_new_tokens=tokens, temperature=0.0))

    try:
        await run("Say hello.", 4)
        mark = report("first request (the engine built, packing read)", mark)
        await run(LONG_PROMPTS[0], 32)
        mark = report("a 200-token prompt + 32 tokens", mark)
        await asyncio.gather(*(run(p, 32) for p in LONG_PROMPTS[:8]))
        mark = report("8 concurrent requests of 32 tokens", mark)
        await run(TTFT_PROMPT, 2)
        mark = report("the 1,043-token prompt", mark)
        files = ", ".join(f"{name.rsplit('/', 1)[-1]} {mib}" for name, mib in mapped_files())
        print(f"resident MiB by mapping: {files}")
        built = engine.loaded.hf.built
        code = "transformers.modeling_utils" in sys.modules
        print(f"transformers model built: {built}; its model code imported: {code}")
        return mark
    finally:
        await engine.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--model", default=None, help="model spec (default: GURU_MODEL)")
    parser.add_argument("--weights", default=None, help="GURU_ENGINE_WEIGHTS (default: as set)")
    args = parser.parse_args(argv)
    from core.config import Settings, force_offline_hub

    force_offline_hub()
    import torch  # noqa: F401 - timed
    import transformers  # noqa: F401 - timed; its model code is imported only if built

    mark = report("imports (torch, transformers)", STARTED)
    from core.llm.engine.engine import Engine
    from core.llm.engine.memory import serve_large_blocks_from_mmap
    from core.llm.models.loading import LazyModel, LoadedModel, Placement, load_tokenizer
    from core.llm.models.sources import prepare_model_dir, resolve_source

    settings = replace(Settings.from_env(), device="cpu", dtype="float32")
    if args.weights:
        settings = replace(settings, engine_weights=args.weights)
    torch.set_num_threads(settings.threads)
    source = resolve_source(args.model or settings.model, settings.data_dir)
    hf_dir = prepare_model_dir(source)
    tokenizer = load_tokenizer(hf_dir)
    mark = report("tokenizer", mark)
    # as load_model does on the CPU in fp32: the transformers model is built on first use,
    # large blocks are mapped on their own (core/llm/engine/memory.py)
    serve_large_blocks_from_mmap()
    model = LazyModel(hf_dir, Placement("cpu", "float32", "none"))
    mark = report("config (the model is built on first use)", mark)
    window = int(model.config.max_position_embeddings)
    loaded = LoadedModel(source.name, model, tokenizer, "cpu", "float32", window, str(hf_dir))
    asyncio.run(_workload(Engine.from_settings(loaded, settings), mark))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
