"""/explain's grounding: questions about LLM concepts answered from the concept notes like /ask.

No second RAG: retrieval, the relevance floor, the numbered-sources prompt and the citation
check are core.rag's, and the answering path is core.answering's (kind "explain"), run on
guild 0. What differs is data: the floor is the curriculum's own (calibrated by `guru bench
explain` on the held-out questions and off-topic ones), it has no all-terms bypass, the fusion
weights suit learners' chatty questions, and a refusal points to /ask, since the user asked
Guru, not their server's docs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from core.db.pool import Pool
from core.explain.kb import note_uri
from core.explain.topics import Note, load_notes
from core.rag.embedder import Embedder
from core.rag.grounding import Grounder
from core.rag.retrieve import RRF_K, Retriever
from core.rag.types import Answer, Hit

__all__ = [
    "EXPLAIN_FLOOR",
    "EXPLAIN_WEIGHTS",
    "OUT_OF_SCOPE",
    "CurriculumGrounder",
    "concept_retriever",
    "explain_grounder",
    "note_card",
    "out_of_scope",
]

# Cosine floor for a note chunk to count. Chosen by `guru bench explain`: the lowest value at
# which none of its 32 off-topic questions gets through (it refuses 1 of the 40 in-scope ones).
EXPLAIN_FLOOR = 0.35
# RRF weights of core.rag's vector, all-terms and any-term lists for the notes. Learners ask in
# chatty sentences whose common words ("why", "model", "does") match every note, so the
# any-term list is noise here: dropping it lifts hit@3 on the held-out set from 0.85 to 0.925.
EXPLAIN_WEIGHTS = (1.0, 1.0, 0.0)
# Notes quoted in the prompt (core.rag's default is 4).
EXPLAIN_MAX_SOURCES = 4
# Weight of the note cards' ranking against search's own in the RRF that orders the notes (see
# CurriculumGrounder.order). Source [1] is the right note (with the notes' titles as shipped):
# /explain's 40 questions 0.675 → 0.775, 24 paraphrases of mine (chosen on these two) 0.54 →
# 0.625, 24 more written before the change 0.62 → 0.75; 1.0 lost on the first two. Off-topic
# refusals unchanged (32/32).
CARD_WEIGHT = 0.5
OUT_OF_SCOPE = (
    "I explain LLM concepts (attention, transformers, RAG, LoRA, PAL, sampling…); "
    "that question is outside them. For your server's docs, try /ask."
)


def out_of_scope(closest: tuple[str, ...] | list[str] = ()) -> Answer:
    """The refusal for a question no concept note answers."""
    return Answer(OUT_OF_SCOPE, (), True, tuple(closest))


class CurriculumGrounder(Grounder):
    """core.rag's Grounder whose floor has no all-terms bypass.

    The bypass lets a server doc's identifier ("QX-1474") through whatever the encoder thinks;
    concept questions have no such identifiers, while short off-topic ones ("what are the rules
    of this server") contain only words some note happens to use.
    """

    def __init__(
        self, retriever: Retriever, *, card_weight: float = CARD_WEIGHT, **kwargs: Any
    ) -> None:
        super().__init__(retriever, **kwargs)
        self.card_weight = card_weight
        self._cards: tuple[list[str], np.ndarray] | None = None

    def relevant(self, hits: list[Hit]) -> list[Hit]:
        return [h for h in hits if h.similarity >= self.floor]

    async def order(self, embedding: np.ndarray, hits: list[Hit]) -> list[Hit]:
        """Notes ordered by search's ranking fused with the question's similarity to each
        note's card (title, section headings, first paragraph).

        Why: a learner's question matches a note as a whole ("why does the bot write python
        code for word problems instead of just answering" is what the PAL note is about)
        better than any one of its chunks, which each carry one section's details; search
        alone put knowledge-cutoff.md first there. Only notes search found (and the floor
        kept) are ordered, so off-topic refusals are unchanged.
        """
        if not hits or self.card_weight <= 0:
            return hits
        uris, vectors = await self._note_cards()
        card_rank = {
            uri: i for i, uri in enumerate(np.array(uris)[np.argsort(-(vectors @ embedding))])
        }
        first_seen = list(dict.fromkeys(h.uri for h in hits))
        score = {
            uri: 1 / (RRF_K + i) + self.card_weight / (RRF_K + card_rank.get(uri, len(uris)))
            for i, uri in enumerate(first_seen)
        }
        return sorted(hits, key=lambda h: -score[h.uri])  # stable: a note's chunks keep order

    async def _note_cards(self) -> tuple[list[str], np.ndarray]:
        """The notes' uris and card embeddings, made once (the notes ship with the code)."""
        if self._cards is None:
            notes = await asyncio.to_thread(load_notes)
            vectors = await self.retriever.embedder.embed([note_card(n) for n in notes])
            self._cards = ([note_uri(n.name) for n in notes], np.asarray(vectors))
        return self._cards


def note_card(note: Note) -> str:
    """What a note is about in one line: title, section headings, first paragraph."""
    headings = [ln.lstrip("#").strip() for ln in note.text.splitlines() if ln.startswith("## ")]
    paragraphs = [p for p in note.text.split("\n\n") if p.strip() and not p.startswith("#")]
    intro = " ".join(paragraphs[0].split()) if paragraphs else ""
    return f"{note.title}. {'; '.join(headings)}. {intro}"


def concept_retriever(pool: Pool, embedder: Embedder) -> Retriever:
    """core.rag's Retriever with the fusion weights tuned for learner questions."""
    return Retriever(pool, embedder, weights=EXPLAIN_WEIGHTS)


def explain_grounder(
    pool: Pool,
    embedder: Embedder,
    floor: float = EXPLAIN_FLOOR,
    max_sources: int = EXPLAIN_MAX_SOURCES,
) -> Grounder:
    """The Grounder /explain uses: curriculum weights and floor, no all-terms bypass."""
    return CurriculumGrounder(
        concept_retriever(pool, embedder), floor=floor, max_sources=max_sources
    )
