"""The builder's pure parts: what a written question must be, which answers are kept, and
how the gold source is put into (or taken out of) the product's prompt.

RAFT (Zhang et al., 2024): each example is the answering prompt with the gold document among
distractors and a cited answer from it, and some examples with the gold document removed, whose
target is the refusal. A kept answer must state the span copied from the gold chunk and cite
the gold source's [n]; the scorer of `guru bench answers` decides both, so the data is judged
the way the bench judges answers (an uncited answer gets the [n] the product's attribution
measures, and is kept only when that is the gold's).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from bench.answer_eval.score import cited_numbers, normalize, states
from core.rag.answer import REFUSAL, declines
from core.rag.attribute import attribute
from core.rag.grounding import Grounding
from core.rag.types import Source

__all__ = [
    "REFUSAL_TARGET",
    "Written",
    "parse_written",
    "span_in_chunk",
    "keep_answer",
    "with_gold",
    "without_gold",
    "gold_number",
]

# What the model is told to say when its sources do not answer (core.rag.answer's prompts):
# the target of every gold-removed example, so `declines` reads it as the refusal it is.
REFUSAL_TARGET = f"{REFUSAL}."
# A span longer than this is a pasted paragraph, not "the short answer" a user checks for.
MAX_SPAN_WORDS = 16
MIN_QUESTION_CHARS = 12
MAX_ANSWER_CHARS = 600  # the prompt asks for one or two sentences: longer targets teach essays
_WRAPPING = " \t`*\"'"  # markdown code/emphasis and quotes around a copied span
# "Question: …" / "**Answer:** …" lines (markdown emphasis and list marks tolerated)
_FIELD = re.compile(
    r"^[\s*#>-]*(question|answer)[\s*]*:[\s*]*(.+?)[\s*]*$", re.IGNORECASE | re.MULTILINE
)


@dataclass(frozen=True)
class Written:
    """A question the strongest preset wrote for a chunk, with the answer copied from it."""

    question: str
    span: str


def parse_written(text: str) -> Written | None:
    """'Question: …' and 'Answer: …' lines of the writer's reply; None when either is missing."""
    fields: dict[str, str] = {}
    for name, value in _FIELD.findall(text):
        fields.setdefault(name.lower(), value.strip(_WRAPPING))
    question = fields.get("question", "")
    span = fields.get("answer", "").rstrip(".").strip(_WRAPPING)
    if len(question) < MIN_QUESTION_CHARS or not span:
        return None
    return Written(question, span)


def span_in_chunk(written: Written, chunk: str) -> bool:
    """The answer is copied from the chunk (after the bench's normalisation), short, and not
    already given away by the question."""
    if len(written.span.split()) > MAX_SPAN_WORDS:
        return False
    if normalize(written.span) not in normalize(chunk):
        return False
    return not states(written.question, [written.span])


def gold_number(grounding: Grounding, gold_uri: str) -> int | None:
    """The [n] of the gold document among the sources, if it is there."""
    return next((s.n for s in grounding.sources if s.uri == gold_uri), None)


def keep_answer(answer: str, span: str, gold_n: int, grounding: Grounding) -> str | None:
    """The training target for a written answer, or None to drop it.

    Kept only when it states the span and cites the gold source (the bench's "correct and
    cited"), is no refusal and no essay. Its [n] are the writer's own when it cited the gold
    itself; else those the product's attribution (core.rag.attribute, which /ask applies to
    every answer) measures, so a correct answer the writer left uncited is kept only where
    the gold source measurably supports it."""
    if declines(answer) or len(answer) > MAX_ANSWER_CHARS or not states(answer, [span]):
        return None
    if gold_n in cited_numbers(answer, len(grounding.sources)):
        return answer
    attributed, cited = attribute(answer, grounding)
    return attributed if gold_n in cited and states(attributed, [span]) else None


def with_gold(
    grounding: Grounding | None,
    gold: Source,
    chunk: str,
    span: str,
    rng: random.Random,
    max_sources: int = 4,
) -> Grounding:
    """The sources with the gold chunk's text shown: unchanged when a passage already holds the
    span; the gold document's passage replaced by its chunk when retrieval found the document
    but showed other chunks of it; else the gold inserted at a random position (the last
    distractor dropped past `max_sources`). Sources are renumbered 1..n in order."""
    sources = list(grounding.sources) if grounding else []
    passages = list(grounding.passages) if grounding else []
    if any(states(p, [span]) for p in passages):
        assert grounding is not None
        return grounding
    at = next((i for i, s in enumerate(sources) if s.uri == gold.uri), None)
    if at is not None:
        passages[at] = chunk
    else:
        if len(sources) >= max_sources:
            sources, passages = sources[: max_sources - 1], passages[: max_sources - 1]
        at = rng.randint(0, len(sources))
        sources.insert(at, gold)
        passages.insert(at, chunk)
    return _renumbered(sources, passages)


def without_gold(grounding: Grounding, gold_uri: str, span: str) -> Grounding | None:
    """The sources with the gold document removed, for a refusal example; None when nothing is
    left (the product refuses before the model then) or another source states the span too
    (a refusal would be wrong)."""
    kept = [(s, p) for s, p in zip(grounding.sources, grounding.passages) if s.uri != gold_uri]
    if not kept or any(states(p, [span]) for _, p in kept):
        return None
    return _renumbered([s for s, _ in kept], [p for _, p in kept])


def _renumbered(sources: list[Source], passages: list[str]) -> Grounding:
    numbered = tuple(Source(n, s.title, s.uri, s.score) for n, s in enumerate(sources, start=1))
    return Grounding(numbered, tuple(passages))
