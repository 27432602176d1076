"""The PAL prompt: few-shot chat turns in which the model answers with one `def solution():`.

Why this shape: MODELS.md §2 measured Qwen2.5-Coder-0.5B at 9/12 with a system prompt plus a
worked example turn vs 8/12 zero-shot; the examples teach the format (one fenced block,
meaningful names, `return` the number) better than instructions alone. Issue #17: the model
also copies *how* examples compute, and a 0.5B model readily does the arithmetic in comments
(`# 17 * 23 = 411`) and returns the literal. So every example first binds each number the
problem gives to a named variable and lets Python do every step; comments only name steps,
never hold a number; the system prompt forbids arithmetic in comments (literal.py rejects
what still slips through). The same worked problems drive the direct and chain-of-thought
baselines in `bench/pal.py`, so the comparison only varies the answer format.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.llm.types import Message

__all__ = [
    "NOT_MATH",
    "SYSTEM",
    "Example",
    "EXAMPLES",
    "PromptStyle",
    "PROMPT",
    "pal_messages",
    "repair_messages",
    "fence",
]

# What the model is told to return for text that is not a math problem: recognised exactly,
# so the solver can say "not a math problem" instead of showing a made-up number.
NOT_MATH = "not a math problem"

SYSTEM = (
    "You solve math word problems by writing Python. Write exactly one function named "
    "solution() that takes no arguments and returns the final answer as a number. First "
    "assign every number the problem gives to a variable with a meaningful name. Then "
    "compute each step from those variables with Python expressions and return the computed "
    "variable. Python must do all the arithmetic: never calculate in comments or in your "
    "head, never write a result in a comment, never return a number you worked out "
    "yourself. Reply with only one ```python code block. If the text is not a math problem, "
    f'write a solution() that returns the string "{NOT_MATH}".'
)


@dataclass(frozen=True)
class Example:
    """One worked problem, in the three answer styles the benchmark compares."""

    problem: str
    code: str
    reasoning: str
    answer: str


# Problems in the style of the PAL paper's prompt (GSM8K *train*-like, not from the test set
# the benchmark uses), so no test answer leaks into the prompt.
EXAMPLES: tuple[Example, ...] = (
    Example(
        problem=(
            "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?"
        ),
        code=(
            "def solution():\n"
            "    money_initial = 23\n"
            "    bagels = 5\n"
            "    bagel_cost = 3\n"
            "    # what the bagels cost together\n"
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
            "    pen_price = 3\n"
            "    notebook_price_factor = 2\n"
            "    pens = 2\n"
            "    dozen = 12\n"
            "    # a notebook costs twice a pen; half a dozen notebooks\n"
            "    notebook_price = notebook_price_factor * pen_price\n"
            "    notebooks = dozen / 2\n"
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
    Example(
        problem=(
            "Maya earns $18 an hour and works 7.5 hours a day for 5 days. 20% of her pay goes "
            "to taxes. How much does she keep?"
        ),
        code=(
            "def solution():\n"
            "    hourly_wage = 18\n"
            "    hours_per_day = 7.5\n"
            "    days = 5\n"
            "    tax_percent = 20\n"
            "    # pay for all the days, then the taxes taken from it\n"
            "    pay = hourly_wage * hours_per_day * days\n"
            "    taxes = pay * tax_percent / 100\n"
            "    kept = pay - taxes\n"
            "    return kept\n"
        ),
        reasoning=(
            "She earns 18 * 7.5 = 135 dollars a day, so 135 * 5 = 675 dollars in 5 days. Taxes "
            "take 20% of 675, which is 135 dollars, so she keeps 675 - 135 = 540 dollars."
        ),
        answer="540",
    ),
)


@dataclass(frozen=True)
class PromptStyle:
    """A system prompt and its worked examples: /calc uses PROMPT; the bench can pick v1."""

    name: str
    system: str
    examples: tuple[Example, ...]


PROMPT = PromptStyle("v2", SYSTEM, EXAMPLES)


def fence(code: str) -> str:
    """`code` as one fenced python block (how the examples and the repair turn show code)."""
    return f"```python\n{code.rstrip()}\n```"


def _problem_turn(problem: str) -> str:
    return f"Problem: {problem.strip()}"


def pal_messages(problem: str, style: PromptStyle = PROMPT) -> tuple[Message, ...]:
    """System prompt, the worked examples as chat turns, then `problem`."""
    turns: list[Message] = [Message("system", style.system)]
    for example in style.examples:
        turns.append(Message("user", _problem_turn(example.problem)))
        turns.append(Message("assistant", fence(example.code)))
    turns.append(Message("user", _problem_turn(problem)))
    return tuple(turns)


def repair_messages(
    problem: str,
    previous_reply: str,
    error: str,
    *,
    rejected: bool = False,
    style: PromptStyle = PROMPT,
) -> tuple[Message, ...]:
    """The PAL conversation plus the failed reply and what went wrong, asking for a fix.

    The model sees its own program as its previous turn, so it edits rather than starts over.
    `rejected`: the program ran (or would have) but was refused, e.g. it returned a literal.
    """
    what = "This program was rejected" if rejected else "Running this program failed"
    return (
        *pal_messages(problem, style),
        Message("assistant", previous_reply.strip()),
        Message(
            "user",
            f"{what}:\n"
            f"```\n{error.strip()}\n```\n"
            "Fix the program. Reply with only the corrected ```python code block that "
            "defines solution() and returns the answer.",
        ),
    )
