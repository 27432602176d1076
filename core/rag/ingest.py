"""`Ingestor`: files and Discord messages → parsed → chunked → embedded → stored.

Parsing, chunking and embedding happen before any transaction opens; the write of a document
and all its chunks is then one short transaction, so after any failure (a bad file, a killed
connection, a crashed process) the document is either complete or absent, and a replaced
document is either wholly old or wholly new. Unchanged content (same content hash) is a no-op
that embeds nothing. One bad input never stops the rest of a batch. `IngestLimits` caps each
document's characters and chunks and each guild's chunks (a refused document is an outcome
with the reason, like any bad file).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import psycopg

from core.db.pool import Pool
from core.errors import GuruError, InvalidInput, NotFound
from core.rag.chunking import Chunker, content_hash
from core.rag.embedder import Embedder
from core.rag.limits import IngestLimits
from core.rag.loaders import MAX_FILE_BYTES, expand_paths, load_file, parse_text
from core.rag.store import ChunkRepo, DocumentRepo, forget_guild
from core.rag.types import (
    ChunkDraft,
    DocumentInfo,
    IngestOutcome,
    ParsedDocument,
    Section,
    SourceKind,
)

__all__ = ["Ingestor", "check_guild_id"]

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 500
# Chunks embedded together (from several documents when they are short): enough for a few
# full, length-sorted batches of 32. Documents parsed ahead while a window embeds.
WINDOW_CHUNKS = 128
PREFETCH_DOCS = 16


def check_guild_id(guild_id: int) -> int:
    """Guild ids are Discord snowflakes (> 0) or 0, Guru's own concept notes."""
    if not isinstance(guild_id, int) or guild_id < 0 or guild_id >= 2**63:
        raise InvalidInput(f"{guild_id!r} is not a guild id; use the server's numeric id.")
    return guild_id


class Ingestor:
    """Write side of the knowledge base; one per process (shares the embedder)."""

    def __init__(self, pool: Pool, embedder: Embedder, limits: IngestLimits | None = None) -> None:
        self.pool = pool
        self.embedder = embedder
        self.limits = limits or IngestLimits()
        self._chunker: Chunker | None = None

    async def ingest_paths(
        self,
        guild_id: int,
        paths: list[str],
        *,
        max_bytes: int = MAX_FILE_BYTES,
        source: SourceKind = "file",
    ) -> AsyncIterator[IngestOutcome]:
        """Ingest files and directories (recursively); yield one outcome per file, in order.

        A producer task parses and chunks the next files while the current window of documents
        is embedded (the encoder runs on its own thread), and a window embeds the chunks of
        several documents in one call, so short documents still fill length-sorted batches.
        Each document is then written in its own transaction, as before.

        `source="concept"` with guild 0 (`CONCEPTS_GUILD_ID`) is how /explain's notes go in."""
        check_guild_id(guild_id)
        entries = await asyncio.to_thread(lambda: list(expand_paths(paths)))
        queue: asyncio.Queue[_Item | BaseException | None] = asyncio.Queue(PREFETCH_DOCS)
        producer = asyncio.create_task(
            self._prepare_all(guild_id, entries, max_bytes, source, queue)
        )
        try:
            finished = False
            while not finished:
                window, finished = await _next_window(queue)
                for outcome in await self._finish(guild_id, window):
                    yield outcome
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    async def _prepare_all(
        self,
        guild_id: int,
        entries: list[tuple[str, str | None]],
        max_bytes: int,
        source: SourceKind,
        queue: asyncio.Queue[_Item | BaseException | None],
    ) -> None:
        """Parse and chunk each entry into `queue`, then None; an unexpected error goes in too."""
        try:
            for uri, problem in entries:
                await queue.put(await self._prepare_file(guild_id, uri, problem, max_bytes, source))
        except Exception as exc:  # handed to the consumer, which raises it
            await queue.put(exc)
            return
        await queue.put(None)

    async def _prepare_file(
        self, guild_id: int, uri: str, problem: str | None, max_bytes: int, source: SourceKind
    ) -> _Item:
        if problem:
            return IngestOutcome(uri, "error", error=problem)
        try:
            doc = await asyncio.to_thread(load_file, uri, max_bytes, self.limits)
        except InvalidInput as exc:
            return IngestOutcome(uri, "error", error=exc.user_message)
        except OSError as exc:
            return IngestOutcome(uri, "error", error=f"cannot read ({exc.strerror or exc})")
        if source != doc.source:
            doc = ParsedDocument(doc.uri, doc.title, doc.sections, source, doc.metadata)
        return await self._prepare(guild_id, doc)

    async def ingest_message(
        self,
        guild_id: int,
        text: str,
        *,
        jump_url: str,
        author: str,
        channel: str,
        title: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> IngestOutcome:
        """A Discord message (e.g. a pin) as a document whose uri is its jump URL."""
        if not text.strip():
            return IngestOutcome(jump_url, "error", error="empty message")
        parsed = parse_text(jump_url, text, title=title or f"#{channel} — {author}")
        doc = ParsedDocument(
            jump_url,
            parsed.title,
            parsed.sections,
            source="discord",
            metadata={"author": author, "channel": channel, **(extra or {})},
        )
        return await self.ingest_document(guild_id, doc)

    async def ingest_document(self, guild_id: int, doc: ParsedDocument) -> IngestOutcome:
        """Store one parsed document (add, replace or no-op); errors come back as an outcome."""
        check_guild_id(guild_id)
        [outcome] = await self._finish(guild_id, [await self._prepare(guild_id, doc)])
        return outcome

    async def _prepare(self, guild_id: int, doc: ParsedDocument) -> _Item:
        """Clean, hash and chunk a document; an outcome instead when it is unchanged or bad."""
        doc = _clean(doc)
        digest = content_hash(doc)
        async with self.pool.connection() as conn:
            existing = await DocumentRepo(conn).get_by_uri(guild_id, doc.uri)
        if existing is not None and existing.content_hash == digest:
            return IngestOutcome(doc.uri, "unchanged", existing.id, existing.chunk_count, doc.title)
        try:
            chunker = await self._get_chunker()
            drafts = await asyncio.to_thread(chunker.split, doc)
        except GuruError as exc:
            return IngestOutcome(doc.uri, "error", error=exc.user_message)
        if not drafts:
            return IngestOutcome(doc.uri, "error", error="no text to index")
        if len(drafts) > self.limits.max_doc_chunks:
            return IngestOutcome(
                doc.uri,
                "error",
                error=f"too long: {len(drafts)} chunks, more than {self.limits.max_doc_chunks};"
                " split it (the limit is GURU_INGEST_MAX_DOC_CHUNKS)",
            )
        try:  # early, so a full guild costs no embedding; `_write` checks again, authoritatively
            async with self.pool.connection() as conn:
                await self._check_guild_room(
                    conn, guild_id, existing.id if existing else 0, len(drafts)
                )
        except InvalidInput as exc:
            return IngestOutcome(doc.uri, "error", error=exc.user_message)
        return _Prepared(doc, digest, drafts)

    async def _finish(self, guild_id: int, window: list[_Item]) -> list[IngestOutcome]:
        """Embed the window's chunks in one call, then write each document in its own
        transaction; outcomes in the window's order."""
        started = time.perf_counter()
        prepared = [item for item in window if isinstance(item, _Prepared)]
        texts = [d.embedding_text for item in prepared for d in item.drafts]
        try:
            embeddings = await self.embedder.embed(texts)
        except GuruError as exc:
            return [
                item
                if isinstance(item, IngestOutcome)
                else IngestOutcome(item.doc.uri, "error", error=exc.user_message)
                for item in window
            ]
        outcomes, offset = [], 0
        for item in window:
            if isinstance(item, IngestOutcome):
                outcomes.append(item)
                continue
            rows = embeddings[offset : offset + len(item.drafts)]
            offset += len(item.drafts)
            outcomes.append(await self._store(guild_id, item, rows))
        log.info(
            "ingest window for guild %s: %d documents, %d chunks in %.2fs",
            guild_id,
            len(prepared),
            len(texts),
            time.perf_counter() - started,
        )
        return outcomes

    async def _store(self, guild_id: int, item: _Prepared, embeddings: Any) -> IngestOutcome:
        try:
            outcome = await self._write(guild_id, item.doc, item.digest, item.drafts, embeddings)
        except GuruError as exc:
            return IngestOutcome(item.doc.uri, "error", error=exc.user_message)
        except psycopg.Error as exc:  # the transaction rolled back: nothing of it was written
            log.warning(
                "ingest of a document for guild %s failed in the database: %s", guild_id, exc
            )
            return IngestOutcome(
                item.doc.uri,
                "error",
                error="database error; nothing of this document was written, try again",
            )
        log.info(
            "ingested document %s for guild %s: %s, %d chunks",
            outcome.document_id,
            guild_id,
            outcome.status,
            outcome.chunks,
        )
        return outcome

    async def _write(
        self, guild_id: int, doc: ParsedDocument, digest: str, drafts: list, embeddings: Any
    ) -> IngestOutcome:
        async with self.pool.connection() as conn, conn.transaction():
            docs, chunks = DocumentRepo(conn), ChunkRepo(conn)
            if guild_id > 0:
                await conn.execute(
                    "INSERT INTO guilds (id) VALUES (%(id)s) ON CONFLICT DO NOTHING",
                    {"id": guild_id},
                )
            current = await docs.get_by_uri(guild_id, doc.uri, lock=True)
            if current is not None and current.content_hash == digest:  # a racing twin won
                return IngestOutcome(
                    doc.uri, "unchanged", current.id, current.chunk_count, doc.title
                )
            if current is None:
                doc_id, status = (
                    await docs.insert(
                        guild_id,
                        source=doc.source,
                        uri=doc.uri,
                        title=doc.title,
                        content_hash=digest,
                        metadata=doc.metadata,
                    ),
                    "added",
                )
            else:
                doc_id, status = current.id, "replaced"
                await docs.update_content(
                    guild_id, doc_id, title=doc.title, content_hash=digest, metadata=doc.metadata
                )
                await chunks.delete_for_document(guild_id, doc_id)
            await self._check_guild_room(conn, guild_id, doc_id, len(drafts))
            count = await chunks.insert_many(guild_id, doc_id, drafts, embeddings)
            await docs.set_chunk_count(guild_id, doc_id, count)
        return IngestOutcome(doc.uri, status, doc_id, count, doc.title)  # type: ignore[arg-type]

    async def _check_guild_room(
        self, conn: psycopg.AsyncConnection, guild_id: int, doc_id: int, adding: int
    ) -> None:
        """InvalidInput (rolling the write back) when the guild would hold too many chunks.
        Guild 0 is the operator's concept notes, not a member's upload: never capped."""
        if guild_id == 0:
            return
        used = await DocumentRepo(conn).chunks_used(guild_id, excluding=doc_id)
        if used + adding > self.limits.max_guild_chunks:
            raise InvalidInput(
                f"this server's documents are full ({used:,} of"
                f" {self.limits.max_guild_chunks:,} chunks used, this one needs {adding:,});"
                " remove some documents first (the limit is GURU_INGEST_MAX_GUILD_CHUNKS)"
            )

    async def _get_chunker(self) -> Chunker:
        if self._chunker is None:

            def build() -> Chunker:
                tokenizer = self.embedder.tokenizer
                return Chunker(
                    lambda text: tokenizer.encode(text, add_special_tokens=False, verbose=False)
                )

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
                raise NotFound(
                    f"No document {doc_id_or_uri!r} in guild {guild_id}; see `guru docs list`."
                )
        return found

    async def forget_guild(self, guild_id: int) -> dict[str, int]:
        """Erase every row of the guild; NotFound when there was nothing to erase."""
        check_guild_id(guild_id)
        async with self.pool.connection() as conn, conn.transaction():
            counts = await forget_guild(conn, guild_id)
        if not any(counts.values()):
            raise NotFound(f"Guru has nothing stored for guild {guild_id}.")
        return counts


@dataclass(frozen=True)
class _Prepared:
    """A document parsed and chunked, waiting for its embeddings."""

    doc: ParsedDocument
    digest: str
    drafts: list[ChunkDraft]


_Item = IngestOutcome | _Prepared


async def _next_window(
    queue: asyncio.Queue[_Item | BaseException | None],
) -> tuple[list[_Item], bool]:
    """Items from the producer until WINDOW_CHUNKS chunks are waiting; (items, producer done)."""
    window: list[_Item] = []
    chunks = 0
    while chunks < WINDOW_CHUNKS:
        item = await queue.get()
        if item is None:
            return window, True
        if isinstance(item, BaseException):
            raise item
        window.append(item)
        chunks += len(item.drafts) if isinstance(item, _Prepared) else 0
    return window, False


def _clean(doc: ParsedDocument) -> ParsedDocument:
    title = " ".join(doc.title.split())[:MAX_TITLE_CHARS]
    # PostgreSQL text cannot hold NUL; PDFs and odd encoders sometimes emit it.
    sections = tuple(
        Section(s.heading.replace("\x00", ""), s.text.replace("\x00", ""))
        for s in doc.sections
        if s.text.strip()
    )
    return ParsedDocument(doc.uri, title, sections, doc.source, doc.metadata)
