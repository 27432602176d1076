"""`core.forget.forget_guild`: rows, adapter files and job folders of one guild, nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from core.config import Settings
from core.db.pool import Pool
from core.errors import NotFound
from core.forget import forget_guild
from core.rag.ingest import Ingestor
from core.tuning.jobs import JobRepo, TuningJob
from core.tuning.registry import ADAPTERS_CHANNEL, AdapterRepo
from core.tuning.worker import job_dir


async def test_forget_removes_the_guilds_files_audits_and_notifies(
    ingestor: Ingestor,
    rag_pool: Pool,
    rag_url: str,
    new_guild: Callable[[], int],
    tmp_path: Path,
) -> None:
    a, b = new_guild(), new_guild()
    (tmp_path / "doc.md").write_text("# Bank\n\nThe guild bank opens on Fridays at noon.\n")
    [_ async for _ in ingestor.ingest_paths(a, [str(tmp_path / "doc.md")])]
    jobs = JobRepo(rag_pool)
    job_a = await jobs.enqueue(a, {"epochs": 1}, [{"instruction": "q", "output": "a"}])
    job_b = await jobs.enqueue(b, {"epochs": 1}, [{"instruction": "q", "output": "a"}])
    data = tmp_path / "data"
    for folder in (
        data / "adapters" / str(a) / "1",
        data / "adapters" / str(b) / "1",
        job_dir(str(data), job_a),
        job_dir(str(data), job_b),
    ):
        folder.mkdir(parents=True)
        (folder / "weights").write_bytes(b"w")

    listener = await psycopg.AsyncConnection.connect(rag_url, autocommit=True)
    try:
        await listener.execute(f"LISTEN {ADAPTERS_CHANNEL}")
        counts = await forget_guild(rag_pool, ingestor, data, a)
        notice = await asyncio.wait_for(anext(listener.notifies()), timeout=5)
    finally:
        await listener.close()

    assert counts["documents"] == 1 and counts["tuning_jobs"] == 1 and counts["files"] == 2
    assert not (data / "adapters" / str(a)).exists() and not job_dir(str(data), job_a).exists()
    assert (data / "adapters" / str(b) / "1" / "weights").exists()
    assert job_dir(str(data), job_b).exists()
    assert notice.payload == str(a)
    async with rag_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT guild_id, detail FROM audit_log WHERE action = 'guild.forget'"
            " AND detail->>'guild' = %(g)s",
            {"g": str(a)},
        )
        ((guild_column, detail),) = await cur.fetchall()
    assert guild_column is None and detail["deleted"]["documents"] == 1


async def _running(pool: Pool, guild: int, worker: str) -> TuningJob:
    """A job of `guild` as `worker` holds it (set directly: `claim` takes any guild's job)."""
    jobs = JobRepo(pool)
    job_id = await jobs.enqueue(guild, {"epochs": 1}, [{"instruction": "q", "output": "a"}] * 4)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE tuning_jobs SET status = 'running', worker = %s, heartbeat_at = now()"
            " WHERE id = %s",
            (worker, job_id),
        )
    return await jobs.get(guild, job_id)


async def test_the_guilds_audit_rows_stay_without_their_content(
    ingestor: Ingestor, rag_pool: Pool, new_guild: Callable[[], int], tmp_path: Path
) -> None:
    guild = new_guild()
    async with rag_pool.connection() as conn:
        await conn.execute("INSERT INTO guilds (id) VALUES (%s)", (guild,))
        await conn.execute(
            "INSERT INTO audit_log (guild_id, actor_id, action, detail)"
            " VALUES (%s, 7, 'settings.update', %s)",
            (guild, Jsonb({"system_prompt": "the guild's secret prompt"})),
        )
    counts = await forget_guild(rag_pool, ingestor, tmp_path, guild)
    assert counts["audit_log"] == 1
    async with rag_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT actor_id, action, detail FROM audit_log WHERE guild_id = %s", (guild,)
        )
        assert await cur.fetchall() == [(7, "settings.update", {})]
    with pytest.raises(NotFound):  # nothing left to erase: the emptied rows do not count
        await forget_guild(rag_pool, ingestor, tmp_path, guild)


async def test_a_job_finishing_after_the_forget_writes_no_adapter_files(
    ingestor: Ingestor, rag_pool: Pool, new_guild: Callable[[], int], tmp_path: Path
) -> None:
    guild = new_guild()
    job = await _running(rag_pool, guild, "w1")
    source = tmp_path / "run" / "adapter"
    source.mkdir(parents=True)
    (source / "adapter_model.safetensors").write_bytes(b"w")
    await forget_guild(rag_pool, ingestor, tmp_path / "data", guild)
    with pytest.raises(NotFound):
        await AdapterRepo(rag_pool).record(
            guild_id=guild,
            job_id=job.id,
            worker="w1",
            source_dir=str(source),
            data_dir=str(tmp_path / "data"),
            method="lora",
            base_model="m",
            metrics={},
            progress={},
        )
    assert not (tmp_path / "data" / "adapters" / str(guild)).exists()


@pytest.mark.parametrize(
    ("ending", "kept"),
    [("fails", False), ("is forgotten", False), ("is cancelled", False), ("is taken over", True)],
)
async def test_a_workers_job_folder_goes_on_every_ending_but_a_takeover(
    ingestor: Ingestor,
    rag_pool: Pool,
    new_guild: Callable[[], int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ending: str,
    kept: bool,
) -> None:
    from core.tuning import worker as worker_module

    guild, data = new_guild(), tmp_path / "data"
    job = await _running(rag_pool, guild, "w1")
    worker = worker_module.Worker(
        rag_pool, Settings(data_dir=str(data)), worker_module.WorkerOptions(name="w1")
    )

    def train(spec, on_progress):  # leaves a checkpoint of the guild's data, then stops
        (Path(spec.out_dir) / "checkpoint.pt").write_bytes(b"state")
        if ending == "fails":
            raise RuntimeError("out of memory")
        raise worker_module.JobLost("stopped")

    monkeypatch.setattr(worker_module, "run_lora_job", train)
    async with rag_pool.connection() as conn:
        if ending == "is cancelled":
            await JobRepo(rag_pool).cancel(guild, job.id)
        elif ending == "is taken over":
            await conn.execute("UPDATE tuning_jobs SET worker = 'w2' WHERE id = %s", (job.id,))
    if ending == "is forgotten":
        real = worker.jobs.dataset

        async def dataset_then_forget(job_id: int):  # the forget lands while it trains
            rows = await real(job_id)
            await forget_guild(rag_pool, ingestor, data, guild)
            return rows

        monkeypatch.setattr(worker.jobs, "dataset", dataset_then_forget)
    assert await worker.run_job(job) == 0
    assert job_dir(str(data), job.id).exists() == kept
