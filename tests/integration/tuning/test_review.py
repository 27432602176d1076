"""The moderator's review of 👍 answers (core.tuning.review) on the real database: what is
pending, approve/reject (audited, all or none), guild isolation, and what tuning then reads;
`guru tune review|approve|reject|cancel` as processes."""

from __future__ import annotations

import json

import pytest

from core.errors import InvalidInput, NotFound
from core.tuning.data import approved_pairs
from core.tuning.jobs import JobRepo
from core.tuning.registry import AdapterRepo
from core.tuning.review import ReviewRepo
from core.tuning.tuner import cancel_job, job_spec, queue_job

from .test_cli import _guru
from .test_worker import _env, migrated  # noqa: F401 - fixture

GUILD, OTHER = 1_860, 1_870
MOD = 555


async def _answers(pool, rows) -> dict[str, int]:
    """Insert (guild, name, command, feedback) answers; their row ids by name."""
    ids = {}
    async with pool.connection() as conn:
        for guild in {r[0] for r in rows}:
            await conn.execute(
                "INSERT INTO guilds (id) VALUES (%s) ON CONFLICT DO NOTHING", (guild,)
            )
        for n, (guild, name, command, feedback) in enumerate(rows, start=1):
            cur = await conn.execute(
                "INSERT INTO interactions (guild_id, discord_id, channel_id, user_id, command,"
                " question, answer, feedback) VALUES (%s, %s, 77, 8, %s, %s, %s, %s) RETURNING id",
                (guild, 10_000 + n, command, f"Q {name}?", f"A {name}.", feedback),
            )
            ids[name] = (await cur.fetchone())[0]
    return ids


ROWS = [
    (GUILD, "ask", "ask", 1),
    (GUILD, "explain", "explain", 1),
    (GUILD, "calc", "calc", 1),  # not tunable
    (GUILD, "down", "ask", -1),
    (GUILD, "unrated", "ask", None),
    (OTHER, "other", "ask", 1),
]


async def test_review_approve_reject_and_what_tuning_reads(migrated):  # noqa: F811
    _, pool = migrated
    ids = await _answers(pool, ROWS)
    repo = ReviewRepo(pool)
    pending = await repo.pending(GUILD)
    assert [i.id for i in pending] == [ids["ask"], ids["explain"]]
    assert pending[0].question == "Q ask?" and pending[0].channel_id == 77
    assert (await repo.counts(GUILD)).__dict__ == {"approved": 0, "pending": 2, "rejected": 0}
    assert (await repo.next_pending(GUILD, after=ids["ask"])).id == ids["explain"]
    assert await repo.next_pending(GUILD, after=ids["explain"]) is None

    # Another guild's id, a 👎, an unrated and a /calc answer: refused, and nothing changes.
    for name in ("other", "down", "unrated", "calc"):
        with pytest.raises(NotFound, match=f"#{ids[name]} to review"):
            await repo.decide(GUILD, [ids["ask"], ids[name]], True, MOD)
    assert (await repo.counts(GUILD)).pending == 2 and await approved_pairs(pool, GUILD) == []
    with pytest.raises(InvalidInput):
        await repo.decide(GUILD, [], True)

    (approved,) = await repo.decide(GUILD, [ids["ask"]], True, MOD)
    assert approved.changed and approved.before == "pending" and approved.approved
    (rejected,) = await repo.decide(GUILD, [ids["explain"]], False, MOD)
    assert rejected.changed and not rejected.approved
    assert await repo.pending(GUILD) == []  # a rejected answer never comes back
    assert (await repo.counts(GUILD)).__dict__ == {"approved": 1, "pending": 0, "rejected": 1}
    assert [(p.messages, p.output) for p in await approved_pairs(pool, GUILD)] == [
        ((("user", "Q ask?"),), "A ask.")
    ]

    # A button press after someone else decided leaves the decision alone.
    (kept,) = await repo.decide(GUILD, [ids["explain"]], True, MOD + 1, pending_only=True)
    assert not kept.changed and kept.before == "rejected" and not kept.approved
    assert len(await approved_pairs(pool, GUILD)) == 1
    # An explicit decision (the CLI) changes it; the same one again is a no-op.
    (changed,) = await repo.decide(GUILD, [ids["explain"]], True)
    assert changed.changed and changed.before == "rejected"
    (same,) = await repo.decide(GUILD, [ids["explain"]], True)
    assert not same.changed
    assert len(await approved_pairs(pool, GUILD)) == 2
    # The asker taking the 👍 back takes the pair out again.
    async with pool.connection() as conn:
        await conn.execute("UPDATE interactions SET feedback = -1 WHERE id = %s", (ids["ask"],))
        cur = await conn.execute(
            "SELECT actor_id, action, detail FROM audit_log WHERE guild_id = %s"
            " AND action LIKE 'tune.%%' ORDER BY id",
            (GUILD,),
        )
        audit = await cur.fetchall()
        cur = await conn.execute(
            "SELECT reviewed_by FROM interactions WHERE id = %s", (ids["explain"],)
        )
        assert (await cur.fetchone())[0] is None  # the CLI's decision came last
    assert [p.output for p in await approved_pairs(pool, GUILD)] == ["A explain."]
    assert audit == [
        (MOD, "tune.approve", {"interaction": ids["ask"], "before": "pending"}),
        (MOD, "tune.reject", {"interaction": ids["explain"], "before": "pending"}),
        (None, "tune.approve", {"interaction": ids["explain"], "before": "rejected"}),
    ]
    # The other guild's queue was never touched.
    assert [i.id for i in await ReviewRepo(pool).pending(OTHER)] == [ids["other"]]


async def test_cancel_job_is_per_guild_and_audited(migrated):  # noqa: F811
    _, pool = migrated
    jobs = JobRepo(pool)
    job_id = await jobs.enqueue(GUILD, {}, [])
    assert [j.id for j in await jobs.live(GUILD)] == [job_id] and await jobs.live(OTHER) == []
    with pytest.raises(NotFound, match=f"no tuning job {job_id}"):
        await cancel_job(pool, OTHER, job_id, actor_id=MOD)
    was = await cancel_job(pool, GUILD, job_id, actor_id=MOD)
    assert was.status == "queued" and (await jobs.get(GUILD, job_id)).status == "cancelled"
    assert await jobs.live(GUILD) == []
    with pytest.raises(InvalidInput, match="is cancelled already"):
        await cancel_job(pool, GUILD, job_id)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT actor_id, detail FROM audit_log WHERE action = 'tune.cancel'"
        )
        assert await cur.fetchall() == [(MOD, {"job": job_id})]


async def test_not_found_messages_name_no_front_end(migrated):  # noqa: F811
    _, pool = migrated
    with pytest.raises(NotFound) as adapter:
        await AdapterRepo(pool).get(GUILD, 9)
    with pytest.raises(NotFound) as job:
        await JobRepo(pool).get(GUILD, 9)
    for exc in (adapter.value, job.value):
        assert "guru" not in exc.user_message and "`" not in exc.user_message


@pytest.mark.slow  # seven `guru` processes
async def test_tune_review_cli(migrated, tmp_path):  # noqa: F811
    url, pool = migrated
    env = _env(url, tmp_path / "data")
    ids = await _answers(pool, ROWS)
    g = str(GUILD)
    listed = await _guru(env, "review", "--guild", g, "--json")
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    assert [a["id"] for a in body["answers"]] == [ids["ask"], ids["explain"]]
    assert (body["approved"], body["pending"]) == (0, 2)
    stolen = await _guru(env, "approve", str(ids["ask"]), str(ids["other"]), "--guild", g)
    assert stolen.returncode == 2 and f"#{ids['other']}" in stolen.stderr
    assert "Nothing was changed" in stolen.stderr
    approved = await _guru(env, "approve", str(ids["ask"]), "--guild", g)
    assert approved.returncode == 0, approved.stderr
    assert f"Approved #{ids['ask']}." in approved.stdout
    rejected = await _guru(env, "reject", str(ids["explain"]), "--guild", g)
    assert f"Rejected #{ids['explain']}." in rejected.stdout
    assert "Guild 1860: 1 approved, 0 pending." in rejected.stdout
    text = await _guru(env, "review", "--guild", g)
    assert "no 👍 answers waiting" in text.stdout and "1 approved, 0 pending, 1 rejected" in (
        text.stdout
    )
    assert [p.output for p in await approved_pairs(pool, GUILD)] == ["A ask."]
    job_id = await JobRepo(pool).enqueue(GUILD, {}, [])
    cancelled = await _guru(env, "cancel", str(job_id), "--guild", g)
    assert f"Cancelled tuning job {job_id}" in cancelled.stdout, cancelled.stderr
    again = await _guru(env, "cancel", str(job_id), "--guild", g)
    assert again.returncode != 0 and "is cancelled already" in again.stderr


async def test_start_without_approved_answers_says_how_many_wait_for_review(
    migrated,  # noqa: F811
):
    _, pool = migrated
    await _answers(pool, ROWS)
    with pytest.raises(InvalidInput, match="2 👍 answers are waiting for a moderator's review"):
        await queue_job(pool, GUILD, job_spec("m"))
    assert await JobRepo(pool).for_guild(GUILD) == []
