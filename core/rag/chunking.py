"""Split a `ParsedDocument` into chunks that fit the encoder's 256-token window.

llama-index's `SentenceSplitter` does the splitting (paragraphs, then sentences, then words),
counting with the encoder's own tokenizer. Each section is split on its own, so a chunk never
straddles two headings, and the "document › section" title is charged against the budget
because it is embedded in front of the chunk text. Blocking: call through `asyncio.to_thread`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable

from core.rag.types import ChunkDraft, ParsedDocument

__all__ = ["Chunker", "CHUNK_TOKENS", "CHUNK_OVERLAP", "content_hash"]

log = logging.getLogger(__name__)

# 256-token window minus [CLS]/[SEP] and some slack for the tokenizer disagreeing with itself
# on word boundaries; the overlap keeps a sentence cut at a boundary findable from both sides.
CHUNK_TOKENS = 240
CHUNK_OVERLAP = 40
# Bump when chunking or embedding changes: every document then re-ingests on its next run.
CHUNKER_VERSION = "1"


def content_hash(doc: ParsedDocument) -> str:
    """sha256 over what decides the stored chunks: title, sections and the chunker version."""
    payload = json.dumps(
        [
            CHUNKER_VERSION,
            CHUNK_TOKENS,
            CHUNK_OVERLAP,
            doc.title,
            [[s.heading, s.text] for s in doc.sections],
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Chunker:
    """`split(doc)` → ordered `ChunkDraft`s."""

    def __init__(
        self,
        count_tokens: Callable[[str], list[int]],
        chunk_tokens: int = CHUNK_TOKENS,
        overlap: int = CHUNK_OVERLAP,
    ) -> None:
        from llama_index.core.node_parser import SentenceSplitter

        self._encode = count_tokens
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap
        self._splitter = SentenceSplitter(
            chunk_size=chunk_tokens, chunk_overlap=overlap, tokenizer=count_tokens
        )

    def split(self, doc: ParsedDocument) -> list[ChunkDraft]:
        chunks: list[ChunkDraft] = []
        for section in doc.sections:
            if not section.text.strip():
                continue
            title = _join_title(doc.title, section.heading)
            prefix = title + "\n"
            # The splitter refuses metadata longer than the chunk; cap absurd headings.
            if len(self._encode(prefix)) > self.chunk_tokens // 3:
                title = title[:80]
                prefix = title + "\n"
            for piece in self._splitter.split_text_metadata_aware(section.text, prefix):
                if piece.strip():
                    chunks.append(ChunkDraft(len(chunks), title, piece.strip()))
        return chunks


def _join_title(title: str, heading: str) -> str:
    if not heading or heading.strip() == title.strip():
        return title.strip()
    return f"{title.strip()} › {heading.strip()}" if title.strip() else heading.strip()
