"""Values that cross the RAG boundary: parsed documents, chunks, search hits, answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "Access",
    "CONCEPTS_GUILD_ID",
    "Section",
    "ParsedDocument",
    "ChunkDraft",
    "DocumentInfo",
    "Hit",
    "IngestOutcome",
    "Source",
    "Answer",
    "SearchMode",
    "SourceKind",
]

# Guru's own knowledge base (/explain concept notes); Discord guild ids are always > 0.
CONCEPTS_GUILD_ID = 0

SearchMode = Literal["hybrid", "vector", "text"]


@dataclass(frozen=True)
class Access:
    """What one member may read: the ids of the channels and threads they can view, and their
    roles (resolved by the bot from Discord's permissions when they ask). Searches take
    `Access | None`; None means everything (the operator's CLI, Guru's own concept notes)."""

    channel_ids: frozenset[int]
    role_ids: frozenset[int]


SourceKind = Literal["file", "discord", "text", "concept", "web", "git"]


@dataclass(frozen=True)
class Section:
    """A run of text under one heading ("" when the format has none)."""

    heading: str
    text: str


@dataclass(frozen=True)
class ParsedDocument:
    """A document read from a file or a message, before chunking."""

    uri: str
    title: str
    sections: tuple[Section, ...]
    source: SourceKind = "file"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkDraft:
    """One chunk as the splitter made it; `title` is "document › section"."""

    position: int
    title: str
    text: str

    @property
    def embedding_text(self) -> str:
        # The title goes in front so a chunk deep in a section still knows what it is about.
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    guild_id: int
    source: str
    uri: str
    title: str
    status: str
    chunk_count: int
    content_hash: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk. `score` depends on the mode (cosine, BM25 or RRF; with document
    support a document's best chunk carries the document's score, see retrieve.document_support);
    `similarity` is always the cosine similarity to the query and drives the relevance floor."""

    chunk_id: int
    document_id: int
    title: str
    uri: str
    text: str
    score: float
    similarity: float
    exact: bool = False  # every query term occurs in the chunk (websearch_to_tsquery AND)


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one input: added / replaced / unchanged / error (with a reason)."""

    uri: str
    status: Literal["added", "replaced", "unchanged", "error"]
    document_id: int | None = None
    chunks: int = 0
    title: str = ""
    error: str | None = None


@dataclass(frozen=True)
class Source:
    n: int
    title: str
    uri: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of a cited source (CLI --json, the interactions table)."""
        return {"n": self.n, "title": self.title, "uri": self.uri, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Answer:
    answer: str
    sources: tuple[Source, ...]
    refused: bool
    closest_titles: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "sources": [s.to_dict() for s in self.sources],
            "refused": self.refused,
        }
