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


def attempt(code: str, round_: str = "sample", **extra: object) -> dict[str, object]:
    return {"round": round_, "status": "ok", "answer": "416", "code": code, **extra}


LITERAL_CODE = "def solution():\n    # 17 * 23 = 411\n    return 416\n"
COMPUTED_CODE = "def solution():\n    a = 17\n    return a * 23 + 5\n"


def test_report_counts_literal_returns_per_pal_method() -> None:
    """Issue #17: the rate of first programs returning a literal, and accepted literal answers;
    rows written before the flag existed are judged from their code and the question."""
    rows = [
        {  # "before": no flag recorded, the literal program was the accepted answer
            **row("a", "pal", False),
            "predicted": "416",
            "code": LITERAL_CODE,
            "attempts": [attempt(LITERAL_CODE)],
        },
        {  # "after": flagged and rejected, the resample computes and is accepted
            **row("a", "pal_sc2", True),
            "predicted": "396",
            "code": COMPUTED_CODE,
            "accepted_literal": False,
            "attempts": [
                attempt(LITERAL_CODE, status="literal", literal=True, answer=None),
                attempt(COMPUTED_CODE, literal=False, answer="396"),
                attempt(COMPUTED_CODE, "resample", literal=False, answer="396"),
            ],
        },
    ]
    summary = report(rows, ["pal", "pal_sc2"], {"a": "What is 17 * 23 + 5?"})
    before, after = summary["methods"]["pal"], summary["methods"]["pal_sc2"]
    keys = ("literal_first", "programs_first", "accepted_literal")
    assert [before[k] for k in keys] == [1, 1, 1]
    assert [after[k] for k in keys] == [1, 2, 0]
    assert after["literal_rate"] == 0.5


def test_variants_get_their_own_results_file(tmp_path) -> None:
    import argparse

    from bench.pal import _results_path, add_arguments
    from core.config import Settings

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = Settings(data_dir=str(tmp_path))
    now = _results_path(parser.parse_args([]), settings, "qwen2.5-coder-0.5b")
    before = _results_path(
        parser.parse_args(["--prompt", "v1", "--no-reject-literals"]),
        settings,
        "qwen2.5-coder-0.5b",
    )
    assert now.name == "pal-qwen2.5-coder-0.5b.jsonl"
    assert before.name == "pal-qwen2.5-coder-0.5b-v1-noreject.jsonl"


def test_report_counts_only_the_selected_subset() -> None:
    """One JSONL holds rows of several subsets (tune on 50-99, report on 0-49): the table of a
    subset counts its problems only."""
    rows = [row("a", "pal", True), row("b", "pal", False), row("c", "pal", True)]
    assert report(rows, ["pal"], ids={"b"})["methods"]["pal"]["correct_common"] == 0
    assert report(rows, ["pal"], ids={"a", "c"})["methods"]["pal"]["correct_common"] == 2
    assert report(rows, ["pal"])["methods"]["pal"]["n_common"] == 3


def test_start_and_limit_select_a_stable_slice() -> None:
    import argparse

    from bench.pal import _problems, add_arguments
    from bench.pal_data import arithmetic_problems

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", "arithmetic", "--start", "4", "--limit", "3"])
    assert [p.id for p in _problems(args)] == [p.id for p in arithmetic_problems()[4:7]]


def test_report_scores_the_greedy_sample_of_self_consistency() -> None:
    """Sample 0 of pal_sc<k> is the greedy program: scored alone (as first run) it is PAL
    greedy without a second run; a vote the greedy program lost still counts as a greedy miss."""
    rows = [
        {
            **row("a", "pal_sc3", True),
            "gold": 396,
            "attempts": [
                attempt(COMPUTED_CODE, answer="391"),
                attempt(COMPUTED_CODE, answer="396"),
            ],
        },
        {
            **row("b", "pal_sc3", True),
            "gold": 396,
            "attempts": [attempt(COMPUTED_CODE, answer="396.0"), attempt(COMPUTED_CODE)],
        },
        {
            **row("c", "pal_sc3", False),
            "gold": 7,
            "attempts": [attempt(LITERAL_CODE, status="literal", answer=None)],
        },
    ]
    table = report(rows, ["pal_sc3"])["methods"]["pal_sc3"]
    assert table["correct_common"] == 2 and table["greedy_correct_common"] == 1
