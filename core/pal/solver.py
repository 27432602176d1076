"""`PalSolver`: problem -> k programs -> sandbox -> majority vote, with one repair round.

Why this order: sampling k programs at temperature > 0 and voting over their *executed*
results (self-consistency) fixes the slips of a small model that a single greedy program
keeps; the repair round turns a crash or timeout into a second chance by showing the model
its own code and the error. Generation runs on the engine (batched: the k samples decode
together), programs run in the sandbox; this module only orchestrates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from core.errors import InvalidInput
from core.llm.types import LLMBackend, Message, Request
from core.pal.execute import Execution, execute
from core.pal.extract import ExtractionError, extract_program
from core.pal.prompt import NOT_MATH, fence, pal_messages, repair_messages
from core.pal.vote import majority_vote
from core.sandbox import Sandbox

__all__ = ["PalSolver", "PalResult", "Attempt", "MAX_PROBLEM_CHARS", "MAX_SAMPLES"]

log = logging.getLogger(__name__)

MAX_PROBLEM_CHARS = 2000
MAX_SAMPLES = 16


@dataclass(frozen=True)
class Attempt:
    """One program (or failed extraction): which sample, which round, what came of it."""

    sample: int
    round: Literal["sample", "repair"]
    status: str  # an Execution status, or "no_code" when extraction failed
    answer: str | None
    error: str | None
    code: str | None
    reply: str  # the model's raw text (kept for the repair turn and for debugging)
    execution: Execution | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def number(self) -> int | float | None:
        return self.execution.number if self.execution is not None else None

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("reply", "execution")}


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


class PalSolver:
    """Solves word problems with model-written programs run in a real `Sandbox`."""

    def __init__(
        self,
        llm: LLMBackend,
        sandbox: Sandbox,
        *,
        max_new_tokens: int = 384,
        temperature: float = 0.7,
        timeout_s: float | None = None,
        seed: int = 0,
    ) -> None:
        self.llm = llm
        self.sandbox = sandbox
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.seed = seed

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        sample: int,
        sampled: bool,
        guild_id: int | None = None,
    ) -> str:
        """One reply; `sampled` replies use the temperature and a per-sample seed."""
        request = Request(
            messages=tuple(messages),
            guild_id=guild_id,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature if sampled else 0.0,
            seed=self.seed + sample if sampled else None,
        )
        completion = await self.llm.complete(request)
        return completion.text

    async def solve(
        self, problem: str, *, samples: int = 1, guild_id: int | None = None
    ) -> PalResult:
        """k programs (greedy when k == 1), executed, voted on, repaired once if all fail."""
        text = check_problem(problem)
        if not 1 <= samples <= MAX_SAMPLES:
            raise InvalidInput(f"--samples must be between 1 and {MAX_SAMPLES}.")
        started = time.monotonic()
        messages = pal_messages(text)
        replies = await asyncio.gather(
            *(
                self.generate(messages, sample=i, sampled=samples > 1, guild_id=guild_id)
                for i in range(samples)
            )
        )
        return await self.solve_from_replies(text, replies, guild_id=guild_id, started=started)

    async def solve_from_replies(
        self,
        problem: str,
        replies: Sequence[str],
        *,
        guild_id: int | None = None,
        started: float | None = None,
    ) -> PalResult:
        """Execute, vote and repair given model replies (the seam tests use to inject code)."""
        started = time.monotonic() if started is None else started
        text = check_problem(problem)
        attempts = list(
            await asyncio.gather(*(self._run_reply(i, "sample", r) for i, r in enumerate(replies)))
        )
        if not any(a.ok for a in attempts):
            attempts += await self._repair_round(
                text, attempts, sampled=len(replies) > 1, guild_id=guild_id
            )
        return self._result(text, attempts, time.monotonic() - started)

    async def _run_reply(
        self, sample: int, round_: Literal["sample", "repair"], reply: str
    ) -> Attempt:
        try:
            code = extract_program(reply)
        except ExtractionError as exc:
            return Attempt(sample, round_, "no_code", None, exc.user_message, None, reply)
        execution = await execute(self.sandbox, code, timeout_s=self.timeout_s)
        return Attempt(
            sample,
            round_,
            execution.status,
            execution.answer,
            execution.feedback or execution.error,
            code,
            reply,
            execution,
        )

    async def _repair_round(
        self, problem: str, failed: Sequence[Attempt], *, sampled: bool, guild_id: int | None
    ) -> list[Attempt]:
        """One repair per distinct failing program, all at once (they batch on the engine)."""
        distinct: dict[str, Attempt] = {}
        for attempt in failed:
            distinct.setdefault(attempt.code or attempt.reply, attempt)

        async def repair(attempt: Attempt) -> Attempt:
            previous = fence(attempt.code) if attempt.code else attempt.reply[:4000]
            messages = repair_messages(problem, previous, attempt.error or attempt.status)
            reply = await self.generate(
                messages, sample=attempt.sample, sampled=sampled, guild_id=guild_id
            )
            return await self._run_reply(attempt.sample, "repair", reply)

        log.info("pal: %d program(s) failed; repair round for %d", len(failed), len(distinct))
        return list(await asyncio.gather(*(repair(a) for a in distinct.values())))

    def _result(self, problem: str, attempts: list[Attempt], elapsed_s: float) -> PalResult:
        # Vote over the final round only: repaired programs replace the ones they fix.
        final_round = [a for a in attempts if a.round == "repair"] or attempts
        vote = majority_vote(final_round)
        if vote.winner is None:
            last = final_round[-1]
            return PalResult(
                problem,
                None,
                False,
                last.code,
                last.execution.stdout if last.execution else "",
                _user_error(last),
                tuple(attempts),
                {},
                elapsed_s=elapsed_s,
            )
        winner = final_round[vote.winner]
        stdout = winner.execution.stdout if winner.execution else ""
        if vote.answer is not None and vote.answer.strip().lower() == NOT_MATH:
            return PalResult(
                problem,
                None,
                False,
                winner.code,
                stdout,
                "This does not look like a math problem.",
                tuple(attempts),
                vote.votes,
                not_math=True,
                elapsed_s=elapsed_s,
            )
        return PalResult(
            problem,
            vote.answer,
            winner.number is not None,
            winner.code,
            stdout,
            None,
            tuple(attempts),
            vote.votes,
            elapsed_s=elapsed_s,
        )


def _user_error(attempt: Attempt) -> str:
    if attempt.status == "no_code":
        return "The model did not write a usable program: " + (attempt.error or "")
    if attempt.execution is not None and attempt.execution.error:
        return f"The program failed ({attempt.status}): {attempt.execution.error}"
    return f"The program failed ({attempt.status})."
