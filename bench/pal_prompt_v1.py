"""Main's PAL prompt before issue #17 (v1), kept so `guru bench pal --prompt v1` reproduces the
"before" numbers: its examples compute, but a comment does mental arithmetic ("half a dozen
is 6") and nothing forbids returning a number worked out in comments. Not used by /calc.
"""

from __future__ import annotations

from core.pal.prompt import NOT_MATH, Example, PromptStyle

__all__ = ["V1"]

_SYSTEM = (
    "You solve math word problems by writing Python. Write exactly one function named "
    "solution() that takes no arguments and returns the final answer as a number. Use "
    "meaningful variable names and a short comment for each step. Reply with only one "
    "```python code block. If the text is not a math problem, write a solution() that "
    f'returns the string "{NOT_MATH}".'
)


# Problems in the style of the PAL paper's prompt (GSM8K *train*-like, not from the test set
# the benchmark uses), so no test answer leaks into the prompt.
_EXAMPLES: tuple[Example, ...] = (
    Example(
        problem=(
            "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?"
        ),
        code=(
            "def solution():\n"
            "    # Olivia starts with 23 dollars\n"
            "    money_initial = 23\n"
            "    # five bagels at 3 dollars each\n"
            "    bagels = 5\n"
            "    bagel_cost = 3\n"
            "    money_spent = bagels * bagel_cost\n"
            "    # what is left after paying\n"
            "    money_left = money_initial - money_spent\n"
            "    return money_left\n"
        ),
        reasoning=(
            "Five bagels at $3 each cost 5 * 3 = 15 dollars. She started with 23 dollars, so "
            "she has 23 - 15 = 8 dollars left."
        ),
        answer="8",
    ),
    Example(
        problem=(
            "A pen costs $3 and a notebook costs twice as much. A class buys 2 pens and half "
            "a dozen notebooks. How much do they pay?"
        ),
        code=(
            "def solution():\n"
            "    # prices of one pen and one notebook\n"
            "    pen_price = 3\n"
            "    notebook_price = 2 * pen_price\n"
            "    # half a dozen is 6\n"
            "    pens = 2\n"
            "    notebooks = 12 // 2\n"
            "    # total cost of everything\n"
            "    total = pens * pen_price + notebooks * notebook_price\n"
            "    return total\n"
        ),
        reasoning=(
            "A notebook costs 2 * 3 = 6 dollars. Half a dozen notebooks is 6 notebooks, which "
            "cost 6 * 6 = 36 dollars. Two pens cost 2 * 3 = 6 dollars. Together they pay "
            "36 + 6 = 42 dollars."
        ),
        answer="42",
    ),
)

V1 = PromptStyle("v1", _SYSTEM, _EXAMPLES)
