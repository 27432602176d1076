"""core/helpdesk.py on the real embedded Postgres: help channels and Guru's threads are per
guild, audited, and a thread's latest turn is its newest follow-up, else its first question."""

from __future__ import annotations

import itertools

from core.helpdesk import GuruThread, GuruThreads, HelpChannel, HelpChannels
from core.interactions import AnswerRecord, InteractionRepo

_ids = itertools.count(7_100_001)


async def test_help_channels_are_per_guild_and_audited(db_pool):
    repo = HelpChannels(db_pool)
    a, b = next(_ids), next(_ids)
    await repo.set(a, HelpChannel(11, 99, True), actor_id=5, guild_name="A")
    await repo.set(a, HelpChannel(11, None, False), actor_id=5)  # changed in place
    await repo.set(a, HelpChannel(12), actor_id=5)
    assert await repo.get(a, 11) == HelpChannel(11, None, False)
    assert [h.channel_id for h in await repo.of_guild(a)] == [11, 12]
    assert await repo.get(b, 11) is None and await repo.of_guild(b) == []
    assert not await repo.clear(b, 11, actor_id=5)  # another guild can't clear it
    assert await repo.clear(a, 11, actor_id=5)
    assert await repo.get(a, 11) is None
    async with db_pool.connection() as conn:
        cur = await conn.execute("SELECT action FROM audit_log WHERE guild_id = %s", (a,))
        actions = [r[0] for r in await cur.fetchall()]
    assert actions.count("settings.help_channel") == 3
    assert "settings.help_channel.clear" in actions


async def test_a_threads_latest_turn_and_helper_reply(db_pool):
    threads, answers = GuruThreads(db_pool), InteractionRepo(db_pool)
    guild, other = next(_ids), next(_ids)
    question, thread_id, follow = next(_ids), next(_ids), next(_ids)

    async def answered(discord_id: int, channel_id: int) -> None:
        await answers.record(
            AnswerRecord(guild, discord_id, 7, "ask", "q", "an answer", channel_id=channel_id)
        )

    await answered(question, 500)  # a /ask in the parent channel opened the thread
    known = GuruThread(thread_id, "ask", 500, 7, question)
    await threads.add(guild, known)
    await threads.add(guild, known)  # idempotent
    assert await threads.get(guild, thread_id) == known
    assert await threads.get(other, thread_id) is None
    assert await threads.latest_turn(guild, known) == question
    assert await threads.latest_turn(other, known) is None
    await answered(follow, thread_id)  # a follow-up asked in the thread
    assert await threads.latest_turn(guild, known) == follow

    await threads.helper_replied(other, thread_id)  # no effect on another guild's row
    assert (await threads.get(guild, thread_id)).helper_replied_at is None
    await threads.helper_replied(guild, thread_id)
    first = (await threads.get(guild, thread_id)).helper_replied_at
    await threads.helper_replied(guild, thread_id)
    assert first is not None and (await threads.get(guild, thread_id)).helper_replied_at == first
    state = await threads.question(guild, follow)
    assert state is not None and state.user_id == 7 and state.needs_help_at is None
