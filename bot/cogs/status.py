"""/status: what model answers here, how busy it is, how fast it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from core.llm.types import BackendStats
from core.rag.limits import IngestLimits
from core.rag.loaders import MAX_FILE_BYTES

if TYPE_CHECKING:
    from bot.client import GuruBot


def status_embed(
    stats: BackendStats,
    docs: tuple[int, int] | None = None,
    limits: IngestLimits | None = None,
    guild_id: int | None = None,
) -> discord.Embed:
    """The /status card; `docs` is (documents, chunks) of this guild, `limits` what one
    document and this guild may hold (the GURU_INGEST_* / GURU_PARSE_* settings)."""
    limits = limits or IngestLimits()
    embed = discord.Embed(title="Guru status", colour=discord.Colour.blurple())
    embed.add_field(name="Model", value=render.escape(stats.model))
    embed.add_field(name="Backend", value=f"{stats.backend} ({render.escape(stats.device)})")
    embed.add_field(name="Queue", value=f"{stats.queued} waiting, {stats.active} answering")
    embed.add_field(name="Speed", value=f"{stats.recent_tokens_per_s:.1f} tokens/s (last 10 s)")
    embed.add_field(name="Tokens generated", value=f"{stats.tokens_generated:,}")
    # only this guild's adapters (core.tuning.registry.engine_name: g<guild>-v<n>): the
    # others' names would tell any member which servers use Guru
    own = [a for a in stats.adapters if guild_id is not None and a.startswith(f"g{guild_id}-v")]
    adapters = ", ".join(own) if own else "none (base model)"
    embed.add_field(name="Adapters loaded", value=render.escape(adapters))
    if docs is not None:
        embed.add_field(
            name="Documents here",
            value=f"{docs[0]:,} ({docs[1]:,} of {limits.max_guild_chunks:,} chunks)",
        )
    embed.add_field(
        name="Limits per file",
        value=f"{MAX_FILE_BYTES >> 20} MiB, {limits.max_chars:,} characters,"
        f" {limits.max_doc_chunks:,} chunks; read in {limits.parse_memory_mb} MiB"
        f" within {limits.parse_timeout_s:g} s",
    )
    return render.clamp_embed(embed)


class Status(commands.Cog):
    """Show Guru's model, backend and load."""

    def __init__(self, bot: GuruBot) -> None:
        self.bot = bot

    @app_commands.command(name="status", description="Show Guru's model, queue and speed")
    async def status(self, interaction: discord.Interaction) -> None:
        # stats() is an in-memory snapshot and the document count one indexed read, well
        # inside the 3 s window, so no defer is needed
        services = self.bot.services
        assert services is not None and services.llm is not None
        docs = None
        limits = IngestLimits.from_settings(services.settings)
        if services.db is not None and interaction.guild_id is not None:
            listed = await services.knowledge.ingestor.list_documents(interaction.guild_id)
            docs = (len(listed), sum(d.chunk_count for d in listed))
        await interaction.response.send_message(
            embed=status_embed(services.llm.stats(), docs, limits, interaction.guild_id)
        )


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Status(bot))
