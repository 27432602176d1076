"""The question sets of `guru bench answers`: questions with facts and gold pages, off-topic ones.

- git: bench/rag_eval's 48 questions over Debian's git-doc (their facts in git_facts.jsonl,
  joined by question text) + its 20 off-topic questions (unanswerable.txt).
- emberfall: a fictional game community's rules/FAQ written for this bench (emberfall/).
- explain: /explain's 40 questions (core/explain/eval_questions.jsonl, facts in
  explain_facts.jsonl by id) + bench.explain_eval's off-topic questions.

Every set keeps rag_eval's split: the even-numbered questions (0, 2, …) are the tuning half,
the odd ones the held-out half, reported apart, so a prompt tuned here has an honest number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["HERE", "Item", "QuestionSet", "SETS", "load_set"]

HERE = Path(__file__).resolve().parent
RAG_EVAL = HERE.parent / "rag_eval"
SETS = ("git", "emberfall", "explain", "explain-new")


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    facts: tuple[tuple[str, ...], ...]  # every inner tuple: one fact's acceptable alternatives
    gold: tuple[str, ...]  # page file names
    off_topic: bool = False
    held_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "facts": [list(f) for f in self.facts],
            "gold": list(self.gold),
            "off_topic": self.off_topic,
            "held_out": self.held_out,
        }


@dataclass(frozen=True)
class QuestionSet:
    name: str
    kind: str  # "ask" (guru ask's path) or "explain" (guru explain's)
    guild: int  # the guild the corpus lives under in the bench database
    corpus: Path | None  # what to ingest (None: /explain's notes, synced by their own code)
    items: tuple[Item, ...]

    @property
    def answerable(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if not i.off_topic)

    @property
    def off_topic(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.off_topic)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _facts(raw: list[list[str]]) -> tuple[tuple[str, ...], ...]:
    facts = tuple(tuple(alt for alt in fact) for fact in raw)
    if not facts or any(not fact for fact in facts):
        raise ValueError(f"every question needs at least one fact with alternatives: {raw!r}")
    return facts


def _off_topic(prefix: str, texts: list[str]) -> list[Item]:
    return [Item(f"{prefix}{i:02d}", t, (), (), off_topic=True) for i, t in enumerate(texts, 1)]


def _git(docs: Path) -> QuestionSet:
    from bench.rag_eval.evaluate import EVAL_GUILD

    facts = {r["q"]: r["facts"] for r in _jsonl(HERE / "git_facts.jsonl")}
    items = []
    for i, row in enumerate(_jsonl(RAG_EVAL / "questions.jsonl")):
        if row["q"] not in facts:
            raise ValueError(f"git_facts.jsonl has no facts for {row['q']!r}")
        items.append(
            Item(
                f"g{i:02d}",
                row["q"],
                _facts(facts[row["q"]]),
                tuple(row["gold"]),
                False,
                i % 2 == 1,
            )
        )
    items += _off_topic("goff", _lines(RAG_EVAL / "unanswerable.txt"))
    return QuestionSet("git", "ask", EVAL_GUILD, docs, tuple(items))


def _emberfall() -> QuestionSet:
    root = HERE / "emberfall"
    items = [
        Item(r["id"], r["q"], _facts(r["facts"]), tuple(r["gold"]), False, i % 2 == 1)
        for i, r in enumerate(_jsonl(root / "questions.jsonl"))
    ]
    off = _lines(root / "off_topic.txt") + _lines(RAG_EVAL / "unanswerable.txt")
    items += _off_topic("eoff", off)
    return QuestionSet("emberfall", "ask", 2, root / "pages", tuple(items))


def _explain() -> QuestionSet:
    from bench.explain_eval import load_eval_questions, off_topic_questions
    from core.rag.types import CONCEPTS_GUILD_ID

    facts = {r["id"]: r["facts"] for r in _jsonl(HERE / "explain_facts.jsonl")}
    items = [
        Item(q.id, q.question, _facts(facts[q.id]), q.notes, False, i % 2 == 1)
        for i, q in enumerate(load_eval_questions())
    ]
    items += _off_topic("xoff", off_topic_questions())
    return QuestionSet("explain", "explain", CONCEPTS_GUILD_ID, None, tuple(items))


def _explain_new() -> QuestionSet:
    """/explain on questions nobody had tuned on: 24 written to probe paraphrases, which then
    informed the notes' titles and their card ordering (the tuning half, even positions), and
    24 written before that change and not read one by one until it was made (the held-out
    half, odd positions), + /explain's off-topic questions."""
    from bench.explain_eval import off_topic_questions
    from core.rag.types import CONCEPTS_GUILD_ID

    rows = _jsonl(HERE / "explain_new.jsonl")
    probes = [r for r in rows if r["written"] == "after"]
    blind = [r for r in rows if r["written"] == "before"]
    items = [
        Item(r["id"], r["question"], _facts(r["facts"]), tuple(r["notes"]), False, held_out)
        for pair in zip(probes, blind, strict=True)
        for r, held_out in zip(pair, (False, True))
    ]
    items += _off_topic("noff", off_topic_questions())
    return QuestionSet("explain-new", "explain", CONCEPTS_GUILD_ID, None, tuple(items))


def load_set(name: str, *, git_docs: Path | None = None) -> QuestionSet:
    """One named set; `git_docs` is the git-doc HTML directory (only the git set needs it)."""
    if name == "git":
        from bench.rag_eval.evaluate import DEFAULT_DOCS

        return _git(git_docs or DEFAULT_DOCS)
    if name == "emberfall":
        return _emberfall()
    if name == "explain":
        return _explain()
    if name == "explain-new":
        return _explain_new()
    raise ValueError(f"unknown question set {name!r}; known: {', '.join(SETS)}")
