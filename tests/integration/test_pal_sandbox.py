"""PAL programs in the real sandbox (no model): values read back, non-numbers flagged,
failures turned into feedback for the repair round, votes over executed results."""

from __future__ import annotations

import textwrap

import pytest

from core.llm.types import Completion
from core.pal.execute import execute
from core.pal.prompt import NOT_MATH
from core.pal.solver import PalSolver
from core.sandbox import Sandbox


def program(body: str) -> str:
    return "def solution():\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


def reply(body: str) -> str:
    return f"Here you go:\n```python\n{program(body)}```\n"


class NoModel:
    """Stands where the LLM would be: these tests never reach the repair round."""

    async def complete(self, request: object) -> object:
        raise AssertionError("no model call expected in this test")


@pytest.fixture(scope="module")
def solver(pal_sandbox: Sandbox) -> PalSolver:
    return PalSolver(NoModel(), pal_sandbox, timeout_s=1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        ("bagels = 5\nreturn 23 - bagels * 3", "8"),
        ("return 24 / 2", "12"),
        ("return 0.1 + 0.2", "0.3"),
        ("return 100 / 3", "33.333333"),
        ("return '$1,250'", "1250"),
        ("from fractions import Fraction\nreturn Fraction(3, 4)", "0.75"),
    ],
)
async def test_numbers_come_back_normalised(pal_sandbox: Sandbox, body: str, answer: str) -> None:
    result = await execute(pal_sandbox, program(body))
    assert result.ok and result.numeric and result.answer == answer


@pytest.mark.parametrize(
    ("body", "answer", "type_name"),
    [
        ("return 'Tuesday'", "Tuesday", "str"),
        ("return [2, 3, 5]", "[2, 3, 5]", "list"),
        ("return True", "True", "bool"),
        ("return {'apples': 3}", "{'apples': 3}", "dict"),
        ("return float('inf')", "inf", "float"),
    ],
)
async def test_non_numbers_are_answers_flagged_as_such(
    pal_sandbox: Sandbox, body: str, answer: str, type_name: str
) -> None:
    result = await execute(pal_sandbox, program(body))
    assert result.ok and not result.numeric
    assert result.answer == answer and result.type_name == type_name


async def test_printed_output_is_kept_apart_from_the_answer(pal_sandbox: Sandbox) -> None:
    code = program("print('thinking...')\nreturn 7") + "print(solution())\n"
    result = await execute(pal_sandbox, code)
    assert result.answer == "7"
    assert result.stdout == "thinking...\n7\nthinking...\n"  # its own call, then ours


@pytest.mark.parametrize(
    ("body", "status", "feedback"),
    [
        ("return 1 / 0", "error", "ZeroDivisionError"),
        ("return apples", "error", "NameError"),
        ("return int(input())", "error", "EOFError"),
        ("return None", "no_result", "returned None"),
        ("import sys\nsys.exit(0)", "no_result", "before solution() returned"),
        ("while True:\n    pass", "timeout", "Time limit exceeded"),
        ("return open('/etc/shadow').read()", "error", "Error"),
    ],
)
async def test_failures_become_feedback_for_the_model(
    pal_sandbox: Sandbox, body: str, status: str, feedback: str
) -> None:
    result = await execute(pal_sandbox, program(body), timeout_s=1.0)
    assert result.status == status and not result.ok
    assert feedback in (result.feedback or ""), result.feedback
    assert result.error


async def test_votes_over_executed_results(solver: PalSolver) -> None:
    replies = [  # computed, not literal: a literal 13 would be rejected (issue #17)
        reply("return 6 * 2"),
        reply("return 24 / 2"),
        reply("return 12 + 1"),
        "no code here",
        reply("return 1 / 0"),
    ]
    result = await solver.solve_from_replies("How many eggs are in a dozen?", replies)
    assert result.answer == "12" and result.numeric and result.error is None
    assert result.votes == {"12": 2, "13": 1}
    assert [a.status for a in result.attempts] == ["ok", "ok", "ok", "no_code", "error"]
    assert "return 6 * 2" in (result.code or "")


async def test_non_numeric_answer_is_flagged(solver: PalSolver) -> None:
    result = await solver.solve_from_replies(
        "Which day comes after Monday?", [reply("return 'Tuesday'")]
    )
    assert result.answer == "Tuesday" and not result.numeric and result.error is None
    assert result.public()["numeric"] is False


async def test_not_a_math_problem(solver: PalSolver) -> None:
    result = await solver.solve_from_replies(
        "Write a poem about the sea.", [reply(f"return {NOT_MATH!r}")]
    )
    assert result.not_math and result.answer is None
    assert result.error == "This does not look like a math problem."


async def test_public_json_has_the_promised_keys(solver: PalSolver) -> None:
    result = await solver.solve_from_replies("2 + 2?", [reply("return 2 + 2")])
    public = result.public()
    assert {"answer", "code", "stdout", "error", "attempts", "votes"} <= set(public)
    assert public["answer"] == "4" and public["attempts"][0]["status"] == "ok"


class Scripted:
    """A model that answers each request with the next scripted reply (issue #17 tests)."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls = 0

    async def complete(self, request: object) -> Completion:
        self.calls += 1
        return Completion(self.replies.pop(0), 1, 1, "stop", 0.0, 0.0)


async def test_a_literal_return_is_rejected_and_resampled(pal_sandbox: Sandbox) -> None:
    """The user's /calc: `return 416` with the arithmetic in comments is never the answer; a
    resampled program that computes gives 17 * 23 + 5 = 396, run in the real sandbox."""
    problem = "What is 17 * 23 + 5?"
    model = Scripted(reply("a = 17\nb = 23\nc = 5\nreturn a * b + c"))
    literal = reply("# 17 * 23 = 411\n# 411 + 5 = 416\nreturn 416")
    result = await PalSolver(model, pal_sandbox, timeout_s=1.0).solve_from_replies(  # type: ignore[arg-type]
        problem, [literal]
    )
    assert [a.status for a in result.attempts] == ["literal", "ok"] and model.calls == 1
    assert result.answer == "396" and result.numeric and "416" not in result.votes


async def test_only_literal_programs_give_no_answer(pal_sandbox: Sandbox) -> None:
    literal = reply("answer = 416\nreturn answer")
    model = Scripted(literal, literal)  # the resample and the repair write it again
    result = await PalSolver(model, pal_sandbox, timeout_s=1.0).solve_from_replies(  # type: ignore[arg-type]
        "What is 17 * 23 + 5?", [literal]
    )
    assert result.answer is None and result.votes == {}
    assert result.error is not None and "no program that computes" in result.error
