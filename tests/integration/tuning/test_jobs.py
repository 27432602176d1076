"""The job queue and the adapter registry on a real Postgres (a fresh database per test)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import psycopg
import pytest

from core.db.migrate import default_directory, migrate
from core.db.pool import Pool, connect
from core.errors import InvalidInput, NotFound
from core.tuning.jobs import JobAlreadyLive, JobRepo
from core.tuning.registry import AdapterRepo
from core.tuning.tuner import job_spec, queue_job

from .conftest import QUESTION, mascot_pairs

GUILD, OTHER, THIRD = 710, 720, 730
DATA = [p.to_json() for p in mascot_pairs((QUESTION,))]


@pytest.fixture
def pool(fresh_pool: Pool) -> Pool:
    return fresh_pool


async def _finish(pool: Pool, tmp_path: Path, guild: int, worker: str = "w") -> int:
    """Queue, claim and record a job with a fake adapter dir; returns the new version."""
    jobs, adapters = JobRepo(pool), AdapterRepo(pool)
    job_id = await jobs.enqueue(guild, {}, DATA)
    job = await jobs.claim(worker, 60, 3)
    assert job is not None and job.id == job_id
    source = tmp_path / f"run-{job_id}"
    source.mkdir()
    (source / "adapter_config.json").write_text("{}")
    adapter = await adapters.record(
        guild_id=guild,
        job_id=job_id,
        worker=worker,
        source_dir=str(source),
        data_dir=str(tmp_path / "data"),
        method="lora-float32",
        base_model="m",
        metrics={"x": 1},
        progress={"phase": "done"},
    )
    return adapter.version


async def test_two_workers_never_claim_the_same_job(pool):
    jobs = JobRepo(pool)
    ids = {await jobs.enqueue(guild, {}, DATA) for guild in (GUILD, OTHER, THIRD)}
    claimed = await asyncio.gather(*(jobs.claim(f"w{i}", 60, 3) for i in range(4)))
    got = [j.id for j in claimed if j is not None]
    assert sorted(got) == sorted(ids) and claimed.count(None) == 1


async def test_a_silent_running_job_is_taken_over_then_failed_after_max_attempts(pool):
    jobs = JobRepo(pool)
    job_id = await jobs.enqueue(GUILD, {}, DATA)
    assert (await jobs.claim("dead", 60, 2)).id == job_id
    assert await jobs.claim("other", 60, 2) is None  # fresh heartbeat: still the dead one's
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE tuning_jobs SET heartbeat_at = now() - interval '2 minutes',"
            " progress = '{\"step\": 4}'"
        )
    again = await jobs.claim("second", 60, 2)
    assert again.id == job_id and again.attempts == 2 and again.worker == "second"
    assert not await jobs.heartbeat(job_id, "dead", {})  # the first worker has lost it
    async with pool.connection() as conn:
        await conn.execute("UPDATE tuning_jobs SET heartbeat_at = now() - interval '2 minutes'")
    assert await jobs.claim("third", 60, 2) is None
    job = await jobs.get(GUILD, job_id)
    assert job.status == "failed" and "stopped 2 times" in job.error and "step 4" in job.error
    with pytest.raises(NotFound):
        await jobs.get(OTHER, job_id)  # another guild cannot read it


async def test_versions_count_per_guild_and_finishing_never_activates(pool, tmp_path):
    assert [await _finish(pool, tmp_path, GUILD) for _ in range(2)] == [1, 2]
    assert await _finish(pool, tmp_path, OTHER) == 1
    adapters = AdapterRepo(pool)
    assert await adapters.active(GUILD) is None
    listed = await adapters.list(GUILD)
    assert [a.version for a in listed] == [1, 2]
    assert Path(listed[1].path) == tmp_path / "data" / "adapters" / str(GUILD) / "2"
    assert (Path(listed[1].path) / "adapter_config.json").is_file()
    assert (await JobRepo(pool).for_guild(GUILD))[0].adapter_version == 2


async def test_activate_and_rollback_notify_and_keep_one_active(pool, tmp_path):
    for _ in range(3):
        await _finish(pool, tmp_path, GUILD)
    await _finish(pool, tmp_path, OTHER)
    adapters = AdapterRepo(pool)
    await adapters.activate(OTHER, 1)
    async with await psycopg.AsyncConnection.connect(pool.conninfo, autocommit=True) as listener:
        await listener.execute("LISTEN guru_adapters")
        await adapters.activate(GUILD, 3)
        await adapters.activate(GUILD, 1)
        await adapters.activate(GUILD, 3)
        assert (await adapters.rollback(GUILD)).version == 2
        assert (await adapters.rollback(GUILD)).version == 1
        assert await adapters.rollback(GUILD) is None  # back to the base model
        notes = [n async for n in listener.notifies(timeout=2.0, stop_after=6)]
    assert [n.payload for n in notes] == [str(GUILD)] * 6
    assert await adapters.active(GUILD) is None
    assert (await adapters.active(OTHER)).version == 1  # untouched throughout
    with pytest.raises(NotFound, match="nothing to roll back"):
        await adapters.rollback(GUILD)
    with pytest.raises(NotFound):
        await adapters.activate(GUILD, 9)
    async with pool.connection() as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            await conn.execute(f"UPDATE adapters SET active = true WHERE guild_id = {GUILD}")


async def test_cancelling_a_running_job_takes_it_from_its_worker(pool):
    jobs = JobRepo(pool)
    job_id = await jobs.enqueue(GUILD, {}, DATA)
    await jobs.claim("w", 60, 3)
    assert not await jobs.cancel(OTHER, job_id)  # another guild cannot cancel it
    assert await jobs.cancel(GUILD, job_id)
    assert not await jobs.heartbeat(job_id, "w", {})  # the worker stops at its next beat
    assert (await jobs.get(GUILD, job_id)).status == "cancelled"
    assert await jobs.claim("w2", 0, 3) is None and not await jobs.cancel(GUILD, job_id)


# --- fair use: one live job per guild, guilds served in turn ---------------------------------


async def test_a_second_live_job_for_a_guild_is_refused_naming_the_first(pool):
    jobs = JobRepo(pool)
    first = await jobs.enqueue(GUILD, {}, DATA)
    with pytest.raises(JobAlreadyLive, match=f"already has tuning job {first} queued") as refused:
        await jobs.enqueue(GUILD, {}, DATA)
    assert refused.value.job.id == first and isinstance(refused.value, InvalidInput)
    await jobs.enqueue(OTHER, {}, DATA)  # other guilds are not held up
    await jobs.claim("w", 60, 3)
    with pytest.raises(JobAlreadyLive, match=f"job {first} running"):
        await jobs.enqueue(GUILD, {}, DATA)
    assert await jobs.cancel(GUILD, first)
    await jobs.enqueue(GUILD, {}, DATA)  # once it ended, the guild may start another


async def test_two_racing_starts_queue_one_job(pool):
    jobs = JobRepo(pool)
    results = await asyncio.gather(
        *(jobs.enqueue(GUILD, {}, DATA) for _ in range(2)), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["JobAlreadyLive", "int"], results
    assert len(await jobs.live(GUILD)) == 1


async def test_queue_job_refuses_a_second_job_before_reading_its_data(pool):
    live = await JobRepo(pool).enqueue(GUILD, {}, DATA)
    with pytest.raises(JobAlreadyLive, match=f"cancel job {live} first"):
        # not JSONL: the refusal is about the live job, not the file's lines
        await queue_job(pool, GUILD, job_spec("m"), data=b"not json")


async def test_workers_take_guilds_in_turn_not_first_come(pool, tmp_path):
    """GUILD was served just now, OTHER a day ago, THIRD never: THIRD's job goes first and
    GUILD's last, although GUILD queued first (global FIFO would run it first)."""
    jobs = JobRepo(pool)
    await _finish(pool, tmp_path, GUILD)
    await _finish(pool, tmp_path, OTHER)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE tuning_jobs SET started_at = now() - interval '1 day' WHERE guild_id = %(g)s",
            {"g": OTHER},
        )
    queued = {g: await jobs.enqueue(g, {}, DATA) for g in (GUILD, OTHER, THIRD)}
    claimed = [(await jobs.claim(f"w{i}", 60, 3)).guild_id for i in range(3)]
    assert claimed == [THIRD, OTHER, GUILD], queued


async def test_upgrading_keeps_one_live_job_per_guild_and_says_why_the_rest_stopped(
    fresh_database_url, tmp_path
):
    """Before 0008 a guild could queue several jobs: its running one (else its oldest) stays."""
    before = tmp_path / "migrations"
    before.mkdir()
    for path in sorted(default_directory().glob("*.sql")):
        if path.name < "0008":
            shutil.copy(path, before / path.name)
    async with connect(fresh_database_url) as conn:
        await migrate(conn, before)
        await conn.execute(f"INSERT INTO guilds (id) VALUES ({GUILD}), ({OTHER})")
        for guild, status in ((GUILD, "queued"), (GUILD, "running"), (GUILD, "queued")):
            await conn.execute(
                "INSERT INTO tuning_jobs (guild_id, status, dataset) VALUES (%s, %s, '[]')",
                (guild, status),
            )
        await conn.execute(f"INSERT INTO tuning_jobs (guild_id, dataset) VALUES ({OTHER}, '[]')")
        await migrate(conn)
        cur = await conn.execute("SELECT guild_id, status, error FROM tuning_jobs ORDER BY id")
        rows = await cur.fetchall()
    assert [r[:2] for r in rows] == [
        (GUILD, "cancelled"),
        (GUILD, "running"),
        (GUILD, "cancelled"),
        (OTHER, "queued"),
    ]
    assert "one tuning job per server at a time" in rows[0][2]
