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

from core.llm.types import LLMBackend, Request
from core.rag.answer import Answerer, Grounding, build_messages, finish_answer
from core.rag.retrieve import Retriever
from core.rag.types import CONCEPTS_GUILD_ID, Answer, Source

__all__ = ["EXPLAIN_FLOOR", "OUT_OF_SCOPE", "PreparedExplanation", "explain",
           "explain_answerer", "out_of_scope", "prepare_explanation"]

log = logging.getLogger(__name__)

# Cosine floor for a note chunk to count (core.rag's is 0.35, tuned for server docs). Chosen by
# `guru bench explain`: the lowest value at which no off-topic question gets through.
EXPLAIN_FLOOR = 0.35
OUT_OF_SCOPE = ("I explain LLM concepts (attention, transformers, RAG, LoRA, PAL, sampling…); "
                "that question is outside them. For your server's docs, try /ask.")
REPETITION_PENALTY = 1.05  # as `Answerer.answer`: SmolLM2 loops without it


def out_of_scope(closest: tuple[str, ...] | list[str] = ()) -> Answer:
    """The refusal for a question no concept note answers."""
    return Answer(OUT_OF_SCOPE, (), True, tuple(closest))


def explain_answerer(retriever: Retriever, llm: LLMBackend | None,
                     floor: float = EXPLAIN_FLOOR) -> Answerer:
    """core.rag's Answerer with the curriculum's relevance floor."""
    return Answerer(retriever, llm, floor=floor)


@dataclass(frozen=True)
class PreparedExplanation:
    """Either a refusal (no note passed the floor) or the Request to send to the model."""

    question: str
    grounding: Grounding | None
    refusal: Answer | None
    request: Request | None

    @property
    def sources(self) -> tuple[Source, ...]:
        return self.grounding.sources if self.grounding is not None else ()

    def finish(self, text: str) -> Answer:
        """The Answer for the model's (complete or streamed) text: citations checked; a model
        that finds nothing in the notes becomes a refusal naming the closest notes."""
        if self.refusal is not None:
            return self.refusal
        answer, refused = finish_answer(text, len(self.sources))
        if refused:
            titles = tuple(s.title for s in self.sources)
            named = ", ".join(f"“{t}”" for t in titles)
            return Answer(f"My concept notes do not answer that directly; the closest are "
                          f"{named}. For your server's docs, try /ask.", (), True, titles)
        return Answer(answer, self.sources, False)


async def prepare_explanation(answerer: Answerer, question: str, *,
                              guild_id: int | None = None) -> PreparedExplanation:
    """Ground `question` in the notes; `guild_id` is only the asker's fairness lane."""
    grounding, closest = await answerer.ground(CONCEPTS_GUILD_ID, question)
    if grounding is None:
        log.info("explain: out of scope (nothing above the floor %.2f)", answerer.floor)
        return PreparedExplanation(question, None, out_of_scope(closest), None)
    request = Request(messages=tuple(build_messages(question, grounding)), guild_id=guild_id,
                      max_new_tokens=answerer.max_new_tokens, temperature=0.0,
                      repetition_penalty=REPETITION_PENALTY)
    return PreparedExplanation(question, grounding, None, request)


async def answer_prepared(llm: LLMBackend, prepared: PreparedExplanation) -> Answer:
    """Run the prepared request to completion (no streaming)."""
    if prepared.request is None:
        return prepared.finish("")
    started = time.perf_counter()
    completion = await llm.complete(prepared.request)
    answer = prepared.finish(completion.text)
    log.info("explain: %d sources, refused=%s, %.1fs", len(prepared.sources), answer.refused,
             time.perf_counter() - started)
    return answer


async def explain(services: object, question: str, *, guild_id: int | None = None) -> Answer:
    """Answer a question about LLM concepts from the notes, citing them (or refuse).

    Needs `services.db`, `.embedder` and, unless the question is refused, `.llm`. The notes
    must already be ingested (`core.explain.kb.ensure_concepts_ingested`)."""
    from core.rag.kb import KnowledgeBase

    kb = KnowledgeBase.from_services(services)
    llm = getattr(services, "llm")
    prepared = await prepare_explanation(explain_answerer(kb.retriever, llm), question,
                                         guild_id=guild_id)
    if prepared.request is not None and llm is None:
        raise RuntimeError("explain needs Services opened with an LLM to answer")
    return await answer_prepared(llm, prepared)
