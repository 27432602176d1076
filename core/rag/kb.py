"""`KnowledgeBase`: the RAG entry point for the bot and the CLI, built from `Services`.

It holds no state of its own: the pool, the embedder and the LLM belong to `Services`, so
building one per command or per cog is free.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import NotFound
from core.rag.answer import Answerer
from core.rag.ingest import Ingestor, check_guild_id
from core.rag.limits import IngestLimits
from core.rag.retrieve import Retriever

__all__ = ["KnowledgeBase"]


@dataclass(frozen=True)
class KnowledgeBase:
    ingestor: Ingestor
    retriever: Retriever
    answerer: Answerer

    @classmethod
    def from_services(cls, services: object) -> KnowledgeBase:
        """Wire ingest/search/ask onto `services.db.pool`, `.embedder` and `.llm` (may be None);
        `services.settings.ask_expand` turns on query expansion for ask."""
        db = services.db
        if db is None:
            raise RuntimeError("KnowledgeBase needs Services opened with db=True")
        embedder = services.embedder
        retriever = Retriever(db.pool, embedder)
        settings = services.settings
        return cls(
            Ingestor(db.pool, embedder, IngestLimits.from_settings(settings)),
            retriever,
            Answerer(retriever, services.llm, expand=settings.ask_expand),
        )

    async def require_guild(self, guild_id: int) -> None:
        """NotFound unless the guild has a `guilds` row or any document (CLI "unknown guild")."""
        check_guild_id(guild_id)
        async with self.retriever.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM guilds WHERE id = %(g)s)"
                " OR EXISTS (SELECT 1 FROM documents WHERE guild_id = %(g)s)",
                {"g": guild_id},
            )
            row = await cur.fetchone()
        if not (row and row[0]):
            raise NotFound(
                f"Unknown guild {guild_id}: nothing has been ingested for it; "
                f"add documents with `guru ingest PATH --guild {guild_id}`."
            )
