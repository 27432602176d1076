"""Kernel paths side by side in one process: prefill of a ~1,000-token prompt (a RAG prompt's
size) and decode steps at batch 1 and 8, interleaved round-robin so a busy shared host slows
every path alike (`python -m bench.isa --rounds 3`).

Times are this thread's CPU time (`time.thread_time`, with torch on 1 thread): on a shared
host a process waiting for a core does not count, so rounds agree far better than wall time.
A path is `dense` (the lean forward on fp32 weights), `int4:<isa>` (`GURU_ENGINE_ISA`:
avx512bf16, avx2, portable; other GGUF block types re-quantized to 4 bits) or `auto:<isa>`
(the exact packings only, as GURU_ENGINE_WEIGHTS=auto: Q8_0 / Q5_0 as 8-bit codes). Only
paths this CPU runs are measured. This times the lean forward alone (no engine, no
sampling): the kernels' share of TTFT and tok/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

__all__ = ["main"]

FILLER = (
    "Git stores snapshots of a project in a repository; each commit records the tree, its "
    "parents and a message, and branches are movable names for commits. "
)


def _lean(model: Any, path: str, cache_dir: str) -> Any:
    from core.llm.engine.lean import LeanLlama

    if path == "dense":
        return LeanLlama(model, "dense")
    kind, isa = path.split(":", 1)
    os.environ["GURU_ENGINE_ISA"] = isa
    try:
        return LeanLlama(model, "int4", cache_dir=cache_dir, requantize=kind == "int4")
    finally:
        del os.environ["GURU_ENGINE_ISA"]


def _decode(lean: Any, prompts: list[list[int]], steps: int) -> float:
    """Decode tok/s over `steps` steps for all rows (after an untimed prefill)."""
    from core.llm.engine.kv import BatchKV

    kv = BatchKV(len(lean.layers), dtype=lean.cache_dtype)
    kv.add_rows([rows for _, rows in lean.prefill_many(prompts)])
    tokens = [1] * len(prompts)
    started = time.thread_time()
    for _ in range(steps):
        logits = lean.decode(tokens, kv)
        kv.append_step()
        tokens = logits.argmax(-1).tolist()
    return steps * len(prompts) / (time.thread_time() - started)


def run(model_name: str, paths: list[str], rounds: int, threads: int) -> dict[str, Any]:
    import torch

    from core.config import Settings
    from core.llm.engine import native
    from core.llm.engine.native import isa
    from core.llm.models.loading import load_model

    if threads != 1:
        raise SystemExit("CPU time measures one thread: use --threads 1")
    torch.set_num_threads(threads)
    settings = Settings(device="cpu", threads=threads, model=model_name)
    loaded = load_model(model_name, settings)
    tok = loaded.tokenizer
    long_ids = tok(FILLER * 40)["input_ids"][:1000]
    short = [tok(FILLER * 5 + f" Question {i}?")["input_ids"][:200] for i in range(8)]
    runnable = [
        p
        for p in paths
        if p == "dense" or p.endswith(":portable") or not native.isa_missing(p.split(":")[1])
    ]
    leans = {p: _lean(loaded.model, p, loaded.path) for p in runnable}
    times: dict[str, dict[str, list[float]]] = {p: {} for p in runnable}
    with torch.inference_mode():
        for lean in leans.values():  # warm-up: builds, first-touch of the weights
            lean.prefill(short[0])
        for _ in range(rounds):
            for path, lean in leans.items():
                started = time.thread_time()
                lean.prefill(long_ids)
                row = times[path]
                row.setdefault("ttft_1000_s", []).append(time.thread_time() - started)
                row.setdefault("decode_tps_1", []).append(_decode(lean, short[:1], 64))
                row.setdefault("decode_tps_8", []).append(_decode(lean, short, 24))
    return {
        "auto": native.describe(),
        "cpu_flags": sorted(f for f in isa.cpu_flags() if f.startswith(("avx", "fma", "f16c"))),
        "load": os.getloadavg(),
        "threads": threads,
        "paths": {
            p: {k: round(statistics.median(v), 3) for k, v in row.items()}
            for p, row in times.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--paths", default="dense,int4:avx512bf16,int4:avx2,int4:portable")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    result = run(args.model, args.paths.split(","), args.rounds, args.threads)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
