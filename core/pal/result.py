"""What a PAL solve produced: each program tried (`Attempt`) and the outcome (`PalResult`).

Kept apart from the orchestration in solver.py; `guru calc --json` prints `public()`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from core.errors import InvalidInput
from core.pal.execute import Execution
from core.pal.vote import format_number

__all__ = [
    "Attempt",
    "PalResult",
    "Round",
    "check_problem",
    "user_error",
    "MAX_PROBLEM_CHARS",
    "MAX_SAMPLES",
]

MAX_PROBLEM_CHARS = 2000
MAX_SAMPLES = 16
# sample: the k first programs; resample: a fresh sample replacing a rejected one (literal
# return); repair: the model shown its failed program and the error.
Round = Literal["sample", "resample", "repair"]


@dataclass(frozen=True)
class Attempt:
    """One program (or failed extraction): which sample, which round, what came of it.

    status: an Execution status, "no_code" when extraction failed, or "literal" when the
    program returned a number written into it (rejected; see literal.py). `literal` is True
    for such a program even when rejection is off (the bench's "before"), so it can be counted.
    """

    sample: int
    round: Round
    status: str
    answer: str | None
    error: str | None
    code: str | None
    reply: str  # the model's raw text (kept for the repair turn and for debugging)
    execution: Execution | None = field(default=None, repr=False)
    literal: bool = False
    literal_values: tuple[int | float, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def number(self) -> int | float | None:
        return self.execution.number if self.execution is not None else None

    def public(self) -> dict[str, Any]:
        hidden = ("reply", "execution", "literal_values")
        return {k: v for k, v in asdict(self).items() if k not in hidden}


@dataclass(frozen=True)
class PalResult:
    """What `guru calc --json` prints (`public()`) plus details for the bot and the bench."""

    problem: str
    answer: str | None
    numeric: bool  # False: the program returned a non-number (answer is its str/repr)
    code: str | None
    stdout: str
    error: str | None
    attempts: tuple[Attempt, ...]
    votes: dict[str, int]
    not_math: bool = False
    elapsed_s: float = 0.0

    @property
    def repaired(self) -> bool:
        return any(a.round == "repair" and a.ok for a in self.attempts)

    def public(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "code": self.code,
            "stdout": self.stdout,
            "error": self.error,
            "attempts": [a.public() for a in self.attempts],
            "votes": self.votes,
            "numeric": self.numeric,
            "not_math": self.not_math,
            "elapsed_s": round(self.elapsed_s, 2),
        }


def check_problem(problem: str) -> str:
    """The problem text, stripped; InvalidInput when empty or too long."""
    text = (problem or "").strip()
    if not text:
        raise InvalidInput('Give a math word problem, e.g. `guru calc "3 pens at $2 each?"`.')
    if len(text) > MAX_PROBLEM_CHARS:
        raise InvalidInput(
            f"The problem is too long ({len(text)} characters; at most "
            f"{MAX_PROBLEM_CHARS}). Shorten it to the question and its numbers."
        )
    return text


def user_error(attempts: list[Attempt], last: Attempt) -> str:
    """Why there is no answer, for a user: literal returns first, as they are the whole story
    (the model never wrote a program that computes), else how the last program failed."""
    literal = [a for a in attempts if a.literal]
    if literal:
        values = sorted({v for a in literal for v in a.literal_values}, key=float)
        shown = ", ".join(format_number(v) for v in values[:3])
        return (
            "The model gave no program that computes the answer: "
            f"{len(literal)} of {len(attempts)} programs returned or used numbers not computed "
            f"from the problem's ({shown}), so no result is shown. Rephrase the "
            "problem, or set a stronger code model (GURU_CALC_MODEL)."
        )
    if last.status == "no_code":
        return "The model did not write a usable program: " + (last.error or "")
    if last.execution is not None and last.execution.error:
        return f"The program failed ({last.status}): {last.execution.error}"
    return f"The program failed ({last.status})."
