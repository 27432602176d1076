"""Shared plumbing of the knowledge-base commands (ingest, docs, guild, search, ask)."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.config import Settings
from core.errors import InvalidInput
from core.rag.kb import KnowledgeBase
from core.services import Services

__all__ = ["knowledge_base", "guild_id"]


def guild_id(text: str) -> int:
    """argparse type: a Discord guild id (or 0, Guru's own concept notes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a guild id (a number)") from None
    if value < 0 or value >= 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range for a guild id")
    return value


@asynccontextmanager
async def knowledge_base(settings: Settings) -> AsyncIterator[tuple[Services, KnowledgeBase]]:
    """Services with the database (no LLM: `ask` loads it only when it has sources)."""
    services = await Services.open(settings, llm=False, db=True)
    try:
        yield services, services.knowledge
    finally:
        await services.aclose()


def check_k(k: int) -> int:
    if not 1 <= k <= 100:
        raise InvalidInput("-k must be between 1 and 100.")
    return k
