"""`guru bench answers`: are the answers right? Grounded-answer quality through /ask's path.

Each question carries the fact(s) its answer must state (alternatives, matched case-insensitively
after light normalisation) and its gold page(s). The model is loaded once; every question goes
through `bench.answer_eval.path.answer_one`, which answers as `guru ask` does (relevance floor,
numbered sources, `finish_answer`). Per set and prompt variant it prints:

- correct-and-cited: states every fact AND the model cited a gold page by its [n],
- cited after attribution ("attrib ok"): every fact AND the answer shown cites a gold page by
  an [n] (core.rag.attribute writes them where it measures support; not the "Sources:" line),
- correct, uncited: every fact, but no citation of a gold page by the model,
- confidently wrong: answered (not refused) with a fact missing,
- wrongly refused, empty-or-looping, off-topic refused, answer latency p50/p95, the answers'
  length (chars p50), peak RSS;
the held-out (odd) half apart. Sets: git (bench/rag_eval's 48 questions over Debian's git-doc),
emberfall (a fictional game server's rules/FAQ, bench/answer_eval/emberfall/), explain (/explain's
40 questions). Rows (question, answer, sources, verdict) are written per question under
<data dir>/bench/answers/ and reused on the next run (--fresh to redo). Runs in bench databases
(`guru_bench_eval*`, `guru_bench_explain`), never the bot's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.config import Settings

__all__ = ["add_arguments", "run"]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.answer_eval.path import PROMPT_VARIANTS
    from bench.rag_eval.evaluate import DEFAULT_DOCS

    parser.add_argument(
        "--sets",
        default="git,emberfall",
        help="comma-separated: git, emberfall, explain, explain-new",
    )
    parser.add_argument("--model", default="", help="model preset (default: GURU_MODEL)")
    parser.add_argument(
        "--variants",
        default="shipped",
        help=f"comma-separated variants: {', '.join(PROMPT_VARIANTS)} (default %(default)s)",
    )
    parser.add_argument(
        "--limit", type=int, default=0, metavar="N", help="first N answerable + N off-topic"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="questions in flight (>1 is faster, but latency then includes batching)",
    )
    parser.add_argument("--fresh", action="store_true", help="ignore rows of earlier runs")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="no model: score the stored rows again (after editing facts or the scorer)",
    )
    parser.add_argument("--docs", default=str(DEFAULT_DOCS), help="the git-doc HTML directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bench.answer_eval.path import PROMPT_VARIANTS
    from bench.answer_eval.sets import SETS

    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [s for s in sets if s not in SETS] + [v for v in variants if v not in PROMPT_VARIANTS]
    if bad:
        print(f"guru: unknown set(s)/variant(s): {', '.join(bad)}", file=sys.stderr)
        return 2
    if "git" in sets and not args.rescore and not Path(args.docs).is_dir():
        print(
            f"guru: {args.docs} not found; `apt-get install git-doc` (or `apt-get download "
            "git-doc && dpkg-deb -x git-doc_*.deb root`) and pass --docs DIR",
            file=sys.stderr,
        )
        return 2
    if args.model:
        settings = replace(settings, model=args.model)
    if args.rescore:
        report = rescore(settings, sets, variants, args)
    else:
        report = asyncio.run(measure(settings, sets, variants, args))
    if args.json:
        print(json.dumps(report))
    else:
        from bench.answer_eval.report import render

        print(render(report))
    return 0


async def measure(
    settings: Settings, sets: list[str], variants: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Load the model once; ingest each set's corpus (no-op when unchanged); answer; score."""
    from bench.answer_eval.harness import rows_path, run_set, summarize
    from bench.answer_eval.path import answer_path
    from bench.answer_eval.sets import load_set
    from bench.rag_eval.databases import bench_pool, dtype_suffix, server_url
    from core.llm.backend import open_llm
    from core.llm.models.loading import ModelCache
    from core.rag.embedder import Embedder

    embedder = Embedder()
    # Same database names as `guru bench rag` / `bench explain`: git-doc's 5,443 chunks are
    # embedded once for all of them (stored vectors belong to one encoder dtype).
    suffix = dtype_suffix(embedder)
    report: dict[str, Any] = {
        "model": settings.model,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": os.getloadavg(),
        "threads": settings.threads,
        "sets": {},
    }
    llm = await open_llm(settings, ModelCache())
    try:
        async with server_url(settings) as url:
            for name in sets:
                qset = load_set(name, git_docs=Path(args.docs))
                # /explain's notes: `guru bench explain`'s database (it has no dtype suffix)
                dbname = (
                    "guru_bench_explain" if qset.kind == "explain" else "guru_bench_eval" + suffix
                )
                async with bench_pool(url, dbname) as pool:
                    corpus = await _ingest(qset, pool, embedder)
                    answering = answer_path(settings, pool, embedder, llm)
                    for variant in variants:
                        path = rows_path(settings.data_dir, settings.model, variant, name)
                        rows = await run_set(
                            answering,
                            qset,
                            path,
                            variant=variant,
                            limit=args.limit,
                            concurrency=args.concurrency,
                            fresh=args.fresh,
                        )
                        entry = {"corpus": corpus, "rows_file": str(path), **summarize(rows)}
                        report["sets"].setdefault(name, {})[variant] = entry
    finally:
        await llm.aclose()
        embedder.close()
    report["load_after"] = os.getloadavg()
    # ru_maxrss is KiB on Linux: the model, the encoder and the Python heap, for the whole run.
    report["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return report


def rescore(
    settings: Settings, sets: list[str], variants: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """The report of the stored rows, scored again (latency and RSS are the runs' own)."""
    from bench.answer_eval.harness import rescore_set, rows_path, summarize
    from bench.answer_eval.sets import load_set

    report: dict[str, Any] = {
        "model": settings.model,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()) + " (rescored)",
        "load_before": os.getloadavg(),
        "threads": settings.threads,
        "peak_rss_gib": None,
        "sets": {},
    }
    for name in sets:
        qset = load_set(name, git_docs=Path(args.docs))
        for variant in variants:
            path = rows_path(settings.data_dir, settings.model, variant, name)
            rows = rescore_set(qset, path, limit=args.limit)
            if rows:
                entry = {"corpus": {}, "rows_file": str(path), **summarize(rows)}
                report["sets"].setdefault(name, {})[variant] = entry
    return report


async def _ingest(qset: Any, pool: Any, embedder: Any) -> dict[str, Any]:
    """The set's corpus in the bench database (unchanged documents cost one hash check)."""
    from core.rag.ingest import Ingestor

    ingestor = Ingestor(pool, embedder)
    if qset.kind == "explain":
        from core.explain.kb import sync_concepts

        sync = await sync_concepts(ingestor)
        return {"documents": len(sync.added + sync.replaced + sync.unchanged)}
    if qset.name == "git":
        from bench.rag_eval.evaluate import ingest_corpus

        return await ingest_corpus(ingestor, qset.corpus, qset.guild)
    counts: dict[str, int] = {}
    uris: set[str] = set()
    async for outcome in ingestor.ingest_paths(qset.guild, [str(qset.corpus)]):
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        uris.add(outcome.uri)
    # A document's uri is its absolute path, so each checkout of this repository (worktrees)
    # adds its own copy of the pages; duplicates then fill the answer's source slots. The
    # set's guild holds exactly this corpus.
    from core.rag.store import DocumentRepo

    async with pool.connection() as conn:
        documents = DocumentRepo(conn)
        stale = [d for d in await documents.list(qset.guild) if d.uri not in uris]
        for doc in stale:
            await documents.delete(qset.guild, doc.id)
    return {"documents": sum(counts.values()), "removed": len(stale), **counts}
