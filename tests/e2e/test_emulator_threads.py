"""The emulator's threads and forums, seen through the bot's real discord.py client: forum
channels with tags, posts arriving as a thread then its first message, threads started from a
message or without one (by users and by the bot), messages in threads, thread members, the
permissions Discord checks, and roles pinged only as allowed_mentions permit."""

from __future__ import annotations

import asyncio

import discord
import pytest

from tests.e2e.conftest import guild_ready
from tests.e2e.emulator import BOT_PERMISSIONS, Emulator
from tests.e2e.emulator.threads import CREATE_PUBLIC_THREADS


async def test_a_forum_post_arrives_as_a_thread_then_its_first_message(bot, emulator: Emulator):
    guild = await emulator.create_guild("forum-events")
    forum = await emulator.add_forum(guild, "help", tags=("question", "bug"))
    await guild_ready(bot, guild.id)
    await emulator.wait_for(lambda: bot.get_channel(forum.id) is not None, 5, what="the forum")
    seen = bot.get_channel(forum.id)
    assert isinstance(seen, discord.ForumChannel)
    assert [t.name for t in seen.available_tags] == ["question", "bug"]

    author = emulator.add_member(guild, "poster")
    created = asyncio.ensure_future(bot.wait_for("thread_create", timeout=5))
    first = asyncio.ensure_future(
        bot.wait_for("message", check=lambda m: m.channel.id != forum.id, timeout=5)
    )
    thread, msg = await emulator.create_post(
        forum, author, "Login fails", "It says 401.", tags=("bug",)
    )
    new_thread = await created
    assert new_thread.id == thread.id == msg.id and new_thread.parent_id == forum.id
    assert new_thread.owner_id == author.user.id
    assert [t.name for t in new_thread.applied_tags] == ["bug"]
    received = await first
    assert isinstance(received.channel, discord.Thread)
    assert received.channel.id == thread.id and received.content == "It says 401."

    # the bot posts in a forum too: the thread and its first message come back as one
    bot_thread = await seen.create_thread(name="FAQ", content="Read this first.")
    assert bot_thread.thread.owner_id == bot.user.id
    assert bot_thread.message.id == bot_thread.thread.id
    assert emulator.world.messages[bot_thread.message.id].content == "Read this first."


async def test_threads_from_a_message_and_without_one(bot, emulator: Emulator):
    guild = await emulator.create_guild("threads")
    await guild_ready(bot, guild.id)
    general = next(iter(guild.channels.values()))
    member = emulator.add_member(guild, "talker")
    msg = await emulator.post_message(general, member, "Should we ship on Friday?")
    channel = bot.get_channel(general.id)
    fetched = await channel.fetch_message(msg.id)

    thread = await fetched.create_thread(name="Friday ship")
    assert thread.id == msg.id and thread.parent_id == general.id
    await emulator.wait_for(lambda: bot.get_channel(thread.id) is not None, 5, what="THREAD_CREATE")
    cached = bot.get_channel(thread.id)
    assert isinstance(cached, discord.Thread) and cached.me is not None  # the bot is in it
    sent = await cached.send("Let's discuss here.")
    assert emulator.world.messages[sent.id].channel_id == thread.id
    assert (await channel.fetch_message(msg.id)).thread is not None
    with pytest.raises(discord.HTTPException) as again:
        await fetched.create_thread(name="twice")
    assert again.value.code == 160004

    reply = asyncio.ensure_future(
        bot.wait_for("message", check=lambda m: m.channel.id == thread.id, timeout=5)
    )
    await emulator.post_message(emulator.world.channel(thread.id), member, "Yes, after lunch.")
    assert isinstance((await reply).channel, discord.Thread)

    loose = await channel.create_thread(name="notes", type=discord.ChannelType.public_thread)
    assert loose.parent_id == general.id and loose.type is discord.ChannelType.public_thread
    await loose.join()
    assert [m.id for m in await loose.fetch_members()] == [bot.user.id]
    fetched_thread = await bot.fetch_channel(loose.id)
    assert isinstance(fetched_thread, discord.Thread) and fetched_thread.name == "notes"

    started = asyncio.ensure_future(bot.wait_for("thread_create", timeout=5))
    notice = asyncio.ensure_future(
        bot.wait_for("message", check=lambda m: m.channel.id == general.id, timeout=5)
    )
    user_thread = await emulator.start_thread(general, member, "side chat")
    assert (await started).owner_id == member.user.id
    system = await notice  # Discord's "… started a thread" in the channel
    assert system.type is discord.MessageType.thread_created and system.is_system()
    assert [t.name for t in bot.get_guild(guild.id).threads] == [
        "Friday ship",
        "notes",
        "side chat",
    ]
    assert emulator.world.threads_of(general.id)[-1] is user_thread


async def test_thread_permissions_and_role_pings(bot, emulator: Emulator):
    guild = await emulator.create_guild(
        "thread-perms", bot_permissions=BOT_PERMISSIONS & ~CREATE_PUBLIC_THREADS
    )
    await guild_ready(bot, guild.id)
    general = bot.get_channel(next(iter(guild.channels)))
    me = bot.get_guild(guild.id).me
    assert not general.permissions_for(me).create_public_threads
    assert general.permissions_for(me).send_messages_in_threads
    msg = await general.send("a message")
    with pytest.raises(discord.Forbidden):
        await msg.create_thread(name="not allowed")

    helpers = await emulator.add_role(guild, "helpers")
    text = f"<@&{helpers.id}> please help"
    silent = await general.send(text)  # the bot's default: no pings
    loud = await general.send(text, allowed_mentions=discord.AllowedMentions(roles=[helpers]))
    assert emulator.world.messages[silent.id].pinged_role_ids() == []
    assert emulator.world.messages[loud.id].pinged_role_ids() == [helpers.id]
