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
from bot.feedback import FeedbackButton, feedback_view
from bot.streaming import StreamingReply
from core.grounded import PreparedAnswer, finish_streamed, prepare_answer
from core.guilds import GuildSettings, GuildSettingsRepo
from core.interactions import AnswerRecord, InteractionRepo
from core.rag.kb import KnowledgeBase

if TYPE_CHECKING:
    from bot.client import GuruBot

log = logging.getLogger(__name__)


class Ask(commands.Cog):
    """Ask Guru about this server's docs."""

    def __init__(self, bot: GuruBot) -> None:
        assert bot.services is not None and bot.services.db is not None
        self.bot = bot
        self.repo = GuildSettingsRepo(bot.services.db.pool)
        self.answers = InteractionRepo(bot.services.db.pool)
        self.limiter = RateLimiter()

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(FeedbackButton)  # 👍/👎 on any past answer, across restarts

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(FeedbackButton)

    async def _prepare(
        self, interaction: discord.Interaction, prefs: GuildSettings, question: str
    ) -> PreparedAnswer:
        services = self.bot.services
        assert services is not None and interaction.guild_id is not None
        # built per call: free, and it picks up the current `services.llm`
        kb = KnowledgeBase.from_services(services)
        return await prepare_answer(
            kb.answerer,
            interaction.guild_id,
            question,
            adapter=services.guild_adapters.adapter_for(interaction.guild_id),
            max_new_tokens=prefs.max_answer_tokens,
            temperature=prefs.temperature,
            server_instructions=prefs.system_prompt,
            request_id=f"ask-{interaction.id}",
        )

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
        prepared = await self._prepare(interaction, prefs, question)
        # recorded first, so a 👍 on the final message always finds its row
        await self.answers.record(
            AnswerRecord(
                guild_id=interaction.guild_id,
                discord_id=interaction.id,
                user_id=interaction.user.id,
                channel_id=interaction.channel_id,
                command="ask",
                question=question,
                answer="",
                sources=[
                    {"n": s.n, "title": s.title, "uri": s.uri, "score": round(s.score, 4)}
                    for s in prepared.sources
                ],
            )
        )
        text, ending = await self._reply(interaction, prepared)
        elapsed_ms = int((asyncio.get_running_loop().time() - started) * 1000)
        await self.answers.finish(interaction.guild_id, interaction.id, text, ending, elapsed_ms)
        log.info("ask %s: %d chars, %d sources, %s", interaction.id, len(text),
                 len(prepared.sources), ending)

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
