"""Self-consistency voting and number normalisation; answer parsing of the text baselines."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bench.pal_methods import parse_final_number
from core.errors import InvalidInput
from core.pal.solver import check_problem
from core.pal.vote import format_number, majority_vote, normalise, numbers_match


@dataclass(frozen=True)
class Candidate:
    ok: bool
    answer: str | None
    number: int | float | None


def num(value: int | float) -> Candidate:
    return Candidate(True, format_number(value), normalise(value))


def text(value: str) -> Candidate:
    return Candidate(True, value, None)


FAILED = Candidate(False, None, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (12, 12),
        (12.0, 12),
        (11.999999999999998, 12),
        (0.30000000000000004, 0.3),
        (100 / 3, 33.333333),
        (-4.0, -4),
        (2.5, 2.5),
        (10**20, 10**20),
    ],
)
def test_normalise(raw: float, expected: float) -> None:
    value = normalise(raw)
    assert value == expected and type(value) is type(expected)


def test_format_number() -> None:
    assert format_number(12.0) == "12"
    assert format_number(2.50) == "2.5"
    assert format_number(1 / 3) == "0.333333"


def test_twelve_and_twelve_point_zero_are_one_vote() -> None:
    vote = majority_vote([num(12), num(12.0), num(11.999999999999998), num(13)])
    assert vote.answer == "12" and vote.votes == {"12": 3, "13": 1} and vote.winner == 0


def test_failures_do_not_vote() -> None:
    vote = majority_vote([FAILED, num(7), FAILED])
    assert vote.answer == "7" and vote.winner == 1 and vote.votes == {"7": 1}


def test_all_failed_is_no_answer() -> None:
    vote = majority_vote([FAILED, FAILED])
    assert vote.answer is None and vote.winner is None and vote.votes == {}


def test_tie_prefers_numbers_then_the_earliest() -> None:
    assert majority_vote([text("twelve"), num(5)]).answer == "5"
    assert majority_vote([num(5), num(6)]).answer == "5"
    assert majority_vote([num(6), num(5), num(5)]).answer == "5"


def test_text_answers_vote_by_their_text() -> None:
    vote = majority_vote([text("[1, 2]"), text(" [1, 2] "), num(3)])
    assert vote.answer == "[1, 2]" and vote.votes["[1, 2]"] == 2


def test_numbers_match_for_grading() -> None:
    assert numbers_match(18, 18.0) and numbers_match(0.1 + 0.2, 0.3)
    assert not numbers_match(18, 19)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("The answer is 42.", 42),
        ("5 * 3 = 15, 23 - 15 = 8. The answer is $8.", 8),
        ("It costs 1,250 dollars in total", 1250),
        ("Step 1: 3 + 4 = 7. The answer is 7.5 hours, not 9.", 7.5),
        ("I don't know.", None),
    ],
)
def test_parse_final_number(reply: str, expected: float | None) -> None:
    assert parse_final_number(reply) == expected


@pytest.mark.parametrize("problem", ["", "   ", "\n\t", "x" * 2001])
def test_bad_problem_text_is_invalid_input(problem: str) -> None:
    with pytest.raises(InvalidInput):
        check_problem(problem)
