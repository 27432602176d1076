"""The four answer styles `guru bench pal` compares, all on one model and one prompt base.

direct: the number only; cot: reasoning, then "The answer is N."; pal: one greedy program run
in the sandbox (+ resampling of literal returns, + repair round); pal_sc<k>: k sampled programs,
majority vote. The worked examples are the PAL prompt's own (core/pal/prompt.py, or v1 with
`--prompt v1`), so only the answer format differs.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from core.llm.types import LLMBackend, Message, Request
from core.pal.prompt import EXAMPLES, Example
from core.pal.solver import PalSolver
from core.pal.vote import format_number, normalise

__all__ = ["Outcome", "run_method", "parse_final_number", "text_messages"]

_DIRECT_SYSTEM = (
    "Answer the math word problem. Reply with only the final answer as a number, "
    "in the form 'The answer is N.'"
)
_COT_SYSTEM = (
    "Solve the math word problem. Think step by step, showing the calculations, "
    "then end with 'The answer is N.' where N is a number."
)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


@dataclass(frozen=True)
class Outcome:
    predicted: str | None
    number: int | float | None
    seconds: float
    detail: dict[str, Any]


def text_messages(
    problem: str, style: str, examples: tuple[Example, ...] = EXAMPLES
) -> tuple[Message, ...]:
    """Few-shot turns for the text baselines ("direct" or "cot")."""
    system = _DIRECT_SYSTEM if style == "direct" else _COT_SYSTEM
    turns = [Message("system", system)]
    for example in examples:
        turns.append(Message("user", f"Problem: {example.problem}"))
        body = "" if style == "direct" else example.reasoning + " "
        turns.append(Message("assistant", f"{body}The answer is {example.answer}."))
    turns.append(Message("user", f"Problem: {problem}"))
    return tuple(turns)


def parse_final_number(text: str) -> int | float | None:
    """The first number after the last "answer is", else the last number in the text."""
    lowered = text.lower()
    after = _NUMBER.findall(text[lowered.rindex("answer is") :]) if "answer is" in lowered else []
    found = after[:1] or _NUMBER.findall(text)[-1:]
    if not found:
        return None
    try:
        return normalise(float(found[0].replace("$", "").replace(",", "")))
    except ValueError:
        return None


async def _text_method(
    llm: LLMBackend, problem: str, style: str, examples: tuple[Example, ...]
) -> Outcome:
    started = time.monotonic()
    completion = await llm.complete(
        Request(
            text_messages(problem, style, examples),
            max_new_tokens=24 if style == "direct" else 320,
        )
    )
    number = parse_final_number(completion.text)
    return Outcome(
        None if number is None else format_number(number),
        number,
        time.monotonic() - started,
        {"text": completion.text[-600:], "tokens": completion.completion_tokens},
    )


async def run_method(method: str, problem: str, llm: LLMBackend, solver: PalSolver) -> Outcome:
    """Answer `problem` with `method` ("direct", "cot", "pal" or "pal_sc<k>")."""
    if method in ("direct", "cot"):
        return await _text_method(llm, problem, method, solver.prompt.examples)
    samples = 1 if method == "pal" else int(method.removeprefix("pal_sc"))
    started = time.monotonic()
    result = await solver.solve(problem, samples=samples)
    seconds = time.monotonic() - started
    number = None
    if result.numeric and result.answer is not None:
        number = normalise(float(result.answer))
    return Outcome(
        result.answer,
        number,
        seconds,
        {
            "code": result.code,
            "error": result.error,
            "votes": result.votes,
            "repaired": result.repaired,
            "programs": len(result.attempts),
            # The accepted program returned a literal (only possible with rejection off).
            "accepted_literal": result.answer is not None
            and any(a.literal and a.ok and a.code == result.code for a in result.attempts),
            "attempts": [
                {
                    "round": a.round,
                    "status": a.status,
                    "answer": a.answer,
                    "literal": a.literal,
                    "code": a.code,
                }
                for a in result.attempts
            ],
        },
    )
