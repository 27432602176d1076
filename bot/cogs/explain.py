"""/explain: LLM concepts explained from Guru's own notes, optionally with a real heatmap.

Answers come from core.explain (the concept notes in the reserved knowledge base, the
curriculum floor, its own refusal), streamed like /ask. The heatmap is the attention of the
model that answers here, read off the engine's loaded weights in a worker thread (the event
loop never waits on torch); with a remote backend there are no local weights to read. The
answer is stored as an interaction (command "explain") under 👍/👎, like /ask's.
"""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.checks import ensure_allowed_here
from bot.feedback import feedback_view, record_answer
from bot.streaming import StreamingReply
from core.errors import InvalidInput
from core.explain.answer import concept_retriever, explain_answerer, prepare_explanation
from core.explain.attention import attention_map
from core.explain.heatmap import render_png
from core.explain.kb import ensure_concepts_ingested
from core.explain.topics import topics

if TYPE_CHECKING:
    from bot.client import GuruBot

log = logging.getLogger(__name__)


def heatmap_png(loaded: object, sentence: str) -> bytes:
    """The attention heatmap of `sentence` as PNG bytes (blocking: torch and matplotlib)."""
    amap = attention_map(loaded, sentence)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="guru-heatmap-") as tmp:
        return render_png(amap, Path(tmp) / "attention.png").read_bytes()


class Explain(commands.Cog):
    """Explain LLM concepts from Guru's notes."""

    def __init__(self, bot: GuruBot) -> None:
        self.bot = bot
        self.titles: list[str] = []
        # done once the concept notes are in the knowledge base (awaited by the first /explain)
        self.notes_ready: asyncio.Task[object] | None = None

    async def cog_load(self) -> None:
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
    async def explain(
        self,
        interaction: discord.Interaction,
        topic: app_commands.Range[str, 2, 500],
        heatmap: bool = False,
        sentence: app_commands.Range[str, 1, 300] | None = None,
    ) -> None:
        services = self.bot.services
        assert services is not None and services.db is not None
        await ensure_allowed_here(interaction)
        await interaction.response.defer(thinking=True)
        assert self.notes_ready is not None
        await asyncio.shield(self.notes_ready)  # first /explain after a start may wait
        answerer = explain_answerer(
            concept_retriever(services.db.pool, services.embedder), services.llm
        )
        prepared = await prepare_explanation(answerer, topic, guild_id=interaction.guild_id)
        recorded = await record_answer(
            services.db.pool, interaction, "explain", topic, [s.to_dict() for s in prepared.sources]
        )
        view = feedback_view(interaction.id) if recorded is not None else None
        if prepared.request is None:
            assert prepared.refusal is not None
            text, ending = prepared.refusal.answer, "refused"
            await interaction.edit_original_response(content=render.escape(text), view=view)
        else:
            assert services.llm is not None
            outcome = await StreamingReply(interaction).run(
                services.llm.stream(prepared.request),
                final_view=view,
                finalize=lambda raw: render.answer_text(prepared.finish(raw)),
            )
            text = outcome.text
            ending = (
                "cancelled"
                if outcome.cancelled
                else outcome.completion.finish_reason
                if outcome.completion
                else "error"
            )
        if recorded is not None:
            await recorded.finish(text, ending)
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
