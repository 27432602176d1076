"""Cheap checks of a grounded answer before anyone reads it: its facts come from its sources,
and it is prose at all.

Small models invent exactly the details users act on: a number ("a maximum of 10" beside a
source that says 5), an option, a shell command. Each sentence (or code line) of an answer
that states a number, an option or a code span found in neither the sources shown nor the
question is dropped; what remains must still be a usable answer (some words of prose, not a
citation or a heading alone, not a repetition loop), else the caller retries once and then
says plainly that the model gave no usable answer. No model is asked: string checks only.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["Checked", "check_answer", "strip_preamble", "unsupported_terms", "usable"]

_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,:]\d+)*(?![\w])")  # 30, 2.5, 21:00, 1,000
_OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")  # --force, -n
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_CITATION = re.compile(r"\[\d{1,2}\]")
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\[`(])")
_PREAMBLE = re.compile(r"^\s*(?:\[\d{1,2}\][\s:.-]*)*(?:(?:A|Answer)\s*:\s*)?", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
MIN_WORDS = 3  # "Paris." is an answer in a chat, not under a cited question: 3 words of prose


@dataclass(frozen=True)
class Checked:
    """The answer with its unsupported sentences removed, and what was removed."""

    text: str
    dropped: tuple[str, ...]
    usable: bool


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def unsupported_terms(sentence: str, evidence: str) -> list[str]:
    """Numbers, options and code spans in `sentence` that `evidence` (normalised sources and
    question) does not contain. Citation markers and list markers are not facts."""
    body = _LIST_MARKER.sub("", _CITATION.sub(" ", sentence))
    terms = [m.group(0) for m in _NUMBER.finditer(body)]
    terms += [m.group(0) for m in _OPTION.finditer(body)]
    terms += [m.group(1).strip() for m in _CODE_SPAN.finditer(body)]
    return [t for t in terms if t and _norm(t) not in evidence]


def _code_line_supported(line: str, evidence: str) -> bool:
    """A line of a code block: every token (2+ characters) must appear in the evidence."""
    tokens = [t for t in re.split(r"[\s'\"=]+", line.strip()) if len(t) >= 2]
    return all(_norm(t) in evidence for t in tokens)


def check_answer(answer: str, sources: str, question: str = "") -> Checked:
    """Drop what the sources do not support (see module doc); keep the answer's layout."""
    evidence = _norm(f"{sources}\n{question}")
    kept_lines: list[str] = []
    dropped: list[str] = []
    in_code = False
    for line in answer.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
            kept_lines.append(line)
            continue
        if in_code:
            if line.strip() and not _code_line_supported(line, evidence):
                dropped.append(line.strip())
                continue
            kept_lines.append(line)
            continue
        kept: list[str] = []
        for sentence in _SENTENCE_END.split(line):
            if unsupported_terms(sentence, evidence):
                dropped.append(sentence.strip())
            else:
                kept.append(sentence)
        if kept or not line.strip():
            kept_lines.append(" ".join(kept))
    text = re.sub(r"```[^\n]*\n```\n?", "", "\n".join(kept_lines))  # blocks left empty
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return Checked(text, tuple(dropped), usable(text))


def strip_preamble(text: str) -> str:
    """Answers start with prose: drop a leading "[1] A:" or "Answer:" the model copied from
    the prompt's layout (the citations stay where the prose uses them)."""
    return _PREAMBLE.sub("", text, count=1).lstrip()


def usable(text: str) -> bool:
    """Prose a user can read: a few words that are not only citations, a heading or a
    "Sources:" line, and not a repetition loop."""
    prose = "\n".join(
        line
        for line in text.splitlines()
        if not line.strip().lower().startswith("sources:") and not line.strip().endswith(":")
    )
    words = _WORD.findall(_CITATION.sub(" ", prose))
    if len(words) < MIN_WORDS:
        return False
    return not _loops([w.lower() for w in words])


def _loops(words: list[str], n: int = 4, repeats: int = 3) -> bool:
    """An n-gram said `repeats`+ times covering a third of the text: the model is looping."""
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return False
    gram, count = grams.most_common(1)[0]
    return count >= repeats and count * n >= len(words) / 3
