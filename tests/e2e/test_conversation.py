"""Conversations end to end: a mention is answered like /ask, a reply to Guru's answer (a message
or a /ask reply) is a follow-up answered with the earlier turn in view, and other messages are
left alone. The answers come from the tiny talking Llama; what is checked is the reply chain,
the stored turns and the prompt the model was given."""

from __future__ import annotations

from tests.e2e.conftest import add_document, finished, guild_ready, recorded
from tests.e2e.emulator import Emulator, Guild, Message
from tests.e2e.test_ask import QUESTION, RAG_DOC

FOLLOW_UP = "and does it cite where the answer came from?"


async def new_guild(bot, emulator: Emulator, repo, name: str) -> Guild:
    guild = await emulator.create_guild(name)
    await guild_ready(bot, guild.id)
    await add_document(bot.services, guild.id, "Retrieval-augmented generation", RAG_DOC)
    await repo.set(guild.id, actor_id=None, max_answer_tokens=16)
    return guild


async def reply_to(emulator: Emulator, msg: Message, timeout: float = 30) -> Message:
    """Guru's reply to `msg`, once its 👍/👎 are on it."""

    def found() -> Message | None:
        for m in emulator.world.bot_messages(msg.channel_id):
            if m.reply_to is msg and m.custom_ids():
                return m
        return None

    await emulator.wait_for(lambda: found() is not None, timeout, what=f"a reply to {msg.id}")
    reply = found()
    assert reply is not None
    return reply


async def test_a_mention_is_answered_and_a_reply_follows_it_up(bot, emulator: Emulator, repo):
    guild = await new_guild(bot, emulator, repo, "conversation")
    general = next(iter(guild.channels.values()))
    member = emulator.add_member(guild, "curious")
    me = emulator.world.bot_user
    asked = await emulator.post_message(general, member, f"<@{me.id}> {QUESTION}", mentions=[me])
    first = await reply_to(emulator, asked)
    assert "**Sources**" in first.content and "Retrieval-augmented generation" in first.content
    assert first.custom_ids() == [f"guru:fb:{asked.id}:up", f"guru:fb:{asked.id}:down"]
    row = await recorded(bot.services, guild.id, asked.id)
    assert row["question"] == QUESTION and row["command"] == "ask"

    follow = await emulator.post_message(general, member, FOLLOW_UP, reply_to=first)
    await reply_to(emulator, follow)
    async with bot.services.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT parent_discord_id, prompt FROM interactions"
            " WHERE guild_id = %s AND discord_id = %s",
            (guild.id, follow.id),
        )
        parent, prompt = await cur.fetchone()
    assert parent == asked.id
    roles = [m["role"] for m in prompt]
    assert roles == ["system", "user", "assistant", "user"]  # the earlier turn is in view
    assert prompt[1]["content"] == QUESTION and prompt[-1]["content"].endswith(FOLLOW_UP)


async def test_a_reply_to_a_slash_answer_follows_it_up(bot, emulator: Emulator, repo):
    guild = await new_guild(bot, emulator, repo, "conversation-slash")
    member = emulator.add_member(guild, "asker")
    inter = await emulator.send_command(guild, member, "ask", {"question": QUESTION})
    await finished(emulator, inter, 30)
    await recorded(bot.services, guild.id, inter.id)
    follow = await emulator.post_message(
        next(iter(guild.channels.values())), member, FOLLOW_UP, reply_to=inter.original
    )
    await reply_to(emulator, follow)
    row = await recorded(bot.services, guild.id, follow.id)
    assert row["question"] == FOLLOW_UP
    async with bot.services.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT parent_discord_id FROM interactions WHERE guild_id = %s AND discord_id = %s",
            (guild.id, follow.id),
        )
        assert (await cur.fetchone())[0] == inter.id


async def test_other_messages_are_left_alone(bot, emulator: Emulator, repo):
    guild = await new_guild(bot, emulator, repo, "conversation-quiet")
    general = next(iter(guild.channels.values()))
    member = emulator.add_member(guild, "chatty")
    other = await emulator.post_message(general, member, "anyone up for a game tonight?")
    await emulator.post_message(general, member, "sure!", reply_to=other)  # a human's reply
    mention = await emulator.post_message(
        general,
        member,
        f"<@{emulator.world.bot_user.id}> {QUESTION}",
        mentions=[emulator.world.bot_user],
    )
    await reply_to(emulator, mention)  # by then the earlier two were handled
    replies = [m for m in emulator.world.bot_messages(general.id) if m.reply_to is not None]
    assert [m.reply_to for m in replies] == [mention]


async def test_a_channels_persona_applies_there_and_in_its_threads_only(
    bot, emulator: Emulator, repo
):
    guild = await new_guild(bot, emulator, repo, "persona")
    general = next(iter(guild.channels.values()))
    support = await emulator.add_channel(guild, "support")
    persona = "Answer like a ship's captain."
    owner = emulator.owner(guild)
    setting = await emulator.send_command(
        guild, owner, "settings", {"persona": {"channel": support, "text": persona}}
    )
    await finished(emulator, setting, 10)
    assert setting.original.content == f"In <#{support.id}> and its threads: prompt “{persona}”."

    async def system_prompt_in(channel) -> str:
        inter = await emulator.send_command(
            guild, owner, "ask", {"question": QUESTION}, channel=channel
        )
        await finished(emulator, inter, 30)
        row = await recorded(bot.services, guild.id, inter.id)
        async with bot.services.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT prompt FROM interactions WHERE guild_id = %s AND discord_id = %s",
                (guild.id, inter.id),
            )
            (prompt,) = await cur.fetchone()
        assert row["finish_reason"]
        return prompt[0]["content"]

    assert (await system_prompt_in(support)).endswith(persona)
    assert persona not in await system_prompt_in(general)
