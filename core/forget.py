"""Forget a guild: every row Guru stores for it, its adapter files and its job folders.

The database part is one transaction (core.rag.store.forget_guild finds every table with a
`guild_id` column). Files go after the commit — a crash in between leaves orphan files, never
rows that point at missing files. A running bot serving the guild's adapter is told through the
same `NOTIFY` channel activation uses, so it drops the adapter without a restart. The erasure
itself is audited without the guild's content (guild_id NULL = a process-wide action, see
migrations/0001_init.sql), so the trail shows it happened but keeps nothing of the guild.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from psycopg.types.json import Jsonb

from core.db.pool import Pool
from core.rag.ingest import Ingestor
from core.tuning.registry import ADAPTERS_CHANNEL
from core.tuning.worker import job_dir

__all__ = ["forget_guild"]

log = logging.getLogger(__name__)


async def forget_guild(
    pool: Pool, ingestor: Ingestor, data_dir: str | Path, guild_id: int
) -> dict[str, int]:
    """Erase the guild; return deleted counts by table plus `files` (folders removed).

    NotFound (from the ingestor) when Guru had nothing stored for the guild.
    """
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id FROM tuning_jobs WHERE guild_id = %(g)s", {"g": guild_id}
        )
        job_ids = [row[0] for row in await cur.fetchall()]
    counts = await ingestor.forget_guild(guild_id)
    folders = [Path(data_dir) / "adapters" / str(guild_id)]
    folders += [job_dir(str(data_dir), job_id) for job_id in job_ids]
    counts["files"] = await asyncio.to_thread(_remove, folders)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO audit_log (guild_id, action, detail) VALUES (NULL, 'guild.forget', %(d)s)",
            {"d": Jsonb({"guild": str(guild_id), "deleted": counts})},
        )
        await conn.execute(
            "SELECT pg_notify(%(c)s, %(p)s)", {"c": ADAPTERS_CHANNEL, "p": str(guild_id)}
        )
    log.info("forgot guild %s: %s", guild_id, counts)
    return counts


def _remove(folders: list[Path]) -> int:
    removed = 0
    for folder in folders:
        if folder.is_dir():
            shutil.rmtree(folder)
            removed += 1
    return removed
