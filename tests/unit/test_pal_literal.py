"""Issue #17: programs that return a number written into them (the arithmetic done in comments
or in the model's head) vs programs that compute, judged by `ast` alone (no sandbox)."""

from __future__ import annotations

import textwrap

import pytest

from core.pal.literal import literal_feedback, literal_returns, problem_numbers

ARITHMETIC = "What is 17 * 23 + 5?"
APPLES = "Tom has 5 apples. How many apples does Tom have?"


def program(body: str, head: str = "def solution():") -> str:
    return head + "\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


# (body of solution(), problem, the literal values it returns)
LITERAL = [
    ("# 17 * 23 = 411\n# 411 + 5 = 416\nreturn 416", ARITHMETIC, (416,)),  # the user's case
    ("answer = 416\nreturn answer", ARITHMETIC, (416,)),
    ("return -416", ARITHMETIC, (-416,)),
    ("return 416.0", ARITHMETIC, (416,)),
    ("return 2.5", ARITHMETIC, (2.5,)),
    ("return '416'", ARITHMETIC, (416,)),
    ("return '$1,416'", ARITHMETIC, (1416,)),
    ("return int(416)", ARITHMETIC, (416,)),
    ("return round(416.0, 2)", ARITHMETIC, (416,)),
    ("a = 416\nb = a\nreturn b", ARITHMETIC, (416,)),
    ("total = 400\nif True:\n    total = 416\nreturn total", ARITHMETIC, (400, 416)),
    ("x, y = 411, 5\nreturn x", ARITHMETIC, (411,)),
    ("answer: int = 416\nreturn answer", ARITHMETIC, (416,)),
    ("return (answer := 416)", ARITHMETIC, (416,)),
    ("x = 17  # a given number, bound but not used\nreturn 416", ARITHMETIC, (416,)),
    ("return 0", APPLES, (0,)),  # no 0 in the problem: worked out in the model's head
    ("if True:\n    return 416\nreturn 400", ARITHMETIC, (400, 416)),
]


@pytest.mark.parametrize(("body", "problem", "values"), LITERAL)
def test_literal_returns_are_found(body: str, problem: str, values: tuple[float, ...]) -> None:
    found = literal_returns(program(body), problem)
    assert found.only_literals, found
    assert sorted(found.literal) == sorted(values)


COMPUTED = [
    ("x = 17\ny = 23\nreturn x * y + 5", ARITHMETIC),
    ("return 17 * 23 + 5", ARITHMETIC),  # the sandbox does the arithmetic
    ("answer = 17 * 23 + 5\nreturn answer", ARITHMETIC),
    ("return 5", APPLES),  # the problem gives 5: copying it is not mental arithmetic
    ("apples = 5\nreturn apples", APPLES),
    ("answer = 42\nreturn answer", "What is 42?"),
    ("return 5", "Olivia bought five bagels. How many bagels did she buy?"),
    ("return 1250", "A bike costs $1,250. What does it cost?"),
    ("return 0.75", "3/4 of the class passed. What fraction passed?"),
    ("return 0.25", "25% of the cookies are left. What share is left?"),
    ("return -5", "It is 5 degrees below zero. What is the temperature?"),
    ("total = 0\nfor p in [17, 23]:\n    total += p\nreturn total", ARITHMETIC),
    ("count = 0\ncount += 416\nreturn count", ARITHMETIC),  # augmented: not a plain literal
    ("return sum([17, 23, 5])", ARITHMETIC),
    ("return 'not a math problem'", "Write a poem."),
    ("return [2, 3, 5]", "List the first three primes."),
    ("return True", "Is 17 a prime?"),
    ("return None", ARITHMETIC),
    ("import math\nreturn math.pi", ARITHMETIC),
    ("def inner():\n    return 416\nx = 17\nreturn x * 23 + 5", ARITHMETIC),  # inner's own
    ("answer = 0\nif 17 > 3:\n    answer = 17 * 23\nreturn answer", ARITHMETIC),
]


@pytest.mark.parametrize(("body", "problem"), COMPUTED)
def test_computing_programs_pass(body: str, problem: str) -> None:
    found = literal_returns(program(body), problem)
    assert not found.only_literals, found
    assert found.literal == ()


def test_a_branch_with_a_literal_is_caught_when_it_is_the_one_returned() -> None:
    found = literal_returns(program("x = 17\nif x > 20:\n    return 416\nreturn x * 2"), ARITHMETIC)
    assert not found.only_literals and found.literal == (416,)
    assert found.returned(416) and found.returned(416.0)
    assert not found.returned(34) and not found.returned(None)


def test_module_level_constant() -> None:
    code = "ANSWER = 416\n\n" + program("return ANSWER")
    assert literal_returns(code, ARITHMETIC).only_literals


def test_a_local_binding_shadows_a_module_constant() -> None:
    code = "x = 416\n\n" + program("x = 17 * 23\nreturn x")
    assert not literal_returns(code, ARITHMETIC).only_literals


def test_a_default_argument_is_a_binding_too() -> None:
    code = program("return answer", head="def solution(answer=416):")
    assert literal_returns(code, ARITHMETIC).only_literals
    code = program("return a * b", head="def solution(a=17, b=23):")
    assert not literal_returns(code, ARITHMETIC).only_literals


def test_a_lone_function_under_another_name() -> None:
    code = "def count():\n    return 416\n\nsolution = count\n"  # what extract.py appends
    assert literal_returns(code, ARITHMETIC).only_literals


@pytest.mark.parametrize(
    "code", ["", "x = 416\n", "def solution(:\n", "def helper():\n    return 416\n"]
)
def test_no_solution_is_not_a_literal_verdict(code: str) -> None:
    found = literal_returns(code, ARITHMETIC)
    assert not found.only_literals and found.returns == 0


def test_cyclic_names_do_not_recurse_forever() -> None:
    found = literal_returns(program("a = b\nb = a\nreturn a"), ARITHMETIC)
    assert not found.only_literals


def test_problem_numbers() -> None:
    found = problem_numbers(
        "A bike costs $1,250.50 and 3/4 of 25% is small; 10 percent; half a dozen; 2,3 and 4."
    )
    assert {1250.5, 3, 4, 0.75, 25, 0.25, 10, 0.1, 0.5, 12, 2} <= found
    assert 250 not in found and 1 not in found  # "1,250" is one number, not two


def test_feedback_names_the_number_and_what_to_do() -> None:
    message = literal_feedback(literal_returns(program("return 416"), ARITHMETIC))
    assert "416" in message and "comments" in message and "variable" in message


# (body of solution(), problem, numbers worked out in a comment and used in the code)
COMMENT_MATH = [
    ("# 365 * 24 * 60 = 365 * 86400\nreturn 365 * 86400", "What is 365 * 24 * 60?", (86400,)),
    (
        "# 24 * 60 = 1440 minutes a day\nminutes = 1440\nreturn minutes * 365",
        "What is 365 * 24 * 60?",
        (1440,),
    ),
    ("# total = 3 * 4 = 12\nreturn 12 + 1", "3 bags of 4 apples and 1 more?", (12,)),
    ("# 2 x 3 = 6\nreturn 6 * 7", "2 boxes of 3 cans, 7 times?", (6,)),
]


@pytest.mark.parametrize(("body", "problem", "values"), COMMENT_MATH)
def test_numbers_worked_out_in_comments_are_found(
    body: str, problem: str, values: tuple[float, ...]
) -> None:
    found = literal_returns(program(body), problem)
    assert not found.computes and found.commented == values, found
    assert "comment" in literal_feedback(found)


COMMENTS_FINE = [
    ("# 60 minutes in an hour\nminutes = 60\nreturn minutes * 2", "How many minutes in 2 hours?"),
    ("# 2 * 3 = 6 dollars a notebook\nprice = 2 * 3\nreturn price", "Twice 3 dollars?"),  # unused
    ("# total = price * count\nprice = 3\ncount = 4\nreturn price * count", "3 dollars, 4 pens?"),
    ("# 17 * 23 = 391 (given: 391)\nreturn 391 + 5", "17 * 23 is 391. What is 391 + 5?"),
    ("# the answer is 396\nreturn 17 * 23 + 5", ARITHMETIC),  # no calculation stated
]


@pytest.mark.parametrize(("body", "problem"), COMMENTS_FINE)
def test_comments_that_do_not_feed_the_code_are_fine(body: str, problem: str) -> None:
    found = literal_returns(program(body), problem)
    assert found.computes and found.commented == (), found


def test_a_problem_without_numbers_answered_with_the_examples_numbers() -> None:
    examples = [18, 7.5, 5, 20, 23, 3]  # what the prompt's worked problems give
    code = program("return 18 * 7.5 * 5")
    found = literal_returns(code, "Write a short poem about the sea.", examples)
    assert not found.computes and found.foreign == (5, 7.5, 18)
    assert "none of the numbers" in literal_feedback(found)
    week = program("days = 7\nreturn days * 1")  # "a week": numbers the problem implies
    assert literal_returns(week, "He runs a mile a day for a week. Miles?", examples).computes
    given = "Maya earns $18 an hour for 5 days at 7.5 hours a day."
    assert literal_returns(code, given, examples).computes  # the problem gives them
