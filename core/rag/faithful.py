"""Cheap checks of a grounded answer before anyone reads it: its facts come from its sources,
and it is prose at all.

Small models invent exactly the details users act on: a number ("a maximum of 10" beside a
source that says 5), an option, a shell command, or whole sentences the sources never
suggested. Each sentence (or code line) of an answer that states a number, an option or a code
span found in neither the sources shown nor the question, or whose content words mostly
appear in neither, is dropped, and so are lines of Title Case without punctuation (a list of
invented headlines is not an answer). What remains must still be a usable answer (some words
of prose, not a citation or a heading alone, not a repetition loop), else the caller retries
once and then says plainly that the model gave no usable answer. String checks only.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

__all__ = [
    "Checked",
    "check_answer",
    "content_words",
    "drop_repeated_sentences",
    "fact_terms",
    "poorly_supported",
    "strip_preamble",
    "title_like",
    "unsupported_terms",
    "usable",
]

# 30, 2.5, 21:00, 1,000, and the number of 2pm / 10GB / 5x (the unit is not the fact)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,:]\d+)*(?=[A-Za-z%]*(?![\w]))")
_OPTION = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")  # --force, -n
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_CITATION = re.compile(r"\[\d{1,2}\]")
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
# a sentence ends after a word's (or a citation's) stop: "1. Yes" is a list item, not two
_SENTENCE_END = re.compile(r"(?<=[A-Za-z\])\"'`][.!?])\s+(?=[A-Z\[`(])")
_PREAMBLE = re.compile(r"^\s*(?:\[\d{1,2}\][\s:.-]*)*(?:(?:A|Answer)\s*:\s*)?", re.IGNORECASE)
_INTRODUCED_EMPTY_BLOCK = re.compile(
    r"(?m)(?:^|(?<=[.!?]) )[^\n.!?]*:[ \t]*\n\s*```[^\n]*\n```[ \t]*\n?"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
MIN_WORDS = 3  # "Paris." is an answer in a chat, not under a cited question: 3 words of prose
# A sentence of 4+ content words of which fewer than this share is in the sources or the
# question was not written from them (a small model's invented list of paper titles, say).
# Words match on their first 5 letters, so "layers" supports "layer" and "tokenization"
# "tokens"; a paraphrase keeps enough of its source's words to pass.
MIN_SUPPORT, MIN_CONTENT_WORDS, STEM = 0.3, 4, 5
_STOPWORDS = frozenset(
    "about above after again also because been before being below between both could does "
    "doing down during each from further have having here into itself just more most other "
    "over same should some such than that their them then there these they this those "
    "through under until very were what when where which while will with would your yours "
    "only once like many much make made uses used using want".split()
)


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
    question) does not contain. Citation markers and list markers are not facts; a number
    must appear as a number ("2" is not in "21:00")."""
    body = _LIST_MARKER.sub("", _CITATION.sub(" ", sentence))
    missing = [
        m.group(0)
        for m in _NUMBER.finditer(body)
        if not re.search(rf"(?<![\d.,:]){re.escape(m.group(0))}(?![\d]|[.,:]\d)", evidence)
    ]
    options = [m.group(0) for m in _OPTION.finditer(body)]
    spans = [m.group(1).strip() for m in _CODE_SPAN.finditer(body)]
    # an option is a whole token: "-g" is not in "--gpg-sign", nor "--force" in "--force-with-lease"
    missing += [
        o for o in options if not re.search(rf"(?<![\w-]){re.escape(o.lower())}(?![\w-])", evidence)
    ]
    return missing + [t for t in spans if t and not _in_evidence(_norm(t), evidence)]


def _in_evidence(term: str, evidence: str) -> bool:
    """`term` is in the evidence as written, or as manuals name a subcommand: `git commit`
    is documented as "git-commit(1)" (a chunk may hold only that name line)."""
    return term in evidence or (" " in term and term.replace(" ", "-", 1) in evidence)


def fact_terms(sentence: str) -> list[str]:
    """The numbers, options and code spans `sentence` states (citations and list markers are
    not facts)."""
    body = _LIST_MARKER.sub("", _CITATION.sub(" ", sentence))
    terms = [m.group(0) for m in _NUMBER.finditer(body)]
    terms += [m.group(0) for m in _OPTION.finditer(body)]
    terms += [m.group(1).strip() for m in _CODE_SPAN.finditer(body)]
    return [t for t in terms if t]


def content_words(text: str, *, min_len: int = 4) -> list[str]:
    """The words that carry content: lower case, `min_len`+ letters, not stopwords."""
    return [
        w.lower()
        for w in _WORD.findall(_CITATION.sub(" ", text))
        if len(w) >= min_len and w.lower() not in _STOPWORDS
    ]


def _stems(text: str) -> set[str]:
    return {w.lower()[:STEM] for w in _WORD.findall(text)}


def title_like(line: str) -> bool:
    """A headline, not prose: most words capitalised and no sentence punctuation."""
    words = _WORD.findall(_CITATION.sub(" ", line))
    if len(words) < MIN_CONTENT_WORDS or line.rstrip().endswith((".", "!", "?", ":", ")")):
        return False
    capitalised = sum(w[0].isupper() for w in words if len(w) > 3)
    long_words = sum(len(w) > 3 for w in words)
    return long_words > 0 and capitalised / long_words >= 0.7


def poorly_supported(sentence: str, evidence_stems: set[str]) -> bool:
    """Most of the sentence's content words appear nowhere in the sources or the question."""
    words = content_words(sentence)
    if len(words) < MIN_CONTENT_WORDS:
        return False
    supported = sum(w[:STEM] in evidence_stems for w in words)
    return supported / len(words) < MIN_SUPPORT


def _code_line_supported(line: str, evidence: str) -> bool:
    """A line of a code block: every token (2+ characters) must appear in the evidence."""
    tokens = [t for t in re.split(r"[\s'\"=]+", line.strip()) if len(t) >= 2]
    return all(_norm(t) in evidence for t in tokens)


def check_answer(answer: str, sources: str, question: str = "") -> Checked:
    """Drop what the sources do not support (see module doc); keep the answer's layout."""
    evidence = _norm(f"{sources}\n{question}")
    evidence_stems = _stems(f"{sources}\n{question}")
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
        if title_like(line):
            dropped.append(line.strip())
            continue
        kept: list[str] = []
        for sentence in _SENTENCE_END.split(line):
            if unsupported_terms(sentence, evidence) or poorly_supported(sentence, evidence_stems):
                dropped.append(sentence.strip())
            else:
                kept.append(sentence)
        if kept or not line.strip():
            kept_lines.append(" ".join(kept))
    # blocks left empty, and the sentence that introduced one ("use the following command:")
    text = _INTRODUCED_EMPTY_BLOCK.sub("", "\n".join(kept_lines))
    text = re.sub(r"```[^\n]*\n```\n?", "", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return Checked(text, tuple(dropped), usable(text))


REPEAT_NGRAM = 6  # a sentence sharing a 6-word run with an earlier one says it again


def drop_repeated_sentences(text: str) -> str:
    """Small models restate one sentence with a word changed until the token limit ("try to
    join a game that has already been joined…" ×4): a sentence that repeats a 6-word run of
    an earlier sentence adds nothing, so it is dropped (code blocks are left alone)."""
    seen: set[tuple[str, ...]] = set()
    kept_lines: list[str] = []
    in_code = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        if in_code or line.strip().startswith("```"):
            kept_lines.append(line)
            continue
        kept: list[str] = []
        for sentence in _SENTENCE_END.split(line):
            words = [w.lower() for w in _WORD.findall(_CITATION.sub(" ", sentence))]
            grams = {
                tuple(words[i : i + REPEAT_NGRAM]) for i in range(len(words) - REPEAT_NGRAM + 1)
            }
            if grams & seen:
                continue
            seen |= grams
            kept.append(sentence)
        if kept or not line.strip():
            kept_lines.append(" ".join(kept))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept_lines)).strip()


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
    if len(words) < 2 * MIN_CONTENT_WORDS and not re.search(r"[.!?]", prose):
        return False  # a cut-off fragment ("Optimal Autonomous Underd"), not a sentence
    return not _loops([w.lower() for w in words])


def _loops(words: list[str], n: int = 4, repeats: int = 3) -> bool:
    """An n-gram said `repeats`+ times covering a third of the text: the model is looping."""
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return False
    gram, count = grams.most_common(1)[0]
    return count >= repeats and count * n >= len(words) / 3
