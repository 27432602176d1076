"""`DocumentRepo` and `ChunkRepo`: all SQL on `documents` and `chunks` (migration 0002).

Each repo wraps one connection so a caller can put a document and all its chunks in one
transaction. Every method takes `guild_id` and every statement filters on it: a caller cannot
read or delete another guild's rows by id. Parameters are `%(name)s` only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from core.rag.types import Access, ChunkDraft, DocumentInfo

__all__ = ["DocumentRepo", "ChunkRepo", "forget_guild"]

log = logging.getLogger(__name__)

Conn = psycopg.AsyncConnection[Any]

_DOC_COLUMNS = (
    "id, guild_id, source, uri, title, status, chunk_count, content_hash, metadata,"
    " created_at, updated_at"
)


def _doc(row: dict[str, Any]) -> DocumentInfo:
    return DocumentInfo(**row)


# The guild's documents one member may not read: from a channel they cannot view, or scoped
# to a role they lack. Restricted documents are few and indexed (documents_restricted).
_HIDDEN = """
SELECT id FROM documents
WHERE guild_id = %(guild_id)s
  AND (access_channel_id IS NOT NULL OR access_role_id IS NOT NULL)
  AND ((access_channel_id IS NOT NULL AND access_channel_id <> ALL(%(channels)s::bigint[]))
       OR (access_role_id IS NOT NULL AND access_role_id <> ALL(%(roles)s::bigint[])))
"""


class DocumentRepo:
    """Rows of `documents` for one connection."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def get_by_uri(
        self, guild_id: int, uri: str, *, lock: bool = False
    ) -> DocumentInfo | None:
        """The guild's document at `uri`; `lock` holds it (FOR UPDATE) until the commit."""
        query = (
            f"SELECT {_DOC_COLUMNS} FROM documents"
            " WHERE guild_id = %(guild_id)s AND uri = %(uri)s" + (" FOR UPDATE" if lock else "")
        )
        async with self.conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, {"guild_id": guild_id, "uri": uri})
            row = await cur.fetchone()
        return _doc(row) if row else None

    async def get(self, guild_id: int, document_id: int) -> DocumentInfo | None:
        async with self.conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {_DOC_COLUMNS} FROM documents"
                " WHERE guild_id = %(guild_id)s AND id = %(id)s",
                {"guild_id": guild_id, "id": document_id},
            )
            row = await cur.fetchone()
        return _doc(row) if row else None

    async def list_family(self, guild_id: int, uri: str) -> list[DocumentInfo]:
        """The document at `uri` and the ones attached to it (`uri#…`: a message's files)."""
        async with self.conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {_DOC_COLUMNS} FROM documents"
                " WHERE guild_id = %(guild_id)s"
                " AND (uri = %(uri)s OR starts_with(uri, %(uri)s || '#'))"
                " ORDER BY uri",
                {"guild_id": guild_id, "uri": uri},
            )
            return [_doc(r) for r in await cur.fetchall()]

    async def list(self, guild_id: int) -> list[DocumentInfo]:
        async with self.conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {_DOC_COLUMNS} FROM documents WHERE guild_id = %(guild_id)s ORDER BY uri",
                {"guild_id": guild_id},
            )
            return [_doc(r) for r in await cur.fetchall()]

    async def insert(
        self,
        guild_id: int,
        *,
        source: str,
        uri: str,
        title: str,
        content_hash: str,
        metadata: dict[str, Any],
    ) -> int:
        cur = await self.conn.execute(
            "INSERT INTO documents (guild_id, source, uri, title, content_hash, metadata)"
            " VALUES (%(guild_id)s, %(source)s, %(uri)s, %(title)s, %(hash)s, %(metadata)s)"
            " RETURNING id",
            {
                "guild_id": guild_id,
                "source": source,
                "uri": uri,
                "title": title,
                "hash": content_hash,
                "metadata": Jsonb(metadata),
            },
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def chunks_used(self, guild_id: int, *, excluding: int = 0) -> int:
        """The guild's chunks, without those of document `excluding` (the one being replaced)."""
        cur = await self.conn.execute(
            "SELECT coalesce(sum(chunk_count), 0) FROM documents"
            " WHERE guild_id = %(g)s AND id <> %(d)s",
            {"g": guild_id, "d": excluding},
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def set_metadata_key(
        self, guild_id: int, document_id: int, key: str, value: str | None
    ) -> None:
        """Set one metadata key of a document (None removes it); content stays as it is."""
        await self.conn.execute(
            "UPDATE documents SET metadata = CASE WHEN %(value)s::text IS NULL"
            " THEN metadata - %(key)s ELSE metadata || jsonb_build_object(%(key)s, %(value)s::text)"
            " END WHERE guild_id = %(guild_id)s AND id = %(id)s",
            {"guild_id": guild_id, "id": document_id, "key": key, "value": value},
        )

    async def update_content(
        self,
        guild_id: int,
        document_id: int,
        *,
        title: str,
        content_hash: str,
        metadata: dict[str, Any],
    ) -> None:
        await self.conn.execute(
            "UPDATE documents SET title = %(title)s, content_hash = %(hash)s,"
            " metadata = %(metadata)s, status = 'ready'"
            " WHERE guild_id = %(guild_id)s AND id = %(id)s",
            {
                "guild_id": guild_id,
                "id": document_id,
                "title": title,
                "hash": content_hash,
                "metadata": Jsonb(metadata),
            },
        )

    async def set_chunk_count(self, guild_id: int, document_id: int, count: int) -> None:
        await self.conn.execute(
            "UPDATE documents SET chunk_count = %(count)s"
            " WHERE guild_id = %(guild_id)s AND id = %(id)s",
            {"guild_id": guild_id, "id": document_id, "count": count},
        )

    async def delete(self, guild_id: int, document_id: int) -> bool:
        """Delete the document and (by cascade) its chunks; False if the guild has no such id."""
        cur = await self.conn.execute(
            "DELETE FROM documents WHERE guild_id = %(guild_id)s AND id = %(id)s",
            {"guild_id": guild_id, "id": document_id},
        )
        return cur.rowcount > 0

    async def hidden_ids(self, guild_id: int, access: Access | None) -> list[int]:
        """Ids of the guild's documents `access` may not read (none when access is None)."""
        if access is None:
            return []
        cur = await self.conn.execute(
            _HIDDEN,
            {
                "guild_id": guild_id,
                "channels": sorted(access.channel_ids),
                "roles": sorted(access.role_ids),
            },
        )
        return [row[0] for row in await cur.fetchall()]

    async def set_scope(
        self, guild_id: int, document_id: int, channel_id: int | None, role_id: int | None
    ) -> bool:
        """Restrict an uploaded document to a channel's viewers and/or a role (None, None:
        guild-wide again); the access columns follow the metadata (migration 0007). A document
        from Discord keeps its channel's rule: False, nothing changed."""
        scope = {"scope_channel_id": channel_id, "scope_role_id": role_id}
        cur = await self.conn.execute(
            "UPDATE documents SET metadata = (metadata - 'scope_channel_id' - 'scope_role_id')"
            " || jsonb_strip_nulls(%(scope)s::jsonb)"
            " WHERE guild_id = %(guild_id)s AND id = %(id)s AND source <> 'discord'",
            {
                "guild_id": guild_id,
                "id": document_id,
                "scope": Jsonb({k: str(v) if v else None for k, v in scope.items()}),
            },
        )
        return cur.rowcount == 1

    async def closest_titles(
        self, guild_id: int, embedding: np.ndarray, hidden: list[int], limit: int = 3
    ) -> list[str]:
        """Titles of the documents nearest to a query, for a refusal that points somewhere;
        never one of `hidden` (documents the asker may not read)."""
        cur = await self.conn.execute(
            "SELECT d.title FROM documents d JOIN LATERAL ("
            "  SELECT min(c.embedding <=> %(embedding)s) AS distance FROM chunks c"
            "  WHERE c.guild_id = %(guild_id)s AND c.document_id = d.id) best ON true"
            " WHERE d.guild_id = %(guild_id)s AND d.status = 'ready'"
            " AND d.id <> ALL(%(hidden)s::bigint[])"
            " ORDER BY best.distance LIMIT %(limit)s",
            {"guild_id": guild_id, "embedding": embedding, "hidden": hidden, "limit": limit},
        )
        return [r[0] for r in await cur.fetchall()]


class ChunkRepo:
    """Rows of `chunks` for one connection."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def delete_for_document(self, guild_id: int, document_id: int) -> int:
        cur = await self.conn.execute(
            "DELETE FROM chunks WHERE guild_id = %(guild_id)s AND document_id = %(id)s",
            {"guild_id": guild_id, "id": document_id},
        )
        return cur.rowcount

    async def insert_many(
        self, guild_id: int, document_id: int, chunks: Sequence[ChunkDraft], embeddings: np.ndarray
    ) -> int:
        """Insert the chunks of one document; the caller owns the transaction.

        One INSERT over arrays, not one per chunk: the BM25 statistics trigger (migration 0005)
        then runs once per document instead of once per chunk."""
        if not chunks:
            return 0
        await self.conn.execute(
            "INSERT INTO chunks (guild_id, document_id, position, title, text, embedding)"
            " SELECT %(guild_id)s, %(document_id)s, c.position, c.title, c.text, c.embedding"
            " FROM unnest(%(positions)s::int[], %(titles)s::text[], %(texts)s::text[],"
            "             %(embeddings)s::vector[]) AS c (position, title, text, embedding)",
            {
                "guild_id": guild_id,
                "document_id": document_id,
                "positions": [c.position for c in chunks],
                "titles": [c.title for c in chunks],
                "texts": [c.text for c in chunks],
                "embeddings": list(embeddings[: len(chunks)]),
            },
        )
        return len(chunks)

    async def count(self, guild_id: int) -> int:
        cur = await self.conn.execute(
            "SELECT count(*) FROM chunks WHERE guild_id = %(guild_id)s", {"guild_id": guild_id}
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def forget_guild(conn: Conn, guild_id: int) -> dict[str, int]:
    """Delete every row of the guild in every table with a `guild_id` column (and its `guilds`
    row), in the caller's transaction; return the deleted counts by table. `audit_log` rows are
    kept with their content emptied (`audit_log` counts those).

    The tables are found in the catalog, so tables added by later migrations are erased too.
    Children go first: `chunks` before `documents`, everything before `guilds`.
    """
    cur = await conn.execute(
        "SELECT table_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND column_name = 'guild_id'"
        " AND table_name IN (SELECT table_name FROM information_schema.tables"
        "   WHERE table_schema = current_schema() AND table_type = 'BASE TABLE')"
    )
    tables = sorted(r[0] for r in await cur.fetchall() if r[0] != "audit_log")
    first = [t for t in ("chunks",) if t in tables]
    last = [t for t in ("documents",) if t in tables]
    ordered = first + [t for t in tables if t not in first + last] + last
    counts: dict[str, int] = {}
    for table in ordered:
        deleted = await conn.execute(
            sql.SQL("DELETE FROM {} WHERE guild_id = %(guild_id)s").format(sql.Identifier(table)),
            {"guild_id": guild_id},
        )
        counts[table] = deleted.rowcount
    # The audit trail outlives the guild (migration 0001): which action, by whom, when stays;
    # what it carried (prompts, answers, reasons) goes.
    scrubbed = await conn.execute(
        "UPDATE audit_log SET detail = '{}' WHERE guild_id = %(guild_id)s AND detail <> '{}'",
        {"guild_id": guild_id},
    )
    counts["audit_log"] = scrubbed.rowcount
    deleted = await conn.execute(
        "DELETE FROM guilds WHERE id = %(guild_id)s", {"guild_id": guild_id}
    )
    counts["guilds"] = deleted.rowcount
    log.info("forgot guild %s: %s", guild_id, counts)
    return counts
