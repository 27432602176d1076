"""Numbers the model worked out in a comment and then wrote into the code.

The other half of issue #17's failure: `# 365 * 24 * 60 = 365 * 86400` followed by
`return 365 * 86400` computes in Python, but on a number (86400, wrong: 24 * 60 is 1440) that
the model did in its head. The signal is precise: a comment that states a calculation
(`a <op> b = c`) and a constant `c` in the code that the problem does not give. A comment that
only names a step ("# 60 minutes in an hour") or shows the arithmetic without the code using
its result ("# 2 * 3 = 6", code `2 * pen_price`) is fine.
"""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from collections.abc import Iterable

from core.pal.vote import normalise

__all__ = ["commented_results", "code_constants"]

Number = int | float
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")
# "<number> <operator> <number or (>": the left side of a stated calculation.
_CALCULATION = re.compile(r"\d[\d,.]*\s*(?:\*\*|[-+*/x×÷])\s*[\d(]")


def _numbers(text: str) -> set[Number]:
    found: set[Number] = set()
    for match in _NUMBER.findall(text):
        try:
            found.add(normalise(float(match.replace(",", ""))))
        except ValueError:
            continue
    return found


def _comments(code: str) -> list[str]:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []
    return [t.string.lstrip("#") for t in tokens if t.type == tokenize.COMMENT]


def _stated_results(comment: str) -> set[Number]:
    """Numbers right of an `=` whose left side is a calculation, less those on that left."""
    results: set[Number] = set()
    sides = comment.split("=")
    for left, right in zip(sides, sides[1:]):
        if _CALCULATION.search(left):
            results |= _numbers(right) - _numbers(left)
    return results


def code_constants(tree: ast.AST) -> set[Number]:
    """Absolute values of the numeric constants in `tree` (booleans are not numbers)."""
    found: set[Number] = set()
    for node in ast.walk(tree):
        value = node.value if isinstance(node, ast.Constant) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                found.add(normalise(abs(value)))
    return found


def commented_results(code: str, given: Iterable[Number]) -> tuple[Number, ...]:
    """Results of calculations stated in comments that the code uses as constants, less the
    numbers the problem gives (`given`); empty when the code does its own arithmetic."""
    stated = {abs(v) for comment in _comments(code) for v in _stated_results(comment)}
    if not stated:
        return ()
    try:
        constants = code_constants(ast.parse(code))
    except SyntaxError:
        return ()
    given = list(given)
    used = [
        v
        for v in stated
        if any(math.isclose(v, c, rel_tol=1e-9) for c in constants)
        and not any(math.isclose(v, g, rel_tol=1e-9, abs_tol=1e-9) for g in given)
    ]
    return tuple(sorted(used))
