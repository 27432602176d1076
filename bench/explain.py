"""`guru bench explain`: /explain on its 40 held-out learner questions.

Reports retrieval hit rate@1 and @3 (target @3 ≥ 0.9), the curriculum relevance floor against
off-topic questions, and (unless --no-answers) how many answers of the configured model
(default: the bundled SmolLM2-135M) contain each question's key term, and `guru bench answers`'
verdicts on the facts in bench/answer_eval/explain_facts.jsonl (every fact stated and a gold
note cited / wrong / refused / looping). Runs in a database of its own (`guru_bench_explain`)
on DATABASE_URL's server or the embedded one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any

from core.config import Settings

__all__ = ["add_arguments", "run"]

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-answers",
        action="store_true",
        help="retrieval and floor only (no model; seconds instead of minutes)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        metavar="N",
        help="answer only the first N questions (default: all)",
    )
    parser.add_argument("--show", action="store_true", help="print every answer")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")


def run(args: argparse.Namespace, settings: Settings) -> int:
    report = asyncio.run(_run(args, settings))
    print(json.dumps(report) if args.json else render(report, show=args.show))
    return 0


async def _run(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from bench.answer_eval.path import answer_path
    from bench.explain_eval import (
        calibrate_floor,
        evaluate_answers,
        evaluate_retrieval,
        load_eval_questions,
        off_topic_questions,
    )
    from bench.rag_eval.databases import bench_pool, server_url
    from core.explain.answer import concept_retriever
    from core.explain.kb import sync_concepts
    from core.llm.backend import open_llm
    from core.llm.models.loading import ModelCache
    from core.rag.embedder import Embedder
    from core.rag.ingest import Ingestor

    questions = load_eval_questions()
    embedder = Embedder()
    report: dict[str, Any] = {}
    try:
        async with server_url(settings) as url, bench_pool(url, "guru_bench_explain") as pool:
            sync = await sync_concepts(Ingestor(pool, embedder))
            report["ingest"] = {
                "notes": len(sync.added + sync.replaced + sync.unchanged),
                "changed": sync.changed,
                "seconds": round(sync.seconds, 2),
            }
            retriever = concept_retriever(pool, embedder)
            report["retrieval"] = await evaluate_retrieval(retriever, questions)
            report["floor"] = await calibrate_floor(retriever, questions, off_topic_questions())
            if not args.no_answers:
                llm = await open_llm(settings, ModelCache())
                try:
                    chosen = questions[: args.limit] if args.limit > 0 else questions
                    answering = answer_path(settings, pool, embedder, llm)
                    report["answers"] = await evaluate_answers(answering, chosen)
                    report["answers"]["model"] = settings.model
                finally:
                    await llm.aclose()
    finally:
        embedder.close()
    return report


def render(report: dict[str, Any], *, show: bool = False) -> str:
    r, f = report["retrieval"], report["floor"]
    n = r["questions"]
    lines = [
        f"notes: {report['ingest']['notes']} (ingest {report['ingest']['seconds']}s)",
        f"retrieval over {n} questions: hit@1 {r['hit_at_1']:.3f} "
        f"({round(r['hit_at_1'] * n)}/{n}), hit@{r['k']} {r['hit_at_k']:.3f} "
        f"({round(r['hit_at_k'] * n)}/{n}; target ≥ 0.9)",
    ]
    for miss in r["misses"]:
        lines.append(f"  miss {miss['id']}: gold {miss['gold']} got {miss['top']}")
    lines.append(
        f"floor {f['floor']}: in-scope min similarity "
        f"{f['in_scope_min_similarity']:.3f}, "
        f"off-topic max {f['off_topic_max_similarity']:.3f}"
    )
    for floor, row in f["by_floor"].items():
        lines.append(
            f"  floor {floor}: {row['in_scope_refused']}/{f['in_scope']} in-scope refused,"
            f" {row['off_topic_passed']}/{f['off_topic']} off-topic passed"
        )
    for text in f["off_topic_passing"]:
        lines.append(f"  off-topic passing the floor: {text!r}")
    if f["in_scope_refused"]:
        lines.append(f"  in-scope refused at the floor: {', '.join(f['in_scope_refused'])}")
    if "answers" in report:
        a = report["answers"]
        lines.append(
            f"answers ({a['model']}): {a['with_key_term']}/{a['questions']} contain the "
            f"key term, {a['refused']} refused"
        )
        if "verdicts" in a:  # guru bench answers' categories, on explain_facts.jsonl
            v, held = a["verdicts"], a["verdicts"]["held_out_half"]["pct"]
            lat = v["latency_s"]
            lines.append(
                "  verdicts (all / held-out half): "
                + ", ".join(
                    f"{name.replace('_', ' ')} {v['pct'][name]:.0f}% / {held[name]:.0f}%"
                    for name in v["pct"]
                    if v["pct"][name] is not None and held[name] is not None
                )
                + f"; latency p50 {lat['p50']} s, p95 {lat['p95']} s (4 in flight)"
            )
        for row in a["rows"]:
            mark = "ok " if row["contains_key_term"] else "-- "
            lines.append(
                f"  {mark}{row['id']} [{row['key_term']}] {row['seconds']}s"
                + (f": {' '.join(row['answer'].split())[:300]}" if show else "")
            )
    return "\n".join(lines)
