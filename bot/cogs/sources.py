"""Sources kept in sync: the schedule's background task, and `/docs add url`'s job.

No slash command of its own: `/docs add url:` and `/docs list` (bot/cogs/docs.py) call in
here, as `/docs sync-pins` calls the Pins cog. The scheduler starts with the cog (cog_load)
and stops with it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.progress import BackgroundJobs, ProgressReply
from core.sources.scheduler import run_schedule
from core.sources.sync import SourceSync
from core.sources.types import SourceInfo, SyncSummary, summary_line
from core.sources.urls import check_web_url, format_every, parse_every

if TYPE_CHECKING:
    from bot.client import GuruBot

log = logging.getLogger(__name__)

MAX_FAILURES_SHOWN = 5


def sync_report(location: str, every_s: int | None, summary: SyncSummary) -> str:
    lines = [f"🌐 {location} ({format_every(every_s)}): {summary.line()}."]
    lines += [f"⚠️ {uri}: {why}" for uri, why in summary.failures[:MAX_FAILURES_SHOWN]]
    if summary.failed > MAX_FAILURES_SHOWN:
        lines.append(f"… and {summary.failed - MAX_FAILURES_SHOWN} more failed pages.")
    return "\n".join(lines)


def source_line(source: SourceInfo) -> str:
    """One source in `/docs list`: where, how often, and what its last sync did."""
    icon = "🌐" if source.kind == "web" else "📦"
    folder = f" `{source.options['folder']}/`" if source.options.get("folder") else ""
    when = f"<t:{int(source.last_sync_at.timestamp())}:R>" if source.last_sync_at else "never"
    outcome = f"⚠️ {source.last_error}" if source.last_error else summary_line(source.last_summary)
    return (
        f"{icon} `{source.id}` <{source.location}>{folder} — {format_every(source.every_s)}, "
        f"last sync {when}: {outcome}"
    )


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
        self.syncer = SourceSync(bot.services.knowledge.ingestor, bot.settings)
        self.jobs = BackgroundJobs()

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
        await reply.show(sync_report(source.location, source.every_s, summary), final=True)

    async def lines(self, guild_id: int) -> list[str]:
        return [source_line(s) for s in await self.syncer.list(guild_id)]


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Sources(bot))
