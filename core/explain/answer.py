"""/explain's grounding: questions about LLM concepts answered from the concept notes like /ask.

No second RAG: retrieval, the relevance floor, the numbered-sources prompt and the citation
check are core.rag's, and the answering path is core.answering's (kind "explain"), run on
guild 0. What differs is data: the floor is the curriculum's own (calibrated by `guru bench
explain` on the held-out questions and off-topic ones), it has no all-terms bypass, the fusion
weights suit learners' chatty questions, and a refusal points to /ask, since the user asked
Guru, not their server's docs.
"""

from __future__ import annotations

from core.db.pool import Pool
from core.rag.embedder import Embedder
from core.rag.grounding import Grounder
from core.rag.retrieve import Retriever
from core.rag.types import Answer, Hit

__all__ = [
    "EXPLAIN_FLOOR",
    "EXPLAIN_WEIGHTS",
    "OUT_OF_SCOPE",
    "CurriculumGrounder",
    "concept_retriever",
    "explain_grounder",
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

    def relevant(self, hits: list[Hit]) -> list[Hit]:
        return [h for h in hits if h.similarity >= self.floor]


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
