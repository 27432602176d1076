"""`core.forget.forget_guild`: rows, adapter files and job folders of one guild, nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import psycopg

from core.db.pool import Pool
from core.forget import forget_guild
from core.rag.ingest import Ingestor
from core.tuning.jobs import JobRepo
from core.tuning.registry import ADAPTERS_CHANNEL
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
