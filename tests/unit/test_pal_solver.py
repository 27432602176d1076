"""PalSolver's control flow with a scripted model and an in-process stand-in for the sandbox:
literal returns are rejected and resampled, then repaired; they never vote or answer; the k
samples are requested concurrently. (The real sandbox: tests/integration/test_pal_sandbox.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import io
from dataclasses import dataclass, field

import pytest

from core.llm.types import Completion, Request
from core.pal.solver import PalSolver
from core.sandbox import SandboxResult

PROBLEM = "What is 17 * 23 + 5?"
LITERAL = (
    "```python\ndef solution():\n    # 17 * 23 = 411\n    # 411 + 5 = 416\n    return 416\n```"
)
COMPUTES = (
    "```python\ndef solution():\n    a = 17\n    b = 23\n    c = 5\n    return a * b + c\n```"
)
WRONG = "```python\ndef solution():\n    a = 17\n    b = 23\n    return a * b\n```"


@dataclass
class ScriptedLLM:
    """Replies in order, one per request; records the requests."""

    replies: list[str]
    requests: list[Request] = field(default_factory=list)

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        text = self.replies.pop(0)
        return Completion(text, 10, 10, "stop", 0.01, 0.01)


class InProcessSandbox:
    """Runs our own crafted programs with exec (the test writes them; no model code)."""

    class limits:
        timeout_s = 1.0

    def __init__(self) -> None:
        self.programs: list[str] = []

    async def run(self, code: str, timeout_s: float | None = None) -> SandboxResult:
        self.programs.append(code)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "<program>", "exec"), {"__name__": "__main__"})  # noqa: S102
        return SandboxResult(True, "ok", out.getvalue(), "", 0, False, 1.0)


def solver(
    replies: list[str], **options: object
) -> tuple[PalSolver, ScriptedLLM, InProcessSandbox]:
    llm, sandbox = ScriptedLLM(list(replies)), InProcessSandbox()
    return PalSolver(llm, sandbox, timeout_s=1.0, seed=100, **options), llm, sandbox  # type: ignore[arg-type]


async def test_a_literal_greedy_program_is_resampled() -> None:
    pal, llm, sandbox = solver([LITERAL, COMPUTES])
    result = await pal.solve(PROBLEM)
    assert result.answer == "396" and result.error is None  # 17 * 23 + 5, not the model's 416
    assert [(a.round, a.status) for a in result.attempts] == [
        ("sample", "literal"),
        ("resample", "ok"),
    ]
    assert "416" in (result.attempts[0].error or "") and result.attempts[0].literal
    assert len(sandbox.programs) == 1  # the literal program was never run
    greedy, fresh = llm.requests
    assert greedy.temperature == 0.0 and greedy.seed is None
    assert fresh.temperature > 0 and fresh.seed is not None  # greedy would repeat itself
    assert "a * b + c" in (result.code or "")


async def test_only_literals_is_a_plain_error_not_416() -> None:
    pal, llm, _ = solver([LITERAL, LITERAL, LITERAL])
    result = await pal.solve(PROBLEM)
    assert result.answer is None and result.votes == {}
    assert [a.round for a in result.attempts] == ["sample", "resample", "repair"]
    assert all(a.status == "literal" and not a.ok for a in result.attempts)
    assert result.error is not None and "no program that computes" in result.error
    repair = llm.requests[-1].messages[-1].content
    assert "rejected" in repair and "416" in repair and "comments" in repair


async def test_the_repair_can_fix_a_literal() -> None:
    pal, _, _ = solver([LITERAL, LITERAL, COMPUTES])
    result = await pal.solve(PROBLEM)
    assert result.answer == "396" and result.repaired


async def test_literals_never_vote() -> None:
    # Three samples: two say 416 by literal, one computes 391 (wrong, but computed); the two
    # literal slots are resampled, and 416 cannot win however many times it is written.
    pal, llm, _ = solver([LITERAL, WRONG, LITERAL, COMPUTES, LITERAL])
    result = await pal.solve(PROBLEM, samples=3)
    assert "416" not in result.votes
    assert result.votes == {"391": 1, "396": 1}
    assert [a.round for a in result.attempts].count("resample") == 2
    seeds = [r.seed for r in llm.requests]
    assert len(set(seeds)) == len(seeds)  # every sample and resample its own seed


async def test_a_literal_returned_from_a_branch_is_rejected_after_running() -> None:
    branch = (
        "```python\ndef solution():\n    a = 17\n    if a > 3:\n        return 416\n"
        "    return a * 23 + 5\n```"
    )
    pal, _, sandbox = solver([branch, COMPUTES])
    result = await pal.solve(PROBLEM)
    assert result.attempts[0].status == "literal" and len(sandbox.programs) == 2
    assert result.answer == "396"


async def test_rejection_off_accepts_the_literal_but_flags_it() -> None:
    pal, llm, _ = solver([LITERAL], reject_literals=False)  # the bench's "before"
    result = await pal.solve(PROBLEM)
    assert result.answer == "416" and len(llm.requests) == 1
    assert result.attempts[0].ok and result.attempts[0].literal


async def test_no_resampling_goes_straight_to_the_repair() -> None:
    pal, _, _ = solver([LITERAL, COMPUTES], resample_rounds=0)
    result = await pal.solve(PROBLEM)
    assert [a.round for a in result.attempts] == ["sample", "repair"]
    assert result.answer == "396"


async def test_default_samples_come_from_the_solver() -> None:
    pal, llm, _ = solver([COMPUTES] * 3, samples=3)
    result = await pal.solve(PROBLEM)
    assert result.votes == {"396": 3} and len(llm.requests) == 3
    greedy, *sampled = llm.requests
    assert greedy.temperature == 0 and greedy.seed is None
    assert all(r.temperature > 0 for r in sampled)
    assert len({r.seed for r in sampled}) == 2


async def test_the_greedy_program_breaks_a_tie() -> None:
    """Sample 0 is the greedy program: with one vote each, its answer wins."""
    pal, llm, _ = solver([WRONG, COMPUTES, COMPUTES, WRONG], samples=4)
    result = await pal.solve(PROBLEM)
    assert result.votes == {"391": 2, "396": 2}
    assert result.answer == "391" and llm.requests[0].temperature == 0


async def test_the_samples_are_requested_together() -> None:
    """All k requests are in flight at once (so the engine can batch them): a backend that
    answers only when k requests wait would deadlock a sequential solver."""
    k, waiting = 4, asyncio.Event()
    seen: list[Request] = []

    class Together:
        async def complete(self, request: Request) -> Completion:
            seen.append(request)
            if len(seen) == k:
                waiting.set()
            await waiting.wait()
            return Completion(COMPUTES, 10, 10, "stop", 0.01, 0.01)

    pal = PalSolver(Together(), InProcessSandbox(), timeout_s=1.0)  # type: ignore[arg-type]
    result = await asyncio.wait_for(pal.solve(PROBLEM, samples=k), 5)
    assert result.votes == {"396": k}


@pytest.mark.parametrize("samples", [0, 17])
async def test_sample_count_is_checked(samples: int) -> None:
    from core.errors import InvalidInput

    pal, _, _ = solver([])
    with pytest.raises(InvalidInput):
        await pal.solve(PROBLEM, samples=samples)


async def test_a_number_worked_out_in_a_comment_is_rejected_too() -> None:
    head = "What is 365 * 24 * 60?"
    commented = (
        "```python\ndef solution():\n    # 365 * 24 * 60 = 365 * 86400\n    return 365 * 86400\n```"
    )
    computes = "```python\ndef solution():\n    days = 365\n    return days * 24 * 60\n```"
    pal, _, sandbox = solver([commented, computes])
    result = await pal.solve(head)
    assert result.attempts[0].status == "literal" and "86400" in (result.attempts[0].error or "")
    assert result.answer == "525600" and len(sandbox.programs) == 1
