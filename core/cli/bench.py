"""`guru bench …`: benchmarks (`bench llm` today; `rag`, `sandbox`, `tune` later).

Each benchmark is a module `bench.<name>` offering `add_arguments(parser)` and
`run(args, settings) -> int`; adding one is one line in `BENCHMARKS`. The modules import
torch only inside their workers, so building the CLI parser stays fast.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from core.config import Settings

__all__ = ["register", "BENCHMARKS"]

# name -> one-line help; the module is `bench.<name>`.
BENCHMARKS: dict[str, str] = {
    "llm": "engine speed vs llama.cpp (TTFT, decode, batched throughput, RSS, load) + quality gate",
    "sandbox": "latency of a trivial program in the PAL sandbox (cold, warm pool, burst)",
    "tune": "LoRA vs QLoRA training tokens/s and memory here, plus the Llama-2-7B memory arithmetic",
    "pal": "GSM8K accuracy + time: direct vs chain-of-thought vs PAL vs PAL + self-consistency",
    "bot_load": "N concurrent /ask through the Discord emulator: ack/answer p50/p99, loop lag",
    "explain": "/explain on 40 held-out questions: retrieval hit@3, the curriculum floor, key terms",
    "answers": "grounded answers: facts stated + gold cited, wrong, refused, looping, latency",
    "rag": "knowledge base: recall@1/5 + MRR@10 on git-doc, ingest chunks/s vs ST, search latency",
}


def register(subparsers: Any) -> None:
    """Add the `bench` command group with one subcommand per benchmark."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmarks: speed, memory and quality of Guru's parts",
        description="Run a benchmark; most take minutes. Numbers depend on how busy the host is.",
    )
    actions = parser.add_subparsers(dest="bench_name", metavar="BENCHMARK", required=True)
    for name, help_text in BENCHMARKS.items():
        module = importlib.import_module(f"bench.{name}")
        sub = actions.add_parser(
            name,
            help=help_text,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(handler=_handler(module))


def _handler(module: Any):
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        return int(module.run(args, settings))

    return handler
