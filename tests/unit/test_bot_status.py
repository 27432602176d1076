"""/status card: a guild sees its own adapter and its own limits, never another guild's."""

from __future__ import annotations

from bot.cogs.status import status_embed
from core.llm.types import BackendStats
from core.rag.limits import IngestLimits


def test_status_lists_only_this_guilds_adapters_and_the_document_limits():
    stats = BackendStats("local", "m", "cpu", 0, 0, 0, 0.0, adapters=("g1-v2", "g12-v1"))
    embed = status_embed(stats, (3, 40), IngestLimits(max_guild_chunks=100), guild_id=1)
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Adapters loaded"] == "g1-v2"
    assert fields["Documents here"] == "3 (40 of 100 chunks)"
    assert "1,000,000 characters" in fields["Limits per file"]
    other = status_embed(stats, None, guild_id=5)
    assert {f.name: f.value for f in other.fields}["Adapters loaded"] == "none (base model)"
