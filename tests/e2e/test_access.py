"""Private channels stay private: a pin in a channel hidden from @everyone is neither cited nor
named to a member who cannot view it, is to one who can, and revoking access takes effect at
the next question. Moderators can only add messages they can read themselves.

Retrieval is real (encoder + Postgres); answers come from the tiny model, so the tests look at
the sources an /ask was grounded in and at the reply's text, not at the model's words.
"""

from __future__ import annotations

from tests.e2e.emulator import MANAGE_GUILD, Emulator, Guild, Member
from tests.e2e.test_docs import asked_by, documents, eventually, new_guild, run

VIEW_CHANNEL, READ_HISTORY = 1 << 10, 1 << 16
SECRET = "Staff note: the moderator meeting password this month is KUMQUAT-77."
QUESTION = "What is the moderator meeting password this month?"


async def asked(bot, emulator: Emulator, guild: Guild, member: Member) -> tuple[list[str], str]:
    return await asked_by(bot, emulator, guild, member, QUESTION)


async def test_a_private_channels_pin_is_only_for_members_who_can_view_it(
    bot, emulator: Emulator, repo
):
    guild = await new_guild(bot, emulator, repo, "private-pins")
    staff = await emulator.add_role(guild, "staff")
    private = await emulator.add_channel(guild, "staff-only")
    await emulator.set_overwrite(private, guild.everyone, deny=VIEW_CHANNEL)
    await emulator.set_overwrite(private, staff, allow=VIEW_CHANNEL | READ_HISTORY)
    msg = await emulator.post_message(private, emulator.owner(guild), SECRET)
    await emulator.set_pinned(msg, True)
    (doc,) = await eventually(lambda: documents(bot, guild.id), "the private pin")
    url = f"https://discord.com/channels/{guild.id}/{private.id}/{msg.id}"
    assert doc.uri == url

    outsider = emulator.add_member(guild, "outsider")
    uris, text = await asked(bot, emulator, guild, outsider)
    assert uris == [] and "KUMQUAT" not in text
    assert "staff-only" not in text and "not in this server's docs" in text  # not even named

    insider = emulator.add_member(guild, "insider", roles=(staff,))
    uris, _ = await asked(bot, emulator, guild, insider)
    assert uris == [url]

    insider.role_ids.remove(staff.id)  # the role is taken away: the next question knows
    uris, text = await asked(bot, emulator, guild, insider)
    assert uris == [] and "staff-only" not in text

    await emulator.set_overwrite(private, guild.everyone, allow=VIEW_CHANNEL)  # made public
    uris, _ = await asked(bot, emulator, guild, outsider)
    assert uris == [url]


async def test_moderators_cannot_add_messages_from_a_channel_they_cannot_read(
    bot, emulator: Emulator, repo
):
    guild = await new_guild(bot, emulator, repo, "mod-reads")
    managers = await emulator.add_role(guild, "managers", MANAGE_GUILD)
    moderator = emulator.add_member(guild, "mod", roles=(managers,))
    private = await emulator.add_channel(guild, "owners-only")
    await emulator.set_overwrite(private, guild.everyone, deny=VIEW_CHANNEL)
    msg = await emulator.post_message(private, emulator.owner(guild), SECRET)
    link = f"https://discord.com/channels/{guild.id}/{private.id}/{msg.id}"

    added = await run(emulator, guild, moderator, {"add": {"messages": link}})
    assert "can't read" in added.original.content
    synced = await emulator.send_command(
        guild, moderator, "docs", {"sync-pins": {"channel": private}}
    )
    await emulator.wait_for(lambda: synced.original is not None, 10, what="the refusal")
    assert "can't read" in synced.original.content
    assert await documents(bot, guild.id) == []

    await emulator.set_overwrite(private, managers, allow=VIEW_CHANNEL | READ_HISTORY)
    added = await run(emulator, guild, moderator, {"add": {"messages": link}})
    assert [d.uri for d in await documents(bot, guild.id)] == [link]
