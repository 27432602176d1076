"""`guru bench rag`: retrieval quality, ingest throughput and search latency of the knowledge base.

Parts (all by default, or pick with --parts):
- eval: recall@1/5 and MRR@10 of vector, text and hybrid search on Git's documentation
  (Debian `git-doc`, see bench/rag_eval/), plus the relevance-floor calibration; with
  --expansion MODEL, also with LLM query expansion (HyDE / query2doc).
- ingest: chunks/s of our ingest path (parse + split + embed + store) next to a plain
  sentence-transformers fp32 `encode` of the same chunks, in the same run.
- latency: p50/p95 of one guild's search among several guilds at 10k and 100k random unit
  vectors, and recall@10 of the HNSW query against exact search.
Everything runs in databases of its own (`guru_bench_*`) on DATABASE_URL's server or the
embedded one, never in the bot's database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from core.config import Settings

__all__ = ["add_arguments", "run"]

log = logging.getLogger(__name__)

PARTS = ("eval", "ingest", "latency")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.rag_eval.evaluate import DEFAULT_DOCS

    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated subset of: " + ", ".join(PARTS)
    )
    parser.add_argument(
        "--docs",
        default=str(DEFAULT_DOCS),
        help="the git-doc HTML directory (apt-get install git-doc)",
    )
    parser.add_argument(
        "--sizes",
        default="10000,100000",
        help="chunk counts for the latency part (default %(default)s)",
    )
    parser.add_argument(
        "--ingest-pages",
        type=int,
        default=20,
        help="pages of git-doc for the throughput part (default %(default)s)",
    )
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="encoder weights (auto: bf16 where the CPU has it natively); "
        "each dtype evaluates in a database of its own",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of the throughput part (default %(default)s)",
    )
    parser.add_argument(
        "--expansion",
        default="",
        help="eval part: also measure LLM query expansion (HyDE / query2doc) "
        "with these comma-separated models (presets), e.g. "
        "smollm2-135m,qwen2.5-coder-0.5b; passages are cached under the "
        "data dir",
    )
    parser.add_argument(
        "--expansion-prompts",
        default="named",
        help="comma-separated prompts for --expansion: plain (write a passage "
        "that answers it), named (... and name the command/option/setting "
        "it uses), few (named after two generic examples); NAME*N samples "
        "N passages at temperature 0.7 (HyDE's averaged documents); "
        "default %(default)s",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")


def run(args: argparse.Namespace, settings: Settings) -> int:
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        print(f"guru: unknown part(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    report = asyncio.run(_run(args, settings, parts))
    if args.json:
        print(json.dumps(report))
    else:
        from bench.rag_eval.report import render

        print(render(report))
    return 0


async def _run(args: argparse.Namespace, settings: Settings, parts: list[str]) -> dict[str, Any]:
    from pathlib import Path

    from bench.rag_eval.databases import bench_pool, dtype_suffix, server_url
    from core.rag.embedder import Embedder

    docs = Path(args.docs)
    if ("eval" in parts or "ingest" in parts) and not docs.is_dir():
        raise SystemExit(
            f"guru: {docs} not found; install it with `apt-get install git-doc` or pass --docs DIR"
        )
    embedder = Embedder(dtype=args.dtype)
    # Stored vectors must come from the encoder under test: one eval database per encoder.
    suffix = dtype_suffix(embedder)
    report: dict[str, Any] = {}
    async with server_url(settings) as url:
        if "eval" in parts:
            from bench.rag_eval.evaluate import (
                calibrate_floor,
                evaluate,
                ingest_corpus,
                load_questions,
                load_unanswerable,
            )
            from core.rag.ingest import Ingestor
            from core.rag.retrieve import Retriever

            async with bench_pool(url, "guru_bench_eval" + suffix) as pool:
                ingestor, retriever = Ingestor(pool, embedder), Retriever(pool, embedder)
                report["corpus"] = await ingest_corpus(ingestor, docs)
                questions = load_questions()
                report["eval"] = await evaluate(retriever, questions)
                report["floor"] = await calibrate_floor(retriever, questions, load_unanswerable())
                if args.expansion:
                    report["expansion"] = await _expansion(args, settings, retriever, questions)
        if "ingest" in parts:
            from bench.rag_eval.throughput import measure_ingest

            async with bench_pool(url, "guru_bench_ingest" + suffix, fresh=True) as pool:
                report["ingest"] = await measure_ingest(
                    pool, embedder, docs, args.ingest_pages, args.rounds
                )
        if "latency" in parts:
            from bench.rag_eval.latency import measure_latency

            sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
            report["latency"] = []
            for size in sizes:
                async with bench_pool(url, f"guru_bench_latency_{size}") as pool:
                    report["latency"].append(await measure_latency(pool, embedder, size))
    embedder.close()
    return report


async def _expansion(
    args: argparse.Namespace, settings: Settings, retriever: Any, questions: list[Any]
) -> dict[str, Any]:
    """model → prompt → the expansion report (bench/rag_eval/expansion.py)."""
    from bench.rag_eval.expansion import evaluate_expansion, generate

    out: dict[str, Any] = {}
    for model in [m.strip() for m in args.expansion.split(",") if m.strip()]:
        for prompt in [p.strip() for p in args.expansion_prompts.split(",") if p.strip()]:
            passages = await generate(model, prompt, questions, settings)
            out.setdefault(model, {})[prompt] = await evaluate_expansion(
                retriever, questions, passages
            )
    return out
