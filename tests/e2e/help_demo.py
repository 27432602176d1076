"""`python -m tests.e2e.help_demo`: a help forum and an /ask thread, printed as a transcript.

The real GuruBot with the configured model (GURU_MODEL) answers through the local Discord
emulator, with a database of its own (`guru_demo_help`, fresh each run): a forum set up with
`/settings help-channel`, a post answered in its thread, "Still need help?" pinging the helpers,
a helper taking over (Guru stays out), a post the docs don't cover (nothing posted), and /ask
with `/settings ask-thread` followed up in its thread. README's transcripts come from here.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import re
from typing import Any

from core.config import Settings

DOC = (
    "To reset your password, open Settings → Account and press Reset password; the link we "
    "email is valid for 30 minutes. Accounts lock after 5 failed logins; a moderator unlocks "
    "them with /unlock. Two-factor codes come from the authenticator app, never by SMS."
)

OFF_TOPIC = "How do I bake sourdough bread?"


def _line(emu: Any, msg: Any) -> str:
    world = emu.world
    channel = world.channel(msg.channel_id)
    where = f"#{channel.name}"
    if channel.parent_id is not None:
        where = f"#{world.channel(channel.parent_id).name} › {channel.name}"
    text = re.sub(r"<@&(\d+)>", lambda m: f"@{_role_name(emu, int(m[1]))}", msg.content)
    users = world.users
    text = re.sub(r"<#(\d+)>", lambda m: f"#{world.channel(int(m[1])).name}", text)
    text = re.sub(r"<@(\d+)>", lambda m: f"@{users.get(int(m[1]), world.bot_user).name}", text)
    buttons = [
        "👍" if c.endswith(":up") else "👎" if c.endswith(":down") else "Still need help?"
        for c in msg.custom_ids()
    ]
    shown = f"{text}  " + " ".join(f"[{b}]" for b in buttons) if buttons else text
    flags = " (only you)" if msg.ephemeral else ""
    return f"[{where}] {msg.author.name}{flags}: {shown}"


def _role_name(emu: Any, role_id: int) -> str:
    for guild in emu.world.guilds.values():
        if role_id in guild.roles:
            return guild.roles[role_id].name
    return str(role_id)


async def _run(settings: Settings) -> None:
    from bench.rag_eval.databases import bench_pool, server_url
    from bot.client import GuruBot
    from core.db.pool import Database
    from core.llm.backend import open_llm
    from core.llm.models.loading import ModelCache
    from core.services import Services
    from tests.e2e.emulator import Emulator

    settings = dataclasses.replace(settings, temperature=0.0)
    async with (
        Emulator() as emu,
        server_url(settings) as url,
        bench_pool(url, "guru_demo_help", fresh=True) as pool,
    ):
        bot_settings = emu.bot_settings(settings)
        llm = await open_llm(settings, ModelCache())
        services = Services(bot_settings, llm=llm, db=Database(pool))
        bot = GuruBot(bot_settings, services=services, guild_ready_timeout=0.05)
        task = asyncio.create_task(bot.start(emu.token))
        try:
            while not bot.is_ready():
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
            explain = bot.get_cog("Explain")
            if explain is not None:  # its notes ingest at start; let that finish first
                await explain.notes_ready
            await _demo(emu, bot, services)
        finally:
            await bot.close()
            await asyncio.gather(task, return_exceptions=True)
            await llm.aclose()
            services.embedder.close()


async def _demo(emu: Any, bot: Any, services: Any) -> None:
    from core.rag.types import ParsedDocument, Section

    guild = await emu.create_guild("Guru demo")
    helpers = await emu.add_role(guild, "helpers", mentionable=True)
    forum = await emu.add_forum(guild, "help")
    while bot.get_channel(forum.id) is None:
        await asyncio.sleep(0.02)
    doc = ParsedDocument("upload:account.md", "Account help", (Section("", DOC),))
    await services.knowledge.ingestor.ingest_document(guild.id, doc)
    owner = emu.owner(guild)
    printed: set[int] = set()

    def show(*channel_ids: int) -> None:
        for msg in sorted(emu.world.messages.values(), key=lambda m: m.id):
            if msg.id in printed or msg.deleted:
                continue
            if msg.channel_id in channel_ids or msg.interaction_id is not None:
                printed.add(msg.id)
                print(_line(emu, msg), flush=True)

    async def command(name: str, options: dict[str, Any], member: Any = owner) -> Any:
        print(f"> {member.user.name}: /{name} {_options(options)}", flush=True)
        inter = await emu.send_command(guild, member, name, options)
        await emu.wait_for(
            lambda: inter.messages and not inter.loading and inter.messages[-1].content,
            600,
            what=f"/{name}",
        )
        return inter

    def answers(thread_id: int) -> list[Any]:
        return [m for m in emu.world.bot_messages(thread_id) if m.custom_ids()]

    await command("settings", {"help-channel": {"channel": forum, "helper_role": helpers}})
    show()
    asker = emu.add_member(guild, "sam")
    thread, post = await emu.create_post(forum, asker, "Locked out", "How do I reset my password?")
    print(f"> sam posts in #help: “Locked out” — {post.content}", flush=True)
    await emu.wait_for(lambda: answers(thread.id), 900, what="the answer")
    show(thread.id)
    answer = answers(thread.id)[0]
    await _finished(services, guild.id, post.id)
    print("> sam presses Still need help?", flush=True)
    click = await emu.click(answer, answer.custom_ids()[-1], asker)
    await emu.wait_for(lambda: click.original is not None, 10, what="the ping")
    show(thread.id)
    helper = emu.add_member(guild, "alex", roles=(helpers,))
    await emu.post_message(thread, helper, "The reset link expires after 30 minutes — try again?")
    await emu.post_message(thread, asker, "That worked, thanks!")
    await asyncio.sleep(3)
    show(thread.id)
    print("(Guru stays out: a helper replied)", flush=True)

    other, first = await emu.create_post(forum, asker, "Baking", OFF_TOPIC)
    print(f"> sam posts in #help: “Baking” — {OFF_TOPIC}", flush=True)
    row = await _finished(services, guild.id, first.id)
    show(other.id)
    print(f"(stored: finish_reason={row[0]}, marked unanswered: {row[1] is not None})")

    await command("settings", {"ask-thread": {"enabled": True}})
    show()
    inter = await command("ask", {"question": "How long is the reset link valid?"}, asker)
    await emu.wait_for(lambda: inter.original.custom_ids(), 900, what="the /ask answer")
    await emu.wait_for(lambda: inter.original.thread is not None, 30, what="the thread")
    show()
    ask_thread = inter.original.thread
    await _finished(services, guild.id, inter.id)
    await asyncio.sleep(1)
    follow = await emu.post_message(ask_thread, asker, "and what if my account is locked?")
    print(f"> sam in the thread: {follow.content}", flush=True)
    await emu.wait_for(lambda: answers(ask_thread.id), 900, what="the follow-up")
    await _finished(services, guild.id, follow.id)
    show(ask_thread.id)


async def _finished(services: Any, guild_id: int, discord_id: int) -> tuple[Any, ...]:
    """(finish_reason, needs_help_at) once the question's row is finished."""
    for _ in range(6000):
        async with services.db.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT finish_reason, needs_help_at FROM interactions"
                " WHERE guild_id = %s AND discord_id = %s",
                (guild_id, discord_id),
            )
            row = await cur.fetchone()
        if row is not None and row[0] is not None:
            return tuple(row)
        await asyncio.sleep(0.1)
    raise AssertionError(f"question {discord_id} never finished")


def _options(options: dict[str, Any]) -> str:
    parts = []
    for key, value in options.items():
        if isinstance(value, dict):
            parts.append(f"{key} {_options(value)}".strip())
        else:
            name = getattr(value, "name", value)
            parts.append(f"{key}:{'#' if hasattr(value, 'overwrites') else ''}{name}")
    return " ".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.help_demo", description=__doc__)
    parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_run(Settings.from_env()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
