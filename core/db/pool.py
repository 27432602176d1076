"""The process's one async connection pool, and `Database`, which owns it with the server.

pgvector's types are registered on each new connection by the pool's `configure` hook, which
skips them while the `vector` extension does not exist yet (it arrives with migration 0001).
`Database.open` therefore applies migrations on a connection of its own *before* it opens the
pool, so every pooled connection knows `vector`; `migrate(pool)` drains the pool afterwards for
callers who migrate through an already open pool.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg.conninfo import conninfo_to_dict
from psycopg.types import TypeInfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from core.config import Settings
from core.db.embedded import EmbeddedServer, resolve_database_url, start_embedded
from core.db.migrate import Migration, migrate
from core.errors import DatabaseError

__all__ = ["Database", "Pool", "connect", "describe_url", "open_pool", "register_types"]

log = logging.getLogger(__name__)

Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]


async def register_types(conn: psycopg.AsyncConnection[Any]) -> None:
    """Pool `configure` hook: teach the connection pgvector's types once the extension exists."""
    if await TypeInfo.fetch(conn, "vector") is None:
        log.debug("vector extension not installed yet; pgvector types not registered")
        return
    await register_vector_async(conn)


async def open_pool(
    settings_or_url: Settings | str,
    min_size: int = 1,
    max_size: int = 10,
    *,
    timeout_s: float = 10.0,
) -> Pool:
    """Open a pool on DATABASE_URL / the embedded server (or a URL); DatabaseError if unreachable.

    Given Settings without DATABASE_URL, the embedded server is held until the process exits;
    use `Database.open` to release it with the pool.
    """
    if isinstance(settings_or_url, str):
        url = settings_or_url
    else:
        url = await resolve_database_url(settings_or_url)
    pool: Pool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        configure=register_types,
        kwargs={"application_name": "guru"},
        name="guru",
    )
    try:
        await pool.open(wait=True, timeout=timeout_s)
    except PoolTimeout as exc:
        await pool.close()
        raise DatabaseError(
            f"Could not connect to PostgreSQL ({describe_url(url)}) within {timeout_s:g} s; "
            "check DATABASE_URL and that the server is running."
        ) from exc
    return pool


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """One autocommit connection outside the pool (migrations, short CLI commands)."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, application_name="guru")
    except psycopg.OperationalError as exc:
        raise DatabaseError(
            f"Could not connect to PostgreSQL ({describe_url(url)}); check DATABASE_URL and that "
            "the server is running."
        ) from exc
    async with conn:
        yield conn


def describe_url(url: str) -> str:
    """host/port/dbname of a connection string, without user or password (for messages)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparsable DATABASE_URL"
    keys = ("host", "port", "dbname")
    return ", ".join(f"{k}={parts[k]}" for k in keys if parts.get(k)) or "default connection"


class Database:
    """The pool plus, when embedded, our reference to the server; close both with `aclose`."""

    def __init__(self, pool: Pool, server: EmbeddedServer | None = None) -> None:
        self.pool = pool
        self.server = server
        self.applied: list[Migration] = []

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        apply_migrations: bool = True,
        min_size: int = 1,
        max_size: int = 10,
    ) -> Database:
        """Start/join the server, apply pending migrations (unless told not to), open the pool."""
        server: EmbeddedServer | None = None
        if settings.database_url:
            url = settings.database_url
        else:
            server = await start_embedded(settings.data_dir)
            url = server.url
        try:
            applied: list[Migration] = []
            if apply_migrations:
                async with connect(url) as conn:
                    applied = await migrate(conn)
            pool = await open_pool(url, min_size, max_size)
        except BaseException:
            if server is not None:
                await server.aclose()
            raise
        db = cls(pool, server)
        db.applied = applied
        return db

    async def aclose(self) -> None:
        """Close the pool, then let go of the embedded server (it stops if we were the last)."""
        try:
            await self.pool.close()
        finally:
            if self.server is not None:
                await self.server.aclose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
