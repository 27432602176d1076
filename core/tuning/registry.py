"""Versioned adapters per guild (`adapters` table) and the files under the data dir.

Versions count up per guild (1, 2, …) and are allocated under a row lock on the guild, in the
same transaction that records the adapter and marks its job done. Activation and rollback
change which row is `active` (a partial unique index allows one per guild) and `pg_notify`
`guru_adapters` with the guild id; the notification is delivered on commit, so a listener
never sees a state that was rolled back. Finishing a job never touches the active version.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from core.db.audit import record_action
from core.db.pool import Pool
from core.errors import InvalidInput, NotFound

__all__ = [
    "Adapter",
    "AdapterRepo",
    "ADAPTERS_CHANNEL",
    "adapter_dir",
    "engine_name",
    "other_base_model",
]

log = logging.getLogger(__name__)
ADAPTERS_CHANNEL = "guru_adapters"

_COLUMNS = "guild_id, version, path, job_id, method, base_model, metrics, active, created_at"
_LOCK_GUILD = "SELECT id FROM guilds WHERE id = %(guild_id)s FOR UPDATE"
_NEXT_VERSION = "SELECT coalesce(max(version), 0) + 1 FROM adapters WHERE guild_id = %(guild_id)s"
_INSERT = """
INSERT INTO adapters (guild_id, version, path, job_id, method, base_model, metrics)
VALUES (%(guild_id)s, %(version)s, %(path)s, %(job_id)s, %(method)s, %(base_model)s, %(metrics)s)
"""
_JOB_DONE = """
UPDATE tuning_jobs SET status = 'done', adapter_version = %(version)s, finished_at = now(),
       progress = %(progress)s
WHERE id = %(job_id)s AND worker = %(worker)s AND status = 'running'
"""
_LIST = f"SELECT {_COLUMNS} FROM adapters WHERE guild_id = %(guild_id)s ORDER BY version"
_ONE = f"SELECT {_COLUMNS} FROM adapters WHERE guild_id = %(guild_id)s AND version = %(version)s"
_ACTIVE = f"SELECT {_COLUMNS} FROM adapters WHERE guild_id = %(guild_id)s AND active"
# The engine's startup sync loads every guild's active adapter: a cross-guild read on purpose.
_ALL_ACTIVE = f"SELECT {_COLUMNS} FROM adapters WHERE active ORDER BY guild_id"
_DEACTIVATE = "UPDATE adapters SET active = false WHERE guild_id = %(guild_id)s AND active"
_ACTIVATE = """
UPDATE adapters SET active = true, activated_at = now()
WHERE guild_id = %(guild_id)s AND version = %(version)s
"""
_PREVIOUS = """
SELECT max(version) FROM adapters WHERE guild_id = %(guild_id)s AND version < %(version)s
"""
_NOTIFY = "SELECT pg_notify(%(channel)s, %(payload)s)"


def adapter_dir(data_dir: str | Path, guild_id: int, version: int) -> Path:
    return Path(data_dir) / "adapters" / str(guild_id) / str(version)


def engine_name(guild_id: int, version: int) -> str:
    """The adapter's name inside the engine: versioned, so old and new can coexist in a swap."""
    return f"g{guild_id}-v{version}"


@dataclass(frozen=True)
class Adapter:
    guild_id: int
    version: int
    path: str
    job_id: int | None
    method: str
    base_model: str
    metrics: dict[str, Any]
    active: bool
    created_at: datetime

    @property
    def engine_name(self) -> str:
        return engine_name(self.guild_id, self.version)


def other_base_model(adapter: Adapter, serving: str | None) -> str | None:
    """Why `adapter` cannot serve on the model `serving` (None when it can, or when that is
    unknown): a LoRA trained on one preset does not fit another's layers (SmolLM2-135M's 576
    columns are not Qwen2.5's 896), e.g. after GURU_MODEL's default changed. Only preset names
    are compared: a directory or a .gguf path may be the same weights under another name."""
    from core.llm.models.presets import PRESETS

    trained = adapter.base_model
    if serving is None or trained == serving or trained not in PRESETS or serving not in PRESETS:
        return None
    return (
        f"adapter v{adapter.version} was trained on {trained}, but this bot runs {serving}: "
        "train a new version with /tune start"
    )


class AdapterRepo:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def record(
        self,
        *,
        guild_id: int,
        job_id: int,
        worker: str,
        source_dir: str,
        data_dir: str,
        method: str,
        base_model: str,
        metrics: dict[str, Any],
        progress: dict[str, Any],
    ) -> Adapter:
        """Copy a finished run's adapter into place as the guild's next version; job -> done."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_LOCK_GUILD, {"guild_id": guild_id})
            if await cur.fetchone() is None:  # forgotten meanwhile: write no files for it
                raise NotFound(f"Guild {guild_id} was forgotten; job {job_id} is dropped.")
            cur = await conn.execute(_NEXT_VERSION, {"guild_id": guild_id})
            (version,) = await cur.fetchone()  # type: ignore[misc]
            dest = adapter_dir(data_dir, guild_id, version)
            # A copy, not a move: if this transaction fails the job can finish again from its
            # work dir. A leftover dir of an uncommitted attempt is replaced.
            await asyncio.to_thread(_copy_dir, source_dir, dest)
            await conn.execute(
                _INSERT,
                {
                    "guild_id": guild_id,
                    "version": version,
                    "path": str(dest),
                    "job_id": job_id,
                    "method": method,
                    "base_model": base_model,
                    "metrics": Jsonb(metrics),
                },
            )
            cur = await conn.execute(
                _JOB_DONE,
                {
                    "job_id": job_id,
                    "worker": worker,
                    "version": version,
                    "progress": Jsonb(progress),
                },
            )
            if cur.rowcount != 1:
                raise NotFound(f"Tuning job {job_id} is no longer held by {worker}.")
        log.info("guild %d adapter v%d recorded from job %d", guild_id, version, job_id)
        return await self.get(guild_id, version)

    async def list(self, guild_id: int) -> list[Adapter]:
        return await self._fetch(_LIST, {"guild_id": guild_id})

    async def get(self, guild_id: int, version: int) -> Adapter:
        found = await self._fetch(_ONE, {"guild_id": guild_id, "version": version})
        if not found:
            raise NotFound(
                f"This server has no adapter version {version}; its list of "
                "adapters shows the versions there are."
            )
        return found[0]

    async def active(self, guild_id: int) -> Adapter | None:
        found = await self._fetch(_ACTIVE, {"guild_id": guild_id})
        return found[0] if found else None

    async def all_active(self) -> list[Adapter]:
        return await self._fetch(_ALL_ACTIVE, {})

    async def activate(
        self,
        guild_id: int,
        version: int,
        actor_id: int | None = None,
        serving: str | None = None,
    ) -> Adapter:
        """Make `version` the guild's adapter; running bots swap to it on the notification.
        `serving` (GURU_MODEL) refuses a version trained on another preset."""
        adapter = await self.get(guild_id, version)
        if why := other_base_model(adapter, serving):
            raise InvalidInput(f"Not activated: {why}.")
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(_LOCK_GUILD, {"guild_id": guild_id})
            await self._switch(conn, guild_id, version, actor_id, "tune.activate")
        return adapter

    async def rollback(self, guild_id: int, actor_id: int | None = None) -> Adapter | None:
        """Back to the version below the active one, or to the base model from the first one."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(_LOCK_GUILD, {"guild_id": guild_id})
            cur = await conn.execute(_ACTIVE, {"guild_id": guild_id})
            current = await cur.fetchone()
            if current is None:
                raise NotFound("This server uses the base model already; nothing to roll back.")
            cur = await conn.execute(_PREVIOUS, {"guild_id": guild_id, "version": current[1]})
            (previous,) = await cur.fetchone()  # type: ignore[misc]
            await self._switch(conn, guild_id, previous, actor_id, "tune.rollback")
        return None if previous is None else await self.get(guild_id, previous)

    async def _switch(
        self, conn: Any, guild_id: int, version: int | None, actor_id: int | None, action: str
    ) -> None:
        await conn.execute(_DEACTIVATE, {"guild_id": guild_id})
        if version is not None:
            await conn.execute(_ACTIVATE, {"guild_id": guild_id, "version": version})
        await record_action(conn, guild_id, actor_id, action, {"version": version})
        await conn.execute(_NOTIFY, {"channel": ADAPTERS_CHANNEL, "payload": str(guild_id)})
        log.info("guild %d now uses %s", guild_id, f"adapter v{version}" if version else "base")

    async def _fetch(self, query: str, params: dict[str, Any]) -> list[Adapter]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(query, params)
            return [Adapter(**row) for row in await cur.fetchall()]


def _copy_dir(source: str, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest.parent, exist_ok=True)
    os.replace(tmp, dest)
