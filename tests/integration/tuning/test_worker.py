"""`guru tune worker` as a real process: SIGKILLed mid-job, the next worker resumes the job from
its checkpoint and finishes it, and the active adapter never changes. Plus `guru tune start`
refusing a malformed file without queueing anything."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.db.pool import Pool
from core.tuning.jobs import JobRepo
from core.tuning.registry import AdapterRepo
from tests.fixtures.models import BUNDLED
from tests.fixtures.paths import REPO

from .conftest import EVAL_QUESTIONS, TRAIN_QUESTIONS, mascot_pairs

GUILD = 910


@pytest.fixture
def migrated(fresh_database_url: str, fresh_pool: Pool) -> tuple[str, Pool]:
    return fresh_database_url, fresh_pool


def _env(url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GURU_", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=url,
        GURU_DATA_DIR=str(data_dir),
        GURU_DEVICE="cpu",
        GURU_THREADS="1",
        GURU_LOG_LEVEL="INFO",
        HF_HUB_OFFLINE="1",
    )
    return env


def _worker(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.cli",
            "tune",
            "worker",
            "--once",
            "--heartbeat-s",
            "0.3",
            *extra,
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def _job_progress(pool: Pool, job_id: int) -> dict:
    return (await JobRepo(pool).get(GUILD, job_id)).progress


@pytest.mark.model
@pytest.mark.slow
async def test_a_killed_worker_s_job_resumes_and_finishes_with_the_active_adapter_untouched(
    migrated, model_settings, tmp_path
):
    url, pool = migrated
    hf_dir = Path(model_settings.data_dir) / "models" / BUNDLED
    assert (hf_dir / "config.json").is_file()
    jobs, adapters = JobRepo(pool), AdapterRepo(pool)
    # v1 exists and is active before the job runs.
    old = tmp_path / "v1"
    old.mkdir()
    (old / "adapter_config.json").write_text("{}")
    await jobs.enqueue(
        GUILD,
        {},
        [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}],
    )
    first = await jobs.claim("setup", 60, 3)
    await adapters.record(
        guild_id=GUILD,
        job_id=first.id,
        worker="setup",
        source_dir=str(old),
        data_dir=str(tmp_path / "data"),
        method="lora-float32",
        base_model="x",
        metrics={},
        progress={},
    )
    await adapters.activate(GUILD, 1)
    pairs = mascot_pairs(TRAIN_QUESTIONS + EVAL_QUESTIONS)
    spec = {
        "model": str(hf_dir),
        "max_steps": 6,
        "batch_size": 2,
        "learning_rate": 2e-3,
        "checkpoint_every": 1,
        "rank": 8,
    }
    job_id = await jobs.enqueue(GUILD, spec, [p.to_json() for p in pairs])

    env, log = _env(url, tmp_path / "data"), tmp_path / "worker.log"
    victim = _worker(env, log)
    try:
        deadline = time.monotonic() + 240
        while (await _job_progress(pool, job_id)).get("step", 0) < 3:
            assert victim.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.2)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
    killed_at = (await _job_progress(pool, job_id))["step"]
    assert (await jobs.get(GUILD, job_id)).status == "running"  # nobody knows it died yet
    assert (await adapters.active(GUILD)).version == 1

    await asyncio.sleep(1.2)  # let the heartbeat go stale
    rescuer = _worker(env, log, "--stale-after-s", "1")
    code = await asyncio.to_thread(rescuer.wait, 300)
    assert code == 0, log.read_text()[-3000:]

    job = await jobs.get(GUILD, job_id)
    assert job.status == "done" and job.attempts == 2, (job, log.read_text()[-3000:])
    assert 2 <= job.progress["resumed_from"] <= killed_at  # from a checkpoint, not from zero
    assert job.adapter_version == 2
    assert job.progress["eval_loss_after"] < job.progress["eval_loss_before"]
    v2 = await adapters.get(GUILD, 2)
    assert v2.metrics["resumed_from"] == job.progress["resumed_from"]
    assert len(v2.metrics["train_losses"]) == 6  # the killed run's losses were kept
    assert (Path(v2.path) / "adapter_model.safetensors").is_file()
    assert (Path(v2.path) / "loss.png").is_file()
    assert (await adapters.active(GUILD)).version == 1  # still the one the moderators chose
    assert not (tmp_path / "data" / "tuning" / "jobs" / str(job_id)).exists()  # cleaned up


async def test_malformed_jsonl_is_refused_with_line_numbers_and_nothing_is_queued(
    migrated, tmp_path
):
    url, pool = migrated
    upload = tmp_path / "data.jsonl"
    upload.write_text(
        "\n".join(
            [
                json.dumps({"instruction": "What is our mascot?", "output": "Zorbly"}),
                '{"instruction": "broken", "output": ',
                json.dumps({"instruction": "No answer"}),
            ]
        )
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "core.cli",
            "tune",
            "start",
            "--guild",
            str(GUILD),
            "--data",
            str(upload),
        ],
        cwd=REPO,
        env=_env(url, tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "line 2: not valid JSON" in done.stderr
    assert 'line 3: "output" must be a non-empty string' in done.stderr
    assert "line 1" not in done.stderr
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM tuning_jobs")
        assert (await cur.fetchone())[0] == 0
