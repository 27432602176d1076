"""/ask: a question answered from this server's documents, streamed into the reply.

check → defer → one core call prepares (grounding, the guild's settings and adapter, the stored
question: core.answering) → refuse, or stream the model's cited answer → one core call records
it (bot.answering). With `/settings ask-thread` the answer then opens a thread named after the
question, where every message is a follow-up (bot.helpdesk). When nothing passes the relevance
floor the model is never asked: the reply says it is not in this server's docs and names the
closest documents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.access import member_access
from bot.answering import asker_of, home_channel_id, reply_with_answer
from bot.checks import admit
from bot.helpdesk import open_ask_thread

if TYPE_CHECKING:
    from bot.client import GuruBot


class Ask(commands.Cog):
    """Ask Guru about this server's docs."""

    def __init__(self, bot: GuruBot) -> None:
        self.bot = bot

    @app_commands.command(name="ask", description="Ask Guru about this server's docs")
    @app_commands.describe(question="What you want to know")
    @app_commands.guild_only()
    async def ask(
        self, interaction: discord.Interaction, question: app_commands.Range[str, 2, 1000]
    ) -> None:
        services = self.bot.services
        assert interaction.guild_id is not None and services is not None
        # 1) check (a primary-key read, well inside the 3 s window) so refusals stay private:
        #    allowed channels and roles, then the fair-use budget
        prefs = await admit(interaction)
        # 2) defer at once: retrieval, queueing and generation take longer than Discord's 3 s
        await interaction.response.defer(thinking=True)
        prepared = await services.answers.prepare(
            "ask",
            interaction.guild_id,
            question,
            prefs=prefs,
            asker=asker_of(interaction),
            access=member_access(interaction),  # only what this member can read
            channel_id=home_channel_id(interaction.channel),  # its persona, if it has one
            request_id=f"ask-{interaction.id}",
        )
        await reply_with_answer(interaction, services, prepared)
        if prefs.ask_in_thread and prepared.record is not None:
            # /settings ask-thread: the answer opens a thread; messages there follow it up
            await open_ask_thread(interaction, services, question)


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Ask(bot))
