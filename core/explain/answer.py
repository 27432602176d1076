"""/explain answers: a question about LLM concepts answered from the concept notes like /ask.

No second RAG: retrieval, the relevance floor, the numbered-sources prompt and the citation
check are core.rag's (`Answerer.ground`, `build_messages`, `finish_answer`), run on guild 0.
What differs is what a refusal says, since the user asked Guru, not their server's docs: a
question outside the curriculum gets a pointer to /ask, and the floor is the curriculum's own
(calibrated by `guru bench explain` on the held-out questions and off-topic ones).

Answering is split in two (`prepare_explanation`, then `PreparedExplanation.finish`) so the bot
can `llm.stream(prepared.request)` token by token and finish the text exactly as `explain` does.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from core.db.pool import Pool
from core.grounded import PreparedAnswer
from core.llm.types import LLMBackend, Request
from core.rag.answer import Answerer, build_messages, finish_answer
from core.rag.embedder import Embedder
from core.rag.retrieve import Retriever
from core.rag.types import CONCEPTS_GUILD_ID, Answer, Hit

__all__ = [
    "EXPLAIN_FLOOR",
    "EXPLAIN_WEIGHTS",
    "OUT_OF_SCOPE",
    "CurriculumAnswerer",
    "PreparedExplanation",
    "answer_prepared",
    "concept_retriever",
    "explain",
    "explain_answerer",
    "out_of_scope",
    "prepare_explanation",
]

log = logging.getLogger(__name__)

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
REPETITION_PENALTY = 1.05  # as `Answerer.answer`: SmolLM2 loops without it


def out_of_scope(closest: tuple[str, ...] | list[str] = ()) -> Answer:
    """The refusal for a question no concept note answers."""
    return Answer(OUT_OF_SCOPE, (), True, tuple(closest))


class CurriculumAnswerer(Answerer):
    """core.rag's Answerer whose floor has no all-terms bypass.

    The bypass lets a server doc's identifier ("QX-1474") through whatever the encoder thinks;
    concept questions have no such identifiers, while short off-topic ones ("what are the rules
    of this server") contain only words some note happens to use.
    """

    def relevant(self, hits: list[Hit]) -> list[Hit]:
        return [h for h in hits if h.similarity >= self.floor]


def concept_retriever(pool: Pool, embedder: Embedder) -> Retriever:
    """core.rag's Retriever with the fusion weights tuned for learner questions."""
    return Retriever(pool, embedder, weights=EXPLAIN_WEIGHTS)


def explain_answerer(
    retriever: Retriever,
    llm: LLMBackend | None,
    floor: float = EXPLAIN_FLOOR,
    max_sources: int = EXPLAIN_MAX_SOURCES,
) -> Answerer:
    """The Answerer /explain uses: curriculum floor, no all-terms bypass."""
    return CurriculumAnswerer(retriever, llm, floor=floor, max_sources=max_sources)


@dataclass(frozen=True)
class PreparedExplanation(PreparedAnswer):
    """Either a refusal (no note passed the floor) or the Request to send to the model."""

    def finish(self, text: str) -> Answer:
        """The Answer for the model's (complete or streamed) text: citations checked; a model
        that finds nothing in the notes becomes a refusal naming the closest notes."""
        if self.refusal is not None:
            return self.refusal
        answer, refused = finish_answer(text, len(self.sources))
        if refused:
            titles = tuple(s.title for s in self.sources)
            named = ", ".join(f"“{t}”" for t in titles)
            return Answer(
                f"My concept notes do not answer that directly; the closest are "
                f"{named}. For your server's docs, try /ask.",
                (),
                True,
                titles,
            )
        return Answer(answer, self.sources, False)


async def prepare_explanation(
    answerer: Answerer, question: str, *, guild_id: int | None = None
) -> PreparedExplanation:
    """Ground `question` in the notes; `guild_id` is only the asker's fairness lane."""
    grounding, closest = await answerer.ground(CONCEPTS_GUILD_ID, question)
    if grounding is None:
        log.info("explain: out of scope (nothing above the floor %.2f)", answerer.floor)
        return PreparedExplanation(question, None, out_of_scope(closest), None)
    request = Request(
        messages=tuple(build_messages(question, grounding)),
        guild_id=guild_id,
        max_new_tokens=answerer.max_new_tokens,
        temperature=0.0,
        repetition_penalty=REPETITION_PENALTY,
    )
    return PreparedExplanation(question, grounding, None, request)


async def answer_prepared(llm: LLMBackend | None, prepared: PreparedExplanation) -> Answer:
    """Run the prepared request to completion (no streaming)."""
    if prepared.request is None:
        return prepared.finish("")
    if llm is None:
        raise RuntimeError("explain needs Services opened with an LLM to answer")
    started = time.perf_counter()
    completion = await llm.complete(prepared.request)
    answer = prepared.finish(completion.text)
    log.info(
        "explain: %d sources, refused=%s, %.1fs",
        len(prepared.sources),
        answer.refused,
        time.perf_counter() - started,
    )
    return answer


async def explain(services: object, question: str, *, guild_id: int | None = None) -> Answer:
    """Answer a question about LLM concepts from the notes, citing them (or refuse).

    Needs `services.db`, `.embedder` and, unless the question is refused, `.llm`. The notes
    must already be ingested (`core.explain.kb.ensure_concepts_ingested`)."""
    db = services.db
    if db is None:
        raise RuntimeError("explain needs Services opened with db=True")
    llm = services.llm
    retriever = concept_retriever(db.pool, services.embedder)
    prepared = await prepare_explanation(
        explain_answerer(retriever, llm), question, guild_id=guild_id
    )
    return await answer_prepared(llm, prepared)
