"""One sandbox process: start it (it waits, warm, for code), hand it one program, collect.

A child is used exactly once. Whatever happens — exit, timeout, output flood, the caller
cancelling — it ends with SIGKILL to bwrap (whose --die-with-parent tears the pid namespace
down, pitfall 9), a SIGKILL sweep of its cgroups, and their removal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from core.sandbox.cgroup import Cgroup
from core.sandbox.hierarchy import CgroupRoots
from core.sandbox.launch import SANDBOX_ENV, HostTools, Mode, sandbox_argv
from core.sandbox.limits import SandboxLimits
from core.sandbox.result import OutputBuffer, SandboxResult, classify

__all__ = ["Background", "Child", "SandboxStartError", "start_child", "run_child", "READY"]

log = logging.getLogger(__name__)

READY = b"\x00guru-sandbox-ready\n"
START_TIMEOUT_S = 15.0
CHUNK = 64 * 1024


Background = Callable[[Coroutine[Any, Any, None]], None]


class SandboxStartError(Exception):
    """The sandbox itself could not start (bwrap refused, cgroup join failed, …)."""


@dataclass
class Child:
    proc: asyncio.subprocess.Process
    cgroup: Cgroup | None
    limits: SandboxLimits
    started_at: float

    async def destroy(self, background: Background | None = None) -> None:
        """SIGKILL bwrap, reap it, sweep and remove the cgroups. Safe to call twice.

        With `background`, removing the (already swept) cgroups is handed to it, so the
        caller does not wait for the kernel to release them.
        """
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.proc.wait(), timeout=5)
        if self.cgroup is not None:
            self.cgroup.sweep()
            if background is not None:
                background(self.cgroup.remove())
            else:
                await self.cgroup.remove()


def _seccomp_fd(bpf: bytes) -> int:
    fd = os.memfd_create("guru-sandbox-seccomp", 0)  # inheritable: bwrap reads it by number
    os.write(fd, bpf)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


async def start_child(
    mode: Mode,
    tools: HostTools,
    limits: SandboxLimits,
    *,
    bpf: bytes | None = None,
    roots: CgroupRoots | None = None,
    preload: tuple[str, ...] = (),
    nproc: bool = False,
) -> Child:
    """Start one sandbox and wait until its runner is ready for code."""
    cgroup = None
    if roots is not None and mode != "unsafe" and roots.groups:
        try:
            cgroup = Cgroup(roots, limits)
        except OSError as exc:
            raise SandboxStartError(f"could not create the sandbox cgroup ({exc})") from exc
    fd = _seccomp_fd(bpf) if bpf is not None and mode != "unsafe" else None
    argv = sandbox_argv(
        mode,
        tools,
        limits,
        seccomp_fd=fd,
        preload=preload,
        cgroup_procs=cgroup.procs_files if cgroup else None,
        nproc=nproc,
    )
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={} if mode != "unsafe" else dict(SANDBOX_ENV),  # never the bot's env
            cwd=None if mode != "unsafe" else tempfile.gettempdir(),
            pass_fds=(fd,) if fd is not None else (),
            start_new_session=True,
        )
    except OSError as exc:
        if cgroup is not None:
            await cgroup.remove()
        raise SandboxStartError(f"could not start the sandbox ({exc})") from exc
    finally:
        if fd is not None:
            os.close(fd)
    child = Child(proc, cgroup, limits, time.monotonic())
    try:
        assert proc.stdout is not None
        marker = await asyncio.wait_for(proc.stdout.readexactly(len(READY)), START_TIMEOUT_S)
        if marker != READY:
            raise SandboxStartError("the sandbox runner answered something unexpected")
    except (TimeoutError, asyncio.IncompleteReadError, SandboxStartError) as exc:
        await child.destroy()
        err = await _read_rest(proc.stderr)
        detail = err.strip().splitlines()[-1] if err.strip() else type(exc).__name__
        raise SandboxStartError(f"the sandbox did not start: {detail[:300]}") from exc
    except BaseException:
        await child.destroy()
        raise
    return child


async def _read_rest(stream: asyncio.StreamReader | None) -> str:
    if stream is None:
        return ""
    with contextlib.suppress(asyncio.TimeoutError):
        return (await asyncio.wait_for(stream.read(CHUNK), 1)).decode(errors="replace")
    return ""


async def _feed(stream: asyncio.StreamWriter, data: bytes) -> None:
    # A program may exit without reading its stdin; that is not an error.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stream.write(data)
        await stream.drain()
        stream.close()


async def _drain(
    stream: asyncio.StreamReader, buf: OutputBuffer, flood: int, proc: asyncio.subprocess.Process
) -> bool:
    """Read to EOF into `buf`; kill the sandbox once the stream passes `flood` bytes.

    Reading goes on to EOF even then: asyncio's `Process.wait()` only returns once every
    pipe is closed, and a pipe we stop reading is never seen closing (pitfall 10).
    """
    flooded = False
    while chunk := await stream.read(CHUNK):
        buf.feed(chunk)
        if buf.total > flood and not flooded:
            flooded = True
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    return flooded


async def run_child(
    child: Child, code: str, stdin: str, timeout_s: float, background: Background | None = None
) -> SandboxResult:
    """Hand `code` to a ready child, enforce the wall clock, collect capped output."""
    limits, proc = child.limits, child.proc
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    source = code.encode("utf-8", errors="replace")
    header = f"{len(source)} {limits.cpu_s(timeout_s)}".encode()
    out, err = OutputBuffer(limits.output_bytes), OutputBuffer(limits.output_bytes)
    started = time.perf_counter()
    feeder = asyncio.create_task(_feed(proc.stdin, header + b"\n" + source + stdin.encode()))
    readers = [
        asyncio.create_task(_drain(proc.stdout, out, limits.flood_bytes, proc)),
        asyncio.create_task(_drain(proc.stderr, err, limits.flood_bytes, proc)),
    ]
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            timed_out = True
        elapsed_ms = (time.perf_counter() - started) * 1000
        returncode = proc.returncode
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        done, pending = await asyncio.wait([feeder, *readers], timeout=2)
        for task in pending:
            task.cancel()
        oom_killed = child.cgroup.oom_killed() if child.cgroup else False
        await asyncio.shield(child.destroy(background))
    flooded = any(t in done and t.exception() is None and t.result() for t in readers)
    exit_code = returncode if returncode is None or returncode >= 0 else 128 - returncode
    status, error, sig = classify(
        None if timed_out else exit_code,
        timed_out=timed_out,
        oom_killed=oom_killed,
        flooded=flooded,
        stderr_tail=err.text()[-2000:],
        timeout_s=timeout_s,
    )
    return SandboxResult(
        ok=status == "ok",
        status=status,
        stdout=out.text(),
        stderr=err.text(),
        exit_code=exit_code,
        timed_out=status == "timeout",
        elapsed_ms=round(elapsed_ms, 2),
        error=error,
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        signal=sig,
    )
