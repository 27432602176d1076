"""Apply `migrations/NNNN_name.sql` in order, each file in its own transaction.

Our own small runner instead of a tool: plain SQL files, one table of record
(`schema_migrations`), and a failure that names the file, line and statement. A session advisory
lock makes concurrent starters (bot + worker) apply each file once. Statements run one at a time
so the failing one can be quoted; the splitter respects quotes, comments and `$$` bodies. Files
cannot use statements that refuse a transaction block (CREATE INDEX CONCURRENTLY, VACUUM).
"""

from __future__ import annotations

import hashlib
import logging
import re
import sysconfig
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from core.errors import MigrationError

__all__ = [
    "Migration",
    "MigrationState",
    "default_directory",
    "discover",
    "migrate",
    "split_statements",
    "status",
]

log = logging.getLogger(__name__)

Target = psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any]
Applied = tuple[str, str, datetime]  # name, checksum, applied_at of a schema_migrations row
FILE_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
LOCK_KEY = 0x6775_7275_6D69_6772  # "gurumigr": one key for every guru database
CREATE_TABLE = b"""CREATE TABLE IF NOT EXISTS schema_migrations (
    version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())"""


@dataclass(frozen=True)
class Migration:
    """One file: `0001_init.sql` is version 1, name "init"."""

    version: int
    name: str
    path: Path
    checksum: str  # sha256 of the bytes: an applied file must never change

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class MigrationState:
    """A migration as `status` sees it; `changed`: edited after it was applied."""

    version: int
    name: str
    applied_at: datetime | None
    changed: bool = False
    has_file: bool = True


def default_directory() -> Path:
    """The checkout's top-level `migrations/`, else the copy installed in `<prefix>/share/guru/`."""
    checkout = Path(__file__).resolve().parents[2]
    installed = Path(sysconfig.get_path("data")) / "share" / "guru" / "migrations"
    if (checkout / "pyproject.toml").is_file() and (checkout / "migrations").is_dir():
        return checkout / "migrations"
    if installed.is_dir():
        return installed
    raise MigrationError(f"No migrations directory in {checkout} or {installed}; reinstall Guru.")


def discover(directory: Path | str | None = None) -> list[Migration]:
    """Every migration file in version order; refuses misnamed files and duplicate versions."""
    found: dict[int, Migration] = {}
    for path in sorted(Path(directory or default_directory()).glob("*.sql")):
        if not (match := FILE_NAME.match(path.name)):
            raise MigrationError(f"{path.name} is not named NNNN_name.sql; rename it.")
        version, checksum = int(match[1]), hashlib.sha256(path.read_bytes()).hexdigest()
        if version in found:
            raise MigrationError(f"{path.name} and {found[version].filename} share a version.")
        found[version] = Migration(version, match[2], path, checksum)
    return sorted(found.values(), key=lambda m: m.version)


async def migrate(target: Target, directory: Path | str | None = None) -> list[Migration]:
    """Apply the pending migrations; return them (empty when the database is up to date)."""
    migrations = discover(directory)
    async with _connection(target) as conn:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_lock(%(key)s)", {"key": LOCK_KEY})
        try:
            async with conn.transaction():
                await conn.execute(CREATE_TABLE)
            pending = _pending(migrations, await _applied(conn))
            for m in pending:
                await _apply(conn, m)
        finally:
            if not (conn.closed or conn.broken):
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_unlock(%(key)s)", {"key": LOCK_KEY})
    if pending and isinstance(target, AsyncConnectionPool):
        await target.drain()  # connections opened before `CREATE EXTENSION` lack pgvector types
    return pending


async def status(target: Target, directory: Path | str | None = None) -> list[MigrationState]:
    """Every migration known to the files or the database, applied or pending, by version."""
    async with _connection(target) as conn:
        applied = await _applied(conn)
    states: dict[int, MigrationState] = {}
    for m in discover(directory):
        _, checksum, applied_at = applied.get(m.version, (m.name, m.checksum, None))
        states[m.version] = MigrationState(m.version, m.name, applied_at, checksum != m.checksum)
    for version, (name, _, applied_at) in applied.items():
        states.setdefault(version, MigrationState(version, name, applied_at, has_file=False))
    return [states[v] for v in sorted(states)]


def _pending(migrations: list[Migration], applied: dict[int, Applied]) -> list[Migration]:
    for m in migrations:
        if m.version in applied and applied[m.version][1] != m.checksum:
            raise MigrationError(
                f"{m.filename} was edited after it was applied; restore it and "
                "put the change in a new migration."
            )
    return [m for m in migrations if m.version not in applied]


async def _apply(conn: psycopg.AsyncConnection[Any], m: Migration) -> None:
    text = m.path.read_text(encoding="utf-8")
    async with conn.transaction():
        for line, statement in split_statements(text):
            try:
                await conn.execute(statement.encode())
            except psycopg.Error as exc:
                raise _failure(m, line, statement, exc) from exc
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum)"
            " VALUES (%(version)s, %(name)s, %(checksum)s)",
            {"version": m.version, "name": m.name, "checksum": m.checksum},
        )
    log.info("applied migration %s", m.filename)


def _failure(m: Migration, line: int, statement: str, exc: psycopg.Error) -> MigrationError:
    position = int(exc.diag.statement_position or 0)  # 1-based character offset, when PG gives one
    if position:
        line += statement.count("\n", 0, position - 1)
    quoted = " ".join(statement.split())
    quoted = quoted if len(quoted) <= 200 else quoted[:197] + "..."
    reason = exc.diag.message_primary or str(exc).strip()
    return MigrationError(
        f"Migration {m.filename} failed at line {line} ({reason}); nothing of it "
        f"was applied. Statement: {quoted}"
    )


async def _applied(conn: psycopg.AsyncConnection[Any]) -> dict[int, Applied]:
    async with conn.transaction():
        cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not (await cur.fetchone() or (False,))[0]:
            return {}
        cur = await conn.execute(
            "SELECT version, name, checksum, applied_at FROM schema_migrations"
        )
        return {v: (name, checksum, at) for v, name, checksum, at in await cur.fetchall()}


@asynccontextmanager
async def _connection(target: Target) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    if isinstance(target, AsyncConnectionPool):
        async with target.connection() as conn:
            yield conn
    else:
        if target.info.transaction_status != TransactionStatus.IDLE:
            raise MigrationError("Migrations need a connection that is not inside a transaction.")
        yield target


_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$")


def split_statements(sql: str) -> list[tuple[int, str]]:
    """Split a script at top-level `;` into (line, statement); quotes, comments, $$ bodies kept."""
    out: list[tuple[int, str]] = []
    i, n, begin = 0, len(sql), -1  # begin: offset of the statement's first code character
    while i < n:
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif sql.startswith("/*", i):
            i = _comment_end(sql, i)
        elif sql[i] == ";":
            if begin >= 0:
                out.append((sql.count("\n", 0, begin) + 1, sql[begin:i].rstrip()))
            begin, i = -1, i + 1
        elif sql[i].isspace():
            i += 1
        else:
            begin = i if begin < 0 else begin
            i = _token_end(sql, i)
    if begin >= 0:
        out.append((sql.count("\n", 0, begin) + 1, sql[begin:].rstrip()))
    return out


def _token_end(sql: str, i: int) -> int:
    """End of the quoted literal, quoted identifier or dollar-quoted body at `i`, else i + 1."""
    c, prev = sql[i], sql[i - 1] if i else " "
    if c in "'\"":
        # E'...' strings take backslash escapes; a word ending in e (`name'`) is no prefix.
        e_string = c == "'" and prev in "eE" and not (i > 1 and _is_word(sql[i - 2]))
        return _quote_end(sql, i, e_string)
    if c == "$" and not _is_word(prev) and (tag := _DOLLAR_TAG.match(sql, i)):
        end = sql.find(tag[0], tag.end())
        return len(sql) if end < 0 else end + len(tag[0])
    return i + 1


def _is_word(c: str) -> bool:
    return c.isalnum() or c in "_$"


def _comment_end(sql: str, i: int) -> int:
    depth, i = 1, i + 2  # PostgreSQL block comments nest
    while depth and i < len(sql):
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def _quote_end(sql: str, i: int, backslashes: bool) -> int:
    quote, i = sql[i], i + 1
    while i < len(sql):
        if backslashes and sql[i] == "\\":
            i += 2
        elif sql[i] == quote:
            if not sql.startswith(quote, i + 1):
                return i + 1
            i += 2  # doubled quote inside the literal
        else:
            i += 1
    return i
