"""Does `solution()` compute its answer, or return a number the model worked out elsewhere?

A small code model often does the arithmetic in comments (`# 17 * 23 = 411`, `# 411 + 5 =
416`) and ends with `return 416`: the sandbox then computes nothing and shows the model's
mental arithmetic as if a program had checked it (issue #17: 416 for 17 * 23 + 5). This module
finds such programs with `ast`, never by running them.

A return is *literal* when its value is a number written into the program: a constant
(`return 416`, `return -3.5`, `return "416"`), a call like `int(416)` of one, or a name that
every binding in `solution()` (or, failing that, at module level) sets to such a value
(`answer = 416; return answer`). Anything that operates on values (`x * y + 5`, `sum(...)`,
`total += x`, a loop variable) computes, so `x = 17; y = 23; return x * y + 5` and even
`return 17 * 23 + 5` pass: the sandbox does that arithmetic. A literal the problem itself
gives ("Tom has 5 apples. How many apples does he have?") is allowed: copying a given number
is not arithmetic done in the model's head. A program that computes but on a number it worked
out in a comment (`# 24 * 60 = 86400`, then `365 * 86400`) is caught too (comment_math.py).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from core.pal.comment_math import code_constants, commented_results
from core.pal.vote import format_number, normalise

__all__ = ["LiteralReturn", "literal_returns", "problem_numbers", "literal_feedback"]

Number = int | float
# Calls that only restate a literal: int(416), float("416"), round(416.0), abs(-416).
_RESTATING_CALLS = {"int", "float", "round", "abs", "Decimal", "Fraction"}
_NUMERIC_TEXT = re.compile(r"^\s*[$€£]?\s*(-?\d[\d,]*(?:\.\d+)?|-?\.\d+)\s*%?\s*$")
_PROBLEM_NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*(\d+))?")
_WORD_NUMBERS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 1000000, "dozen": 12, "half": 0.5, "quarter": 0.25, "twice": 2, "double": 2,
    "triple": 3, "once": 1,
}  # fmt: skip


@dataclass(frozen=True)
class LiteralReturn:
    """What the `return`s of `solution()` give back, as far as `ast` can tell."""

    returns: int  # return statements with a value
    literal: tuple[Number, ...]  # values of literal returns the problem does not give
    computed: int  # returns whose value the program computes (or copies from the problem)
    commented: tuple[Number, ...] = ()  # results of comment arithmetic used as constants
    # A problem that gives no number answered with a worked example's numbers (a poem got
    # `return 18 * 7.5 * 5`, the last example's): it computes, but not from the problem.
    foreign: tuple[Number, ...] = ()

    @property
    def only_literals(self) -> bool:
        """Every return is a number the problem does not give: nothing is computed."""
        return self.returns > 0 and self.computed == 0 and bool(self.literal)

    @property
    def computes(self) -> bool:
        """False when, whatever it returns, the program's arithmetic was done outside it."""
        return not self.only_literals and not self.commented and not self.foreign

    @property
    def values(self) -> tuple[Number, ...]:
        """The numbers worked out outside Python (for messages)."""
        extra = [v for v in self.commented + self.foreign if v not in self.literal]
        return self.literal + tuple(dict.fromkeys(extra))

    def returned(self, number: Number | None) -> bool:
        """True when the executed answer `number` is one of the literal return values."""
        if number is None:
            return False
        return any(_same(number, value) for value in self.literal)


def _same(a: Number, b: Number) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def problem_numbers(problem: str) -> set[Number]:
    """Numbers a problem gives: digits ("1,250", "$3.50", "3/4"), number words, percents."""
    found: set[Number] = set()
    for match in _PROBLEM_NUMBER.finditer(problem):
        try:
            value = float(match.group(1).replace(",", ""))
        except ValueError:
            continue
        found.add(normalise(value))
        parts = match.group(1).split(",")
        if any(len(part.split(".")[0]) != 3 for part in parts[1:]):  # "2,3 and 4": a list
            found.update(normalise(float(part)) for part in parts if part)
        if match.group(2) and float(match.group(2)) != 0:  # "3/4 of the class" gives 0.75
            found.add(normalise(value / float(match.group(2))))
        if re.match(r"\s*(%|percent)", problem[match.end() :]):  # "25%" gives 0.25 too
            found.add(normalise(value / 100))
    for word in re.findall(r"[a-z]+", problem.lower()):
        if word in _WORD_NUMBERS:
            found.add(_WORD_NUMBERS[word])
    return found


def _solution(tree: ast.Module) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    functions = {
        n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    if "solution" in functions:
        return functions["solution"]
    for node in tree.body:  # `solution = count_girls`, as extract.py appends for a lone function
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "solution" for t in node.targets)
            and isinstance(node.value, ast.Name)
        ):
            return functions.get(node.value.id)
    return None


def _own_nodes(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Nodes of a function body, not descending into nested functions, lambdas or classes
    (their returns are theirs; a nested `def` still binds its name, as computed)."""
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, _SCOPES):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPUTED = None  # a binding whose value is computed (or unknown): the name is not literal
Binding = ast.expr | None


def _bindings(nodes: list[ast.AST]) -> dict[str, list[Binding]]:
    """Every binding of each name among `nodes`: the expression bound, or _COMPUTED."""
    bound: dict[str, list[Binding]] = {}

    def bind(target: ast.expr, value: Binding) -> None:
        if isinstance(target, ast.Name):
            bound.setdefault(target.id, []).append(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            elements = value.elts if isinstance(value, (ast.Tuple, ast.List)) else None
            if elements is not None and len(elements) == len(target.elts):
                for sub_target, sub_value in zip(target.elts, elements):
                    bind(sub_target, sub_value)
            else:
                for sub_target in target.elts:
                    bind(sub_target, _COMPUTED)
        elif isinstance(target, ast.Starred):
            bind(target.value, _COMPUTED)

    for node in nodes:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                bind(target, node.value)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            bind(node.target, node.value)
        elif isinstance(node, ast.NamedExpr):
            bind(node.target, node.value)
        elif isinstance(node, (ast.AugAssign, ast.For, ast.AsyncFor)):
            bind(node.target, _COMPUTED)  # `total += x`, a loop variable: computed
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    bind(item.optional_vars, _COMPUTED)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                bound.setdefault(name, []).append(_COMPUTED)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                bound.setdefault(name, []).append(_COMPUTED)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.setdefault(node.name, []).append(_COMPUTED)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.setdefault(node.name, []).append(_COMPUTED)
    return bound


class _Values:
    """Literal values of expressions, given the bindings of `solution()` and of the module."""

    def __init__(self, local: dict[str, list[Binding]], module: dict[str, list[Binding]]):
        self.local, self.module = local, module

    def of(self, expr: Binding, depth: int = 0) -> set[Number] | None:
        """The numbers `expr` can be if it is a literal; None when it computes anything."""
        if expr is None or depth > 20:  # depth: `a = b; b = a` must not recurse forever
            return None
        if isinstance(expr, ast.Constant):
            return _constant(expr.value)
        if isinstance(expr, ast.NamedExpr):  # `return (answer := 416)`
            return self.of(expr.value, depth + 1)
        if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, (ast.USub, ast.UAdd)):
            inner = self.of(expr.operand, depth + 1)
            sign = -1 if isinstance(expr.op, ast.USub) else 1
            return {normalise(sign * v) for v in inner} if inner is not None else None
        if isinstance(expr, ast.Call) and _call_name(expr.func) in _RESTATING_CALLS:
            if expr.args and not expr.keywords:
                return self.of(expr.args[0], depth + 1)  # round(416.0, 2) is still 416
            return None
        if isinstance(expr, ast.Name):
            bindings = self.local.get(expr.id) or self.module.get(expr.id)
            if not bindings:
                return None  # a builtin, an argument or unknown: not a literal we can see
            values: set[Number] = set()
            for binding in bindings:
                found = self.of(binding, depth + 1)
                if found is None:
                    return None
                values |= found
            return values
        return None


def _constant(value: object) -> set[Number] | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return {normalise(value)} if math.isfinite(value) else None
    if isinstance(value, str):
        match = _NUMERIC_TEXT.match(value)
        return {normalise(float(match.group(1).replace(",", "")))} if match else None
    return None  # a list, tuple, bytes: not a number, not what this check is about


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def literal_returns(code: str, problem: str, examples: Iterable[Number] = ()) -> LiteralReturn:
    """How the returns of `solution()` in `code` get their values (see the module doc).
    `examples`: the numbers of the prompt's worked problems (for `foreign`)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return LiteralReturn(0, (), 0)
    function = _solution(tree)
    if function is None:
        return LiteralReturn(0, (), 0)
    own = list(_own_nodes(function.body))
    local = _bindings(own)
    args = function.args
    positional = args.posonlyargs + args.args
    defaults: list[Binding] = [_COMPUTED] * (len(positional) - len(args.defaults))
    # `def solution(answer=416)` binds a literal as surely as `answer = 416` does.
    for arg, default in zip(positional, defaults + list(args.defaults)):
        local.setdefault(arg.arg, []).append(default)
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults):
        local.setdefault(arg.arg, []).append(kw_default)
    module_nodes = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    values = _Values(local, _bindings(list(_own_nodes(module_nodes))))
    given = problem_numbers(problem)
    returns = [n for n in own if isinstance(n, ast.Return) and n.value is not None]
    literal: list[Number] = []
    computed = 0
    for node in returns:
        found = values.of(node.value)
        # abs(): "5 degrees below zero" gives 5, and -5 is then not a number made up.
        unseen = sorted(v for v in found or () if not any(_same(abs(v), g) for g in given))
        if found is None or not unseen:
            computed += 1  # computed, or a number the problem gives
        else:
            literal.extend(v for v in unseen if v not in literal)
    commented = commented_results(code, given)
    # Only when the problem gives no number: "a mile a day for a week" may use 7 unprompted.
    copied = [c for c in code_constants(function) if any(_same(c, e) for e in examples)]
    foreign = tuple(sorted(copied)) if not given and len(copied) >= 2 else ()
    return LiteralReturn(len(returns), tuple(literal), computed, commented, foreign)


def literal_feedback(found: LiteralReturn) -> str:
    """What the model is told (repair turn) and, shortened, what a user is told."""
    if found.foreign and not found.only_literals and not found.commented:
        shown = ", ".join(format_number(v) for v in found.foreign[:3])
        what = f"solution() uses {shown} but none of the numbers the problem gives"
    elif found.only_literals or not found.commented:
        shown = ", ".join(format_number(v) for v in found.literal[:3])
        what = (
            f"solution() returns {shown} written as a literal number that the problem does not give"
        )
    else:
        shown = ", ".join(format_number(v) for v in found.commented[:3])
        what = f"solution() uses {shown}, a number worked out in a comment, not in Python"
    return (
        f"{what}: the arithmetic was done in comments or in your head, not by the program. "
        "Assign each number from the problem to a named variable and compute the answer "
        "from those variables with Python expressions; return the computed variable."
    )
