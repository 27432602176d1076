"""/ask: a question answered from this server's documents, streamed into the reply.

check → defer → ground in the knowledge base (core.grounded) → stream the model's cited answer
(StreamingReply: throttled edits, queue position, Cancel) → post it with its sources as links.
When nothing passes the relevance floor the model is never asked: the reply says it is not in
this server's docs and names the closest documents.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.checks import RateLimiter, ensure_may_ask
from bot.feedback import feedback_view, record_answer
from bot.streaming import StreamingReply
from core.grounded import PreparedAnswer, finish_streamed, prepare_guild_answer
from core.guilds import GuildSettingsRepo

if TYPE_CHECKING:
    from bot.client import GuruBot

log = logging.getLogger(__name__)


class Ask(commands.Cog):
    """Ask Guru about this server's docs."""

    def __init__(self, bot: GuruBot) -> None:
        assert bot.services is not None and bot.services.db is not None
        self.bot = bot
        self.repo = GuildSettingsRepo(bot.services.db.pool)
        self.limiter = RateLimiter()

    @app_commands.command(name="ask", description="Ask Guru about this server's docs")
    @app_commands.describe(question="What you want to know")
    @app_commands.guild_only()
    async def ask(
        self, interaction: discord.Interaction, question: app_commands.Range[str, 2, 1000]
    ) -> None:
        assert interaction.guild_id is not None and self.bot.services is not None
        # 1) check (a primary-key read, well inside the 3 s window) so refusals stay private
        prefs = await self.repo.get(interaction.guild_id)
        ensure_may_ask(interaction, prefs)
        self.limiter.hit(interaction.guild_id, interaction.user.id, prefs.rate_limit_per_minute)
        # 2) defer at once: retrieval, queueing and generation take longer than Discord's 3 s
        await interaction.response.defer(thinking=True)
        started = asyncio.get_running_loop().time()
        prepared = await prepare_guild_answer(
            self.bot.services, prefs, question, request_id=f"ask-{interaction.id}"
        )
        assert self.bot.services.db is not None
        recorded = await record_answer(
            self.bot.services.db.pool,
            interaction,
            "ask",
            question,
            [s.to_dict() for s in prepared.sources],
            started=started,
        )
        assert recorded is not None  # guild_only
        text, ending = await self._reply(interaction, prepared)
        await recorded.finish(text, ending)
        log.info(
            "ask %s: %d chars, %d sources, %s",
            interaction.id,
            len(text),
            len(prepared.sources),
            ending,
        )

    async def _reply(
        self, interaction: discord.Interaction, prepared: PreparedAnswer
    ) -> tuple[str, str]:
        """Post the refusal, or stream the grounded answer; (text shown, how it ended)."""
        view = feedback_view(interaction.id)
        if prepared.request is None:
            assert prepared.refusal is not None
            text = prepared.refusal.answer
            await interaction.edit_original_response(content=render.escape(text), view=view)
            return text, "refused"
        llm = self.bot.services.llm if self.bot.services else None
        assert llm is not None
        outcome = await StreamingReply(interaction).run(
            llm.stream(prepared.request),
            final_view=view,
            finalize=lambda raw: render.answer_text(finish_streamed(prepared, raw)),
        )
        if outcome.cancelled:
            return outcome.text, "cancelled"
        ending = outcome.completion.finish_reason if outcome.completion else "error"
        return outcome.text, ending


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Ask(bot))
