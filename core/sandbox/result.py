"""Values that leave the sandbox: the result of one run, one isolation layer, capped output.

Sandbox failures are values, not exceptions: a caller (PAL, the CLI, the bot) branches on
`SandboxResult.status` and shows `error`, which is written to be safe to show a user.
"""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = [
    "Status",
    "SandboxResult",
    "Layer",
    "OutputBuffer",
    "TRUNCATION_MARKER",
    "classify",
    "refused",
]

Status = Literal["ok", "error", "timeout", "oom", "killed", "refused"]

TRUNCATION_MARKER = "\n… [output truncated: {dropped} more bytes]\n"


@dataclass(frozen=True)
class SandboxResult:
    """What one program did.

    `exit_code` is the program's own, 128+N when signal N ended it, None when it never ran or
    hit the wall clock. `elapsed_ms` runs from handing the code over to the program's end:
    sandbox start-up is not in it (the warm pool pays that ahead of time).
    """

    ok: bool
    status: Status
    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    elapsed_ms: float
    error: str | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    signal: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def public(self) -> dict[str, Any]:
        """The seven keys `guru sandbox --json` promises, plus status and truncation flags."""
        data = self.to_dict()
        return {
            k: data[k]
            for k in (
                "ok",
                "stdout",
                "stderr",
                "exit_code",
                "timed_out",
                "elapsed_ms",
                "error",
                "status",
                "stdout_truncated",
                "stderr_truncated",
            )
        }


@dataclass(frozen=True)
class Layer:
    """One isolation layer as `check()` found it; `required` layers make `run` fail closed.

    `waived`: required but missing, and the operator explicitly allowed running without it
    (GURU_SANDBOX_ALLOW_MISSING).
    """

    name: str
    active: bool
    detail: str
    required: bool = False
    waived: bool = False


def refused(reason: str) -> SandboxResult:
    return SandboxResult(
        ok=False,
        status="refused",
        stdout="",
        stderr="",
        exit_code=None,
        timed_out=False,
        elapsed_ms=0.0,
        error=reason,
    )


class OutputBuffer:
    """Keeps the first `cap` bytes of a stream and counts the rest.

    The reader keeps draining after the cap (a child blocked on a full pipe would otherwise
    only end at the timeout); `total` lets the caller kill a flood early.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.total = 0
        self._kept = bytearray()

    def feed(self, chunk: bytes) -> None:
        room = self.cap - len(self._kept)
        if room > 0:
            self._kept += chunk[:room]
        self.total += len(chunk)

    @property
    def truncated(self) -> bool:
        return self.total > self.cap

    def text(self) -> str:
        text = self._kept.decode("utf-8", errors="replace")
        if self.truncated:
            text += TRUNCATION_MARKER.format(dropped=self.total - len(self._kept))
        return text


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def classify(
    exit_code: int | None,
    *,
    timed_out: bool,
    oom_killed: bool,
    flooded: bool,
    stderr_tail: str,
    timeout_s: float,
) -> tuple[Status, str | None, int | None]:
    """(status, user-safe error, signal) for a finished child.

    `exit_code` is what bwrap reports: the program's own code, or 128+N when signal N ended it
    (the shell convention snekbox also uses). SIGXCPU / a SIGKILL at the CPU hard limit
    means the CPU-seconds rlimit fired (threads burn it faster than the wall clock): a timeout.
    """
    sig = exit_code - 128 if exit_code is not None and 128 < exit_code <= 128 + 64 else None
    if timed_out or sig == signal.SIGXCPU:
        return "timeout", f"Time limit exceeded ({timeout_s:g} s).", sig
    if oom_killed or _last_line(stderr_tail).startswith("MemoryError"):
        return "oom", "Memory limit exceeded.", sig
    if flooded:
        return "killed", "Output limit exceeded; the program was stopped.", sig
    if sig is not None:
        return "killed", f"The program was killed ({_signal_name(sig)}).", sig
    if exit_code == 0:
        return "ok", None, None
    line = _last_line(stderr_tail)
    return "error", (line[:300] if line else f"The program exited with code {exit_code}."), None


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""
