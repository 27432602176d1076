"""Parse an untrusted file in a child process with an address-space cap and a deadline.

Files from Discord (uploads, pinned messages' attachments) come from any member; a parser
bug or a bomb that slips past `core.rag.limits` must cost a child process, never the bot.
The child is `python -m core.rag.isolated`: it sets RLIMIT_AS / RLIMIT_CPU / RLIMIT_FSIZE on
itself before importing any parser, reads one request as JSON on stdin and writes one JSON
answer on stdout (a document, or the InvalidInput message). It gets no secrets: its
environment is only what Python needs. The parent kills it at the deadline. Each file costs a
~0.2 s interpreter start, acceptable for files that arrive one message at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import weakref
from pathlib import Path
from typing import Any

from core.errors import InvalidInput
from core.rag.limits import IngestLimits
from core.rag.types import ParsedDocument, Section

__all__ = ["parse_untrusted"]

log = logging.getLogger(__name__)

_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the `core` package
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")
# Children at once: each may take GURU_PARSE_MEMORY_MB, and a burst of pins must not add up to
# the host's memory. One gate per event loop (tests run many loops).
PARALLEL_PARSES = 2
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


async def parse_untrusted(path: str, limits: IngestLimits, max_bytes: int) -> ParsedDocument:
    """`load_file(path, max_bytes, limits)` in a limited child; InvalidInput names any refusal."""
    gate = _gates.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(PARALLEL_PARSES))
    async with gate:
        return await _parse(path, limits, max_bytes)


async def _parse(path: str, limits: IngestLimits, max_bytes: int) -> ParsedDocument:
    request = json.dumps({"path": path, "max_bytes": max_bytes, "limits": limits.to_dict()})
    env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
    env["PYTHONPATH"] = _ROOT
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-s",  # no user site-packages (the venv keeps its own)
        "-m",
        "core.rag.isolated",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=_ROOT,
    )
    # UTF-8 JSON of a capped document: at most 6 bytes a character (\u0001), plus headings
    cap = 6 * limits.max_chars + (1 << 20)
    try:
        out, err = await asyncio.wait_for(
            _exchange(proc, request.encode(), cap), timeout=limits.parse_timeout_s
        )
    except TimeoutError:
        raise InvalidInput(
            f"took longer than {limits.parse_timeout_s:g} s to read; refused"
            " (the limit is GURU_PARSE_TIMEOUT_S)"
        ) from None
    finally:  # timed out, cancelled or over its output cap: never leave a parser running
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if out is None:
        raise InvalidInput("the parser's answer was larger than any allowed document; refused")
    return _answer(proc.returncode, out, err, limits)


async def _exchange(
    proc: asyncio.subprocess.Process, request: bytes, cap: int
) -> tuple[bytes | None, bytes]:
    """Send the request; read stdout up to `cap` bytes (None beyond) and stderr's tail."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it died at start
        proc.stdin.write(request)
        await proc.stdin.drain()
        proc.stdin.close()

    async def capped(stream: asyncio.StreamReader) -> bytes | None:
        data = bytearray()
        while chunk := await stream.read(1 << 16):
            data += chunk
            if len(data) > cap:
                return None
        return bytes(data)

    async def tail(stream: asyncio.StreamReader) -> bytes:
        data = b""
        while chunk := await stream.read(1 << 16):
            data = (data + chunk)[-8192:]
        return data

    err_task = asyncio.ensure_future(tail(proc.stderr))
    try:
        out = await capped(proc.stdout)
        if out is None:
            return None, b""
        await proc.wait()
        return out, await err_task
    finally:
        err_task.cancel()


def _answer(code: int | None, out: bytes, err: bytes, limits: IngestLimits) -> ParsedDocument:
    try:
        answer = json.loads(out) if code == 0 else None
    except ValueError:
        answer = None
    if isinstance(answer, dict) and "error" in answer:
        raise InvalidInput(str(answer["error"]))
    if isinstance(answer, dict) and "uri" in answer:
        return ParsedDocument(
            answer["uri"],
            answer["title"],
            tuple(Section(h, t) for h, t in answer["sections"]),
        )
    tail = err.decode(errors="replace").strip().splitlines()[-3:]
    log.warning("isolated parser failed (exit %s): %s", code, " | ".join(tail))
    if code in (-signal.SIGKILL, -signal.SIGXCPU):
        raise InvalidInput(f"took too long to read (over {limits.parse_timeout_s:g} s of CPU)")
    raise InvalidInput(
        f"the parser failed on it (exit {code}; it may need more than"
        f" {limits.parse_memory_mb} MiB, the limit GURU_PARSE_MEMORY_MB)"
    )


def _limit_self(limits: IngestLimits) -> None:
    """Caps on this (child) process, set before any parser is imported."""
    import resource

    memory = limits.parse_memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(limits.parse_timeout_s) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # a parser has nothing to write


def _child(request: dict[str, Any]) -> dict[str, Any]:
    limits = IngestLimits(**request["limits"])
    _limit_self(limits)
    from core.rag.loaders import load_file

    try:
        doc = load_file(request["path"], request["max_bytes"], limits)
    except InvalidInput as exc:
        return {"error": exc.user_message}
    except MemoryError:
        return {
            "error": f"needs more than {limits.parse_memory_mb} MiB to read; refused"
            " (the limit is GURU_PARSE_MEMORY_MB)"
        }
    except RecursionError:
        return {"error": "nested too deeply to read; refused"}
    except OSError as exc:
        return {"error": f"cannot read ({exc.strerror or exc})"}
    return {
        "uri": doc.uri,
        "title": doc.title,
        "sections": [[s.heading, s.text] for s in doc.sections],
    }


if __name__ == "__main__":
    answer = _child(json.loads(sys.stdin.buffer.read()))
    # UTF-8 whatever the locale (the child gets no LANG); surrogatepass: pypdf may emit halves
    sys.stdout.buffer.write(json.dumps(answer, ensure_ascii=False).encode("utf-8", "surrogatepass"))
