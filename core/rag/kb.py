"""`KnowledgeBase`: the write and search sides of RAG, built once per `Services`.

Answering is core.answering's (`Services.answers`); this holds what ingest, search and the
document commands share: one `Ingestor` (it caches a chunker) and one `Retriever`.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.db.pool import Pool
from core.errors import InvalidInput, NotFound
from core.rag.embedder import Embedder
from core.rag.ingest import Ingestor, check_guild_id
from core.rag.limits import IngestLimits
from core.rag.retrieve import Retriever
from core.rag.store import DocumentRepo
from core.rag.types import DocumentInfo

__all__ = ["KnowledgeBase"]


@dataclass(frozen=True)
class KnowledgeBase:
    ingestor: Ingestor
    retriever: Retriever

    @classmethod
    def open(
        cls, pool: Pool, embedder: Embedder, limits: IngestLimits | None = None
    ) -> KnowledgeBase:
        """`limits`: the caps on what a document and a guild may hold (the settings')."""
        return cls(Ingestor(pool, embedder, limits), Retriever(pool, embedder))

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

    async def scope(
        self, guild_id: int, doc_id_or_uri: str, channel_id: int | None, role_id: int | None
    ) -> DocumentInfo:
        """Restrict an uploaded document to the viewers of a channel and/or a role (both None:
        guild-wide). InvalidInput for a document from Discord: its channel decides already."""
        check_guild_id(guild_id)
        async with self.retriever.pool.connection() as conn, conn.transaction():
            docs = DocumentRepo(conn)
            found = await docs.get_by_uri(guild_id, doc_id_or_uri, lock=True)
            if found is None and doc_id_or_uri.isdigit():
                found = await docs.get(guild_id, int(doc_id_or_uri))
            if found is None:
                raise NotFound(
                    f"No document {doc_id_or_uri!r} in guild {guild_id}; see `guru docs list`."
                )
            if not await docs.set_scope(guild_id, found.id, channel_id, role_id):
                raise InvalidInput(
                    "That document came from a Discord channel: the channel's viewers are "
                    "who can read it."
                )
            return await docs.get(guild_id, found.id) or found
