"""`python -m bench.worker {prepare|ours|llamacpp} …`: one measurement in a fresh process.

The orchestrator (bench/llm.py) starts one worker per configuration and round, so each load
is a real warm restart, each peak RSS belongs to one engine, and configurations can be
interleaved round-robin on a shared host. A worker prints its result as one line prefixed
with `RESULT_PREFIX`, whatever else libraries write to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from typing import Any

__all__ = ["RESULT_PREFIX", "main"]

log = logging.getLogger(__name__)

RESULT_PREFIX = "GURU-BENCH-RESULT "


def _prepare(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    """Convert the model once (not timed as a restart) and encode the throughput prompts."""
    from bench.prompts import LONG_PROMPTS, TTFT_PROMPT
    from core.llm.engine.prompting import PromptEncoder
    from core.llm.models.loading import load_tokenizer
    from core.llm.models.sources import prepare_model_dir, resolve_source
    from core.llm.types import user

    source = resolve_source(args.model, settings.data_dir)
    started = time.perf_counter()
    hf_dir = prepare_model_dir(source, progress=False)
    prepare_s = time.perf_counter() - started
    encoder = PromptEncoder(load_tokenizer(hf_dir), None)
    return {
        "kind": "prepare",
        "model": source.name,
        "gguf": str(source.path) if source.kind != "hf" else None,
        "hf_dir": str(hf_dir),
        "prepare_s": prepare_s,
        "prompt_ids": [encoder.encode(user(p)) for p in LONG_PROMPTS],
        "ttft_ids": encoder.encode(user(TTFT_PROMPT)),
    }


def _ours(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    from bench.ours import run_ours

    levels = [int(x) for x in args.levels.split(",") if x]
    return run_ours(
        settings,
        args.model,
        args.dtype,
        args.round,
        args.tokens,
        levels,
        args.quality,
        speed=not args.quality_only,
    )


def _llamacpp(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    from bench.llamacpp import run_llamacpp

    with open(args.prompts, encoding="utf-8") as fh:
        prepared = json.load(fh)
    return run_llamacpp(
        prepared["gguf"],
        prepared["prompt_ids"],
        settings.threads,
        args.round,
        args.tokens,
        levels=[int(x) for x in args.levels.split(",") if x],
        ttft_ids=prepared.get("ttft_ids"),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    sub = parser.add_subparsers(dest="what", required=True)
    prep = sub.add_parser("prepare")
    prep.set_defaults(run=_prepare)
    ours = sub.add_parser("ours")
    ours.add_argument("--dtype", required=True)
    ours.add_argument("--levels", default="1,4,8")
    ours.add_argument("--quality", type=int, default=0, help="quality prompts to run (0 = none)")
    ours.add_argument("--quality-only", action="store_true")
    ours.set_defaults(run=_ours)
    llama = sub.add_parser("llamacpp")
    llama.add_argument("--prompts", required=True, help="the JSON written by `prepare`")
    llama.add_argument("--levels", default="1,4,8", help="concurrent streams to time")
    llama.set_defaults(run=_llamacpp)
    for p in (prep, ours, llama):
        p.add_argument("--model", required=True)
        p.add_argument("--threads", type=int, required=True)
        p.add_argument("--round", type=int, default=0)
        p.add_argument("--tokens", type=int, default=128)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from core.config import Settings
    from core.logging import setup_logging

    settings = Settings.from_env()
    setup_logging("WARNING")
    settings = replace(settings, threads=args.threads, device="cpu")
    result = args.run(args, settings)
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
