"""Self-consistency: normalise executed answers and take the majority.

Programs that compute the same quantity differently produce 12, 12.0 or 11.999999999999998;
those must count as one vote, so numbers are normalised before counting (ints stay ints,
integral floats become ints, other floats are rounded to 6 decimals / 6 significant digits).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["normalise", "format_number", "Vote", "majority_vote", "numbers_match"]

_INTEGRAL_TOLERANCE = 1e-9


def normalise(value: int | float) -> int | float:
    """12.0 -> 12, 0.30000000000000004 -> 0.3, 33.33333333 -> 33.333333."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = float(value)
    if abs(number) < 1e15:
        nearest = round(number)
        if abs(number - nearest) <= _INTEGRAL_TOLERANCE * max(1.0, abs(number)):
            return int(nearest)
    rounded = round(number, 6) if abs(number) >= 1e-3 else float(f"{number:.6g}")
    return int(rounded) if rounded.is_integer() and abs(rounded) < 1e15 else rounded


def format_number(value: int | float) -> str:
    """How a normalised number is shown: no trailing zeros, no exponent for ordinary sizes."""
    value = normalise(value)
    if isinstance(value, int):
        return str(value)
    if 1e-3 <= abs(value) < 1e15:
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return repr(value)


def numbers_match(a: int | float, b: int | float, rel: float = 1e-4) -> bool:
    """Loose equality for grading: answers agree to 1 part in 10^4 (or 1e-4 absolute)."""
    return abs(float(a) - float(b)) <= rel * max(1.0, abs(float(b)))


class _Voter(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def answer(self) -> str | None: ...
    @property
    def number(self) -> int | float | None: ...


@dataclass(frozen=True)
class Vote:
    """The winning answer, its index among the candidates, and the count per answer."""

    answer: str | None
    winner: int | None  # index of the first candidate that gave the winning answer
    votes: dict[str, int]


def _key(candidate: _Voter) -> tuple[str, object]:
    if candidate.number is not None:
        return ("number", normalise(candidate.number))
    return ("text", (candidate.answer or "").strip())


def majority_vote(candidates: Sequence[_Voter]) -> Vote:
    """Majority over successful candidates. Ties: numbers beat text, then the earliest wins."""
    counted: Counter[tuple[str, object]] = Counter()
    first: dict[tuple[str, object], int] = {}
    shown: dict[tuple[str, object], str] = {}
    for index, candidate in enumerate(candidates):
        if not candidate.ok:
            continue
        key = _key(candidate)
        counted[key] += 1
        first.setdefault(key, index)
        shown.setdefault(key, candidate.answer or "")
    if not counted:
        return Vote(None, None, {})
    best = max(counted, key=lambda k: (counted[k], k[0] == "number", -first[k]))
    votes = {shown[k]: n for k, n in counted.most_common()}
    return Vote(shown[best], first[best], votes)
