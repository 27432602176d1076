"""`Grounder`: retrieve → relevance floor → the numbered sources an answer may cite.

The refusal does not depend on the model: when no chunk passes the floor there is nothing to
ground an answer in, so the caller refuses without asking the model, and an unrelated question
cannot be "answered" from the model's own memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from core.errors import GuruError
from core.llm.types import LLMBackend
from core.rag.expansion import expand
from core.rag.ingest import check_guild_id
from core.rag.retrieve import Expansion, Retriever, check_query
from core.rag.store import DocumentRepo
from core.rag.types import Access, Hit, Source

__all__ = ["Grounder", "Grounding", "MARGIN", "MARGIN_FLOOR", "RELEVANCE_FLOOR"]

log = logging.getLogger(__name__)

# Cosine similarity (MiniLM) a chunk needs to count as relevant, unless it contains every term
# of the question (`Hit.exact`), or it is the best hit of a document that stands out: at least
# MARGIN_FLOOR and MARGIN above the best hit of any other document (one short page clearly about
# a question asked in other words than the page's). Chosen on both corpora of bench/answer_eval
# (git-doc, Emberfall), tuning half: `python -m bench.answer_eval.floor` prints the table.
RELEVANCE_FLOOR = 0.375
MARGIN_FLOOR, MARGIN = 0.25, 0.12


@dataclass(frozen=True)
class Grounding:
    """The sources an answer may cite, each a document with its best passages."""

    sources: tuple[Source, ...]
    passages: tuple[str, ...]


class Grounder:
    """`ground(guild_id, question)` → (sources, or None and the closest document titles)."""

    def __init__(
        self,
        retriever: Retriever,
        *,
        floor: float = RELEVANCE_FLOOR,
        margin: float | None = MARGIN,
        margin_floor: float = MARGIN_FLOOR,
        k: int = 8,
        max_sources: int = 4,
        expand: bool = False,
    ) -> None:
        self.retriever = retriever
        self.expand = expand  # query expansion by the model first (core/rag/expansion.py)
        self.floor = floor
        self.margin = margin  # None: the floor alone
        self.margin_floor = margin_floor
        self.k = k
        self.max_sources = max_sources

    def relevant(self, hits: list[Hit]) -> list[Hit]:
        """The hits that pass the relevance floor, best first; when none does, the best
        document's hits if it stands out by `MARGIN` (see RELEVANCE_FLOOR)."""
        kept = [h for h in hits if h.similarity >= self.floor or h.exact]
        if kept or not hits or self.margin is None:
            return kept
        top = max(hits, key=lambda h: h.similarity)
        others = [h.similarity for h in hits if h.document_id != top.document_id]
        lead = top.similarity - max(others, default=0.0)
        if top.similarity < self.margin_floor or lead < self.margin:
            return []
        return [
            h
            for h in hits
            if h.document_id == top.document_id and h.similarity >= self.margin_floor
        ]

    async def order(self, embedding: np.ndarray, hits: list[Hit]) -> list[Hit]:
        """The kept hits in the order their documents become sources (here: search's own);
        a grounder that knows more about its documents reorders them."""
        return hits

    async def ground(
        self,
        guild_id: int,
        question: str,
        llm: LLMBackend | None = None,
        access: Access | None = None,
    ) -> tuple[Grounding | None, list[str]]:
        """(sources, closest titles): sources None when nothing passes the floor. Only
        documents `access` may read are used or named (None: all). `llm` writes the query
        expansion when this grounder expands; without one, search is plain."""
        check_guild_id(guild_id)
        question = check_query(question)
        expansion = await self._expansion(guild_id, question, llm)
        embedding = await self.retriever.embedder.embed_one(question)  # once, for both uses
        hits = await self.retriever.search_embedded(
            guild_id, question, embedding, self.k, "hybrid", expansion, access
        )
        kept = await self.order(embedding, self.relevant(hits))
        if not kept:
            async with self.retriever.pool.connection() as conn:
                documents = DocumentRepo(conn)
                hidden = await documents.hidden_ids(guild_id, access)
                closest = await documents.closest_titles(guild_id, embedding, hidden)
            return None, closest
        by_doc: dict[int, list[Hit]] = {}
        for hit in kept:
            if hit.document_id in by_doc or len(by_doc) < self.max_sources:
                by_doc.setdefault(hit.document_id, []).append(hit)
        sources, passages = [], []
        for n, doc_hits in enumerate(by_doc.values(), start=1):
            top = doc_hits[0]
            title = top.title.split(" › ")[0] or top.uri
            sources.append(Source(n, title, top.uri, max(h.similarity for h in doc_hits)))
            passages.append("\n…\n".join(h.text for h in doc_hits[:2]))
        return Grounding(tuple(sources), tuple(passages)), []

    async def _expansion(
        self, guild_id: int, question: str, llm: LLMBackend | None
    ) -> Expansion | None:
        """The model's passage when expansion is on; None (plain search) if it is off or the
        model cannot write one now (busy, remote down): the question is still answered."""
        if not self.expand or llm is None:
            return None
        try:
            return await expand(llm, self.retriever.embedder, question, guild_id)
        except GuruError as exc:
            log.warning("ask guild=%s: no query expansion (%s); plain search", guild_id, exc)
            return None
