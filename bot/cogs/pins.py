"""Pins keep themselves in sync: pin, unpin, edit and delete update the knowledge base.

CHANNEL_PINS_UPDATE has no message id, so a pins event re-reads the channel's pins and
`core.pins.sync_channel` diffs them against what is stored for that channel. Syncs of one
channel never overlap: events arriving during a sync coalesce into one more sync after it.
An edit of a pin re-syncs its channel (text and files); edits and deletes of other messages
that are documents (`/docs add`ed) are applied directly.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.docsource import document_message
from bot.progress import BackgroundJobs, ProgressReply
from core.pins import DiscordMessage, PinSyncReport, forget_message, refresh_message, sync_channel

if TYPE_CHECKING:
    from bot.client import GuruBot

log = logging.getLogger(__name__)


def report_text(channel: discord.abc.GuildChannel, report: PinSyncReport) -> str:
    parts = [
        f"📌 Pins of #{channel.name}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.removed} removed."
    ]
    if report.skipped:
        parts.append(f"{report.skipped} pins without text were skipped.")
    parts += [f"⚠️ {uri}: {why}" for uri, why in report.errors[:10]]
    return "\n".join(parts)


class Pins(commands.Cog):
    """Follows pinned messages into Guru's documents."""

    def __init__(self, bot: GuruBot) -> None:
        assert bot.services is not None
        self.bot = bot
        self.kb = bot.services.knowledge
        self.jobs = BackgroundJobs()
        self._locks: dict[int, asyncio.Lock] = {}
        self._dirty: set[int] = set()
        self._reports: dict[int, PinSyncReport] = {}  # each channel's latest, for coalesced calls

    async def cog_unload(self) -> None:
        await self.jobs.aclose()

    async def sync(
        self, channel: discord.TextChannel, progress: ProgressReply | None = None
    ) -> PinSyncReport:
        """Re-read the channel's pins and apply the difference; one sync per channel at once."""
        lock = self._locks.setdefault(channel.id, asyncio.Lock())
        self._dirty.add(channel.id)
        async with lock:
            report: PinSyncReport | None = None
            while channel.id in self._dirty:  # events during a sync: one more pass after it
                self._dirty.discard(channel.id)
                limits = self.kb.ingestor.limits
                pinned = [document_message(m, limits) async for m in channel.pins(limit=None)]

                async def step(done: int, total: int) -> None:
                    if progress is not None:
                        await progress.update(f"📌 Reading pins: {done}/{total}…")

                report = await sync_channel(
                    self.kb.ingestor, channel.guild.id, channel.id, pinned, step
                )
                self._reports[channel.id] = report
            if report is None:  # the sync running when we asked made that extra pass for us
                report = self._reports.get(channel.id, PinSyncReport())
        if progress is not None:
            await progress.update(report_text(channel, report), final=True)
        return report

    @commands.Cog.listener()
    async def on_guild_channel_pins_update(
        self, channel: discord.abc.GuildChannel | discord.Thread, last_pin: object
    ) -> None:
        if isinstance(channel, discord.TextChannel):
            self.jobs.spawn(self.sync(channel), f"pins-{channel.id}")

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        data = payload.data
        if payload.guild_id is None or "content" not in data:
            return
        author = data.get("author") or {}
        if self.bot.user is not None and str(author.get("id")) == str(self.bot.user.id):
            return  # our own streaming edits are never documents
        channel = self.bot.get_channel(payload.channel_id)
        if data.get("pinned") and isinstance(channel, discord.TextChannel):
            # a pin's text and files are re-read together: a file the edit dropped leaves too
            self.jobs.spawn(self.sync(channel), f"pins-{channel.id}")
            return
        msg = DiscordMessage(
            payload.guild_id,
            payload.channel_id,
            payload.message_id,
            getattr(channel, "name", str(payload.channel_id)),
            author.get("global_name") or author.get("username") or "?",
            data.get("content") or "",
        )
        self.jobs.spawn(refresh_message(self.kb.ingestor, msg), f"edit-{payload.message_id}")

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            self.jobs.spawn(
                forget_message(
                    self.kb.ingestor, payload.guild_id, payload.channel_id, payload.message_id
                ),
                f"delete-{payload.message_id}",
            )

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            for message_id in payload.message_ids:
                self.jobs.spawn(
                    forget_message(
                        self.kb.ingestor, payload.guild_id, payload.channel_id, message_id
                    ),
                    f"delete-{message_id}",
                )


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Pins(bot))
