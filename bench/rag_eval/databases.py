"""Bench databases: `guru_bench_*` on the configured server, migrated, kept between runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg import sql
from psycopg.conninfo import make_conninfo

from core.config import Settings
from core.db.embedded import start_embedded
from core.db.migrate import migrate
from core.db.pool import Pool, connect, open_pool

__all__ = ["server_url", "bench_pool"]


@asynccontextmanager
async def server_url(settings: Settings) -> AsyncIterator[str]:
    """DATABASE_URL, or the embedded server under the data dir for the duration."""
    if settings.database_url:
        yield settings.database_url
        return
    server = await start_embedded(settings.data_dir)
    try:
        yield server.url
    finally:
        await server.aclose()


@asynccontextmanager
async def bench_pool(url: str, dbname: str, *, fresh: bool = False) -> AsyncIterator[Pool]:
    """A pool on database `dbname` of the server at `url` (created and migrated if needed)."""
    async with connect(url) as conn:
        if fresh:
            await conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
        cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": dbname})
        if await cur.fetchone() is None:
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    target = make_conninfo(url, dbname=dbname)
    async with connect(target) as conn:
        await migrate(conn)
    pool = await open_pool(target, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()
