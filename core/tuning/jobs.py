"""`tuning_jobs` rows: queue, claim, heartbeat, finish. The queue is the table itself.

Fair use of the one trainer: a guild has at most one live (queued or running) job, enforced by
a unique index (`JobAlreadyLive` names the live one), and workers take guilds in turn: the
claim picks the guild served longest ago (never served first), then the oldest job. With one
job per guild that is round-robin: a guild that queues again as soon as its job ends waits
behind every guild already waiting. Each claim takes its row with `FOR UPDATE SKIP LOCKED`
(two workers never get the same row, and neither waits on the other). Claimable: 'queued', or
'running' with a heartbeat older than `stale_after_s` — its worker was killed, and the next
one resumes from the job's checkpoint. Each claim counts an attempt; past `max_attempts` the
job fails with a reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.errors import UniqueViolation
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from core.db.audit import record_action
from core.db.pool import Pool
from core.errors import InvalidInput, NotFound

__all__ = ["JobAlreadyLive", "TuningJob", "JobRepo", "JOBS_CHANNEL"]

log = logging.getLogger(__name__)
JOBS_CHANNEL = "guru_tuning_jobs"  # NOTIFY on enqueue wakes idle workers at once

_COLUMNS = """id, guild_id, status, spec, progress, error, attempts, worker, adapter_version,
              created_at, started_at, heartbeat_at, finished_at"""
_UPSERT_GUILD = "INSERT INTO guilds (id) VALUES (%(guild_id)s) ON CONFLICT DO NOTHING"
_INSERT = """
INSERT INTO tuning_jobs (guild_id, spec, dataset, requested_by)
VALUES (%(guild_id)s, %(spec)s, %(dataset)s, %(requested_by)s) RETURNING id
"""
_NEXT = f"""
SELECT {_COLUMNS} FROM tuning_jobs j
WHERE status = 'queued'
   OR (status = 'running' AND heartbeat_at < now() - make_interval(secs => %(stale_s)s))
ORDER BY (SELECT max(s.started_at) FROM tuning_jobs s
          WHERE s.guild_id = j.guild_id AND s.id <> j.id) ASC NULLS FIRST,
         created_at, id
LIMIT 1
FOR UPDATE SKIP LOCKED
"""
_TAKE = f"""
UPDATE tuning_jobs SET status = 'running', attempts = attempts + 1, worker = %(worker)s,
       started_at = coalesce(started_at, now()), heartbeat_at = now(), error = NULL
WHERE id = %(id)s RETURNING {_COLUMNS}
"""
_GIVE_UP = """
UPDATE tuning_jobs SET status = 'failed', error = %(error)s, finished_at = now()
WHERE id = %(id)s
"""
_HEARTBEAT = """
UPDATE tuning_jobs SET heartbeat_at = now(), progress = %(progress)s
WHERE id = %(id)s AND worker = %(worker)s AND status = 'running'
"""
_FAIL = """
UPDATE tuning_jobs SET status = 'failed', error = %(error)s, finished_at = now()
WHERE id = %(id)s AND worker = %(worker)s AND status = 'running'
"""
_CANCEL = """
UPDATE tuning_jobs SET status = 'cancelled', finished_at = now(),
       error = 'Cancelled by a moderator.'
WHERE guild_id = %(guild_id)s AND id = %(id)s AND status IN ('queued', 'running')
"""
_BY_GUILD = f"""
SELECT {_COLUMNS} FROM tuning_jobs WHERE guild_id = %(guild_id)s
ORDER BY created_at DESC, id DESC LIMIT %(limit)s
"""
_LIVE = f"""
SELECT {_COLUMNS} FROM tuning_jobs
WHERE guild_id = %(guild_id)s AND status IN ('queued', 'running')
ORDER BY created_at DESC, id DESC LIMIT %(limit)s
"""
_ONE = f"SELECT {_COLUMNS} FROM tuning_jobs WHERE guild_id = %(guild_id)s AND id = %(id)s"
_DATASET = "SELECT dataset FROM tuning_jobs WHERE id = %(id)s"
# Operator view (CLI `guru tune status`, the worker): spans guilds on purpose.
_OVERVIEW = f"""
SELECT {_COLUMNS} FROM tuning_jobs
WHERE status IN ('queued', 'running') OR finished_at > now() - interval '1 day'
ORDER BY created_at DESC, id DESC LIMIT %(limit)s
"""


@dataclass(frozen=True)
class TuningJob:
    id: int
    guild_id: int
    status: str
    spec: dict[str, Any]
    progress: dict[str, Any]
    error: str | None
    attempts: int
    worker: str | None
    adapter_version: int | None
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TuningJob:
        return cls(**row)


class JobAlreadyLive(InvalidInput):
    """The guild already has a queued or running job (`job`; None if it ended meanwhile)."""

    def __init__(self, job: TuningJob | None) -> None:
        if job is None:
            text = "This server's other tuning job was just queued; try again once it ends."
        else:
            text = (
                f"This server already has tuning job {job.id} {job.status}, and one job per "
                f"server runs at a time: wait for it to end, or cancel job {job.id} first."
            )
        super().__init__(text)
        self.job = job

    @classmethod
    def of(cls, live: Sequence[TuningJob]) -> JobAlreadyLive:
        return cls(live[0] if live else None)


class JobRepo:
    """The job table, through the process's pool."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def enqueue(
        self,
        guild_id: int,
        spec: dict[str, Any],
        dataset: list[dict[str, Any]],
        requested_by: int | None = None,
    ) -> int:
        """Queue a job (dataset already validated) and wake idle workers; returns its id.
        JobAlreadyLive when the guild has one queued or running."""
        try:
            return await self._insert(guild_id, spec, dataset, requested_by)
        except UniqueViolation:  # tuning_jobs_one_live_per_guild
            raise JobAlreadyLive.of(await self.live(guild_id, limit=1)) from None

    async def _insert(
        self,
        guild_id: int,
        spec: dict[str, Any],
        dataset: list[dict[str, Any]],
        requested_by: int | None,
    ) -> int:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(_UPSERT_GUILD, {"guild_id": guild_id})
            cur = await conn.execute(
                _INSERT,
                {
                    "guild_id": guild_id,
                    "spec": Jsonb(spec),
                    "dataset": Jsonb(dataset),
                    "requested_by": requested_by,
                },
            )
            (job_id,) = await cur.fetchone()  # type: ignore[misc]
            await conn.execute(
                "SELECT pg_notify(%(ch)s, %(id)s)", {"ch": JOBS_CHANNEL, "id": str(job_id)}
            )
        log.info("queued tuning job %d for guild %d (%d pairs)", job_id, guild_id, len(dataset))
        return int(job_id)

    async def claim(self, worker: str, stale_after_s: float, max_attempts: int) -> TuningJob | None:
        """The next job for `worker`, now 'running' under its name; None when there is none."""
        while True:
            async with self.pool.connection() as conn, conn.transaction():
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(_NEXT, {"stale_s": stale_after_s})
                row = await cur.fetchone()
                if row is None:
                    return None
                if row["attempts"] >= max_attempts:
                    step = (row["progress"] or {}).get("step", 0)
                    error = (
                        f"The trainer stopped {row['attempts']} times while running this "
                        f"job (last seen at step {step}); giving up. Check the worker's "
                        "memory and logs, then start a new job."
                    )
                    await conn.execute(_GIVE_UP, {"id": row["id"], "error": error})
                    log.warning("job %d failed after %d attempts", row["id"], row["attempts"])
                    continue  # commit the failure, look for another job
                await cur.execute(_TAKE, {"id": row["id"], "worker": worker})
                taken = TuningJob.from_row(await cur.fetchone())  # type: ignore[arg-type]
            log.info("worker %s claimed job %d (attempt %d)", worker, taken.id, taken.attempts)
            return taken

    async def dataset(self, job_id: int) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_DATASET, {"id": job_id})
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"Tuning job {job_id} does not exist.")
        return list(row[0])

    async def heartbeat(self, job_id: int, worker: str, progress: dict[str, Any]) -> bool:
        """Record liveness and progress; False when the job is no longer this worker's."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                _HEARTBEAT, {"id": job_id, "worker": worker, "progress": Jsonb(progress)}
            )
            return cur.rowcount == 1

    async def fail(self, job_id: int, worker: str, error: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(_FAIL, {"id": job_id, "worker": worker, "error": error})
        log.warning("job %d failed: %s", job_id, error)

    async def cancel(self, guild_id: int, job_id: int, actor_id: int | None = None) -> bool:
        """Stop a queued or running job (audited as `tune.cancel`); its worker notices at its
        next heartbeat. False when the guild has no such live job."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_CANCEL, {"guild_id": guild_id, "id": job_id})
            if cur.rowcount != 1:
                return False
            await record_action(conn, guild_id, actor_id, "tune.cancel", {"job": job_id})
        log.info("guild %d cancelled tuning job %d", guild_id, job_id)
        return True

    async def live(self, guild_id: int, limit: int = 25) -> list[TuningJob]:
        """The guild's queued and running jobs, newest first (what can still be cancelled)."""
        return await self._fetch(_LIVE, {"guild_id": guild_id, "limit": limit})

    async def get(self, guild_id: int, job_id: int) -> TuningJob:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_ONE, {"guild_id": guild_id, "id": job_id})
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"This server has no tuning job {job_id}.")
        return TuningJob.from_row(row)

    async def for_guild(self, guild_id: int, limit: int = 20) -> list[TuningJob]:
        return await self._fetch(_BY_GUILD, {"guild_id": guild_id, "limit": limit})

    async def overview(self, limit: int = 50) -> list[TuningJob]:
        """Operator view across guilds: live jobs and those finished in the last day."""
        return await self._fetch(_OVERVIEW, {"limit": limit})

    async def _fetch(self, query: str, params: dict[str, Any]) -> list[TuningJob]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(query, params)
            return [TuningJob.from_row(r) for r in await cur.fetchall()]
