"""Forget a guild: every row Guru stores for it, its adapter files and its job folders.

The database part is one transaction (core.rag.store.forget_guild finds every table with a
`guild_id` column). It first locks the guild's row, which `AdapterRepo.record` locks too, so a
job finishing meanwhile either commits its adapter before (and it is erased here) or finds the
guild gone and writes nothing; then the guild's tuning jobs, so a training worker's heartbeat
waits, finds no row after the commit, and the worker stops and removes its job folder itself
(core/tuning/worker.py). Files go after the commit, on success and when there was no row left
to erase (files a crash left behind) — a crash in between leaves orphan files, never rows that
point at missing files. A running bot serving the guild's adapter is told through the same
`NOTIFY` channel activation uses, so it drops the adapter without a restart. The guild's audit
rows stay, emptied of their content (migration 0001: the trail outlives the guild), and the
erasure itself is audited without the guild's content (guild_id NULL = a process-wide action).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from psycopg.types.json import Jsonb

from core.db.pool import Pool
from core.errors import NotFound
from core.rag.ingest import Ingestor, check_guild_id
from core.rag.store import forget_guild as forget_rows
from core.tuning.registry import ADAPTERS_CHANNEL
from core.tuning.worker import job_dir

__all__ = ["forget_guild"]

log = logging.getLogger(__name__)

_LOCK_GUILD = "SELECT id FROM guilds WHERE id = %(g)s FOR UPDATE"
_LOCK_JOBS = "SELECT id FROM tuning_jobs WHERE guild_id = %(g)s ORDER BY id FOR UPDATE"
_AUDIT = "INSERT INTO audit_log (guild_id, action, detail) VALUES (NULL, 'guild.forget', %(d)s)"


async def forget_guild(
    pool: Pool, ingestor: Ingestor, data_dir: str | Path, guild_id: int
) -> dict[str, int]:
    """Erase the guild; return deleted counts by table plus `files` (folders removed).

    NotFound when Guru had nothing stored for the guild (its leftover files are still removed).
    `ingestor` is kept for callers; the rows go in this module's own transaction.
    """
    check_guild_id(guild_id)
    folders = [Path(data_dir) / "adapters" / str(guild_id)]
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(_LOCK_GUILD, {"g": guild_id})
            cur = await conn.execute(_LOCK_JOBS, {"g": guild_id})
            folders += [job_dir(str(data_dir), row[0]) for row in await cur.fetchall()]
            counts = await forget_rows(conn, guild_id)
            if not any(counts.values()):
                raise NotFound(f"Guru has nothing stored for guild {guild_id}.")
            await conn.execute(_AUDIT, {"d": Jsonb({"guild": str(guild_id), "deleted": counts})})
            await conn.execute(
                "SELECT pg_notify(%(c)s, %(p)s)", {"c": ADAPTERS_CHANNEL, "p": str(guild_id)}
            )
    except NotFound:
        await asyncio.to_thread(_remove, folders)
        raise
    counts["files"] = await asyncio.to_thread(_remove, folders)
    log.info("forgot guild %s: %s", guild_id, counts)
    return counts


def _remove(folders: list[Path]) -> int:
    removed = 0
    for folder in folders:
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
