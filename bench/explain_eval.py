"""Held-out evaluation of /explain: retrieval hit rate@3, the curriculum floor, answer key terms.

The 40 learner questions in `core/explain/eval_questions.jsonl` each name the note(s) that
answer them and a key term a good answer contains. Retrieval runs exactly as /explain does
(core.rag hybrid search on guild 0); a question is a hit@3 when one of its notes owns one of
the first 3 ranked chunks. Off-topic questions (general ones from bench/rag_eval plus
near-misses a Discord server asks) calibrate the floor: how many in-scope questions it drops
and how many off-topic ones it lets through.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.explain.answer import EXPLAIN_FLOOR
from core.explain.kb import URI_PREFIX
from core.explain.topics import CONCEPTS_DIR
from core.rag.retrieve import Retriever
from core.rag.types import CONCEPTS_GUILD_ID, Hit

if TYPE_CHECKING:
    from bench.answer_eval.path import AnswerPath

__all__ = [
    "EvalQuestion",
    "OFF_TOPIC",
    "load_eval_questions",
    "off_topic_questions",
    "evaluate_retrieval",
    "calibrate_floor",
    "evaluate_answers",
]

log = logging.getLogger(__name__)

EVAL_FILE = CONCEPTS_DIR.parent / "eval_questions.jsonl"
GENERAL_OFF_TOPIC = Path(__file__).resolve().parent / "rag_eval" / "unanswerable.txt"
# What a Discord server asks that is *not* about LLM concepts: /ask territory, or plain tech.
OFF_TOPIC = (
    "what are the rules of this server",
    "when is the next raid and who is leading it",
    "how do i get the moderator role",
    "where do i report a bug in the game",
    "how do i reset my password on the website",
    "how do i center a div in css",
    "what's the difference between tcp and udp",
    "how do i install python on windows",
    "why is my docker container exiting immediately",
    "how do i undo the last git commit",
    "what does a 404 error mean",
    "how do i set up port forwarding on my router",
)
FLOORS = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55)


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    notes: tuple[str, ...]  # file names, e.g. "lora.md"
    key_term: str


def load_eval_questions(path: Path = EVAL_FILE) -> list[EvalQuestion]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [EvalQuestion(r["id"], r["question"], tuple(r["notes"]), r["key_term"]) for r in rows]


def off_topic_questions() -> list[str]:
    general = (
        [
            ln.strip()
            for ln in GENERAL_OFF_TOPIC.read_text(encoding="utf-8").splitlines()
            if ln.strip()
        ]
        if GENERAL_OFF_TOPIC.exists()
        else []
    )
    return general + list(OFF_TOPIC)


def note_of(hit: Hit) -> str:
    return hit.uri.removeprefix(URI_PREFIX)


def ranked_notes(hits: list[Hit], k: int) -> list[str]:
    """The notes owning the first k chunks, in order, without repeats."""
    return list(dict.fromkeys(note_of(h) for h in hits[:k]))


async def evaluate_retrieval(
    retriever: Retriever, questions: list[EvalQuestion], k: int = 3
) -> dict[str, Any]:
    """hit@1 and hit@k over the questions, the misses, and each question's best similarity."""
    rows = []
    for q in questions:
        hits = await retriever.search(CONCEPTS_GUILD_ID, q.question, 8, "hybrid")
        notes = ranked_notes(hits, k)
        rows.append(
            {
                "id": q.id,
                "gold": list(q.notes),
                "top": notes,
                "hit1": bool(hits) and note_of(hits[0]) in q.notes,
                "hit": any(n in q.notes for n in notes),
                "best_similarity": max((h.similarity for h in hits), default=0.0),
                "exact": any(h.exact for h in hits),
            }
        )
    n = len(rows) or 1
    return {
        "questions": len(rows),
        "k": k,
        "hit_at_1": sum(r["hit1"] for r in rows) / n,
        "hit_at_k": sum(r["hit"] for r in rows) / n,
        "misses": [r for r in rows if not r["hit"]],
        "rows": rows,
    }


async def calibrate_floor(
    retriever: Retriever, questions: list[EvalQuestion], off_topic: list[str]
) -> dict[str, Any]:
    """Per floor: in-scope questions it refuses, off-topic ones it lets through (a question
    passes when some hybrid hit clears the floor: /explain has no all-terms bypass)."""

    async def best(text: str) -> float:
        hits = await retriever.search(CONCEPTS_GUILD_ID, text, 8, "hybrid")
        return max((h.similarity for h in hits), default=0.0)

    pos = [await best(q.question) for q in questions]
    neg = [await best(t) for t in off_topic]
    table = {
        str(f): {
            "in_scope_refused": sum(s < f for s in pos),
            "off_topic_passed": sum(s >= f for s in neg),
        }
        for f in FLOORS
    }
    return {
        "floor": EXPLAIN_FLOOR,
        "in_scope": len(pos),
        "off_topic": len(neg),
        "by_floor": table,
        "off_topic_passing": [t for t, s in zip(off_topic, neg) if s >= EXPLAIN_FLOOR],
        "in_scope_refused": [q.id for q, s in zip(questions, pos) if s < EXPLAIN_FLOOR],
        "in_scope_min_similarity": min(pos, default=0.0),
        "off_topic_max_similarity": max(neg, default=0.0),
    }


async def evaluate_answers(
    answering: AnswerPath, questions: list[EvalQuestion], concurrency: int = 4
) -> dict[str, Any]:
    """Answer every question with the model: key terms, and `guru bench answers`' verdicts
    (every expected fact stated and a gold note cited, wrong, refused, looping) on the facts
    in bench/answer_eval/explain_facts.jsonl."""
    from bench.answer_eval.harness import score_row, summarize
    from bench.answer_eval.path import answer_one
    from bench.answer_eval.sets import load_set

    items = {i.id: i for i in load_set("explain").answerable}
    gate = asyncio.Semaphore(concurrency)  # the engine batches what arrives together

    async def one(q: EvalQuestion) -> dict[str, Any]:
        async with gate:
            out = await answer_one(answering, CONCEPTS_GUILD_ID, q.question, kind="explain")
        row = score_row(
            items[q.id],
            answer=out.answer.answer,
            raw=out.raw,
            refused=out.answer.refused,
            sources=out.source_uris,
            completion_tokens=out.completion_tokens,
            seconds=out.seconds,
        )
        return {
            **row,
            "key_term": q.key_term,
            "contains_key_term": q.key_term.lower() in out.answer.answer.lower(),
            "cites": [s.uri.removeprefix(URI_PREFIX) for s in out.answer.sources],
        }

    rows = await asyncio.gather(*(one(q) for q in questions))
    return {
        "questions": len(rows),
        "with_key_term": sum(r["contains_key_term"] for r in rows),
        "refused": sum(r["refused"] for r in rows),
        "verdicts": summarize(list(rows)),
        "rows": rows,
    }
