"""Scoring one grounded answer: are the asked facts in it, does it cite a gold page, did it loop.

Pure functions, no model: the unit tests feed them crafted answers.

A fact is a list of acceptable alternatives ("git cherry-pick" or "cherry-pick"); an answer
states it when one alternative occurs in it after light normalisation (case, Unicode forms,
curly quotes, dashes, markdown backticks/asterisks, runs of spaces) and on word boundaries, so
"10" is not found in "100" nor "tag" in "stage". An alternative ending in "*" is a prefix
("hallucinat*" matches "hallucinates").

Citations are read from the model's raw text, not the finished answer: `finish_answer` appends
"Sources: [1] [2] …" when the model cited nothing, which would make every answer look cited.
"Cited after attribution" is a separate measure: the [n] in the text the user reads (minus that
"Sources:" line), i.e. the citations core.rag.attribute wrote where it measured support, and
the extractive lead's.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.quality import compression_ratio, repeated_ngrams

__all__ = [
    "VERDICTS",
    "OFF_TOPIC_VERDICTS",
    "Scored",
    "normalize",
    "states",
    "missing_facts",
    "cited_numbers",
    "is_looping",
    "score_answer",
    "score_off_topic",
]

# Answerable questions get exactly one of these, in this order of precedence.
VERDICTS = ("empty_or_looping", "wrongly_refused", "correct_cited", "correct_uncited", "wrong")
OFF_TOPIC_VERDICTS = ("refused", "answered")
# A loop: some 6-word run three times (a 200-token answer that states a command twice is
# fine; "The answer is: X." three times is not), or text that compresses > 3x (Whisper's test).
# 5 words flagged answers that merely echo the question's phrase thrice (read on SmolLM2 rows).
LOOP_NGRAM = 6
LOOP_REPEATS = 3
LOOP_MIN_CHARS = 200
LOOP_COMPRESSION = 3.0

CITATION_SPAM = 3  # distinct [n] beyond the sources that make the citations count as noise

_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-"})
_MARKUP = re.compile(r"[`*]+")
_SPACE = re.compile(r"\s+")
_CITATION = re.compile(r"\[(\d{1,2})\]")


@dataclass(frozen=True)
class Scored:
    """One answer's verdict and why."""

    verdict: str
    missing: tuple[str, ...]  # first alternative of each fact not stated
    cited: tuple[int, ...]  # source numbers the model itself cited (valid ones)
    cites_gold: bool
    # the answer the user reads cites a gold page after attribution (not the "Sources:" line)
    attributed_gold: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "verdict": self.verdict,
            "missing": list(self.missing),
            "cited": list(self.cited),
            "cites_gold": self.cites_gold,
            "attributed_gold": self.attributed_gold,
        }


def normalize(text: str) -> str:
    """Lower case, NFKC, straight quotes and hyphens, no backticks/asterisks, single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    return _SPACE.sub(" ", _MARKUP.sub("", text.lower())).strip()


def _pattern(alternative: str) -> re.Pattern[str]:
    prefix = alternative.rstrip().endswith("*")  # before normalize, which drops asterisks
    alt = normalize(alternative.rstrip().removesuffix("*"))
    body = re.escape(alt)
    # Boundaries only where the alternative itself starts/ends with a word character: "--soft"
    # or ".gitignore" may follow anything, "v1.0" must not be the tail of "v1.01".
    left = r"(?<![a-z0-9])" if re.match(r"[a-z0-9]", alt) else ""
    right = "" if prefix or not re.search(r"[a-z0-9]$", alt) else r"(?![a-z0-9])"
    return re.compile(left + body + right)


def states(text: str, alternatives: Sequence[str]) -> bool:
    """True when `text` contains one of the alternatives (normalised, on word boundaries)."""
    norm = normalize(text)
    return any(_pattern(a).search(norm) for a in alternatives if a.strip())


def missing_facts(text: str, facts: Iterable[Sequence[str]]) -> tuple[str, ...]:
    """The facts `text` does not state, each named by its first alternative."""
    return tuple(f[0] for f in facts if not states(text, f))


def cited_numbers(raw: str, n_sources: int) -> tuple[int, ...]:
    """The distinct [n] the model wrote that name a real source, in order of appearance.

    None when it also wrote CITATION_SPAM or more numbers that name no source: SmolLM2
    sometimes counts "[1]\n[2]\n[3]\n…[40]", which names the gold page without citing it."""
    found = [int(m) for m in _CITATION.findall(raw)]
    if len({n for n in found if not 1 <= n <= n_sources}) >= CITATION_SPAM:
        return ()
    return tuple(dict.fromkeys(n for n in found if 1 <= n <= n_sources))


def is_looping(raw: str) -> bool:
    """Empty of words or stuck in a repetition loop (see LOOP_*)."""
    words = raw.split()
    if not words:
        return True
    if repeated_ngrams([w.lower() for w in words], LOOP_NGRAM, LOOP_REPEATS):
        return True
    return len(raw) >= LOOP_MIN_CHARS and compression_ratio(raw) > LOOP_COMPRESSION


def score_answer(
    *,
    answer: str,
    raw: str | None,
    refused: bool,
    facts: Sequence[Sequence[str]],
    source_uris: Sequence[str],
    gold: Iterable[str],
) -> Scored:
    """The verdict of an answerable question's answer.

    `answer` is the text the user reads (after `finish_answer`), `raw` the model's own text
    (None when the model was never called: the relevance floor refused), `source_uris` the
    numbered sources in order.
    A gold page matches a source whose URI ends with it ("…/git-reset.html").
    """
    gold_set = tuple(gold)
    cited = cited_numbers(raw or "", len(source_uris))
    cites_gold = any(_is_gold(source_uris[n - 1], gold_set) for n in cited)
    shown = cited_numbers(answer.split("\n\nSources: [")[0], len(source_uris))
    attributed = any(_is_gold(source_uris[n - 1], gold_set) for n in shown)
    # Looping is judged on what the user reads: finish_answer already drops repeated lines,
    # so only loops that survive it count; an empty model text is "empty" even though
    # finish_text turns it into "no usable answer".
    # An empty model text the extractive lead answered for is judged by the lead shown.
    if raw is not None and ((not raw.strip() and refused) or (not refused and is_looping(answer))):
        verdict = "empty_or_looping"
    elif refused:
        verdict = "wrongly_refused"
    else:
        missing = missing_facts(answer, facts)
        if missing:
            return Scored("wrong", missing, cited, cites_gold, attributed)
        verdict = "correct_cited" if cites_gold else "correct_uncited"
    return Scored(verdict, missing_facts(answer, facts), cited, cites_gold, attributed)


def score_off_topic(*, answer: str, refused: bool) -> Scored:
    """An off-topic question is right only when refused (by the floor or by the model)."""
    looping = not refused and is_looping(answer)
    verdict = "refused" if refused else "answered"
    return Scored(verdict, ("(looping)",) if looping else (), (), False)


def _is_gold(uri: str, gold: Sequence[str]) -> bool:
    name = uri.rsplit("/", 1)[-1]
    return any(name == g or uri.endswith("/" + g) for g in gold)
