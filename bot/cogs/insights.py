"""/insights: what this server's docs are missing (Manage Server), as a message and a chart.

The report is core.insights': weekly /ask counts with the refusal and 👍 rates, and the
questions the docs did not answer clustered by meaning. It is private (ephemeral): askers'
questions are for the people who write the docs, not for the channel.
"""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.checks import ensure_manage_guild
from core.insights import (
    DEFAULT_DAYS,
    MAX_DAYS,
    check_days,
    gather_insights,
    insights_png,
    insights_text,
)

if TYPE_CHECKING:
    from bot.client import GuruBot


def _asked(text: str) -> str:
    """An asker's words, quoted harmlessly: no markdown, mentions or masked links."""
    return render.escape(discord.utils.escape_markdown(text))


class Insights(commands.Cog):
    """Unanswered questions by topic, and answer statistics per week."""

    def __init__(self, bot: GuruBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="insights",
        description="What the docs are missing: unanswered questions by topic, weekly stats",
    )
    @app_commands.describe(days=f"The period in days (default {DEFAULT_DAYS})")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    async def insights(
        self,
        interaction: discord.Interaction,
        days: app_commands.Range[int, 1, MAX_DAYS] = DEFAULT_DAYS,
    ) -> None:
        services = self.bot.services
        assert services is not None and services.db is not None
        # default_permissions only hides the command; the askers' questions are not for all
        ensure_manage_guild(interaction, "see what the docs are missing (/insights)")
        check_days(days)  # Discord enforces the range; a raw API call need not
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        ins = await gather_insights(services.db.pool, services.embedder, interaction.guild_id, days)
        text = insights_text(ins, render.MESSAGE_LIMIT, escape=_asked)
        if ins.empty:
            await interaction.followup.send(text, ephemeral=True)
            return
        png = await asyncio.to_thread(insights_png, ins)  # matplotlib: off the event loop
        await interaction.followup.send(
            render.truncate(text, render.MESSAGE_LIMIT),
            file=discord.File(io.BytesIO(png), filename="insights.png"),
            ephemeral=True,
        )


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Insights(bot))
