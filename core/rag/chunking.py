"""Split a `ParsedDocument` into chunks that fit the encoder's 256-token window.

llama-index's `SentenceSplitter` does the splitting (paragraphs, then sentences, then words),
counting with the encoder's own tokenizer. Each section is split on its own, so a chunk never
straddles two headings, and the "document › section" title and the document's one-sentence
description (`describe`) are charged against the budget because they are embedded in front of
the chunk text. Blocking: call through `asyncio.to_thread`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable

from core.rag.types import ChunkDraft, ParsedDocument

__all__ = ["Chunker", "CHUNK_TOKENS", "CHUNK_OVERLAP", "content_hash", "describe"]

log = logging.getLogger(__name__)

# 256-token window minus [CLS]/[SEP] and some slack for the tokenizer disagreeing with itself
# on word boundaries; the overlap keeps a sentence cut at a boundary findable from both sides.
CHUNK_TOKENS = 240
CHUNK_OVERLAP = 40
# Bump when chunking or embedding changes: every document then re-ingests on its next run.
CHUNKER_VERSION = "2"  # 2: the document's description embedded in front of every chunk
# The description: at most this many words of the document's first prose sentence.
DESCRIPTION_WORDS = 40
# ... found among the first sentences of the document's first few sections.
DESCRIPTION_SECTIONS = 4


def content_hash(doc: ParsedDocument) -> str:
    """sha256 over what decides the stored chunks: title, sections and the chunker version."""
    payload = json.dumps([CHUNKER_VERSION, CHUNK_TOKENS, CHUNK_OVERLAP, doc.title,
                          [[s.heading, s.text] for s in doc.sections]], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Chunker:
    """`split(doc)` → ordered `ChunkDraft`s."""

    def __init__(self, count_tokens: Callable[[str], list[int]], chunk_tokens: int = CHUNK_TOKENS,
                 overlap: int = CHUNK_OVERLAP) -> None:
        from llama_index.core.node_parser import SentenceSplitter

        self._encode = count_tokens
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap
        self._splitter = SentenceSplitter(chunk_size=chunk_tokens, chunk_overlap=overlap,
                                          tokenizer=count_tokens)

    def split(self, doc: ParsedDocument) -> list[ChunkDraft]:
        chunks: list[ChunkDraft] = []
        context = describe(doc)
        for section in doc.sections:
            if not section.text.strip():
                continue
            title = _join_title(doc.title, section.heading)
            prefix = _prefix(title, context)
            # The splitter refuses metadata longer than the chunk; cap absurd headings.
            if len(self._encode(prefix)) > self.chunk_tokens // 3:
                title = title[:80]
                prefix = _prefix(title, context)
            for piece in self._splitter.split_text_metadata_aware(section.text, prefix):
                if piece.strip():
                    chunks.append(ChunkDraft(len(chunks), title, piece.strip(), context))
        return chunks


def _prefix(title: str, context: str) -> str:
    """What `ChunkDraft.embedding_text` puts in front of the chunk's text."""
    return "".join(part + "\n" for part in (title, context) if part)


def describe(doc: ParsedDocument, max_words: int = DESCRIPTION_WORDS) -> str:
    """The document's own one-sentence description, for every chunk's embedding.

    A loader's `metadata["description"]` (HTML `<meta name="description">`) when there is one,
    else the first prose sentence that opens one of the document's first sections (6 to
    `max_words` words, mostly words rather than code or option lists) and does not just repeat
    the title: for a man page the first
    sentence of DESCRIPTION (its NAME line is in the title already), for a guide or FAQ its
    opening sentence. "" when nothing qualifies."""
    given = " ".join(str(doc.metadata.get("description") or "").split())
    if given:
        return " ".join(given.split()[:max_words])
    title_words = _words(doc.title)
    for section in doc.sections[:DESCRIPTION_SECTIONS]:
        text = " ".join(section.text.split())
        if text.lower().startswith(("table of contents", "contents")):
            continue
        sentence = _SENTENCE_END.split(text, 1)[0]
        words = sentence.split()
        # Too short is a label or a synopsis; a run-on past max_words is a list or a glossary.
        if not 6 <= len(words) <= max_words:
            continue
        if sum(w.strip(",.;:()'\"").isalpha() for w in words) < 0.7 * len(words):
            continue  # code, option lists, synopses
        if len(_words(sentence) - title_words) < 0.3 * len(_words(sentence)):
            continue  # the title's own summary again ("git-stash - Stash the changes…")
        return sentence
    return ""


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`\"'])")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _join_title(title: str, heading: str) -> str:
    if not heading or heading.strip() == title.strip():
        return title.strip()
    return f"{title.strip()} › {heading.strip()}" if title.strip() else heading.strip()
