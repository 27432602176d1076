"""`Ingestor`: files and Discord messages → parsed → chunked → embedded → stored.

Parsing, chunking and embedding happen before any transaction opens; the write of a document
and all its chunks is then one short transaction, so after any failure (a bad file, a killed
connection, a crashed process) the document is either complete or absent, and a replaced
document is either wholly old or wholly new. Unchanged content (same content hash) is a no-op
that embeds nothing. One bad input never stops the rest of a batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg

from core.errors import GuruError, InvalidInput, NotFound
from core.db.pool import Pool
from core.rag.chunking import Chunker, content_hash
from core.rag.embedder import Embedder
from core.rag.loaders import MAX_FILE_BYTES, expand_paths, load_file, parse_text
from core.rag.store import ChunkRepo, DocumentRepo, forget_guild
from core.rag.types import DocumentInfo, IngestOutcome, ParsedDocument, Section, SourceKind

__all__ = ["Ingestor", "check_guild_id"]

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 500


def check_guild_id(guild_id: int) -> int:
    """Guild ids are Discord snowflakes (> 0) or 0, Guru's own concept notes."""
    if not isinstance(guild_id, int) or guild_id < 0 or guild_id >= 2**63:
        raise InvalidInput(f"{guild_id!r} is not a guild id; use the server's numeric id.")
    return guild_id


class Ingestor:
    """Write side of the knowledge base; one per process (shares the embedder)."""

    def __init__(self, pool: Pool, embedder: Embedder) -> None:
        self.pool = pool
        self.embedder = embedder
        self._chunker: Chunker | None = None

    async def ingest_paths(self, guild_id: int, paths: list[str], *,
                           max_bytes: int = MAX_FILE_BYTES,
                           source: SourceKind = "file") -> AsyncIterator[IngestOutcome]:
        """Ingest files and directories (recursively); yield one outcome per file, in order.

        `source="concept"` with guild 0 (`CONCEPTS_GUILD_ID`) is how /explain's notes go in."""
        check_guild_id(guild_id)
        for uri, problem in await asyncio.to_thread(lambda: list(expand_paths(paths))):
            if problem:
                yield IngestOutcome(uri, "error", error=problem)
                continue
            try:
                doc = await asyncio.to_thread(load_file, uri, max_bytes)
            except InvalidInput as exc:
                yield IngestOutcome(uri, "error", error=exc.user_message)
                continue
            except OSError as exc:
                yield IngestOutcome(uri, "error", error=f"cannot read ({exc.strerror or exc})")
                continue
            if source != doc.source:
                doc = ParsedDocument(doc.uri, doc.title, doc.sections, source, doc.metadata)
            yield await self.ingest_document(guild_id, doc)

    async def ingest_message(self, guild_id: int, text: str, *, jump_url: str, author: str,
                             channel: str, title: str | None = None,
                             extra: dict[str, Any] | None = None) -> IngestOutcome:
        """A Discord message (e.g. a pin) as a document whose uri is its jump URL."""
        if not text.strip():
            return IngestOutcome(jump_url, "error", error="empty message")
        parsed = parse_text(jump_url, text, title=title or f"#{channel} — {author}")
        doc = ParsedDocument(jump_url, parsed.title, parsed.sections, source="discord",
                             metadata={"author": author, "channel": channel, **(extra or {})})
        return await self.ingest_document(guild_id, doc)

    async def ingest_document(self, guild_id: int, doc: ParsedDocument) -> IngestOutcome:
        """Store one parsed document (add, replace or no-op); errors come back as an outcome."""
        check_guild_id(guild_id)
        started = time.perf_counter()
        doc = _clean(doc)
        digest = content_hash(doc)
        async with self.pool.connection() as conn:
            existing = await DocumentRepo(conn).get_by_uri(guild_id, doc.uri)
        if existing is not None and existing.content_hash == digest:
            return IngestOutcome(doc.uri, "unchanged", existing.id, existing.chunk_count, doc.title)
        try:
            chunker = await self._get_chunker()
            drafts = await asyncio.to_thread(chunker.split, doc)
            if not drafts:
                return IngestOutcome(doc.uri, "error", error="no text to index")
            embeddings = await self.embedder.embed([d.embedding_text for d in drafts])
            outcome = await self._write(guild_id, doc, digest, drafts, embeddings)
        except GuruError as exc:
            return IngestOutcome(doc.uri, "error", error=exc.user_message)
        except psycopg.Error as exc:  # the transaction rolled back: nothing of it was written
            log.warning("ingest of a document for guild %s failed in the database: %s",
                        guild_id, exc)
            return IngestOutcome(doc.uri, "error", error="database error; nothing of this "
                                 "document was written, try again")
        log.info("ingested document %s for guild %s: %s, %d chunks in %.2fs", outcome.document_id,
                 guild_id, outcome.status, outcome.chunks, time.perf_counter() - started)
        return outcome

    async def _write(self, guild_id: int, doc: ParsedDocument, digest: str, drafts: list,
                     embeddings: Any) -> IngestOutcome:
        async with self.pool.connection() as conn, conn.transaction():
            docs, chunks = DocumentRepo(conn), ChunkRepo(conn)
            if guild_id > 0:
                await conn.execute("INSERT INTO guilds (id) VALUES (%(id)s) ON CONFLICT DO NOTHING",
                                   {"id": guild_id})
            current = await docs.get_by_uri(guild_id, doc.uri, lock=True)
            if current is not None and current.content_hash == digest:  # a racing twin won
                return IngestOutcome(doc.uri, "unchanged", current.id, current.chunk_count,
                                     doc.title)
            if current is None:
                doc_id, status = await docs.insert(
                    guild_id, source=doc.source, uri=doc.uri, title=doc.title,
                    content_hash=digest, metadata=doc.metadata), "added"
            else:
                doc_id, status = current.id, "replaced"
                await docs.update_content(guild_id, doc_id, title=doc.title, content_hash=digest,
                                          metadata=doc.metadata)
                await chunks.delete_for_document(guild_id, doc_id)
            count = await chunks.insert_many(guild_id, doc_id, drafts, embeddings)
            await docs.set_chunk_count(guild_id, doc_id, count)
        return IngestOutcome(doc.uri, status, doc_id, count, doc.title)  # type: ignore[arg-type]

    async def _get_chunker(self) -> Chunker:
        if self._chunker is None:
            def build() -> Chunker:
                tokenizer = self.embedder.tokenizer
                return Chunker(lambda text: tokenizer.encode(text, add_special_tokens=False,
                                                              verbose=False))
            self._chunker = await asyncio.to_thread(build)
        return self._chunker

    async def list_documents(self, guild_id: int) -> list[DocumentInfo]:
        check_guild_id(guild_id)
        async with self.pool.connection() as conn:
            return await DocumentRepo(conn).list(guild_id)

    async def remove(self, guild_id: int, doc_id_or_uri: str) -> DocumentInfo:
        """Delete one document of this guild by id or uri; NotFound when the guild has none such."""
        check_guild_id(guild_id)
        async with self.pool.connection() as conn, conn.transaction():
            docs = DocumentRepo(conn)
            found = await docs.get_by_uri(guild_id, doc_id_or_uri, lock=True)
            if found is None and doc_id_or_uri.isdigit():
                found = await docs.get(guild_id, int(doc_id_or_uri))
            if found is None or not await docs.delete(guild_id, found.id):
                raise NotFound(f"No document {doc_id_or_uri!r} in guild {guild_id}; "
                               "see `guru docs list`.")
        return found

    async def forget_guild(self, guild_id: int) -> dict[str, int]:
        """Erase every row of the guild; NotFound when there was nothing to erase."""
        check_guild_id(guild_id)
        async with self.pool.connection() as conn, conn.transaction():
            counts = await forget_guild(conn, guild_id)
        if not any(counts.values()):
            raise NotFound(f"Guru has nothing stored for guild {guild_id}.")
        return counts


def _clean(doc: ParsedDocument) -> ParsedDocument:
    title = " ".join(doc.title.split())[:MAX_TITLE_CHARS]
    # PostgreSQL text cannot hold NUL; PDFs and odd encoders sometimes emit it.
    sections = tuple(Section(s.heading.replace("\x00", ""), s.text.replace("\x00", ""))
                     for s in doc.sections if s.text.strip())
    return ParsedDocument(doc.uri, title, sections, doc.source, doc.metadata)

