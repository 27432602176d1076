"""The PAL prompt: few-shot chat turns in which the model answers with one `def solution():`.

Why this shape: MODELS.md §2 measured Qwen2.5-Coder-0.5B at 9/12 with a system prompt plus a
worked example turn vs 8/12 zero-shot; the examples teach the format (one fenced block,
meaningful names, a comment per step, `return` the number) better than instructions alone.
The same two worked problems also drive the direct and chain-of-thought baselines in
`bench/pal.py`, so the comparison only varies the answer format.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.llm.types import Message

__all__ = [
    "NOT_MATH",
    "SYSTEM",
    "Example",
    "EXAMPLES",
    "pal_messages",
    "repair_messages",
    "fence",
]

# What the model is told to return for text that is not a math problem: recognised exactly,
# so the solver can say "not a math problem" instead of showing a made-up number.
NOT_MATH = "not a math problem"

SYSTEM = (
    "You solve math word problems by writing Python. Write exactly one function named "
    "solution() that takes no arguments and returns the final answer as a number. Use "
    "meaningful variable names and a short comment for each step. Reply with only one "
    "```python code block. If the text is not a math problem, write a solution() that "
    f'returns the string "{NOT_MATH}".'
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


def fence(code: str) -> str:
    """`code` as one fenced python block (how the examples and the repair turn show code)."""
    return f"```python\n{code.rstrip()}\n```"


def _problem_turn(problem: str) -> str:
    return f"Problem: {problem.strip()}"


def pal_messages(problem: str) -> tuple[Message, ...]:
    """System prompt, the worked examples as chat turns, then `problem`."""
    turns: list[Message] = [Message("system", SYSTEM)]
    for example in EXAMPLES:
        turns.append(Message("user", _problem_turn(example.problem)))
        turns.append(Message("assistant", fence(example.code)))
    turns.append(Message("user", _problem_turn(problem)))
    return tuple(turns)


def repair_messages(problem: str, previous_reply: str, error: str) -> tuple[Message, ...]:
    """The PAL conversation plus the failed reply and what went wrong, asking for a fix.

    The model sees its own program as its previous turn, so it edits rather than starts over.
    """
    return (
        *pal_messages(problem),
        Message("assistant", previous_reply.strip()),
        Message(
            "user",
            "Running this program failed:\n"
            f"```\n{error.strip()}\n```\n"
            "Fix the program. Reply with only the corrected ```python code block that "
            "defines solution() and returns the answer.",
        ),
    )
