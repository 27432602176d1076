"""`guru bench pal` helpers: the data set loader and the partial-run report (no model)."""

from __future__ import annotations

import pytest

from bench.pal import report
from bench.pal_methods import text_messages
from core.errors import NotFound


def test_gsm8k_problems_from_the_package() -> None:
    from bench.pal_data import load_problems

    try:
        problems = load_problems()
    except NotFound as exc:
        pytest.skip(exc.user_message)
    assert len(problems) == 100
    assert len({p.id for p in problems}) == 100
    assert all(p.question.strip() for p in problems)
    assert all(isinstance(p.answer, (int, float)) for p in problems)
    assert [p.id for p in load_problems(3)] == [p.id for p in problems[:3]]


def row(pid: str, method: str, correct: bool, seconds: float = 1.0) -> dict[str, object]:
    return {"id": pid, "method": method, "correct": correct, "seconds": seconds}


def test_report_compares_methods_on_the_problems_all_of_them_finished() -> None:
    rows = [
        row("a", "cot", False),
        row("a", "pal", True),
        row("b", "cot", True),
        row("b", "pal", True),
        row("c", "cot", True),
    ]  # pal has not reached "c" yet
    summary = report(rows, ["cot", "pal"])
    assert summary["problems_all_methods"] == 2
    assert summary["methods"]["cot"]["correct_common"] == 1
    assert summary["methods"]["pal"]["accuracy_common"] == 1.0
    assert summary["methods"]["cot"]["n_done"] == 3


def test_text_baselines_share_the_pal_examples() -> None:
    cot = text_messages("How many?", "cot")
    direct = text_messages("How many?", "direct")
    assert len(cot) == len(direct) and cot[-1].content == "Problem: How many?"
    assert "The answer is 8." in cot[2].content and cot[2].content != direct[2].content
