"""The server's own history as knowledge, end to end: `/docs add channel:` turns a forum's or a
text channel's solved threads into documents (question + accepted answer, linked back), solved
marks, edits and deletions reach the docs at once, a private channel's history stays with the
members who can read it, and `/docs sources` lists, resyncs and removes sources.

Retrieval and storage are real (encoder + Postgres); Discord is the emulator."""

from __future__ import annotations

from tests.e2e.emulator import MANAGE_GUILD, Channel, Emulator, Guild, Member
from tests.e2e.test_docs import asked_by, documents, eventually, new_guild, run

VIEW_CHANNEL, MANAGE_MESSAGES, READ_HISTORY = 1 << 10, 1 << 13, 1 << 16
QUESTION = "How do I reset the frobnicator after a firmware update?"
ANSWER = "Hold the blue button for ten seconds, then power-cycle the frobnicator."


async def texts(bot, guild_id: int) -> dict[str, str]:
    """Each document's uri → its chunks' text joined."""
    async with bot.services.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT d.uri, string_agg(c.text, ' ' ORDER BY c.position) FROM documents d"
            " JOIN chunks c ON c.document_id = d.id WHERE d.guild_id = %s GROUP BY d.uri",
            (guild_id,),
        )
        return dict(await cur.fetchall())


async def chunk_ids(bot, guild_id: int) -> dict[str, list[int]]:
    async with bot.services.db.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT d.uri, array_agg(c.id ORDER BY c.id) FROM documents d"
            " JOIN chunks c ON c.document_id = d.id WHERE d.guild_id = %s GROUP BY d.uri",
            (guild_id,),
        )
        return dict(await cur.fetchall())


def thread_url(guild: Guild, thread: Channel) -> str:
    return f"https://discord.com/channels/{guild.id}/{thread.id}"


async def solved_post(emulator: Emulator, forum: Channel, asker: Member, helper: Member, n: int):
    post, _ = await emulator.create_post(
        forum, asker, f"Frobnicator question {n}", f"{QUESTION} (unit {n})"
    )
    answer = await emulator.post_message(post, helper, f"{ANSWER} Unit {n} too.")
    await emulator.post_message(post, asker, "Thanks, that worked!")
    await emulator.set_tags(post, ["solved"])
    return post, answer


async def test_a_forums_solved_post_becomes_question_and_answer_and_unsolved_ones_do_not(
    bot, emulator: Emulator, repo
):
    guild = await new_guild(bot, emulator, repo, "forum-history")
    forum = await emulator.add_forum(guild, "help", tags=("question", "solved"))
    asker, helper = emulator.add_member(guild, "ann"), emulator.add_member(guild, "cy")
    post, answer = await solved_post(emulator, forum, asker, helper, 1)
    open_post, _ = await emulator.create_post(forum, asker, "Still broken", "Why is it beeping?")
    await emulator.post_message(open_post, helper, "No idea yet, sorry.")
    await emulator.archive(post)  # solved posts get archived: read from the archived list

    added = await run(emulator, guild, emulator.owner(guild), {"add": {"channel": forum}})
    assert added.original.content == (
        f"💬 <#{forum.id}> (manual): 1 added, 0 changed, 0 unchanged, 0 removed, 0 failed."
    ), added.texts()
    [doc] = await documents(bot, guild.id)
    assert doc.uri == thread_url(guild, post) and doc.title == "Frobnicator question 1"
    assert doc.metadata["answer_url"] == (
        f"https://discord.com/channels/{guild.id}/{post.id}/{answer.id}"
    )
    text = (await texts(bot, guild.id))[doc.uri]
    assert QUESTION in text and ANSWER in text and "Thanks, that worked" not in text

    uris, _ = await asked_by(bot, emulator, guild, asker, QUESTION)
    assert uris == [doc.uri]  # cited with the link back to the thread

    listed = await run(emulator, guild, emulator.owner(guild), {"sources": {"list": {}}})
    assert "💬 `" in listed.original.content and f"<#{forum.id}>" in listed.original.content
    assert "1 added, 0 changed, 0 unchanged, 0 removed, 0 failed" in listed.original.content


async def test_a_helpers_check_in_a_text_channel_thread_adds_it_at_once(
    bot, emulator: Emulator, repo
):
    guild = await new_guild(bot, emulator, repo, "thread-check")
    helpers = await emulator.add_role(guild, "helpers")
    channel = await emulator.add_channel(guild, "support")
    asker = emulator.add_member(guild, "ann")
    helper = emulator.add_member(guild, "cy", roles=(helpers,))
    bystander = emulator.add_member(guild, "bob")
    added = await run(
        emulator,
        guild,
        emulator.owner(guild),
        {"add": {"channel": channel, "helper_role": helpers, "every": "1d"}},
    )
    assert "0 added" in added.original.content and "(every 1d)" in added.original.content

    thread = await emulator.start_thread(channel, asker, "Frobnicator reset")
    await emulator.post_message(thread, asker, QUESTION)
    guess = await emulator.post_message(thread, bystander, "Try unplugging it for a week.")
    fix = await emulator.post_message(thread, helper, ANSWER)
    await emulator.react(guess, bystander)  # not a helper: counts for nothing
    await emulator.react(guess, asker)
    await emulator.react(fix, helper)
    [doc] = await eventually(lambda: documents(bot, guild.id), "the checked thread")
    assert doc.uri == thread_url(guild, thread)
    text = (await texts(bot, guild.id))[doc.uri]
    assert ANSWER in text and "unplugging" not in text

    await emulator.unreact(fix, helper)  # unsolved: its document goes
    await eventually(
        lambda: _empty(documents(bot, guild.id)), "the unsolved thread's document to go"
    )


async def _empty(pending) -> bool:
    return await pending == []


async def test_an_edit_reembeds_only_that_thread_and_a_deleted_thread_leaves(
    bot, emulator: Emulator, repo
):
    guild = await new_guild(bot, emulator, repo, "forum-edits")
    forum = await emulator.add_forum(guild, "help", tags=("solved",))
    asker, helper = emulator.add_member(guild, "ann"), emulator.add_member(guild, "cy")
    first, _ = await solved_post(emulator, forum, asker, helper, 1)
    second, answer = await solved_post(emulator, forum, asker, helper, 2)
    await run(emulator, guild, emulator.owner(guild), {"add": {"channel": forum}})
    before = await chunk_ids(bot, guild.id)
    assert set(before) == {thread_url(guild, first), thread_url(guild, second)}

    await emulator.edit_message(answer, "Replace the frobnicator fuse (5 A), then restart it.")

    async def second_changed() -> bool:
        now = await chunk_ids(bot, guild.id)
        return now.get(thread_url(guild, second)) not in (None, before[thread_url(guild, second)])

    await eventually(second_changed, "the edited answer to be re-embedded")
    after = await chunk_ids(bot, guild.id)
    assert after[thread_url(guild, first)] == before[thread_url(guild, first)]
    assert "fuse (5 A)" in (await texts(bot, guild.id))[thread_url(guild, second)]
    [source] = await bot.get_cog("Sources").syncer.list(guild.id)
    resynced = await run(
        emulator, guild, emulator.owner(guild), {"sources": {"resync": {"source": str(source.id)}}}
    )
    assert "0 added, 0 changed, 2 unchanged, 0 removed, 0 failed" in resynced.original.content
    assert await chunk_ids(bot, guild.id) == after  # nothing re-embedded

    await emulator.delete_thread(first)

    async def first_gone() -> bool:
        return [d.uri for d in await documents(bot, guild.id)] == [thread_url(guild, second)]

    await eventually(first_gone, "the deleted thread's document to go")


async def test_a_private_channels_threads_reach_only_its_readers_and_bad_adds_are_refused(
    bot, emulator: Emulator, repo
):
    guild = await new_guild(bot, emulator, repo, "private-history")
    staff = await emulator.add_role(guild, "staff")
    managers = await emulator.add_role(guild, "managers", MANAGE_GUILD)
    private = await emulator.add_channel(guild, "staff-help")
    await emulator.set_overwrite(private, guild.everyone, deny=VIEW_CHANNEL)
    await emulator.set_overwrite(private, staff, allow=VIEW_CHANNEL | READ_HISTORY)
    moderator = emulator.add_member(guild, "mod", roles=(managers,))

    refused = await emulator.send_command(guild, moderator, "docs", {"add": {"channel": private}})
    await emulator.wait_for(lambda: refused.original is not None, 10, what="the refusal")
    assert "You can't read" in refused.original.content and not refused.deferred
    refused = await emulator.send_command(
        guild, emulator.owner(guild), "docs", {"add": {"channel": private}}
    )
    await emulator.wait_for(lambda: refused.original is not None, 10, what="the refusal")
    assert "I can't read" in refused.original.content  # the bot is not let in yet
    await emulator.set_overwrite(
        private, emulator.bot_role(guild), allow=VIEW_CHANNEL | READ_HISTORY | MANAGE_MESSAGES
    )
    bad_since = await emulator.send_command(
        guild, emulator.owner(guild), "docs", {"add": {"channel": private, "since": "soon"}}
    )
    await emulator.wait_for(lambda: bad_since.original is not None, 10, what="the refusal")
    assert "is not a date" in bad_since.original.content
    assert await bot.get_cog("Sources").syncer.list(guild.id) == []  # nothing kept
    insider = emulator.add_member(guild, "insider", roles=(staff,))
    thread = await emulator.start_thread(private, insider, "Frobnicator reset")
    await emulator.post_message(thread, insider, QUESTION)
    fix = await emulator.post_message(thread, emulator.owner(guild), ANSWER)
    await emulator.react(fix, emulator.owner(guild))  # the owner moderates every channel
    added = await run(emulator, guild, emulator.owner(guild), {"add": {"channel": private}})
    assert "0 failed" in added.original.content, added.texts()
    # (the ✅ event may reach the bot just after the source exists and add the thread first)
    [doc] = await documents(bot, guild.id)
    assert doc.uri == thread_url(guild, thread)

    outsider = emulator.add_member(guild, "outsider")
    uris, text = await asked_by(bot, emulator, guild, outsider, QUESTION)
    assert uris == [] and "blue button" not in text
    uris, _ = await asked_by(bot, emulator, guild, insider, QUESTION)
    assert uris == [thread_url(guild, thread)]


async def test_mark_as_answer_and_removing_the_source_from_discord(bot, emulator: Emulator, repo):
    guild = await new_guild(bot, emulator, repo, "mark-remove")
    forum = await emulator.add_forum(guild, "help", tags=("question",))
    asker, helper = emulator.add_member(guild, "ann"), emulator.add_member(guild, "cy")
    added = await run(emulator, guild, emulator.owner(guild), {"add": {"channel": forum}})
    assert "0 added" in added.original.content
    post, _ = await emulator.create_post(forum, asker, "Frobnicator reset", QUESTION)
    fix = await emulator.post_message(post, helper, ANSWER)
    await emulator.post_message(post, helper, "Anything else?")

    refused = await emulator.message_command(guild, asker, "Mark as answer", fix)
    await emulator.wait_for(lambda: refused.original is not None, 10, what="the refusal")
    assert "Manage Messages" in refused.original.content
    marked = await emulator.message_command(guild, emulator.owner(guild), "Mark as answer", fix)
    await emulator.wait_for(lambda: "✅" in "".join(marked.texts()), 15, what="the mark")
    assert "it is in Guru's docs now" in "".join(marked.texts()), marked.texts()
    [doc] = await documents(bot, guild.id)
    assert doc.uri == thread_url(guild, post) and doc.metadata["solved_by"] == "marked"
    assert ANSWER in (await texts(bot, guild.id))[doc.uri]

    [source] = await bot.get_cog("Sources").syncer.list(guild.id)
    denied = await emulator.send_command(
        guild, helper, "docs", {"sources": {"remove": {"source": str(source.id)}}}
    )
    await emulator.wait_for(lambda: denied.original is not None, 10, what="the refusal")
    assert "Manage Server" in denied.original.content and len(await documents(bot, guild.id)) == 1
    removed = await run(
        emulator, guild, emulator.owner(guild), {"sources": {"remove": {"source": str(source.id)}}}
    )
    assert removed.original.content == (
        f"Removed source `{source.id}` (<#{forum.id}>) and its 1 documents."
    ), removed.texts()
    assert await documents(bot, guild.id) == []
    listed = await run(emulator, guild, emulator.owner(guild), {"sources": {"list": {}}})
    assert listed.original.content.startswith("No sources yet")
