"""`guru tune` end to end against a real database: start from approved answers, list,
activate, rollback, export, status."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.tuning.jobs import JobRepo
from core.tuning.registry import AdapterRepo
from tests.fixtures.paths import REPO

from .test_worker import _env, migrated  # noqa: F401 - fixture

GUILD, OTHER = 930, 940


async def _guru(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "core.cli", "tune", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # eight `guru` processes
async def test_tune_cli_round_trip(migrated, tmp_path):  # noqa: F811
    url, pool = migrated
    env = _env(url, tmp_path / "data")
    async with pool.connection() as conn:
        for guild in (GUILD, OTHER):
            await conn.execute("INSERT INTO guilds (id) VALUES (%s)", (guild,))
        rows = [
            (GUILD, 1, "What is our mascot?", "Zorbly.", 1, True),
            (GUILD, 2, "Who runs the server?", "Ada.", 1, False),  # not approved
            (GUILD, 3, "Rules?", "Be kind.", -1, True),  # thumbs down
            (OTHER, 4, "Other guild?", "Secret.", 1, True),
        ]  # another guild's
        for g, d, q, a, f, ok in rows:
            await conn.execute(
                "INSERT INTO interactions (guild_id, discord_id, user_id, command, question,"
                " answer, feedback, approved) VALUES (%s, %s, 1, 'ask', %s, %s, %s, %s)",
                (g, d, q, a, f, ok),
            )
    started = await _guru(env, "start", "--guild", str(GUILD), "--qlora", "--epochs", "2")
    assert started.returncode == 0, started.stderr
    assert "1 pairs, QLoRA" in started.stdout
    (job,) = await JobRepo(pool).for_guild(GUILD)
    assert job.spec["qlora"] and job.spec["epochs"] == 2
    dataset = await JobRepo(pool).dataset(job.id)
    assert [p["messages"][-1]["content"] for p in dataset] == ["Zorbly."]

    again = await _guru(env, "start", "--guild", str(GUILD))  # one live job per guild
    assert again.returncode != 0 and f"already has tuning job {job.id} queued" in again.stderr

    # Two finished versions, as the worker records them (the first from the queued job).
    for n in (1, 2):
        if n == 2:
            await JobRepo(pool).enqueue(GUILD, {}, [])
        claimed = await JobRepo(pool).claim("w", 60, 3)
        source = tmp_path / f"run{n}"
        source.mkdir()
        (source / "adapter_config.json").write_text(json.dumps({"n": n}))
        await AdapterRepo(pool).record(
            guild_id=GUILD,
            job_id=claimed.id,
            worker="w",
            source_dir=str(source),
            data_dir=str(tmp_path / "data"),
            method="lora-float32",
            base_model="m",
            metrics={"eval_loss_before": 3.0, "eval_loss_after": 0.5},
            progress={},
        )
    assert (
        "Guild 930 now uses adapter v2."
        in (await _guru(env, "activate", "2", "--guild", str(GUILD))).stdout
    )
    listed = json.loads((await _guru(env, "list", "--guild", str(GUILD), "--json")).stdout)
    assert [(a["version"], a["active"]) for a in listed] == [(1, False), (2, True)]
    assert "now uses adapter v1" in (await _guru(env, "rollback", "--guild", str(GUILD))).stdout
    out = tmp_path / "export"
    exported = await _guru(env, "export", "1", "--guild", str(GUILD), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert json.loads((out / "adapter_config.json").read_text()) == {"n": 1}
    missing = await _guru(env, "export", "1", "--guild", str(OTHER), "--out", str(tmp_path / "x"))
    assert missing.returncode == 2 and "no adapter version 1" in missing.stderr
    await JobRepo(pool).enqueue(GUILD, {}, [])  # live again once both ended
    status = await _guru(env, "status")
    assert status.returncode == 0 and "queued" in status.stdout and "-> v2" in status.stdout
    assert not Path(tmp_path / "x").exists()
