"""Run a question set through `answer_one`, score every answer, keep rows, summarise.

Rows go to `<data dir>/bench/answers/<model>/<variant>/<set>.jsonl` as soon as each question
is answered, so a long run (Qwen on CPU: tens of minutes) can be read while it runs and resumed
after an interruption: a question whose row is already there (same id and text) is skipped
unless `fresh`. Latency is measured one question at a time by default: with several in flight
the engine batches them and each answer's time includes waiting for the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.answer_eval.path import AnswerPath, answer_one
from bench.answer_eval.score import (
    OFF_TOPIC_VERDICTS,
    VERDICTS,
    is_looping,
    score_answer,
    score_off_topic,
)
from bench.answer_eval.sets import Item, QuestionSet

__all__ = [
    "rows_path",
    "load_rows",
    "run_set",
    "score_row",
    "rescore",
    "rescore_set",
    "summarize",
    "percentile",
]

log = logging.getLogger(__name__)


def rows_path(data_dir: str | Path, model: str, variant: str, set_name: str) -> Path:
    safe = model.replace("/", "_")
    return Path(data_dir) / "bench" / "answers" / safe / variant / f"{set_name}.jsonl"


def load_rows(path: Path) -> dict[str, dict[str, Any]]:
    """id -> row of a previous run (a torn last line from a crash is ignored)."""
    rows: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        rows[row["id"]] = row
    return rows


def score_row(
    item: Item,
    *,
    answer: str,
    raw: str | None,
    refused: bool,
    sources: Sequence[str],
    completion_tokens: int,
    seconds: float,
) -> dict[str, Any]:
    """The JSONL row of one answered question: what was asked, said, cited, and the verdict.

    Built from stored fields only, so rows of an earlier run are re-scored with today's facts
    and scorer without calling the model again."""
    if item.off_topic:
        scored = score_off_topic(answer=answer, refused=refused)
    else:
        scored = score_answer(
            answer=answer,
            raw=raw,
            refused=refused,
            facts=item.facts,
            source_uris=sources,
            gold=item.gold,
        )
    return {
        **item.to_dict(),
        "answer": answer,
        "raw": raw,
        "refused": refused,
        "model_called": raw is not None,
        "raw_looping": raw is not None and is_looping(raw),
        "sources": [Path(u).name for u in sources],
        "completion_tokens": completion_tokens,
        "seconds": round(seconds, 3),
        **scored.to_dict(),
    }


def rescore(item: Item, row: dict[str, Any]) -> dict[str, Any]:
    """A stored row scored again (facts or scorer may have changed since)."""
    return score_row(
        item,
        answer=row["answer"],
        raw=row["raw"],
        refused=row["refused"],
        sources=row["sources"],
        completion_tokens=row["completion_tokens"],
        seconds=row["seconds"],
    )


async def run_set(
    answering: AnswerPath,
    qset: QuestionSet,
    path: Path,
    *,
    variant: str = "shipped",
    limit: int = 0,
    concurrency: int = 1,
    fresh: bool = False,
) -> list[dict[str, Any]]:
    """Answer the set's questions (the first `limit` answerable + off-topic ones if > 0)."""
    items = list(qset.answerable[:limit] if limit > 0 else qset.answerable)
    items += list(qset.off_topic[:limit] if limit > 0 else qset.off_topic)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fresh and path.exists():
        path.unlink()
    done = load_rows(path)
    todo = [i for i in items if done.get(i.id, {}).get("question") != i.question]
    log.info("%s/%s: %d questions, %d to answer", qset.name, variant, len(items), len(todo))
    gate = asyncio.Semaphore(max(1, concurrency))
    lock = asyncio.Lock()

    async def one(item: Item) -> None:
        async with gate:
            outcome = await answer_one(
                answering, qset.guild, item.question, kind=qset.kind, variant=variant
            )
        row = score_row(
            item,
            answer=outcome.answer.answer,
            raw=outcome.raw,
            refused=outcome.answer.refused,
            sources=outcome.source_uris,
            completion_tokens=outcome.completion_tokens,
            seconds=outcome.seconds,
        )
        async with lock:
            done[item.id] = row
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        log.info("%s %s %.1fs %s", qset.name, item.id, outcome.seconds, row["verdict"])

    await asyncio.gather(*(one(i) for i in todo))
    rows = [rescore(i, done[i.id]) for i in items]
    _rewrite(path, done, rows)
    return rows


def _rewrite(path: Path, done: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """The rows file with today's verdicts (rows outside this run's --limit kept as they are),
    replaced atomically so an interrupted rewrite cannot lose answers."""
    merged = {**done, **{r["id"]: r for r in rows}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in merged.values()),
        encoding="utf-8",
    )
    tmp.replace(path)


def rescore_set(qset: QuestionSet, path: Path, *, limit: int = 0) -> list[dict[str, Any]]:
    """The stored rows of a set, scored again without the model; questions not answered yet
    (an interrupted run) are left out. The file keeps its verdicts until the next run."""
    done = load_rows(path)
    items = list(qset.answerable[:limit] if limit > 0 else qset.answerable)
    items += list(qset.off_topic[:limit] if limit > 0 else qset.off_topic)
    # Not written back: a run on the same set may be appending to the file right now.
    return [
        rescore(i, done[i.id]) for i in items if done.get(i.id, {}).get("question") == i.question
    ]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1])


# Not a verdict of its own: every fact stated AND a gold page cited in the text the user reads
# after core.rag.attribute (whoever wrote the [n]); "correct_cited" stays the model's own.
ATTRIBUTED = "correct_attributed"


def _rates(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    counts[ATTRIBUTED] = sum(
        r["verdict"] in ("correct_cited", "correct_uncited") and r.get("attributed_gold", False)
        for r in rows
    )
    return {
        "questions": n,
        "counts": counts,
        "pct": {v: round(100 * c / n, 1) if n else None for v, c in counts.items()},
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Verdict rates (all answerable, tuning half, held-out half), off-topic refusals, latency."""
    answerable = [r for r in rows if not r["off_topic"]]
    off = [r for r in rows if r["off_topic"]]
    called = [r["seconds"] for r in rows if r["model_called"]]
    refused_off = sum(r["verdict"] == OFF_TOPIC_VERDICTS[0] for r in off)
    return {
        **_rates(answerable),
        "tuning_half": _rates([r for r in answerable if not r["held_out"]]),
        "held_out_half": _rates([r for r in answerable if r["held_out"]]),
        "off_topic": {
            "questions": len(off),
            "refused": refused_off,
            "refused_pct": round(100 * refused_off / len(off), 1) if off else None,
            "answered_looping": sum("(looping)" in r["missing"] for r in off),
        },
        "latency_s": {
            "answers": len(called),
            "p50": _round(percentile(called, 50)),
            "p95": _round(percentile(called, 95)),
        },
        # the model looped but finish_answer's line dedup hid it from the reader
        "raw_looping": sum(r.get("raw_looping", False) for r in rows),
        # what the user reads, in characters (a lead pasting pages would show here)
        "answer_chars_p50": _round(
            percentile([len(r["answer"]) for r in answerable if not r["refused"]], 50)
        ),
        "completion_tokens_p50": _round(
            percentile([r["completion_tokens"] for r in rows if r["model_called"]], 50)
        ),
    }


def _round(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None
