"""/docs and pins end to end: uploads, message links, pins kept in sync, guild isolation and
the Manage Server check. Retrieval is real (encoder + Postgres); answers come from the tiny
model, so tests look at which sources an /ask was grounded in, not at its words."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import add_document, finished, guild_ready
from tests.e2e.emulator import MANAGE_GUILD, Emulator, Guild, Interaction

CODE_WORD = "The secret launch code word for the spring release is PINEAPPLE."
QUESTION = "What is the secret launch code word?"


async def new_guild(bot, emulator: Emulator, repo, name: str) -> Guild:
    guild = await emulator.create_guild(name)
    await guild_ready(bot, guild.id)
    await repo.set(guild.id, actor_id=None, max_answer_tokens=4)  # only the grounding matters
    return guild


async def documents(bot, guild_id: int) -> list[Any]:
    return await bot.services.knowledge.ingestor.list_documents(guild_id)


async def eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll an async check (the knowledge base changes in background jobs)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def grounded_in(bot, emulator: Emulator, guild: Guild, question: str = QUESTION) -> list:
    """Ask through Discord as the owner; the uris the answer was grounded in ([] = refused)."""
    uris, _ = await asked_by(bot, emulator, guild, emulator.owner(guild), question)
    return uris


async def asked_by(bot, emulator: Emulator, guild: Guild, member, question: str):
    """`member` asks; (the uris the answer was grounded in, the reply's final text)."""
    inter = await emulator.send_command(guild, member, "ask", {"question": question})
    await finished(
        emulator, inter, 30, done=lambda i: "guru:fb:" in "".join(i.messages[-1].custom_ids())
    )
    async with bot.services.db.pool.connection() as conn:
        for _ in range(50):
            cur = await conn.execute(
                "SELECT sources, finish_reason FROM interactions"
                " WHERE guild_id = %s AND discord_id = %s",
                (guild.id, inter.id),
            )
            sources, ending = await cur.fetchone()
            if ending is not None:
                return [s["uri"] for s in sources], inter.messages[-1].content
            await asyncio.sleep(0.05)
    raise AssertionError("the answer was never recorded")


async def run(emulator: Emulator, guild: Guild, member, options: dict, timeout=30) -> Interaction:
    inter = await emulator.send_command(guild, member, "docs", options)
    await finished(
        emulator,
        inter,
        timeout,
        done=lambda i: not any(mark in i.original.content for mark in ("…", "Thinking")),
    )
    return inter


async def test_docs_is_for_managers_only(bot, emulator: Emulator, repo):
    synced = {c["name"]: c for c in emulator.world.commands[None]}
    assert str(synced["docs"]["default_member_permissions"]) == str(MANAGE_GUILD)
    assert {o["name"] for o in synced["docs"]["options"]} == {
        "add",
        "list",
        "remove",
        "scope",
        "sources",
        "sync-pins",
    }
    guild = await new_guild(bot, emulator, repo, "docs-denied")
    upload = emulator.upload("notes.md", b"# Notes\n\nSecret notes.")
    member = emulator.add_member(guild, "mallory")
    inter = await emulator.send_command(guild, member, "docs", {"add": {"file": upload}})
    await emulator.wait_for(lambda: inter.original is not None, 5, what="the refusal")
    assert inter.original.ephemeral and "Manage Server" in inter.original.content
    await asyncio.sleep(0.3)
    assert await documents(bot, guild.id) == []


async def test_docs_add_ingests_an_attachment_and_ask_cites_it(bot, emulator: Emulator, repo):
    guild = await new_guild(bot, emulator, repo, "docs-upload")
    faq = b"# Guru FAQ\n\n## Refunds\n\nRefunds are processed within 14 days of the request.\n"
    inter = await run(
        emulator, guild, emulator.owner(guild), {"add": {"file": emulator.upload("faq.md", faq)}}
    )
    assert inter.deferred and inter.original.ephemeral
    assert inter.original.content == "✅ added: Guru FAQ (1 chunks)", inter.texts()
    assert any("Adding 1/1" in r.content for r in inter.original.revisions)  # progress shown
    (doc,) = await documents(bot, guild.id)
    assert doc.uri == "upload:faq.md" and doc.source == "file"
    assert await grounded_in(bot, emulator, guild, "How long do refunds take?") == [doc.uri]
    listed = await run(emulator, guild, emulator.owner(guild), {"list": {}})
    assert f"`{doc.id}` Guru FAQ (`upload:faq.md`) — 1 chunks" in listed.original.content
    removed = await run(
        emulator, guild, emulator.owner(guild), {"remove": {"document": str(doc.id)}}
    )
    assert removed.original.content == "Removed “Guru FAQ” (1 chunks)."
    assert await documents(bot, guild.id) == []


async def test_docs_add_takes_message_links_of_this_guild_only(bot, emulator: Emulator, repo):
    guild = await new_guild(bot, emulator, repo, "links")
    other = await new_guild(bot, emulator, repo, "links-other")
    general = next(iter(guild.channels.values()))
    msg = await emulator.post_message(general, emulator.owner(guild), CODE_WORD)
    link = f"https://discord.com/channels/{guild.id}/{general.id}/{msg.id}"
    inter = await run(emulator, guild, emulator.owner(guild), {"add": {"messages": link}})
    assert inter.original.content.startswith("✅ added: #general"), inter.texts()
    (doc,) = await documents(bot, guild.id)
    assert doc.uri == link and doc.metadata["origin"] == "message"
    stolen = await emulator.send_command(
        other, emulator.owner(other), "docs", {"add": {"messages": link}}
    )
    await emulator.wait_for(lambda: stolen.original is not None, 5, what="the refusal")
    assert "another server" in stolen.original.content
    assert await documents(bot, other.id) == []


async def test_pins_follow_pin_edit_unpin_and_delete(bot, emulator: Emulator, repo):
    guild = await new_guild(bot, emulator, repo, "pins")
    general = next(iter(guild.channels.values()))
    msg = await emulator.post_message(general, emulator.owner(guild), CODE_WORD)
    url = f"https://discord.com/channels/{guild.id}/{general.id}/{msg.id}"
    assert await grounded_in(bot, emulator, guild) == []  # nothing indexed yet
    await emulator.set_pinned(msg, True)
    (doc,) = await eventually(lambda: documents(bot, guild.id), "the pin to be ingested")
    assert doc.uri == url and doc.metadata["origin"] == "pin"
    assert await grounded_in(bot, emulator, guild) == [url]  # pin → ask finds it
    await emulator.edit_message(msg, "The launch code word changed: it is now MANGO.")
    await eventually(lambda: _hash_changed(bot, guild.id, doc.content_hash), "the edit")
    await emulator.set_pinned(msg, False)
    await eventually(lambda: _empty(bot, guild.id), "the unpin")
    assert await grounded_in(bot, emulator, guild) == []  # unpin → gone
    await emulator.set_pinned(msg, True)
    await eventually(lambda: documents(bot, guild.id), "the pin again")
    await emulator.delete_message(msg)
    await eventually(lambda: _empty(bot, guild.id), "the delete")


async def test_guild_b_cannot_see_guild_a_pins(bot, emulator: Emulator, repo):
    a = await new_guild(bot, emulator, repo, "iso-a")
    b = await new_guild(bot, emulator, repo, "iso-b")
    general = next(iter(a.channels.values()))
    msg = await emulator.post_message(general, emulator.owner(a), CODE_WORD)
    await emulator.set_pinned(msg, True)
    await eventually(lambda: documents(bot, a.id), "guild A's pin")
    assert await grounded_in(bot, emulator, a) != []
    assert await grounded_in(bot, emulator, b) == []
    assert await documents(bot, b.id) == []


async def test_sync_pins_reads_every_pin_of_a_channel(bot, emulator: Emulator, repo):
    guild = await new_guild(bot, emulator, repo, "sync-pins")
    channel = await emulator.add_channel(guild, "announcements")
    for text in ("Meetups are on Fridays.", "The wiki lives at wiki.example.org.", ""):
        (await emulator.post_message(channel, emulator.owner(guild), text)).pinned = True  # quietly
    inter = await run(emulator, guild, emulator.owner(guild), {"sync-pins": {"channel": channel}})
    assert inter.original.content.startswith(
        "📌 Pins of #announcements: 2 added, 0 updated, 0 unchanged, 0 removed."
    ), inter.texts()
    assert "1 pins without text were skipped" in inter.original.content
    assert len(await documents(bot, guild.id)) == 2


POLICY = b"# Leave policy\n\nEveryone gets 30 days of paid leave per year; ask your lead.\n"


async def test_pinned_files_are_ingested_with_the_pin_and_leave_with_it(
    bot, emulator: Emulator, repo, caplog
):
    guild = await new_guild(bot, emulator, repo, "pin-files")
    general = next(iter(guild.channels.values()))
    msg = await emulator.post_message(
        general,
        emulator.owner(guild),
        "HR docs, see attached.",
        [
            ("policy.md", POLICY),
            ("broken.pdf", b"%PDF-1.4 this is no pdf"),
            ("team photo.png", b"\x89PNG\r\n\x1a\n"),
        ],
    )
    url = f"https://discord.com/channels/{guild.id}/{general.id}/{msg.id}"
    await emulator.set_pinned(msg, True)
    docs = await eventually(lambda: _count(bot, guild.id, 2), "the pin and its file")
    by_uri = {d.uri: d for d in docs}
    assert set(by_uri) == {url, f"{url}#policy.md"}  # the bad pdf and the image are not there
    policy = by_uri[f"{url}#policy.md"]
    assert policy.title == "Leave policy" and policy.source == "discord"
    assert policy.metadata["origin"] == "pin" and policy.metadata["message_id"] == str(msg.id)
    assert f"{url}#policy.md" in await grounded_in(
        bot, emulator, guild, "How many days of paid leave do we get?"
    )
    with caplog.at_level(logging.WARNING, logger="core.pins"):
        inter = await run(
            emulator, guild, emulator.owner(guild), {"sync-pins": {"channel": general}}
        )
    assert inter.original.content.startswith(  # the stored file is not downloaded again
        "📌 Pins of #general: 0 added, 0 updated, 2 unchanged, 0 removed."
    ), inter.texts()
    assert f"⚠️ {url}#broken.pdf: unreadable PDF" in inter.original.content
    assert any("skipped: unreadable PDF" in r.getMessage() for r in caplog.records)
    await emulator.set_pinned(msg, False)
    await eventually(lambda: _empty(bot, guild.id), "the unpin to remove the file too")
    await emulator.set_pinned(msg, True)
    await eventually(lambda: _count(bot, guild.id, 2), "the pin again")
    await emulator.delete_message(msg)
    await eventually(lambda: _empty(bot, guild.id), "the delete to remove the file too")
    msg = await emulator.post_message(
        general, emulator.owner(guild), "HR policy attached.", [("policy.md", POLICY)]
    )
    await emulator.set_pinned(msg, True)
    await eventually(lambda: _count(bot, guild.id, 2), "the new pin and its file")
    await emulator.edit_message(msg, "HR policy: see the wiki.", drop_files=True)
    (doc,) = await eventually(lambda: _count(bot, guild.id, 1), "the edit to drop the file")
    assert doc.uri == f"https://discord.com/channels/{guild.id}/{general.id}/{msg.id}"


async def _count(bot, guild_id: int, n: int) -> list[Any]:
    docs = await documents(bot, guild_id)
    return docs if len(docs) == n else []


async def test_docs_list_pages_a_long_list_then_sends_it_as_a_file(bot, emulator: Emulator, repo):
    guild = await new_guild(bot, emulator, repo, "docs-many")
    owner = emulator.owner(guild)

    async def add(first: int, last: int) -> None:
        for i in range(first, last):
            title = f"Handbook chapter {i:03d}: " + "a long title fills the list quickly " * 8
            await add_document(bot.services, guild.id, title, f"Chapter {i} of the handbook.")

    def listed(inter: Interaction, count: int = 0) -> bool:
        lines = sum(
            m.content.count(" chunks\n") + m.content.endswith(" chunks") for m in inter.messages
        )
        return (
            bool(inter.messages) and "documents**" in inter.messages[0].content and (lines >= count)
        )

    await add(0, 7)
    inter = await run(emulator, guild, owner, {"list": {}})
    await finished(emulator, inter, 10, done=lambda i: listed(i, 7))
    assert 2 <= len(inter.messages) <= 4 and all(m.ephemeral for m in inter.messages)
    assert all(len(m.content) <= 2000 for m in inter.messages)
    text = "\n".join(m.content for m in inter.messages)
    assert text.startswith("**7 documents**")
    ids = [d.id for d in await documents(bot, guild.id)]
    assert len(ids) == 7 and all(text.count(f"`{i}` ") == 1 for i in ids)  # each listed once
    await add(7, 20)
    inter = await emulator.send_command(guild, owner, "docs", {"list": {}})
    await finished(emulator, inter, 10, done=lambda i: listed(i) and i.messages[0].attachments)
    (message,) = inter.messages
    assert message.ephemeral and len(message.content) <= 2000
    assert message.content.endswith("… (truncated; the full list is attached)")
    ((name, data),) = message.attachments
    full = data.decode()
    assert name == "documents.md" and full.startswith("**20 documents**")
    ids = [d.id for d in await documents(bot, guild.id)]
    assert len(ids) == 20 and all(full.count(f"`{i}` ") == 1 for i in ids)


async def _empty(bot, guild_id: int) -> bool:
    return not await documents(bot, guild_id)


async def _hash_changed(bot, guild_id: int, old: str) -> bool:
    docs = await documents(bot, guild_id)
    return bool(docs) and docs[0].content_hash != old


async def test_a_docx_bomb_is_refused_by_name_and_the_rest_of_the_batch_goes_in(
    bot, emulator: Emulator, repo, tmp_path
):
    from bench.docx_bomb import write_docx_bomb

    guild = await new_guild(bot, emulator, repo, "bomb")
    general = next(iter(guild.channels.values()))
    msg = await emulator.post_message(general, emulator.owner(guild), CODE_WORD)
    link = f"https://discord.com/channels/{guild.id}/{general.id}/{msg.id}"
    bomb = write_docx_bomb(tmp_path / "report.docx").read_bytes()
    inter = await run(
        emulator,
        guild,
        emulator.owner(guild),
        {"add": {"file": emulator.upload("report.docx", bomb), "messages": link}},
    )
    first, second = inter.original.content.splitlines()
    assert first.startswith("⚠️ report.docx:") and "zip bomb" in first, inter.texts()
    assert second.startswith("✅ added: #general")
    (doc,) = await documents(bot, guild.id)
    assert doc.uri == link
