"""/explain: LLM concepts explained from Guru's own notes, optionally with a real heatmap.

Answers go through core.answering (kind "explain": the concept notes in the reserved knowledge
base, the curriculum floor, its own refusal) and are streamed like /ask's. The heatmap is the
attention of the model that answers here, read off the engine's loaded weights in a worker
thread (the event loop never waits on torch); with a remote backend there are no local weights
to read.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.answering import asker_of, reply_with_answer
from bot.checks import admit
from core.errors import InvalidInput
from core.explain.heatmap import heatmap_png
from core.explain.kb import ensure_concepts_ingested
from core.explain.topics import topics

if TYPE_CHECKING:
    from bot.client import GuruBot

log = logging.getLogger(__name__)


class Explain(commands.Cog):
    """Explain LLM concepts from Guru's notes."""

    def __init__(self, bot: GuruBot) -> None:
        self.bot = bot
        self.titles: list[str] = []
        # done once the concept notes are in the knowledge base (awaited by the first /explain)
        self.notes_ready: asyncio.Task[object] | None = None

    async def cog_load(self) -> None:
        assert self.bot.services is not None
        self.titles = [t["title"] for t in await asyncio.to_thread(topics)]
        # the notes go into the knowledge base in the background: a start with nothing
        # changed is one SELECT; the first start embeds ~20 notes
        self.notes_ready = asyncio.create_task(ensure_concepts_ingested(self.bot.services))

    async def cog_unload(self) -> None:
        if self.notes_ready is not None:
            self.notes_ready.cancel()

    @app_commands.command(name="explain", description="Explain an LLM concept")
    @app_commands.describe(
        topic="A concept (pick one) or a question about one",
        heatmap="Attach the model's attention heatmap",
        sentence="The sentence for the heatmap (default: the topic)",
    )
    @app_commands.guild_only()
    async def explain(
        self,
        interaction: discord.Interaction,
        topic: app_commands.Range[str, 2, 500],
        heatmap: bool = False,
        sentence: app_commands.Range[str, 1, 300] | None = None,
    ) -> None:
        services = self.bot.services
        assert services is not None
        await admit(interaction, cost=2 if heatmap else 1)  # the heatmap is a second pass
        await interaction.response.defer(thinking=True)
        assert self.notes_ready is not None
        await asyncio.shield(self.notes_ready)  # first /explain after a start may wait
        prepared = await services.answers.prepare(
            "explain",
            interaction.guild_id,
            topic,
            asker=asker_of(interaction),
            request_id=f"explain-{interaction.id}",
        )
        await reply_with_answer(interaction, services, prepared)
        if heatmap:
            await self._send_heatmap(interaction, sentence or topic)

    async def _send_heatmap(self, interaction: discord.Interaction, sentence: str) -> None:
        loaded = getattr(self.bot.services.llm if self.bot.services else None, "loaded", None)
        if loaded is None:
            raise InvalidInput("The heatmap needs the local model; this Guru uses a remote one.")
        png = await asyncio.to_thread(heatmap_png, loaded, sentence)
        await interaction.followup.send(
            render.escape(f"Attention of {loaded.name} for “{render.truncate(sentence, 200)}”"),
            file=discord.File(io.BytesIO(png), filename="attention.png"),
        )

    @explain.autocomplete("topic")
    async def _topic_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        wanted = current.lower().strip()
        return [
            app_commands.Choice(name=render.truncate(t, 100), value=t[:500])
            for t in self.titles
            if wanted in t.lower()
        ][:25]


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Explain(bot))
