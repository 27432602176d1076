"""Retrieval quality on Git's own documentation (Debian package `git-doc`): recall@1/5, MRR@10.

The corpus is every HTML page in /usr/share/doc/git-doc (206 pages, ~5,300 chunks); the
questions (questions.jsonl) are written the way people ask on Discord, each with the pages that
answer it ("gold"). A question counts as found at rank r when the r-th distinct page of the
ranked chunks is a gold page. unanswerable.txt holds off-topic questions for calibrating the
relevance floor: how many of them get past it, and how many answerable ones it wrongly drops.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.rag.grounding import RELEVANCE_FLOOR
from core.rag.ingest import Ingestor
from core.rag.retrieve import Retriever
from core.rag.types import Hit

__all__ = [
    "Question",
    "load_questions",
    "ingest_corpus",
    "evaluate",
    "calibrate_floor",
    "HERE",
    "DEFAULT_DOCS",
    "EVAL_GUILD",
]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
DEFAULT_DOCS = Path("/usr/share/doc/git-doc")
EVAL_GUILD = 1  # in the bench's own database, never the bot's
MODES = ("vector", "text", "hybrid")
CANDIDATES = 50  # chunks fetched per query before collapsing them to pages


@dataclass(frozen=True)
class Question:
    text: str
    gold: frozenset[str]

    @property
    def avoids_title_words(self) -> bool:
        """True when no gold page's name (git-<name>.html → name, split at "-") is in the
        question, compared stemmed: "commits" leaks git-commit, "files" leaks git-ls-files."""
        words = {_stem(w) for w in re.findall(r"[a-z0-9]+", self.text.lower())}
        names = {re.sub(r"^git-?", "", Path(g).stem.lower()) for g in self.gold}
        return not any(
            _stem(part) in words for n in names for part in n.split("-") if len(part) > 2
        )


def _stem(word: str) -> str:
    from nltk.stem.snowball import EnglishStemmer  # llama-index's dependency; cheap to build

    return EnglishStemmer().stem(word)


def load_questions(path: Path = HERE / "questions.jsonl") -> list[Question]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [Question(r["q"], frozenset(r["gold"])) for r in rows]


def load_unanswerable(path: Path = HERE / "unanswerable.txt") -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


async def ingest_corpus(ingestor: Ingestor, docs: Path, guild: int = EVAL_GUILD) -> dict[str, Any]:
    """Ingest every HTML page of `docs` (a no-op for pages already there); counts and timing."""
    started = time.perf_counter()
    counts: dict[str, int] = {}
    chunks = 0
    pages = sorted(str(p) for p in docs.glob("*.html"))
    # One call for every page, so the ingestor embeds several short pages per window.
    async for outcome in ingestor.ingest_paths(guild, pages):
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        chunks += outcome.chunks if outcome.status != "unchanged" else 0
        if outcome.status == "error":
            log.warning("%s: %s", outcome.uri, outcome.error)
        done = sum(counts.values())
        if done % 25 == 0:
            log.info("ingested %d/%d pages", done, len(pages))
    elapsed = time.perf_counter() - started
    return {
        "pages": len(pages),
        **counts,
        "chunks_embedded": chunks,
        "seconds": round(elapsed, 1),
        "chunks_per_s": round(chunks / elapsed, 2) if chunks else None,
    }


def gold_rank(pages: list[str], gold: frozenset[str]) -> int | None:
    """1-based rank of the first gold page among distinct `pages` in ranked order."""
    return next((i + 1 for i, p in enumerate(pages) if p in gold), None)


def with_halves(ranks: list[int | None]) -> dict[str, Any]:
    """Metrics of all questions, of the even (tuning) and of the odd (held-out) half."""
    return {
        **_metrics(ranks),
        "tuning_half": _metrics(ranks[0::2]),
        "held_out_half": _metrics(ranks[1::2]),
    }


def _pages(hits: list[Hit]) -> list[str]:
    seen: list[str] = []
    for h in hits:
        name = Path(h.uri).name
        if name not in seen:
            seen.append(name)
    return seen


async def evaluate(
    retriever: Retriever, questions: list[Question], guild: int = EVAL_GUILD
) -> dict[str, Any]:
    """recall@1, recall@5 and MRR@10 per mode (also on the title-avoiding subset)."""
    embeddings = await retriever.embedder.embed([q.text for q in questions])
    report: dict[str, Any] = {
        "questions": len(questions),
        "avoiding_title_words": sum(q.avoids_title_words for q in questions),
    }
    misses: dict[str, list[str]] = {}
    for mode in MODES:
        ranks: list[int | None] = []
        latencies = []
        for q, emb in zip(questions, embeddings):
            t0 = time.perf_counter()
            hits = await retriever.search_embedded(guild, q.text, emb, CANDIDATES, mode)  # type: ignore[arg-type]
            latencies.append((time.perf_counter() - t0) * 1000)
            pages = _pages(hits)
            ranks.append(gold_rank(pages, q.gold))
        subset = [r for r, q in zip(ranks, questions) if q.avoids_title_words]
        # Fusion weights were chosen on the even questions: the odd ones are the held-out half.
        report[mode] = {
            **with_halves(ranks),
            "avoiding_title_words": _metrics(subset),
            "latency_ms_p50": round(statistics.median(latencies), 1),
        }
        misses[mode] = [q.text for r, q in zip(ranks, questions) if r is None or r > 5]
    report["misses_at_5"] = misses
    return report


def _metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {
        "recall@1": round(sum(r == 1 for r in ranks) / n, 3),
        "recall@5": round(sum(r is not None and r <= 5 for r in ranks) / n, 3),
        "mrr@10": round(sum(1 / r for r in ranks if r is not None and r <= 10) / n, 3),
    }


async def calibrate_floor(
    retriever: Retriever,
    questions: list[Question],
    unanswerable: list[str],
    guild: int = EVAL_GUILD,
) -> dict[str, Any]:
    """Best-chunk cosine similarity of answerable vs off-topic questions, and the error rates of
    candidate floors (an off-topic question "passes" if any hybrid hit clears the floor or
    matches every query term)."""

    async def best(text: str) -> tuple[float, bool]:
        hits = await retriever.search(guild, text, 8, "hybrid")
        return (max((h.similarity for h in hits), default=0.0), any(h.exact for h in hits))

    pos = [await best(q.text) for q in questions]
    neg = [await best(t) for t in unanswerable]
    table = {}
    for floor in (0.25, 0.3, 0.35, 0.4, 0.45, 0.5):
        table[str(floor)] = {
            "answerable_refused": sum(not (s >= floor or e) for s, e in pos),
            "offtopic_passed": sum(s >= floor or e for s, e in neg),
        }
    return {
        "current_floor": RELEVANCE_FLOOR,
        "answerable_best_sim": _summary([s for s, _ in pos]),
        "offtopic_best_sim": _summary([s for s, _ in neg]),
        "offtopic_exact_matches": sum(e for _, e in neg),
        "by_floor": table,
    }


def _summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return (
        {
            "min": round(values[0], 3),
            "median": round(statistics.median(values), 3),
            "max": round(values[-1], 3),
        }
        if values
        else {}
    )
