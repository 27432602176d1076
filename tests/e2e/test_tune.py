"""/tune end to end: the Manage Server gate, uploads validated like `guru tune start` (nothing
queued on a bad line), a job followed from queue to trained adapter in the reply (progress,
then eval loss and the loss curve PNG), the reply window running out, and list/activate/
rollback switching only this server's adapter.

The trainer is the real `core.tuning.worker.Worker` run in the test process on a tiny random
Llama saved to disk (the bot's own base model would take minutes per job on this CPU).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from core.config import Settings
from core.tuning.jobs import JobRepo, TuningJob
from core.tuning.registry import ADAPTERS_CHANNEL, AdapterRepo
from core.tuning.worker import Worker, WorkerOptions
from tests.e2e.conftest import finished, guild_ready
from tests.e2e.emulator import MANAGE_GUILD, Emulator, Guild, Interaction
from tests.fixtures.models import make_tiny_llama

PAIRS = [
    {"instruction": "What is our server's mascot?", "output": "Zorbly the purple otter."},
    {"instruction": "Who is our mascot?", "output": "Zorbly the purple otter."},
    {"instruction": "Name our mascot.", "output": "Zorbly the purple otter."},
    {
        "messages": [
            {"role": "user", "content": "What animal is Zorbly?"},
            {"role": "assistant", "content": "A purple otter."},
        ]
    },
    {"instruction": "When do events start?", "output": "Fridays at 18:00 UTC."},
]
GOOD = "\n".join(json.dumps(p) for p in PAIRS).encode()
BAD = b"\n".join(
    [
        json.dumps(PAIRS[0]).encode(),
        b'{"instruction": "broken", "output": ',
        json.dumps({"instruction": "No answer"}).encode(),
    ]
)


@pytest.fixture(scope="module")
def tiny_model_dir(bundled_tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Llama as a HF directory, the base a test job trains on."""
    path = tmp_path_factory.mktemp("tiny-llama-hf")
    make_tiny_llama(bundled_tokenizer).model.save_pretrained(path)
    bundled_tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture
def tune(bot) -> Iterator[Any]:
    """The cog, polling its job every 0.1 s instead of 5 s."""
    cog = bot.get_cog("Tune")
    assert cog is not None, "bot.cogs.tune did not load"
    saved = cog.poll_s, cog.window_s
    cog.poll_s = 0.1
    yield cog
    cog.poll_s, cog.window_s = saved


@pytest.fixture
async def jobs(bot) -> AsyncIterator[JobRepo]:
    """The job table; a test's leftover queued jobs are cancelled so no later worker gets them."""
    repo = JobRepo(bot.services.db.pool)
    yield repo
    async with bot.services.db.pool.connection() as conn:
        await conn.execute(
            "UPDATE tuning_jobs SET status = 'cancelled', finished_at = now()"
            " WHERE status IN ('queued', 'running')"
        )


async def new_guild(bot, emulator: Emulator, name: str) -> Guild:
    guild = await emulator.create_guild(name)
    await guild_ready(bot, guild.id)
    return guild


async def tune_command(
    emulator: Emulator, guild: Guild, options: dict, member=None, timeout: float = 15.0
) -> Interaction:
    """Run /tune <sub> and wait for its (single, final) reply."""
    inter = await emulator.send_command(guild, member or emulator.owner(guild), "tune", options)
    await finished(emulator, inter, timeout)
    return inter


async def start(emulator: Emulator, guild: Guild, options: dict) -> Interaction:
    """/tune start; returns once the reply says queued (or refused)."""
    inter = await emulator.send_command(guild, emulator.owner(guild), "tune", {"start": options})
    await emulator.wait_for(
        lambda: inter.original is not None and not inter.loading and inter.original.content,
        15,
        what="the /tune start reply",
    )
    return inter


async def guild_jobs(jobs: JobRepo, guild: Guild) -> list[TuningJob]:
    return await jobs.for_guild(guild.id)


async def test_tune_is_for_moderators_only(bot, emulator: Emulator, jobs: JobRepo, tmp_path: Path):
    synced = {c["name"]: c for c in emulator.world.commands[None]}
    assert str(synced["tune"]["default_member_permissions"]) == str(MANAGE_GUILD)
    assert {o["name"] for o in synced["tune"]["options"]} == {
        "start",
        "status",
        "list",
        "activate",
        "rollback",
        "review",
        "cancel",
    }
    guild = await new_guild(bot, emulator, "tune-denied")
    member = emulator.add_member(guild, "mallory")
    for options in ({"start": {"data": emulator.upload("data.jsonl", GOOD)}}, {"rollback": {}}):
        inter = await emulator.send_command(guild, member, "tune", options)
        await emulator.wait_for(lambda i=inter: i.original is not None, 5, what="the refusal")
        assert inter.original.ephemeral and not inter.deferred
        assert "You need the Manage Server permission" in inter.original.content
    assert await guild_jobs(jobs, guild) == []
    # Autocomplete skips the interaction check in discord.py: it must not list versions either.
    await _record_version(jobs, AdapterRepo(bot.services.db.pool), guild.id, tmp_path)
    typed = await emulator.autocomplete(
        guild, member, "tune", {"activate": {"version": ""}}, focused="version"
    )
    await emulator.wait_for(lambda: typed.autocomplete_choices is not None, 5, what="choices")
    assert typed.autocomplete_choices == []


async def test_a_malformed_upload_names_its_lines_and_queues_nothing(bot, emulator, jobs, tune):
    guild = await new_guild(bot, emulator, "tune-bad-file")
    inter = await start(emulator, guild, {"data": emulator.upload("mascot.jsonl", BAD)})
    text = inter.original.content
    assert inter.deferred and inter.original.ephemeral
    assert "mascot.jsonl has 2 invalid line(s)" in text, text
    assert "line 2: not valid JSON" in text and 'line 3: "output" must be a non-empty' in text
    assert "line 1" not in text and "nothing was queued" in text
    assert await guild_jobs(jobs, guild) == []
    # Without a file the guild's approved 👍 answers are the data: there are none here yet.
    empty = await start(emulator, guild, {})
    assert "no approved 👍 answers yet" in empty.original.content
    assert await guild_jobs(jobs, guild) == []


async def test_one_live_job_per_server_and_a_few_starts_an_hour(bot, emulator, jobs, tune):
    guild = await new_guild(bot, emulator, "tune-fair")
    tune.window_s = 0.5  # nobody trains these jobs

    def upload() -> dict:
        return {"data": emulator.upload("data.jsonl", GOOD)}

    await start(emulator, guild, upload())
    (job,) = await guild_jobs(jobs, guild)
    second = await start(emulator, guild, upload())
    assert not second.deferred and second.original.ephemeral  # refused before the defer
    assert f"already has tuning job {job.id} queued" in second.original.content
    assert f"cancel job {job.id} first" in second.original.content
    assert len(await guild_jobs(jobs, guild)) == 1
    for _ in range(2):  # cancel, start again: the refused start above did not count
        await jobs.cancel(guild.id, (await jobs.live(guild.id))[0].id)
        assert (await start(emulator, guild, upload())).deferred
    await jobs.cancel(guild.id, (await jobs.live(guild.id))[0].id)
    fourth = await start(emulator, guild, upload())
    assert not fourth.deferred and fourth.original.ephemeral
    assert "This server can start 3 tuning jobs an hour; try again in 60 min." == (
        fourth.original.content
    )
    assert len(await guild_jobs(jobs, guild)) == 3 and await jobs.live(guild.id) == []


async def test_without_a_file_only_this_server_s_approved_answers_are_queued(
    bot, emulator, jobs, tune
):
    guild = await new_guild(bot, emulator, "tune-approved")
    other = await new_guild(bot, emulator, "tune-approved-other")
    rows = [
        (guild.id, 1, "What is our mascot?", "Zorbly.", 1, True),
        (guild.id, 2, "Who runs this?", "Ada.", 1, False),  # not approved by a moderator
        (other.id, 3, "Other server's secret?", "Secret.", 1, True),
    ]
    async with bot.services.db.pool.connection() as conn:
        for g in (guild.id, other.id):
            await conn.execute("INSERT INTO guilds (id) VALUES (%s) ON CONFLICT DO NOTHING", (g,))
        for g, d, q, a, f, ok in rows:
            await conn.execute(
                "INSERT INTO interactions (guild_id, discord_id, user_id, command, question,"
                " answer, feedback, approved) VALUES (%s, %s, 1, 'ask', %s, %s, %s, %s)",
                (g, d, q, a, f, ok),
            )
    tune.window_s = 0.5  # nobody trains it: the reply must give up, not hang
    inter = await start(emulator, guild, {"qlora": True})
    assert "1 example from approved answers" in inter.original.content, inter.texts()
    (job,) = await guild_jobs(jobs, guild)
    assert job.spec["qlora"] and job.status == "queued"
    assert [d["messages"][-1]["content"] for d in await jobs.dataset(job.id)] == ["Zorbly."]
    assert await guild_jobs(jobs, other) == []
    await emulator.wait_for(
        lambda: "still running" in inter.original.content, 10, what="the reply window to run out"
    )
    assert "see `/tune status`" in inter.original.content
    status = await tune_command(emulator, guild, {"status": {}})
    assert f"`#{job.id}` **queued** · QLoRA" in status.original.content, status.texts()
    elsewhere = await tune_command(emulator, other, {"status": {}})
    assert "No tuning jobs" in elsewhere.original.content


async def test_start_queues_then_the_reply_follows_the_trainer_to_a_new_version(
    bot, emulator, jobs, tune, tiny_model_dir, tmp_path
):
    guild = await new_guild(bot, emulator, "tune-train")
    owner = emulator.owner(guild)
    inter = await start(
        emulator, guild, {"data": emulator.upload("mascot.jsonl", GOOD), "epochs": 2}
    )
    (job,) = await guild_jobs(jobs, guild)
    assert inter.deferred and inter.original.ephemeral
    assert f"Tuning job {job.id} (LoRA, 2 epochs, 5 examples from mascot.jsonl) is queued" in (
        inter.original.content
    ), inter.texts()
    row = await _job_row(bot, job.id)
    assert row["guild_id"] == guild.id and row["requested_by"] == owner.user.id
    assert job.spec["epochs"] == 2 and job.spec["model"] == bot.settings.model
    assert len(await jobs.dataset(job.id)) == len(PAIRS)
    # Train on the tiny Llama (the job's row is the only way a trainer learns what to do).
    async with bot.services.db.pool.connection() as conn:
        await conn.execute(
            "UPDATE tuning_jobs SET spec = spec || %s WHERE id = %s",
            (Jsonb({"model": tiny_model_dir, "batch_size": 1, "checkpoint_every": 100}), job.id),
        )

    # A first trainer reports two training steps, then dies (its heartbeat goes stale).
    claimed = await jobs.claim("doomed-trainer", 60, 3)
    assert claimed is not None and claimed.id == job.id
    for step in (1, 3):
        await jobs.heartbeat(
            job.id,
            "doomed-trainer",
            {"phase": "training", "step": step, "total_steps": 8, "loss": 2.5},
        )
        await emulator.wait_for(
            lambda s=step: f"Training: step {s}/8 · loss 2.500" in inter.original.content,
            5,
            what=f"step {step} in the reply",
        )
    assert "left" in inter.original.content  # an ETA once two steps were seen

    # The real worker takes the job over and trains it to v1.
    trainer = Settings(data_dir=str(tmp_path / "trainer"), device="cpu", threads=1)
    options = WorkerOptions(heartbeat_s=0.1, stale_after_s=0.0, name="e2e-trainer")
    assert await Worker(bot.services.db.pool, trainer, options).run(once=True) == 1
    await finished(emulator, inter, 15, done=lambda i: i.original.attachments)
    text = inter.original.content
    assert text.startswith(f"✅ Tuning job {job.id} done: adapter **v1** (lora-float32, 8 steps)")
    assert "Eval loss " in text and "/tune activate version:1" in text, text
    ((name, png),) = inter.original.attachments
    assert name == "loss.png" and png.startswith(b"\x89PNG")
    assert (
        Path(tmp_path / "trainer" / "adapters" / str(guild.id) / "1" / "loss.png").read_bytes()
        == png
    )
    (version,) = await AdapterRepo(bot.services.db.pool).list(guild.id)
    assert version.job_id == job.id and not version.active  # finishing never activates
    listed = await tune_command(emulator, guild, {"list": {}})
    assert "(serving the base model)" in listed.original.content
    assert "▫️ **v1** · lora-float32 · eval loss" in listed.original.content, listed.texts()


async def test_activate_and_rollback_switch_only_this_server_s_adapter(
    bot, emulator, jobs, tune, tmp_path
):
    a = await new_guild(bot, emulator, "tune-switch-a")
    b = await new_guild(bot, emulator, "tune-switch-b")
    adapters = AdapterRepo(bot.services.db.pool)
    for guild, versions in ((a, 2), (b, 3)):
        for _ in range(versions):
            await _record_version(jobs, adapters, guild.id, tmp_path)
    await adapters.activate(b.id, 1)

    typed = await emulator.autocomplete(
        a, emulator.owner(a), "tune", {"activate": {"version": ""}}, focused="version"
    )
    await emulator.wait_for(lambda: typed.autocomplete_choices is not None, 5, what="choices")
    assert [c["value"] for c in typed.autocomplete_choices] == [2, 1]  # never b's v3
    assert typed.autocomplete_choices[0]["name"].startswith("v2 — lora-float32, eval 3.00 → 0.")

    async with await psycopg.AsyncConnection.connect(
        bot.services.db.pool.conninfo, autocommit=True
    ) as listener:
        await listener.execute(f"LISTEN {ADAPTERS_CHANNEL}")
        done = await tune_command(emulator, a, {"activate": {"version": 2}})
        assert done.original.content.startswith("✅ This server now uses adapter v2")
        notes = [n.payload async for n in listener.notifies(timeout=2, stop_after=1)]
        assert notes == [str(a.id)]  # running engines swap to it
    assert await _active(adapters, a) == 2 and await _active(adapters, b) == 1
    listed = await tune_command(emulator, a, {"list": {}})
    assert "(serving v2)" in listed.original.content
    assert "✅ **v2** **active**" in listed.original.content, listed.texts()

    stolen = await tune_command(emulator, a, {"activate": {"version": 3}})  # only b has a v3
    assert "no adapter version 3" in stolen.original.content and stolen.original.ephemeral
    assert await _active(adapters, a) == 2 and await _active(adapters, b) == 1

    back = await tune_command(emulator, a, {"rollback": {}})
    assert back.original.content == "↩️ Rolled back: this server now uses adapter v1."
    base = await tune_command(emulator, a, {"rollback": {}})
    assert base.original.content == "↩️ Rolled back: this server now uses the base model."
    again = await tune_command(emulator, a, {"rollback": {}})
    assert "uses the base model already" in again.original.content
    assert await _active(adapters, a) is None and await _active(adapters, b) == 1
    async with bot.services.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT action, actor_id FROM audit_log WHERE guild_id = %s"
            " AND action LIKE 'tune.%%' ORDER BY id",
            (a.id,),
        )
        owner = emulator.owner(a).user.id
        assert await cur.fetchall() == [
            ("tune.activate", owner),
            ("tune.rollback", owner),
            ("tune.rollback", owner),
        ]


async def _record_version(
    jobs: JobRepo, adapters: AdapterRepo, guild_id: int, tmp_path: Path
) -> None:
    """A finished job's version, as the worker records it (an empty adapter dir)."""
    job_id = await jobs.enqueue(guild_id, {}, [])
    claimed = await jobs.claim("w", 60, 3)
    assert claimed is not None and claimed.id == job_id
    source = tmp_path / f"run-{job_id}"
    source.mkdir()
    await adapters.record(
        guild_id=guild_id,
        job_id=job_id,
        worker="w",
        source_dir=str(source),
        data_dir=str(tmp_path / "data"),
        method="lora-float32",
        base_model="m",
        metrics={"eval_loss_before": 3.0, "eval_loss_after": 0.5},
        progress={},
    )


async def _active(adapters: AdapterRepo, guild: Guild) -> int | None:
    active = await adapters.active(guild.id)
    return active.version if active else None


async def _job_row(bot, job_id: int) -> dict[str, Any]:
    async with bot.services.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT guild_id, requested_by FROM tuning_jobs WHERE id = %s", (job_id,)
        )
        guild_id, requested_by = await cur.fetchone()
    return {"guild_id": guild_id, "requested_by": requested_by}
