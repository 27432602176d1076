"""`guru bench NAME [OPTIONS]`: benchmarks that print numbers (speed, memory, quality).

Each benchmark is a module `bench.<name>` offering `add_arguments(parser)` and
`run(args, settings) -> int`; adding one is one line in `BENCHMARKS`. The module is imported
only when its benchmark runs, so building the product CLI never loads benchmark code (nor
torch). The benchmarks ship in the source checkout; their heavy extras (llama.cpp as the
baseline) are `pip install -e '.[bench]'`. The Discord load benchmark drives the emulator in
tests/ and runs as `python -m tests.e2e.bot_load`.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from core.config import Settings
from core.errors import InvalidInput

__all__ = ["register", "BENCHMARKS"]

# name -> one-line help; the module is `bench.<name>`.
BENCHMARKS: dict[str, str] = {
    "llm": "engine speed vs llama.cpp (TTFT, decode, batched throughput, RSS, load) + quality",
    "sandbox": "latency of a trivial program in the PAL sandbox (cold, warm pool, burst)",
    "tune": "LoRA vs QLoRA training tokens/s and memory, plus the Llama-2-7B memory arithmetic",
    "pal": "GSM8K accuracy + time: direct vs chain-of-thought vs PAL vs PAL + self-consistency",
    "explain": "/explain on 40 held-out questions: retrieval hit@3, the curriculum floor, answers",
    "answers": "grounded answers: facts stated + gold cited, wrong, refused, looping, latency",
    "rag": "knowledge base: recall@1/5 + MRR@10 on git-doc, ingest chunks/s vs ST, latency",
    "docx_bomb": "a 40 MiB .docx bomb: bot RSS growth reading it before vs now (isolated)",
    "insights": "/insights' clustering: embed + cluster N unanswered questions, s and purity",
}


def register(subparsers: Any) -> None:
    """Add `bench NAME ARGS...`; NAME's own options are parsed when it runs."""
    listing = "\n".join(f"  {name:<9} {text}" for name, text in BENCHMARKS.items())
    parser = subparsers.add_parser(
        "bench",
        help="benchmarks: speed, memory and quality of Guru's parts",
        description=f"Run a benchmark; most take minutes. Numbers depend on how busy the "
        f"host is.\n\nbenchmarks:\n{listing}\n\n`guru bench NAME --help` shows its options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bench_name", metavar="NAME", choices=sorted(BENCHMARKS))
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="...")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        module = importlib.import_module(f"bench.{args.bench_name}")
    except ModuleNotFoundError as exc:
        raise InvalidInput(
            f"The benchmarks ship with Guru's source checkout ({exc.name} is missing): run "
            "`guru bench` from a clone installed with `pip install -e '.[bench]'`."
        ) from None
    parser = argparse.ArgumentParser(
        prog=f"guru bench {args.bench_name}",
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(args.bench_args), settings))
