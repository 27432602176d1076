"""The concept notes in Guru's reserved knowledge base (guild 0), kept in step with the files.

/explain answers from the same knowledge base as /ask (core.rag), so the notes must be in it.
`sync_concepts` makes guild 0's concept documents equal to the notes on disk: a new note is
added, an edited note replaces its chunks (one transaction, through `Ingestor`), a deleted note
is removed, and an unchanged note costs nothing. The unchanged check compares content hashes
against one listing of guild 0, so a start where nothing changed is one SELECT, no embedding,
and does not even load the encoder.

Uris are `concepts/<file>.md`, not filesystem paths: moving the checkout must not re-ingest
every note, and a uri is what a user sees next to a cited source.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import NotFound
from core.explain.topics import CONCEPTS_DIR
from core.rag.chunking import content_hash
from core.rag.ingest import Ingestor
from core.rag.loaders import parse_markdown
from core.rag.types import CONCEPTS_GUILD_ID, IngestOutcome, ParsedDocument

if TYPE_CHECKING:
    from core.services import Services

__all__ = [
    "ConceptSync",
    "URI_PREFIX",
    "ensure_concepts_ingested",
    "load_concept_documents",
    "note_uri",
    "sync_concepts",
]

log = logging.getLogger(__name__)

URI_PREFIX = "concepts/"


def note_uri(name: str) -> str:
    """The stored uri of the note file `name` (e.g. "lora.md" → "concepts/lora.md")."""
    return URI_PREFIX + name


@dataclass(frozen=True)
class ConceptSync:
    """What one sync did, by note uri; `errors` maps a uri to why it could not be ingested."""

    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.removed)


def load_concept_documents(directory: Path = CONCEPTS_DIR) -> list[ParsedDocument]:
    """Every `*.md` note in `directory`, parsed at its headings (blocking: file reads)."""
    docs = []
    for path in sorted(Path(directory).glob("*.md")):
        parsed = parse_markdown(note_uri(path.name), path.read_text(encoding="utf-8"))
        docs.append(
            ParsedDocument(
                parsed.uri, parsed.title, parsed.sections, "concept", {"note": path.name}
            )
        )
    return docs


async def sync_concepts(ingestor: Ingestor, directory: Path = CONCEPTS_DIR) -> ConceptSync:
    """Make guild 0's concept documents match the notes in `directory` (idempotent)."""
    started = time.perf_counter()
    docs = await asyncio.to_thread(load_concept_documents, Path(directory))
    if not docs:
        # An empty or missing directory is a packaging mistake, not "delete every note".
        raise FileNotFoundError(f"no concept notes (*.md) in {directory}")
    stored = {
        d.uri: d for d in await ingestor.list_documents(CONCEPTS_GUILD_ID) if d.source == "concept"
    }
    outcomes: list[IngestOutcome] = []
    unchanged: list[str] = []
    for doc in docs:
        known = stored.get(doc.uri)
        if known is not None and known.content_hash == content_hash(doc):
            unchanged.append(doc.uri)
        else:
            outcomes.append(await ingestor.ingest_document(CONCEPTS_GUILD_ID, doc))
    on_disk = {d.uri for d in docs}
    removed = []
    for uri in sorted(set(stored) - on_disk):
        try:
            await ingestor.remove(CONCEPTS_GUILD_ID, uri)
        except NotFound:  # another process starting at the same time removed it first
            pass
        removed.append(uri)
    result = ConceptSync(
        added=tuple(o.uri for o in outcomes if o.status == "added"),
        replaced=tuple(o.uri for o in outcomes if o.status == "replaced"),
        unchanged=tuple(unchanged + [o.uri for o in outcomes if o.status == "unchanged"]),
        removed=tuple(removed),
        errors={o.uri: o.error or "error" for o in outcomes if o.status == "error"},
        seconds=time.perf_counter() - started,
    )
    if result.changed or result.errors:
        log.info(
            "concept notes: %d added, %d replaced, %d removed, %d unchanged, %d errors in %.2fs",
            len(result.added),
            len(result.replaced),
            len(result.removed),
            len(result.unchanged),
            len(result.errors),
            result.seconds,
        )
    for uri, error in result.errors.items():
        log.warning("concept note %s was not ingested: %s", uri, error)
    return result


async def ensure_concepts_ingested(
    services: Services, directory: Path = CONCEPTS_DIR
) -> ConceptSync:
    """`sync_concepts` on the services' knowledge base; call once at start."""
    return await sync_concepts(services.knowledge.ingestor, directory)
