"""/status: what model answers here, how busy it is, how fast it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from core.llm.types import BackendStats

if TYPE_CHECKING:
    from bot.client import GuruBot


def status_embed(stats: BackendStats) -> discord.Embed:
    """The /status card (documents and chunks join it with the knowledge base)."""
    embed = discord.Embed(title="Guru status", colour=discord.Colour.blurple())
    embed.add_field(name="Model", value=render.escape(stats.model))
    embed.add_field(name="Backend", value=f"{stats.backend} ({render.escape(stats.device)})")
    embed.add_field(name="Queue", value=f"{stats.queued} waiting, {stats.active} answering")
    embed.add_field(name="Speed", value=f"{stats.recent_tokens_per_s:.1f} tokens/s (last 10 s)")
    embed.add_field(name="Tokens generated", value=f"{stats.tokens_generated:,}")
    adapters = ", ".join(stats.adapters) if stats.adapters else "none (base model)"
    embed.add_field(name="Adapters loaded", value=render.escape(adapters))
    return render.clamp_embed(embed)


class Status(commands.Cog):
    """Show Guru's model, backend and load."""

    def __init__(self, bot: GuruBot) -> None:
        self.bot = bot

    @app_commands.command(name="status", description="Show Guru's model, queue and speed")
    async def status(self, interaction: discord.Interaction) -> None:
        # stats() is an in-memory snapshot (no model or DB call), so no defer is needed
        assert self.bot.services is not None and self.bot.services.llm is not None
        stats = self.bot.services.llm.stats()
        await interaction.response.send_message(embed=status_embed(stats))


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Status(bot))
