"""Bench databases: `guru_bench_*` on the configured server, migrated, kept between runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from psycopg import sql
from psycopg.conninfo import make_conninfo

from core.config import Settings
from core.db.embedded import start_embedded
from core.db.migrate import migrate
from core.db.pool import Pool, connect, open_pool

if TYPE_CHECKING:
    from core.rag.embedder import Embedder
    from core.rag.retrieve import Retriever

__all__ = ["server_url", "bench_pool", "dtype_suffix", "eval_retriever"]


def dtype_suffix(embedder: Embedder) -> str:
    """A bench database's name suffix for this encoder: stored vectors belong to one encoder
    dtype, so bf16 vectors get their own databases."""
    return {"float32": "", "bfloat16": "_bf16"}.get(embedder.resolved_dtype, "")


@asynccontextmanager
async def eval_retriever() -> AsyncIterator[Retriever]:
    """A Retriever over the git + Emberfall eval database (`guru_bench_eval*`, filled by
    `guru bench rag` / `bench answers`), for the benches that need no model."""
    from core.rag.embedder import Embedder
    from core.rag.retrieve import Retriever

    embedder = Embedder()
    try:
        async with (
            server_url(Settings.from_env()) as url,
            bench_pool(url, "guru_bench_eval" + dtype_suffix(embedder)) as pool,
        ):
            yield Retriever(pool, embedder)
    finally:
        embedder.close()


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
