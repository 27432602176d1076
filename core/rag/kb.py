"""`KnowledgeBase`: the write and search sides of RAG, built once per `Services`.

Answering is core.answering's (`Services.answers`); this holds what ingest, search and the
document commands share: one `Ingestor` (it caches a chunker) and one `Retriever`.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.db.pool import Pool
from core.errors import NotFound
from core.rag.embedder import Embedder
from core.rag.ingest import Ingestor, check_guild_id
from core.rag.retrieve import Retriever

__all__ = ["KnowledgeBase"]


@dataclass(frozen=True)
class KnowledgeBase:
    ingestor: Ingestor
    retriever: Retriever

    @classmethod
    def open(cls, pool: Pool, embedder: Embedder) -> KnowledgeBase:
        return cls(Ingestor(pool, embedder), Retriever(pool, embedder))

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
