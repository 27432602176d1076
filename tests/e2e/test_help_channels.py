"""Help channels and answer threads end to end, through the emulator and the real discord.py
client: a forum post and a help channel's message are answered in a thread with sources, 👍/👎
and "Still need help?" (which pings the helper role, for the asker only, and marks the question
unanswered); below the relevance floor nothing is posted, or the refusal is; Guru stays out of
a thread once a helper replied; /ask opens a thread whose messages are follow-ups; and
/settings refuses a help channel that can't work (no Message Content intent, no permissions).
The answers come from the tiny talking Llama; what is checked is where they go and what is
stored."""

from __future__ import annotations

import asyncio

from core.helpdesk import GuruThreads
from tests.e2e.conftest import add_document, finished, guild_ready, recorded
from tests.e2e.emulator import BOT_PERMISSIONS, Channel, Emulator, Guild, Message, Role
from tests.e2e.emulator.threads import CREATE_PUBLIC_THREADS
from tests.e2e.test_ask import QUESTION, RAG_DOC

FOLLOW_UP = "and does it cite where the answer came from?"
OFF_TOPIC = "How do I bake sourdough bread?"


async def new_guild(bot, emulator: Emulator, repo, name: str, **options) -> Guild:
    guild = await emulator.create_guild(name, **options)
    await guild_ready(bot, guild.id)
    await add_document(bot.services, guild.id, "Retrieval-augmented generation", RAG_DOC)
    await repo.set(guild.id, actor_id=None, max_answer_tokens=16)
    return guild


async def settings(emulator: Emulator, guild: Guild, command: str, **options) -> str:
    """Run `/settings <command> …` as the owner; the (ephemeral) reply's text."""
    return (await settings_reply(emulator, guild, command, **options)).content


async def settings_reply(emulator: Emulator, guild: Guild, command: str, **options) -> Message:
    inter = await emulator.send_command(
        guild, emulator.owner(guild), "settings", {command: options}
    )

    def replied() -> bool:
        return bool(inter.messages and (inter.messages[-1].content or inter.messages[-1].embeds))

    await emulator.wait_for(replied, 10, what=f"/settings {command}")
    return inter.messages[-1]


async def cached(bot, emulator: Emulator, channel: Channel) -> None:
    await emulator.wait_for(lambda: bot.get_channel(channel.id) is not None, 5, what="channel")


def answers_in(emulator: Emulator, thread_id: int) -> list[Message]:
    """Guru's finished answers in a thread (those with buttons under them)."""
    return [m for m in emulator.world.bot_messages(thread_id) if m.custom_ids()]


async def answer_in(emulator: Emulator, thread_id: int, count: int = 1) -> Message:
    await emulator.wait_for(
        lambda: len(answers_in(emulator, thread_id)) >= count, 30, what=f"answer {count}"
    )
    return answers_in(emulator, thread_id)[count - 1]


async def stays_silent(emulator: Emulator, channel_id: int, seconds: float = 2.0) -> None:
    """Nothing reaches `channel_id` for a while: not even "typing…", the first thing an answer
    does."""
    before = len(emulator.rest.find(None, f"/channels/{channel_id}/"))
    await asyncio.sleep(seconds)
    assert len(emulator.rest.find(None, f"/channels/{channel_id}/")) == before


async def needs_help_at(services, guild_id: int, discord_id: int):
    async with services.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT needs_help_at FROM interactions WHERE guild_id = %s AND discord_id = %s",
            (guild_id, discord_id),
        )
        row = await cur.fetchone()
    return row[0] if row else None


async def helper_setup(emulator: Emulator, guild: Guild) -> tuple[Role, Channel]:
    helpers = await emulator.add_role(guild, "helpers", mentionable=True)
    forum = await emulator.add_forum(guild, "help", tags=("question",))
    return helpers, forum


async def test_a_forum_post_is_answered_and_still_need_help_pings_the_helpers(
    bot, emulator: Emulator, repo
):
    guild = await new_guild(bot, emulator, repo, "forum-help")
    helpers, forum = await helper_setup(emulator, guild)
    await cached(bot, emulator, forum)
    done = await settings(emulator, guild, "help-channel", channel=forum, helper_role=helpers)
    assert f"Every new post in <#{forum.id}>" in done and f"<@&{helpers.id}>" in done

    asker = emulator.add_member(guild, "asker")
    thread, post = await emulator.create_post(forum, asker, "RAG", QUESTION, tags=("question",))
    answer = await answer_in(emulator, thread.id)
    assert "**Sources**" in answer.content and "Retrieval-augmented generation" in answer.content
    assert answer.custom_ids() == [
        f"guru:fb:{post.id}:up",
        f"guru:fb:{post.id}:down",
        f"guru:needhelp:{post.id}",
    ]
    row = await recorded(bot.services, guild.id, post.id)
    assert row["command"] == "ask" and row["question"] == f"RAG\n{QUESTION}"  # title included

    # only the asker may call the helpers
    bystander = emulator.add_member(guild, "bystander")
    nosy = await emulator.click(answer, f"guru:needhelp:{post.id}", bystander)
    await emulator.wait_for(lambda: nosy.original is not None, 5, what="the refusal")
    assert nosy.original.ephemeral and "Only the person who asked" in nosy.original.content
    assert await needs_help_at(bot.services, guild.id, post.id) is None

    click = await emulator.click(answer, f"guru:needhelp:{post.id}", asker)
    await emulator.wait_for(lambda: click.original is not None, 5, what="the ping")
    ping = click.original
    assert not ping.ephemeral and ping.channel_id == thread.id
    assert ping.pinged_role_ids() == [helpers.id]  # the role is notified, nobody else
    assert await needs_help_at(bot.services, guild.id, post.id) is not None
    await emulator.wait_for(
        lambda: answer.custom_ids() == [f"guru:fb:{post.id}:up", f"guru:fb:{post.id}:down"],
        5,
        what="the Still need help? button to go",
    )


async def test_follow_ups_in_a_help_thread_until_a_helper_replies(bot, emulator: Emulator, repo):
    guild = await new_guild(bot, emulator, repo, "forum-helper")
    helpers, forum = await helper_setup(emulator, guild)
    await cached(bot, emulator, forum)
    await settings(emulator, guild, "help-channel", channel=forum, helper_role=helpers)
    asker = emulator.add_member(guild, "asker")
    thread, post = await emulator.create_post(forum, asker, "RAG", QUESTION)
    await answer_in(emulator, thread.id)
    await recorded(bot.services, guild.id, post.id)  # stored just after it is shown

    # a follow-up in the thread needs no mention and is answered with the post in view
    follow = await emulator.post_message(thread, asker, FOLLOW_UP)
    second = await answer_in(emulator, thread.id, 2)
    assert f"guru:needhelp:{follow.id}" in second.custom_ids()
    async with bot.services.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT parent_discord_id FROM interactions WHERE guild_id = %s AND discord_id = %s",
            (guild.id, follow.id),
        )
        assert (await cur.fetchone())[0] == post.id

    helper = emulator.add_member(guild, "helper", roles=(helpers,))
    await emulator.post_message(thread, helper, "Let me take this one: it retrieves first.")
    await stays_silent(emulator, thread.id)
    await emulator.post_message(thread, asker, "thanks! and what about embeddings?")
    await stays_silent(emulator, thread.id)
    assert len(answers_in(emulator, thread.id)) == 2


async def test_a_help_channel_message_is_answered_in_a_thread_or_not_at_all(
    bot, emulator: Emulator, repo
):
    guild = await new_guild(bot, emulator, repo, "text-help")
    quiet = await emulator.add_channel(guild, "help-quiet")
    loud = await emulator.add_channel(guild, "help-loud")
    await cached(bot, emulator, loud)
    done = await settings(emulator, guild, "help-channel", channel=quiet)
    assert "post nothing" in done
    done = await settings(emulator, guild, "help-channel", channel=loud, when_unanswered="say so")
    assert "say so" in done
    asker = emulator.add_member(guild, "asker")

    asked = await emulator.post_message(quiet, asker, QUESTION)
    answer = await answer_in(emulator, asked.id)  # a thread started from the message
    thread = emulator.world.channel(asked.id)
    assert thread is not None and thread.parent_id == quiet.id and thread.name == QUESTION
    assert thread.owner_id == emulator.world.bot_user.id
    assert "**Sources**" in answer.content and f"guru:needhelp:{asked.id}" in answer.custom_ids()
    assert not emulator.world.bot_messages(quiet.id)  # nothing in the channel itself

    # below the floor: nothing at all in the quiet channel, the refusal in the loud one;
    # either way the question is marked unanswered
    silent = await emulator.post_message(quiet, asker, OFF_TOPIC)
    row = await recorded(bot.services, guild.id, silent.id)
    assert row["finish_reason"] == "refused"
    assert await needs_help_at(bot.services, guild.id, silent.id) is not None
    await stays_silent(emulator, quiet.id, 1.0)
    assert emulator.world.channel(silent.id) is None and silent.thread is None

    said = await emulator.post_message(loud, asker, OFF_TOPIC)
    refusal = await answer_in(emulator, said.id)
    assert refusal.content.startswith("That is not in this server's docs"), refusal.content
    assert await needs_help_at(bot.services, guild.id, said.id) is not None

    # a thread a member starts there is not a post: its "started a thread" notice is ignored
    side = await emulator.start_thread(loud, asker, "What is retrieval-augmented generation?")
    notice = emulator.world.bot_messages(loud.id)  # none: Guru never answers in the channel
    await stays_silent(emulator, loud.id)
    assert notice == [] and not emulator.world.bot_messages(side.id)

    cleared = await settings(emulator, guild, "help-channel", channel=quiet, enabled=False)
    assert "no longer a help channel" in cleared
    ignored = await emulator.post_message(quiet, asker, QUESTION)
    await stays_silent(emulator, quiet.id)
    assert ignored.thread is None


async def test_ask_opens_a_thread_whose_messages_follow_it_up(bot, emulator: Emulator, repo):
    guild = await new_guild(bot, emulator, repo, "ask-thread")
    done = await settings(emulator, guild, "ask-thread", enabled=True)
    assert "open a thread" in done
    member = emulator.add_member(guild, "asker")
    inter = await emulator.send_command(guild, member, "ask", {"question": QUESTION})
    await finished(emulator, inter, 30)
    await recorded(bot.services, guild.id, inter.id)
    await emulator.wait_for(lambda: inter.original.thread is not None, 10, what="the thread")
    thread = inter.original.thread
    assert thread.id == inter.original.id and thread.name == QUESTION
    threads = GuruThreads(bot.services.db.pool)
    for _ in range(100):  # recorded just after Discord created it
        if (known := await threads.get(guild.id, thread.id)) is not None:
            break
        await asyncio.sleep(0.05)
    assert known is not None and known.kind == "ask" and known.question_id == inter.id

    follow = await emulator.post_message(thread, member, FOLLOW_UP)  # no mention, no reply
    reply = await answer_in(emulator, thread.id)
    assert reply.custom_ids() == [f"guru:fb:{follow.id}:up", f"guru:fb:{follow.id}:down"]
    async with bot.services.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT parent_discord_id, prompt FROM interactions"
            " WHERE guild_id = %s AND discord_id = %s",
            (guild.id, follow.id),
        )
        parent, prompt = await cur.fetchone()
    assert parent == inter.id
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]

    await settings(emulator, guild, "ask-thread", enabled=False)
    plain = await emulator.send_command(guild, member, "ask", {"question": QUESTION})
    await finished(emulator, plain, 30)
    await asyncio.sleep(0.5)
    assert plain.original.thread is None


async def test_settings_refuse_a_help_channel_that_cannot_work(bot, emulator: Emulator, repo):
    guild = await new_guild(
        bot,
        emulator,
        repo,
        "help-refused",
        bot_permissions=BOT_PERMISSIONS & ~CREATE_PUBLIC_THREADS,
    )
    general = next(iter(guild.channels.values()))
    refused = await settings(emulator, guild, "help-channel", channel=general)
    assert "Create Public Threads" in refused
    # /ask in a thread without the permission: saved, with a note; the answer stays in place
    noted = await settings(emulator, guild, "ask-thread", enabled=True)
    assert "I lack Create Public Threads" in noted
    member = emulator.add_member(guild, "asker")
    inter = await emulator.send_command(guild, member, "ask", {"question": QUESTION})
    await emulator.wait_for(lambda: len(inter.messages) == 2, 30, what="the note")
    note = inter.messages[1]
    assert note.ephemeral and "I need Create Public Threads" in note.content
    assert inter.original.thread is None and "**Sources**" in inter.original.content

    intents = bot._connection._intents  # the bot run without the Message Content intent
    intents.message_content = False
    try:
        forum = await emulator.add_forum(guild, "help")
        await cached(bot, emulator, forum)
        refused = await settings(emulator, guild, "help-channel", channel=forum)
    finally:
        intents.message_content = True
    assert "Message Content intent" in refused
    shown = await settings_reply(emulator, guild, "show")
    fields = {f["name"]: f["value"] for f in shown.embeds[0]["fields"]}
    assert fields["Help channels"] == "none"  # nothing was saved

    # with the intent a forum works here (no thread to create), but the allow-list is named
    await repo.allow(guild.id, "allowed_channel_ids", general.id, True, actor_id=None)
    saved = await settings(emulator, guild, "help-channel", channel=forum)
    assert f"Every new post in <#{forum.id}>" in saved and "isn't among the channels" in saved
