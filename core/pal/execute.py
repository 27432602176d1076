"""Run an extracted program in the sandbox and read back the value of `solution()`.

Never `exec` here: the program goes to `Sandbox.run` with a small epilogue that calls
`solution()` and prints one marked JSON line describing the value (type, repr, number), so
the host parses data, not Python. Whatever else the program printed is kept as `stdout`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Literal

from core.errors import GuruError
from core.pal.vote import format_number, normalise
from core.sandbox import Sandbox, SandboxResult

__all__ = ["Execution", "SandboxRefused", "execute", "RESULT_MARK", "program_with_epilogue"]

log = logging.getLogger(__name__)

RESULT_MARK = "__guru_pal_result__ "
SANDBOX_GRACE_S = 30.0
ExecStatus = Literal["ok", "error", "timeout", "no_result"]

_EPILOGUE = f"""

def _guru_pal_describe(value):
    import decimal as _d, fractions as _f, json as _j, math as _m
    number = None
    if isinstance(value, bool):
        pass  # True/False are ints to Python, but not an answer to "how many"
    elif isinstance(value, int):
        number = value
    elif isinstance(value, (float, _f.Fraction, _d.Decimal)):
        number = float(value) if _m.isfinite(float(value)) else None
    elif hasattr(value, "item") and callable(value.item):  # numpy scalars, if installed
        try:
            item = value.item()
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                number = item if _m.isfinite(item) else None
        except Exception:
            pass
    return _j.dumps({{"type": type(value).__name__, "repr": repr(value)[:500],
                     "text": str(value)[:500], "number": number}})

_guru_pal_line = _guru_pal_describe(solution())
print("\\n{RESULT_MARK}" + _guru_pal_line, flush=True)
"""

# "$1,234.50", "12 %", "-3": a string that is only a number is a number.
_NUMERIC_TEXT = re.compile(r"^\s*[$€£]?\s*(-?\d[\d,]*(?:\.\d+)?|-?\.\d+)\s*%?\s*$")


class SandboxRefused(GuruError):
    """The sandbox will not run code on this host (fail closed); the message says why."""


@dataclass(frozen=True)
class Execution:
    """One program's outcome. `answer` is what a user sees; `feedback` is what the model sees."""

    status: ExecStatus
    answer: str | None = None
    number: int | float | None = None  # normalised; None for non-numeric answers
    type_name: str | None = None
    stdout: str = ""
    error: str | None = None
    feedback: str | None = None  # error details for the repair turn (traceback tail)
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def numeric(self) -> bool:
        return self.number is not None


def program_with_epilogue(code: str) -> str:
    """The program as the sandbox runs it: the model's code, then the result line."""
    return code.rstrip() + "\n" + _EPILOGUE


def _tail(text: str, lines: int = 12) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def _split_stdout(stdout: str) -> tuple[str, dict[str, object] | None]:
    """(what the program printed, the parsed result line or None)."""
    head, sep, tail = stdout.rpartition("\n" + RESULT_MARK)
    if not sep:
        return stdout, None
    try:
        described = json.loads(tail.splitlines()[0])
    except (ValueError, IndexError):
        return stdout, None
    return head, described if isinstance(described, dict) else None


def _number_of(described: dict[str, object]) -> int | float | None:
    number = described.get("number")
    if isinstance(number, bool):
        return None
    if isinstance(number, (int, float)) and math.isfinite(number):
        return normalise(number)
    if described.get("type") == "str":
        match = _NUMERIC_TEXT.match(str(described.get("text", "")))
        if match:
            value = float(match.group(1).replace(",", ""))
            return normalise(int(value) if value.is_integer() else value)
    return None


def interpret(result: SandboxResult) -> Execution:
    """An `Execution` from a finished sandbox run of `program_with_epilogue(code)`."""
    if result.status == "refused":
        raise SandboxRefused(f"The sandbox refused to run the program: {result.error}")
    printed, described = _split_stdout(result.stdout)
    if result.status == "timeout":
        return Execution(
            "timeout",
            stdout=printed,
            error=result.error,
            elapsed_ms=result.elapsed_ms,
            feedback=f"{result.error} The program must finish quickly: no "
            "infinite loops, no input(), no huge searches.",
        )
    if not result.ok:
        detail = _tail(result.stderr) or (result.error or result.status)
        return Execution(
            "error",
            stdout=printed,
            error=result.error or result.status,
            feedback=detail,
            elapsed_ms=result.elapsed_ms,
        )
    if described is None:
        return Execution(
            "no_result",
            stdout=printed,
            elapsed_ms=result.elapsed_ms,
            error="The program ended without returning from solution().",
            feedback="The program ended before solution() returned a value.",
        )
    type_name = str(described.get("type"))
    if type_name == "NoneType":
        return Execution(
            "no_result",
            stdout=printed,
            type_name=type_name,
            error="solution() returned None.",
            elapsed_ms=result.elapsed_ms,
            feedback="solution() returned None. It must `return` the answer.",
        )
    number = _number_of(described)
    shown = str(described.get("text" if type_name == "str" else "repr", ""))
    answer = format_number(number) if number is not None else shown
    return Execution(
        "ok",
        answer=answer,
        number=number,
        type_name=type_name,
        stdout=printed,
        elapsed_ms=result.elapsed_ms,
    )


async def execute(sandbox: Sandbox, code: str, timeout_s: float | None = None) -> Execution:
    """Run `code` (which defines `solution`) in `sandbox` and interpret the outcome."""
    limit = (sandbox.limits.timeout_s if timeout_s is None else timeout_s) + SANDBOX_GRACE_S
    try:
        # The sandbox enforces its own wall clock; this only guards /calc against a sandbox
        # that never answers at all (a bug there must not hang a Discord interaction).
        result = await asyncio.wait_for(
            sandbox.run(program_with_epilogue(code), timeout_s=timeout_s), limit
        )
    except TimeoutError:
        log.error("the sandbox did not answer within %.0f s", limit)
        return Execution(
            "timeout",
            error="The sandbox did not answer in time.",
            feedback="The program did not finish in time.",
        )
    execution = interpret(result)
    log.debug(
        "pal program %s in %.0f ms: %s",
        execution.status,
        execution.elapsed_ms,
        execution.answer or execution.error,
    )
    return execution
