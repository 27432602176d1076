"""Citations the product can stand behind, and a short answer taken from the docs.

`attribute` writes [n] after each sentence of an answer that source n measurably supports,
instead of trusting the model's own [n] (SmolLM2-135M never writes one; Qwen2.5-Coder-0.5B
cites a page it did not use). Support is measured per sentence and per source, with the same
string measures as core.rag.faithful: every number, option and code span of the sentence is in
that source's text, and at least `MIN_SUPPORT` of its content words (4+ letters, not stopwords,
matched on their first 5 letters) are. The source with the most support gets the citation
(ties: the better-ranked one); a sentence no source supports gets none, so the [n] a user reads
always points at text that says the same thing in the same words.

`pick_lead` chooses the extractive lead: the one or two sentences of the sources that answer the
question best (MiniLM cosine, the question's own words, a stated command/option/number: see
`lead_scores`), at most `LEAD_CHARS`, shown quoted and
cited before the model's explanation when that explanation misses or contradicts its sources
(see core.answering.prepared). Bounded, so pasting whole pages cannot pass for an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from core.rag.faithful import content_words, fact_terms, unsupported_terms
from core.rag.grounding import Grounding

__all__ = [
    "LEAD_CHARS",
    "Lead",
    "LeadMode",
    "MIN_SUPPORT",
    "attribute",
    "choose_lead",
    "lead_candidates",
    "lead_scores",
    "source_evidence",
    "passage_sentences",
    "pick_lead",
    "ASK_LEAD_WEIGHTS",
    "EXPLAIN_LEAD_WEIGHTS",
    "supporting_source",
]

# Share of a sentence's content words one source must contain to be cited for it. A paraphrase
# keeps at least half of its source's words; an invented sentence that borrows the topic's
# vocabulary mostly does not (read on SmolLM2/Qwen rows of bench/answer_eval).
MIN_SUPPORT = 0.5
LEAD_CHARS = 300  # the lead's bound: one or two sentences, never a pasted page
MAX_CANDIDATES = 96  # sentences embedded per question (git-doc's long pages: ~60)
# off: no lead; fallback: only when the model's answer misses or contradicts its sources;
# always: every grounded answer starts with it.
LeadMode = Literal["off", "fallback", "always"]

_CITATION = re.compile(r"\s*\[\d{1,2}\]")
_SENTENCE_END = re.compile(r"(?<=[A-Za-z0-9\])\"'`][.!?])\s+(?=[A-Z\[`(\"])")
# In a passage a sentence may also end " ." after a code span: man pages rendered to text
# keep the space ("using git branch --set-upstream-to . With a -m or -M option, …")
_PASSAGE_END = re.compile(r"(?:(?<=[A-Za-z0-9\])\"'`][.!?])|(?<=[\w>] \.))\s+(?=[A-Z\[`(\"])")
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
_TRAILING_PUNCT = re.compile(r"([.!?:;]+)$")
# How prose cut by the chunker ends: on a bare word ("…because the model sees a few"). A man
# page's last line may end without a full stop on a path or an option and be complete.
_CUT = re.compile(r"(?:^|\s)[a-z]+$")
_MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\([^)]*\)")
# A model that uses a citation as a noun ("the form is at [1].", "proceed to [2].") leaves a
# fragment once its [n] is taken out: such a sentence points at a source instead of saying
# anything, and is dropped rather than shown as "the form is at."
_DANGLING = re.compile(
    r"\b(?:is|are|was|at|to|in|on|from|via|see|visit|visiting|of|by|the|a|an|here|under)"
    r"\s*[.!?:;]*$",
    re.IGNORECASE,
)
_STEM = 5
_ANAPHOR = re.compile(r"(?:It|This|That|These|Those|They|Its|Their)\b")
_COMMAND_NAME = re.compile(r"[a-z][a-z0-9]*-[a-z0-9][\w.-]*\s")  # "git-clean - Remove …"
_MAN_SECTION = re.compile(r"\(\d\)")
_SHELL = re.compile(r"(?:^|\s)\$ \S")  # a shell example: "$ git config credential.helper"
# `lead_scores`: what the question's own words and a stated command/option/number add to the
# cosine (tuned on bench/answer_eval's tuning half, see `lead_scores`)
TERM_WEIGHT, FACT_WEIGHT = 0.15, 0.2
# /explain's notes explain ideas: a sentence with a number there is a worked example, not the
# answer (q10 "chain of thought vs a python program" quoted "… beating PaLM-540B by about 15
# percentage points"), so its leads weigh question words only.
ASK_LEAD_WEIGHTS = (TERM_WEIGHT, FACT_WEIGHT)
EXPLAIN_LEAD_WEIGHTS = (TERM_WEIGHT, 0.0)


class _Encoder(Protocol):
    async def embed(self, texts: list[str]) -> np.ndarray: ...


def _stems(words: list[str]) -> list[str]:
    return [w[:_STEM] for w in words]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class _Evidence:
    text: str  # normalised
    stems: frozenset[str]


def source_evidence(grounding: Grounding) -> list[_Evidence]:
    """Each source's text (title and passages), normalised, and its word stems."""
    out = []
    for source, passage in zip(grounding.sources, grounding.passages):
        text = f"{source.title}\n{passage}"
        out.append(_Evidence(_norm(text), frozenset(_stems(content_words(text, min_len=1)))))
    return out


def supporting_source(sentence: str, evidence: list[_Evidence]) -> int | None:
    """The 1-based number of the source that best supports `sentence`, or None."""
    body = _CITATION.sub(" ", sentence)
    stems = _stems(content_words(body))
    terms = fact_terms(body)
    if len(stems) + len(terms) < 2:
        return None  # too little to measure ("Yes.", "See below:")
    best, best_support = None, 0.0
    for n, ev in enumerate(evidence, start=1):
        if terms and unsupported_terms(body, ev.text):
            continue  # a number, option or code span this source does not contain
        support = (sum(s in ev.stems for s in stems) + len(terms)) / (len(stems) + len(terms))
        if support >= MIN_SUPPORT and support > best_support:
            best, best_support = n, support
    return best


def attribute(text: str, grounding: Grounding) -> tuple[str, frozenset[int]]:
    """(`text` with the model's own [n] replaced by measured ones, the sources cited).

    Code blocks, headings and "Sources:" lines are left as they are."""
    evidence = source_evidence(grounding)
    lines: list[str] = []
    cited: set[int] = set()
    in_code = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        if in_code or line.strip().startswith(("```", "#", "Sources:")) or not line.strip():
            lines.append(line)
            continue
        parts = []
        for sentence in _SENTENCE_END.split(line):
            bare = _CITATION.sub("", sentence).rstrip()
            if bare != sentence.rstrip() and _DANGLING.search(bare):
                continue  # its citation was a noun: without it, a fragment
            n = supporting_source(bare, evidence)
            if n is None:
                parts.append(bare)
                continue
            cited.add(n)
            punct = _TRAILING_PUNCT.search(bare)
            if punct:
                parts.append(f"{bare[: punct.start()]} [{n}]{punct.group(1)}")
            else:
                parts.append(f"{bare} [{n}]")
        lines.append(" ".join(p for p in parts if p.strip()))
    return "\n".join(lines).strip(), frozenset(cited)


@dataclass(frozen=True)
class Lead:
    """The sentences of source `n` that answer the question best, and how well: MiniLM
    cosine, the share of the question's content words they contain, whether they state a
    command, option or number."""

    text: str
    n: int
    similarity: float
    terms: float = 1.0
    fact: bool = True

    def render(self) -> str:
        return f"“{self.text}” [{self.n}]"


def passage_sentences(passage: str) -> list[str]:
    """A passage's sentences, clipped at `LEAD_CHARS`: those of its paragraphs and list items
    that `_is_sentence` (a FAQ's "How should I undo it?" answers nothing, a "See also" line
    of links states nothing, a fragment cut by the chunker is no quote)."""
    sentences = []
    for chunk in passage.split("\n…\n"):  # a source's passage is its best chunks, so joined
        blocks = _blocks(chunk)
        for b, block in enumerate(blocks):
            parts = _PASSAGE_END.split(" ".join(block.split()))
            for i, sentence in enumerate(parts):
                if _is_sentence(sentence, chunk_end=b == len(blocks) - 1 and i == len(parts) - 1):
                    sentences.append(_clip(sentence, LEAD_CHARS))
    return sentences


def _is_sentence(text: str, chunk_end: bool) -> bool:
    """3+ words, not a question, not a line of links, not cut by chunk overlap: a chunk may
    start mid-sentence (a lower-case start; man pages' name lines "git-clean - Remove
    untracked files from the working tree" excepted) and end mid-sentence (its last one
    ending on a bare word: "…because the model sees a few")."""
    named = bool(_COMMAND_NAME.match(text))
    cut = (text[0].islower() or (chunk_end and _CUT.search(text))) and not named
    return (
        len(text.split()) >= 3
        and not cut
        and not text.endswith("?")
        and bool(_MARKDOWN_LINK.sub("", text).strip(" ,.;·-"))
    )


def _blocks(chunk: str) -> list[str]:
    """The chunk's paragraphs (wrapped lines joined) and list items; headings dropped."""
    blocks: list[str] = []
    current: list[str] = []
    for line in chunk.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or _LIST_MARKER.match(line):
            if current:
                blocks.append(" ".join(current))
                current = []
            if _LIST_MARKER.match(line):
                blocks.append(_LIST_MARKER.sub("", line).strip())
            continue
        current.append(stripped)
    if current:
        blocks.append(" ".join(current))
    return blocks


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 2].rsplit(" ", 1)[0] + " …"


def lead_scores(
    question: str,
    sentences: list[str],
    similarity: np.ndarray,
    weights: tuple[float, float] = ASK_LEAD_WEIGHTS,
) -> np.ndarray:
    """How well each sentence answers `question`: its MiniLM cosine, plus `TERM_WEIGHT` times
    the share of the question's content words it contains, plus `FACT_WEIGHT` when it states
    a command, option or number (what a how-to question is after). Cosine alone prefers prose
    about a topic ("Part of the git(1) suite", "You can go back and modify the old commit")
    over the line that names the command; the question's own words and a concrete fact pull
    the answering line up (chosen on bench/answer_eval's tuning half: `python -m
    bench.answer_eval.lead`)."""
    term_weight, fact_weight = weights
    scores = similarity.astype(float).copy()
    for i, sentence in enumerate(sentences):
        scores[i] += term_weight * _term_share(question, sentence)
        if _states_fact(sentence):
            scores[i] += fact_weight
    return scores


def _term_share(question: str, sentence: str) -> float:
    """The share of the question's content words (first 5 letters) the sentence contains."""
    asked = set(_stems(content_words(question)))
    if not asked:
        return 0.0
    return len(asked & set(_stems(content_words(sentence, min_len=3)))) / len(asked)


def _states_fact(sentence: str) -> bool:
    """A command, option, number or code span, a shell example, or a man page's name line."""
    if _COMMAND_NAME.match(sentence) or _SHELL.search(sentence):
        return True
    # "git(1)" is a reference to a manual section, not a number anybody asked for
    return bool(fact_terms(_MAN_SECTION.sub("", sentence)))


async def pick_lead(
    encoder: _Encoder,
    question: str,
    grounding: Grounding,
    weights: tuple[float, float] = ASK_LEAD_WEIGHTS,
) -> Lead | None:
    """The best sentence by `lead_scores` (and the next best of the same source when both fit
    `LEAD_CHARS`, in the page's order); None when the sources have no sentence. `similarity`
    is the chosen sentence's cosine (how close the sources came to the question)."""
    candidates = lead_candidates(grounding)
    if not candidates:
        return None
    vectors = await encoder.embed([question, *(c[2] for c in candidates)])
    similarity = vectors[1:] @ vectors[0]  # unit vectors: the dot product is the cosine
    return choose_lead(question, candidates, similarity, weights)


def lead_candidates(grounding: Grounding) -> list[tuple[int, int, str]]:
    """The sentences a lead may quote: (source n, position in its passage, sentence)."""
    candidates: list[tuple[int, int, str]] = []
    for source, passage in zip(grounding.sources, grounding.passages):
        for i, sentence in enumerate(passage_sentences(passage)):
            candidates.append((source.n, i, sentence))
    return candidates[:MAX_CANDIDATES]


def choose_lead(
    question: str,
    candidates: list[tuple[int, int, str]],
    similarity: np.ndarray,
    weights: tuple[float, float] = ASK_LEAD_WEIGHTS,
) -> Lead:
    """`pick_lead` once the candidates (source n, position, sentence) have their cosines;
    `weights`: `lead_scores`' (the bench tries others)."""
    scores = lead_scores(question, [c[2] for c in candidates], similarity, weights)
    order = np.argsort(-scores, kind="stable")
    best = int(order[0])
    n, position, text = candidates[best]
    chosen = [(position, text)]
    before = candidates[best - 1] if best > 0 else None
    if (
        _ANAPHOR.match(text)
        and before is not None
        and before[0] == n
        and len(before[2]) + len(text) + 1 <= LEAD_CHARS
    ):
        # "It costs the most frames": the sentence before says what "it" is
        chosen.append((before[1], before[2]))
    for j in order[1:3]:
        if len(chosen) > 1:
            break
        other_n, other_position, other = candidates[int(j)]
        if other_n == n and len(text) + len(other) + 1 <= LEAD_CHARS and other != text:
            chosen.append((other_position, other))
            break
    joined = " ".join(t for _, t in sorted(chosen))
    share = _term_share(question, joined)
    return Lead(joined, n, float(similarity[best]), share, _states_fact(joined))
