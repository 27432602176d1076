"""/insights through Discord: a server manager gets the docs to-do list and the chart
privately, within the 3 s window; others are told they need Manage Server; another server's
questions never appear; no data and a bad period get short clear messages."""

from __future__ import annotations

from tests.e2e.conftest import finished, guild_ready
from tests.e2e.emulator import MANAGE_GUILD, Emulator, Guild
from tests.fixtures.insights import add_question

PASSWORD = (
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "password reset link isn't arriving",
)


async def new_guild(bot, emulator: Emulator, name: str) -> Guild:
    guild = await emulator.create_guild(name)
    await guild_ready(bot, guild.id)
    return guild


async def test_managers_get_the_docs_todo_and_a_chart(bot, emulator, e2e_services):
    pool = e2e_services.db.pool
    ours = await new_guild(bot, emulator, "insights")
    theirs = await new_guild(bot, emulator, "insights-other")
    await add_question(pool, ours.id, PASSWORD[0], "refused")
    await add_question(pool, ours.id, PASSWORD[1], "declined", needs_help=True)
    await add_question(pool, ours.id, PASSWORD[2], "stop", feedback=-1)
    await add_question(pool, ours.id, "When does the raid start?", "stop", feedback=1)
    await add_question(pool, ours.id, "Can I get a refund?", "unusable")
    await add_question(pool, theirs.id, "Where is the secret admin panel?", "refused")

    synced = emulator.command(ours, "insights")
    assert str(synced["default_member_permissions"]) == str(MANAGE_GUILD)
    inter = await emulator.send_command(ours, emulator.owner(ours), "insights", {"days": 30})
    await finished(emulator, inter, 60, done=lambda i: any(m.attachments for m in i.messages))
    assert inter.deferred and inter.ack_latency_s < 3.0
    (reply,) = inter.messages
    assert reply.ephemeral and len(reply.content) <= 2000
    text = reply.content
    assert "5 questions · 2 refused (40%) · 1 without a usable answer" in text, text
    assert "👍 50% of 2 rated · 1 👎 · 1 still needed help" in text, text
    # the three ways of asking about passwords are one topic, the largest
    first = text.split("**Docs to-do**")[1].splitlines()[1]
    assert first.startswith("1. “") and "**3×**" in first, text
    assert "refund" in text and "secret admin panel" not in text
    ((name, png),) = reply.attachments
    assert name == "insights.png" and png.startswith(b"\x89PNG")

    # the other server sees only its own question
    other = await emulator.send_command(theirs, emulator.owner(theirs), "insights")
    await finished(emulator, other, 60, done=lambda i: any(m.attachments for m in i.messages))
    assert "secret admin panel" in other.messages[0].content
    assert "password" not in other.messages[0].content


async def test_others_no_data_and_bad_input_get_short_messages(bot, emulator):
    guild = await new_guild(bot, emulator, "insights-empty")
    member = emulator.add_member(guild, "mallory")
    denied = await emulator.send_command(guild, member, "insights")
    await emulator.wait_for(lambda: denied.original is not None, 5, what="the refusal")
    assert denied.original.ephemeral and not denied.deferred
    assert denied.original.content == (
        "You need the Manage Server permission to see what the docs are missing (/insights)."
    )

    empty = await emulator.send_command(guild, emulator.owner(guild), "insights", {"days": 7})
    await finished(emulator, empty, 30)
    assert empty.messages[0].ephemeral and not empty.messages[0].attachments
    assert empty.messages[0].content == (
        "No questions were asked here in the last 7 days: nothing to report yet."
    )

    bad = await emulator.send_command(guild, emulator.owner(guild), "insights", {"days": 0})
    await emulator.wait_for(lambda: bad.original is not None, 5, what="the bad-input reply")
    assert bad.original.ephemeral
    assert bad.original.content == "The period must be 1 to 365 days, not 0."
