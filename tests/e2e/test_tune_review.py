"""/tune review and /tune cancel end to end: a real /ask answer rated 👍 by its asker comes up
for review; Approve makes it a pair of the next `/tune start` (no file), Reject keeps an answer
out for good; another server's answers never show; only the moderator who opened a review can
press its buttons; /tune cancel (with autocomplete over live jobs) stops a queued job.
"""

from __future__ import annotations

import asyncio

from core.interactions import AnswerRecord, InteractionRepo
from core.tuning.jobs import JobRepo
from tests.e2e.conftest import finished, recorded
from tests.e2e.emulator import MANAGE_GUILD, Emulator, Guild, Interaction
from tests.e2e.test_ask import QUESTION, ask_in_new_guild, rated
from tests.e2e.test_tune import GOOD, guild_jobs, jobs, new_guild, start, tune, tune_command  # noqa: F401


async def rated_up(bot, guild: Guild, discord_id: int, question: str, answer: str) -> None:
    """A finished answer its asker (user 42) rated 👍, stored as /ask stores one."""
    repo = InteractionRepo(bot.services.db.pool)
    await repo.record(
        AnswerRecord(
            guild_id=guild.id,
            discord_id=discord_id,
            user_id=42,
            channel_id=next(iter(guild.channels)),
            command="ask",
            question=question,
            answer="",
        )
    )
    await repo.finish(guild.id, discord_id, answer, "stop", 10)
    assert await repo.set_feedback(guild.id, discord_id, 42, 1)


async def review(emulator: Emulator, guild: Guild, member=None) -> Interaction:
    return await tune_command(emulator, guild, {"review": {}}, member)


async def click(emulator: Emulator, inter: Interaction, action: str, member) -> Interaction:
    """Press the review button `action` on the review message; wait for the answer."""
    (custom_id,) = [
        c for c in inter.original.custom_ids() if c.startswith(f"guru:review:{action}:")
    ]
    pressed = await emulator.click(inter.original, custom_id, member)
    await emulator.wait_for(lambda: pressed.acked, 5, what=f"the {action} click's answer")
    await asyncio.sleep(0.05)  # the reply's body lands just after the callback's ack
    return pressed


async def test_an_approved_thumbs_up_answer_is_trained_on_and_a_rejected_one_never(
    bot,
    emulator,
    repo,
    jobs,  # noqa: F811
    tune,  # noqa: F811
):
    guild, asker, asked = await ask_in_new_guild(bot, emulator, repo, "review-ask", tokens=16)
    await finished(emulator, asked, 60, done=rated)
    await recorded(bot.services, guild.id, asked.id)
    async with bot.services.db.pool.connection() as conn:  # what tuning learns (migration 0009)
        cur = await conn.execute(
            "SELECT model_answer FROM interactions WHERE guild_id = %s AND discord_id = %s",
            (guild.id, asked.id),
        )
        (model_answer,) = await cur.fetchone()
    assert model_answer
    up = await emulator.click(asked.messages[-1], f"guru:fb:{asked.id}:up", asker)
    await emulator.wait_for(lambda: up.original is not None, 5, what="the 👍 reply")
    await rated_up(bot, guild, asked.id + 1, "Is the wiki down?", "No, it is up.")
    other = await new_guild(bot, emulator, "review-ask-other")
    await rated_up(bot, other, asked.id + 2, "Other server's secret?", "Hunter2.")

    owner = emulator.owner(guild)
    inter = await review(emulator, guild)
    text = inter.original.content
    assert inter.deferred and inter.original.ephemeral
    assert f"/ask by <@{asker.user.id}>" in text and QUESTION in text, text
    assert "0 approved, 2 pending" in text and len(text) <= 2000
    assert "Hunter2" not in text and "Other server" not in text
    assert [c.split(":")[2] for c in inter.original.custom_ids()] == [
        "approve",
        "reject",
        "skip",
        "done",
    ]
    assert all(c.endswith(f":{owner.user.id}") for c in inter.original.custom_ids())

    # Only the moderator who opened the review may press its buttons.
    moderators = await emulator.add_role(guild, "mods", MANAGE_GUILD)
    for who in (
        emulator.add_member(guild, "other-mod", (moderators,)),
        emulator.add_member(guild, "mallory"),
    ):
        stolen = await click(emulator, inter, "approve", who)
        await emulator.wait_for(lambda s=stolen: s.original is not None, 5, what="refusal")
        assert stolen.original.ephemeral and "Only the moderator who opened" in (
            stolen.original.content
        )
    assert inter.original.content == text  # nothing moved

    approved = await click(emulator, inter, "approve", owner)
    assert approved.callback_type == 7  # the review message itself shows the next answer
    text = inter.original.content
    assert "✅ Approved answer #" in text and "Is the wiki down?" in text, text
    assert "1 approved, 1 pending" in text and "Hunter2" not in text
    await click(emulator, inter, "reject", owner)
    text = inter.original.content
    assert "🗑️ Rejected answer #" in text and "Nothing left to review" in text, text
    assert "1 approved, 0 pending" in text and inter.original.custom_ids() == []
    again = await review(emulator, guild)
    assert "Nothing left to review" in again.original.content  # a rejected answer never returns

    tune.window_s = 0.5  # nobody trains the job
    queued = await start(emulator, guild, {})
    assert "1 example from approved answers" in queued.original.content, queued.texts()
    (job,) = await guild_jobs(jobs, guild)
    # the prompt the model answered (rules, sources, question) and its own answer
    ((roles, asked_text, output),) = [
        ([m["role"] for m in d["messages"]], d["messages"][-2]["content"], d["messages"][-1])
        for d in await jobs.dataset(job.id)
    ]
    assert roles == ["system", "user", "assistant"] and asked_text.endswith(QUESTION)
    assert output["content"] == model_answer.strip()
    # The other server's 👍 answer is still pending there, untouched.
    elsewhere = await review(emulator, other)
    assert "Hunter2" in elsewhere.original.content and "0 approved, 1 pending" in (
        elsewhere.original.content
    )


async def test_skip_and_done_leave_answers_pending_and_non_moderators_cannot_review(bot, emulator):
    guild = await new_guild(bot, emulator, "review-skip")
    await rated_up(bot, guild, 9_001, "First question?", "First answer.")
    await rated_up(bot, guild, 9_002, "Second question?", "Second answer.")
    mallory = emulator.add_member(guild, "mallory")
    refused = await emulator.send_command(guild, mallory, "tune", {"review": {}})
    await emulator.wait_for(lambda: refused.original is not None, 5, what="the refusal")
    assert refused.original.ephemeral and not refused.deferred
    assert "You need the Manage Server permission" in refused.original.content

    owner = emulator.owner(guild)
    inter = await review(emulator, guild)
    assert "First question?" in inter.original.content
    await click(emulator, inter, "skip", owner)
    assert "Second question?" in inter.original.content
    assert "0 approved, 2 pending" in inter.original.content
    await click(emulator, inter, "skip", owner)
    assert "run `/tune review` again to see those" in inter.original.content
    inter = await review(emulator, guild)  # skipped answers come back in a new review
    assert "First question?" in inter.original.content
    await click(emulator, inter, "done", owner)
    assert "Review closed" in inter.original.content and inter.original.custom_ids() == []
    assert "0 approved, 2 pending" in inter.original.content


async def test_cancel_stops_a_queued_job_of_this_server_only(
    bot,
    emulator,
    jobs,  # noqa: F811
    tune,  # noqa: F811
):
    guild = await new_guild(bot, emulator, "tune-cancel")
    other = await new_guild(bot, emulator, "tune-cancel-other")
    theirs = await JobRepo(bot.services.db.pool).enqueue(other.id, {}, [])
    queued = await start(emulator, guild, {"data": emulator.upload("mascot.jsonl", GOOD)})
    (job,) = await guild_jobs(jobs, guild)
    owner = emulator.owner(guild)
    typed = await emulator.autocomplete(
        guild, owner, "tune", {"cancel": {"job": ""}}, focused="job"
    )
    await emulator.wait_for(lambda: typed.autocomplete_choices is not None, 5, what="choices")
    assert [c["value"] for c in typed.autocomplete_choices] == [job.id]  # never `theirs`
    assert typed.autocomplete_choices[0]["name"].startswith(f"#{job.id} queued · LoRA")
    nosy = await emulator.autocomplete(
        guild, emulator.add_member(guild, "eve"), "tune", {"cancel": {"job": ""}}, focused="job"
    )
    await emulator.wait_for(lambda: nosy.autocomplete_choices is not None, 5, what="choices")
    assert nosy.autocomplete_choices == []

    stolen = await tune_command(emulator, guild, {"cancel": {"job": theirs}})
    assert f"no tuning job {theirs}" in stolen.original.content
    assert (await jobs.get(other.id, theirs)).status == "queued"
    done = await tune_command(emulator, guild, {"cancel": {"job": job.id}})
    assert done.original.content.startswith(f"⏹️ Cancelled tuning job {job.id} (it was queued)")
    assert (await jobs.get(guild.id, job.id)).status == "cancelled"
    await emulator.wait_for(
        lambda: "was cancelled" in queued.original.content, 5, what="the /tune start reply to end"
    )
    twice = await tune_command(emulator, guild, {"cancel": {"job": job.id}})
    assert "is cancelled already" in twice.original.content
    async with bot.services.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT actor_id FROM audit_log WHERE guild_id = %s AND action = 'tune.cancel'",
            (guild.id,),
        )
        assert await cur.fetchall() == [(owner.user.id,)]
