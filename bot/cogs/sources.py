"""Sources kept in sync: the schedule's background task, `/docs add url:` and `/docs add
channel:`'s jobs, and `/docs sources list|remove|resync`'s work.

No slash command of its own: `/docs add`, `/docs list` and `/docs sources` (bot/cogs/docs.py)
call in here, as `/docs sync-pins` calls the Pins cog. The scheduler starts with the cog
(cog_load) and stops with it; it syncs Discord channel sources too, through `ThreadReader`
(bot/threadsource.py). Between syncs a thread marked solved, edited, unsolved or deleted is
brought up to date alone (`sync_thread`, called by the Solved cog).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.access import ensure_can_read
from bot.errors import Refused
from bot.progress import BackgroundJobs, ProgressReply
from bot.threadsource import ThreadReader, bot_can_read, source_channel
from core.sources.scheduler import run_schedule
from core.sources.sync import Progress, SourceSync
from core.sources.threads import (
    ThreadMarks,
    channel_location,
    parse_since,
    solved_tags,
    thread_page,
    thread_uri,
)
from core.sources.types import SourceInfo, SyncSummary, summary_line
from core.sources.urls import check_web_url, format_every, parse_every

if TYPE_CHECKING:
    from bot.client import GuruBot

log = logging.getLogger(__name__)

MAX_FAILURES_SHOWN = 5


def where(source: SourceInfo) -> str:
    """How a source is named to members: a channel as its mention, else its address."""
    if source.kind == "discord":
        return f"<#{source.options['channel_id']}>"
    return source.location


def sync_report(source: SourceInfo, summary: SyncSummary) -> str:
    icon = {"web": "🌐", "git": "📦", "discord": "💬"}[source.kind]
    lines = [f"{icon} {where(source)} ({format_every(source.every_s)}): {summary.line()}."]
    lines += [f"⚠️ {uri}: {why}" for uri, why in summary.failures[:MAX_FAILURES_SHOWN]]
    if summary.failed > MAX_FAILURES_SHOWN:
        lines.append(f"… and {summary.failed - MAX_FAILURES_SHOWN} more failed pages.")
    return "\n".join(lines)


def source_line(source: SourceInfo) -> str:
    """One source in `/docs list`: where, how often, and what its last sync did."""
    icon = {"web": "🌐", "git": "📦", "discord": "💬"}[source.kind]
    folder = f" `{source.options['folder']}/`" if source.options.get("folder") else ""
    place = where(source) if source.kind == "discord" else f"<{source.location}>"
    when = f"<t:{int(source.last_sync_at.timestamp())}:R>" if source.last_sync_at else "never"
    outcome = f"⚠️ {source.last_error}" if source.last_error else summary_line(source.last_summary)
    line = (
        f"{icon} `{source.id}` {place}{folder} — {format_every(source.every_s)}, "
        f"last sync {when}: {outcome}"
    )
    if source.sync_started_at is not None:  # a claim: a sync is running now
        line += f" — 🔄 syncing since <t:{int(source.sync_started_at.timestamp())}:R>"
        if source.sync_progress:
            line += f", so far {summary_line(source.sync_progress)}"
    return line


class _Reply:
    """Progress edits that never stop the sync: a reply can be edited for 15 minutes only,
    and a big site's first sync may outlast that (its summary is in /docs list then)."""

    def __init__(self, progress: ProgressReply) -> None:
        self.progress = progress
        self.live = True

    async def show(self, text: str, *, final: bool = False) -> None:
        if not self.live:
            return
        try:
            await self.progress.update(text, final=final)
        except discord.HTTPException as exc:
            log.info("stopped editing a /docs add url reply: %s", exc)
            self.live = False


class Sources(commands.Cog):
    """Runs due source syncs in the background and syncs new sources for /docs add url."""

    def __init__(self, bot: GuruBot) -> None:
        assert bot.services is not None
        ingestor = bot.services.knowledge.ingestor
        self.marks = ThreadMarks(ingestor.pool)
        self.reader = ThreadReader(bot, self.marks, bot.settings.sources_max_pages)
        self.syncer = SourceSync(ingestor, bot.settings, {"discord": self.reader})
        self.jobs = BackgroundJobs()
        # per thread: its lock and how many updates hold or wait for it (see sync_thread)
        self._thread_locks: dict[int, tuple[asyncio.Lock, int]] = {}

    async def cog_load(self) -> None:
        self.jobs.spawn(run_schedule(self.syncer), "sources-schedule")

    async def cog_unload(self) -> None:
        await self.jobs.aclose()

    async def start_add_url(
        self, interaction: discord.Interaction, url: str, every: str | None
    ) -> None:
        """`/docs add url:`: check the URL and schedule before deferring (a bad one gets its
        one-line refusal), then sync in the background with progress in the reply."""
        check_web_url(url)
        parse_every(every)
        await interaction.response.defer(thinking=True, ephemeral=True)
        self.jobs.start(
            interaction, self._add_url(interaction, url, every), f"add-url-{interaction.id}"
        )

    async def _add_url(self, interaction: discord.Interaction, url: str, every: str | None) -> None:
        assert interaction.guild_id is not None
        reply = _Reply(ProgressReply(interaction))
        source = await self.syncer.add(interaction.guild_id, url, every=every, public_only=True)
        await reply.show(f"🔄 Syncing {source.location}…")

        async def show(summary: SyncSummary) -> None:
            await reply.show(f"🔄 Syncing {source.location}: {summary.line()}…")

        summary = await self.syncer.sync_new(source, show)
        await reply.show(sync_report(source, summary), final=True)

    async def start_add_channel(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel | discord.ForumChannel,
        *,
        since: str | None,
        every: str | None,
        helper_role: discord.Role | None,
        solved_tag: str | None,
    ) -> None:
        """`/docs add channel:`: who may read it and the options are checked before
        deferring (a refusal loses nothing), then the first sync runs in the background."""
        assert interaction.guild_id is not None
        ensure_can_read(interaction, channel)
        if not bot_can_read(channel):
            raise Refused(
                f"I can't read <#{channel.id}>; give me View Channel and Read Message History "
                "there, then add it again."
            )
        since_day = parse_since(since)
        parse_every(every)
        await interaction.response.defer(thinking=True, ephemeral=True)
        source = await self.syncer.add_channel(
            interaction.guild_id,
            channel.id,
            every=every,
            since=since_day,
            helper_role_id=helper_role and helper_role.id,
            solved_tag=solved_tag,
        )
        self.jobs.start(
            interaction, self._first_sync(interaction, source), f"add-channel-{interaction.id}"
        )

    async def _first_sync(self, interaction: discord.Interaction, source: SourceInfo) -> None:
        await self._sync_shown(
            interaction,
            source,
            self.syncer.sync_new,
            f"🔄 Reading the solved threads of {where(source)}…",
            f"🔄 Reading {where(source)}",
        )

    async def _sync_shown(
        self,
        interaction: discord.Interaction,
        source: SourceInfo,
        run: Callable[[SourceInfo, Progress], Awaitable[SyncSummary]],
        starting: str,
        going: str,
    ) -> None:
        """Run one sync of `source`, its progress (`going: <counts>…`) and report in the reply."""
        reply = _Reply(ProgressReply(interaction))
        await reply.show(starting)

        async def show(summary: SyncSummary) -> None:
            await reply.show(f"{going}: {summary.line()}…")

        summary = await run(source, show)
        await reply.show(sync_report(source, summary), final=True)

    async def start_resync(self, interaction: discord.Interaction, key: str) -> None:
        """`/docs sources resync`: sync one source now, its progress in the reply."""
        assert interaction.guild_id is not None
        source = await self.syncer.get(interaction.guild_id, key)
        await interaction.response.defer(thinking=True, ephemeral=True)
        self.jobs.start(interaction, self._resync(interaction, source), f"resync-{interaction.id}")

    async def _resync(self, interaction: discord.Interaction, source: SourceInfo) -> None:
        going = f"🔄 Syncing {where(source)}"
        await self._sync_shown(interaction, source, self.syncer.sync, f"{going}…", going)

    async def remove(self, guild_id: int, key: str) -> str:
        """`/docs sources remove`: the source and its documents go; the reply's line."""
        source, removed = await self.syncer.remove(guild_id, key)
        return f"Removed source `{source.id}` ({where(source)}) and its {removed} documents."

    async def sync_thread(self, thread: discord.Thread) -> str:
        """Bring one thread of a channel source up to date now (a ✅, a tag, a mark, an edit,
        a deletion); "none" when its channel is no source here. See SourceSync.sync_page.

        One thread's updates run one at a time, in the order their events came (asyncio's
        locks are FIFO): a ✅ and its removal a moment later must not both read the thread
        and then store in the other order."""
        lock, users = self._thread_locks.get(thread.id, (asyncio.Lock(), 0))
        self._thread_locks[thread.id] = (lock, users + 1)
        try:
            async with lock:
                return await self._sync_thread(thread)
        finally:
            lock, users = self._thread_locks[thread.id]
            if users == 1:  # the last one waiting: forget the lock
                del self._thread_locks[thread.id]
            else:
                self._thread_locks[thread.id] = (lock, users - 1)

    async def _sync_thread(self, thread: discord.Thread) -> str:
        if thread.parent_id is None:
            return "none"
        guild = thread.guild
        source = await self.syncer.repo.find(guild.id, channel_location(guild.id, thread.parent_id))
        if source is None or source.kind != "discord":
            return "none"
        uri = thread_uri(guild.id, thread.id)
        if thread.type == discord.ChannelType.private_thread:
            return await self.syncer.sync_page(source, uri, None)  # never read a private one
        channel = source_channel(guild, source)
        marked = (await self.marks.marked(guild.id, [thread.id])).get(thread.id)
        facts = await self.reader.facts(thread, channel, source, marked)
        return await self.syncer.sync_page(
            source, uri, thread_page(facts, solved_tags(source.options))
        )

    async def thread_gone(self, guild_id: int, parent_id: int, thread_id: int) -> str:
        """A deleted thread's document goes at once (not at the next sync)."""
        source = await self.syncer.repo.find(guild_id, channel_location(guild_id, parent_id))
        if source is None or source.kind != "discord":
            return "none"
        return await self.syncer.sync_page(source, thread_uri(guild_id, thread_id), None)

    async def lines(self, guild_id: int) -> list[str]:
        return [source_line(s) for s in await self.syncer.list(guild_id)]

    async def choices(self, guild_id: int, current: str) -> list[tuple[str, str]]:
        """(label, id) of the guild's sources matching `current`, for autocomplete."""
        wanted = current.lower()
        found = []
        for s in await self.syncer.list(guild_id):
            label = f"{s.id}: {s.kind} {s.location}"
            if wanted in label.lower():
                found.append((label[:100], str(s.id)))
        return found[:25]


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Sources(bot))
