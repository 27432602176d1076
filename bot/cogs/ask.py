"""/ask: a question answered by streaming the model's reply into the message.

TEMPORARY CORE CALL: until `core/rag` lands, the answer comes from the model alone with the
server's system prompt. When it lands, replace `_request` + `llm.stream` with the knowledge-base
answer stream (retrieve → cited prompt → stream) and render its sources; the checks, the
streaming reply, Cancel and the error handling stay as they are.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import RateLimiter, ensure_may_ask
from bot.feedback import FeedbackButton, feedback_view
from bot.streaming import StreamingReply
from core.guilds import GuildSettings, GuildSettingsRepo
from core.interactions import AnswerRecord, InteractionRepo
from core.llm.types import Request, user

if TYPE_CHECKING:
    from bot.client import GuruBot

log = logging.getLogger(__name__)

# TEMPORARY: replaced by core/rag's prompt (numbered sources, "say when it is not in the docs").
# Close to SmolLM2's own default system prompt: the 135M model drifts (even into French) when
# told more, e.g. "…on a Discord server. Answer concisely." turned "Paris" into "L'Alma".
DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant named Guru."


class Ask(commands.Cog):
    """Ask Guru a question."""

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

    def _request(
        self, interaction: discord.Interaction, prefs: GuildSettings, question: str
    ) -> Request:
        settings = self.bot.settings
        temperature = prefs.temperature if prefs.temperature is not None else settings.temperature
        return Request(
            user(question, system=prefs.system_prompt or DEFAULT_SYSTEM_PROMPT),
            guild_id=interaction.guild_id,
            max_new_tokens=prefs.max_answer_tokens,
            temperature=temperature,
            request_id=f"ask-{interaction.id}",
        )

    @app_commands.command(name="ask", description="Ask Guru a question")
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
        # 2) defer at once: queueing and generation take longer than Discord's 3 s
        await interaction.response.defer(thinking=True)
        # 3) one core call, streamed into the reply (4: render) by the shared helper
        llm = self.bot.services.llm
        assert llm is not None
        started = asyncio.get_running_loop().time()
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
            )
        )
        request = self._request(interaction, prefs, question)
        outcome = await StreamingReply(interaction).run(
            llm.stream(request), final_view=feedback_view(interaction.id)
        )
        elapsed_ms = int((asyncio.get_running_loop().time() - started) * 1000)
        ending = (
            "cancelled"
            if outcome.cancelled
            else (outcome.completion.finish_reason if outcome.completion else "error")
        )
        await self.answers.finish(
            interaction.guild_id, interaction.id, outcome.text, ending, elapsed_ms
        )
        log.info(
            "ask %s: %d chars, %d edits, %s",
            interaction.id,
            len(outcome.text),
            outcome.edits,
            ending,
        )


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Ask(bot))
