"""`PalSolver`: problem -> k programs -> sandbox -> majority vote, with resampling and repair.

Why this order: sampling k programs at temperature > 0 and voting over their *executed*
results (self-consistency) fixes the slips of a small model that a single greedy program
keeps. A program that returns a number written into it (the arithmetic done in comments,
literal.py) computed nothing, so it never votes: it is replaced by a fresh sample. If no
program then succeeds, the repair round shows the model its own code and the error (crash,
timeout, literal). Generation runs on the engine (the k samples are separate requests sent
together, so continuous batching decodes them in one step), programs run in the sandbox;
this module only orchestrates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from core.errors import InvalidInput
from core.llm.types import LLMBackend, Message, Request
from core.pal.execute import execute
from core.pal.extract import ExtractionError, extract_program
from core.pal.literal import literal_feedback, literal_returns, problem_numbers
from core.pal.prompt import NOT_MATH, PROMPT, PromptStyle, fence, pal_messages, repair_messages
from core.pal.result import (
    MAX_PROBLEM_CHARS,
    MAX_SAMPLES,
    Attempt,
    PalResult,
    Round,
    check_problem,
    user_error,
)
from core.pal.vote import majority_vote
from core.sandbox import Sandbox

__all__ = [
    "PalSolver",
    "PalResult",
    "Attempt",
    "check_problem",
    "MAX_PROBLEM_CHARS",
    "MAX_SAMPLES",
]

log = logging.getLogger(__name__)


class PalSolver:
    """Solves word problems with model-written programs run in a real `Sandbox`.

    samples: programs per problem when `solve` is not told (GURU_CALC_SAMPLES; 1 = greedy).
    reject_literals: refuse programs that return a literal (off only to measure "before").
    resample_rounds: fresh samples drawn for rejected programs before the repair round.
    """

    def __init__(
        self,
        llm: LLMBackend,
        sandbox: Sandbox,
        *,
        max_new_tokens: int = 384,
        temperature: float = 0.7,
        timeout_s: float | None = None,
        seed: int = 0,
        samples: int = 1,
        reject_literals: bool = True,
        resample_rounds: int = 1,
        prompt: PromptStyle = PROMPT,
    ) -> None:
        self.llm = llm
        self.sandbox = sandbox
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.seed = seed
        self.samples = samples
        self.reject_literals = reject_literals
        self.resample_rounds = resample_rounds
        self.prompt = prompt
        self._example_numbers = sorted(
            {n for e in prompt.examples for n in problem_numbers(e.problem)}, key=float
        )

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

    async def sample_replies(
        self, problem: str, samples: int | None = None, *, guild_id: int | None = None
    ) -> list[str]:
        """k replies to the PAL prompt, requested concurrently: the greedy one, then k - 1
        sampled ones (seeded)."""
        k = self.samples if samples is None else samples
        if not 1 <= k <= MAX_SAMPLES:
            raise InvalidInput(f"--samples must be between 1 and {MAX_SAMPLES}.")
        messages = pal_messages(check_problem(problem), self.prompt)
        # Sample 0 is greedy: a small model's greedy program is its single best guess, so it
        # votes too, and (the earliest answer wins a tie) breaks a tie between samples.
        # All k requests are queued at once: the engine admits them into one decode batch.
        replies = await asyncio.gather(
            *(self.generate(messages, sample=i, sampled=i > 0, guild_id=guild_id) for i in range(k))
        )
        return list(replies)

    async def solve(
        self, problem: str, *, samples: int | None = None, guild_id: int | None = None
    ) -> PalResult:
        """k programs (default `self.samples`), executed, voted on; resampled and repaired."""
        text = check_problem(problem)
        started = time.monotonic()
        replies = await self.sample_replies(text, samples, guild_id=guild_id)
        return await self.solve_from_replies(text, replies, guild_id=guild_id, started=started)

    async def solve_from_replies(
        self,
        problem: str,
        replies: Sequence[str],
        *,
        guild_id: int | None = None,
        started: float | None = None,
    ) -> PalResult:
        """Execute, vote, resample and repair given model replies (the seam tests use)."""
        started = time.monotonic() if started is None else started
        text = check_problem(problem)
        attempts = list(
            await asyncio.gather(
                *(self._run_reply(text, i, "sample", r) for i, r in enumerate(replies))
            )
        )
        for round_ in range(1, self.resample_rounds + 1):
            rejected = [a for a in _latest(attempts) if a.status == "literal"]
            if not rejected:
                break
            attempts += await self._resample(text, rejected, round_, len(replies), guild_id)
        if not any(a.ok for a in _latest(attempts)):
            attempts += await self._repair_round(
                text, _latest(attempts), sampled=len(replies) > 1, guild_id=guild_id
            )
        return self._result(text, attempts, time.monotonic() - started)

    async def _run_reply(self, problem: str, sample: int, round_: Round, reply: str) -> Attempt:
        try:
            code = extract_program(reply)
        except ExtractionError as exc:
            return Attempt(sample, round_, "no_code", None, exc.user_message, None, reply)
        found = literal_returns(code, problem, self._example_numbers)
        if self.reject_literals and not found.computes:
            # Nothing to run: whatever it returns, the program computed nothing.
            error = literal_feedback(found)
            return Attempt(
                sample, round_, "literal", None, error, code, reply, None, True, found.values
            )
        execution = await execute(self.sandbox, code, timeout_s=self.timeout_s)
        literal = execution.ok and (not found.computes or found.returned(execution.number))
        status = "literal" if literal and self.reject_literals else execution.status
        error = literal_feedback(found) if status == "literal" else None
        return Attempt(
            sample,
            round_,
            status,
            None if status == "literal" else execution.answer,
            error or execution.feedback or execution.error,
            code,
            reply,
            execution,
            literal,
            found.values if literal else (),
        )

    async def _resample(
        self,
        problem: str,
        rejected: Sequence[Attempt],
        round_: int,
        k: int,
        guild_id: int | None,
    ) -> list[Attempt]:
        """A fresh sampled program for each rejected one (sampled even when k == 1: greedy
        decoding would only write the same program again), with seeds no sample used."""
        log.info("pal: %d program(s) returned a literal; resampling them", len(rejected))
        messages = pal_messages(problem, self.prompt)

        async def redraw(attempt: Attempt) -> Attempt:
            seed_index = round_ * k + attempt.sample
            reply = await self.generate(
                messages, sample=seed_index, sampled=True, guild_id=guild_id
            )
            return await self._run_reply(problem, attempt.sample, "resample", reply)

        return list(await asyncio.gather(*(redraw(a) for a in rejected)))

    async def _repair_round(
        self, problem: str, failed: Sequence[Attempt], *, sampled: bool, guild_id: int | None
    ) -> list[Attempt]:
        """One repair per distinct failing program, all at once (they batch on the engine)."""
        distinct: dict[str, Attempt] = {}
        for attempt in failed:
            distinct.setdefault(attempt.code or attempt.reply, attempt)

        async def repair(attempt: Attempt) -> Attempt:
            previous = fence(attempt.code) if attempt.code else attempt.reply[:4000]
            messages = repair_messages(
                problem,
                previous,
                attempt.error or attempt.status,
                rejected=attempt.status == "literal",
                style=self.prompt,
            )
            reply = await self.generate(
                messages, sample=attempt.sample, sampled=sampled, guild_id=guild_id
            )
            return await self._run_reply(problem, attempt.sample, "repair", reply)

        log.info("pal: %d program(s) failed; repair round for %d", len(failed), len(distinct))
        return list(await asyncio.gather(*(repair(a) for a in distinct.values())))

    def _result(self, problem: str, attempts: list[Attempt], elapsed_s: float) -> PalResult:
        # Vote over each sample's latest program: a resample or repair replaces what it redoes.
        final_round = _latest(attempts)
        vote = majority_vote(final_round)
        if vote.winner is None:
            last = final_round[-1]
            return PalResult(
                problem,
                None,
                False,
                last.code,
                last.execution.stdout if last.execution else "",
                user_error(attempts, last),
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


def _latest(attempts: Sequence[Attempt]) -> list[Attempt]:
    """Each sample's most recent attempt, in sample order."""
    latest: dict[int, Attempt] = {}
    for attempt in attempts:
        latest[attempt.sample] = attempt
    return [latest[i] for i in sorted(latest)]
