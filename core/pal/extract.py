"""Pull the program out of what the model wrote, and check it defines `solution()`.

Small models wrap code in prose, open a fence and never close it (they hit the token limit),
write several blocks (the program, then "example usage"), or forget the fence altogether.
`extract_program` copes with all of those; when there is no usable `solution()` it raises
`ExtractionError` whose message is written for the model: the repair round sends it back.
"""

from __future__ import annotations

import ast
import logging
import re

from core.errors import GuruError

__all__ = ["ExtractionError", "extract_program", "code_blocks"]

log = logging.getLogger(__name__)

# An opening fence with an optional language tag, up to the closing fence or the end of text
# (an unterminated block is what a model cut off by max_new_tokens leaves behind).
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:\n?```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}
_MAX_LINES, _MAX_STARTS = 200, 5
_CODE_START = re.compile(r"^(def |import |from |class |[A-Za-z_][A-Za-z0-9_]* *=)")


class ExtractionError(GuruError):
    """No runnable `solution()` in the model's reply; the message tells the model why."""


def code_blocks(text: str) -> list[str]:
    """Fenced blocks tagged as Python (or untagged), in order."""
    return [m.group(2) for m in _FENCE.finditer(text) if m.group(1).lower() in _PYTHON_TAGS]


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def _unfenced_code(text: str) -> str | None:
    """The longest parseable run of lines starting at the first code-looking line."""
    lines = text.splitlines()[:_MAX_LINES]
    starts = [i for i, line in enumerate(lines) if _CODE_START.match(line)]
    for start in starts[:_MAX_STARTS]:  # bounded: each try parses up to _MAX_LINES prefixes
        for end in range(len(lines), start, -1):  # drop trailing prose until it parses
            candidate = "\n".join(lines[start:end]).strip("\n")
            if candidate and _parses(candidate):
                return candidate
    return None


def _defines_solution(code: str) -> bool:
    return re.search(r"^def\s+solution\s*\(", code, re.MULTILINE) is not None


def _choose(text: str) -> str:
    blocks = [b for b in code_blocks(text) if b.strip()]
    with_solution = [b for b in blocks if _defines_solution(b)]
    if with_solution:
        return with_solution[0]  # the first program; later blocks are usually "usage"
    if len(blocks) == 1:
        return blocks[0]
    if len(blocks) > 1:
        # A model that split one program over several blocks: join them, as a reader would.
        return "\n\n".join(blocks)
    unfenced = _unfenced_code(text)
    if unfenced is None:
        raise ExtractionError(
            "No Python code found. Reply with one ```python block that defines solution()."
        )
    return unfenced


def _check(code: str) -> str:
    """`code` if it parses and has a zero-argument `solution`; else ExtractionError."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise ExtractionError(
            f"SyntaxError on line {exc.lineno}: {exc.msg}. Write valid Python 3."
        ) from None
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    solution = next((f for f in functions if f.name == "solution"), None)
    if solution is None:
        zero_arg = [f for f in functions if not f.args.args and not f.args.posonlyargs]
        if len(zero_arg) == 1 and len(functions) == 1:
            # One argument-free function under another name: the intent is unambiguous
            # (MODELS.md saw `count_girls()`), so call it rather than spend a repair round.
            log.debug("using %s() as solution()", zero_arg[0].name)
            return f"{code.rstrip()}\n\nsolution = {zero_arg[0].name}\n"
        raise ExtractionError(
            "The program does not define solution(). Define `def solution():` that takes no "
            "arguments and returns the answer."
        )
    args = solution.args
    required = len(args.posonlyargs) + len(args.args) - len(args.defaults)
    kw_required = sum(1 for d in args.kw_defaults if d is None)
    if required > 0 or kw_required > 0:
        raise ExtractionError(
            "solution() must take no arguments: put the numbers from the problem inside it."
        )
    return code


def extract_program(text: str) -> str:
    """The program in a model reply, checked to define a callable `solution()`.

    Raises ExtractionError (message meant for the model) when there is none.
    """
    if not text or not text.strip():
        raise ExtractionError("The reply was empty. Reply with one ```python block.")
    code = _choose(text).strip("\n")
    return _check(code).rstrip() + "\n"
