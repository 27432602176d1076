"""Grounded answers, one step at a time: retrieve → Request to stream → finished `Answer`.

Why this exists beside `core.rag.answer.Answerer`: `Answerer.ask` returns a complete answer,
but the bot streams tokens into Discord (throttled edits, Cancel, queue position). This module
builds the same Request `Answerer.answer` sends (its `build_messages`, its sampling settings)
so a caller can `llm.stream()` it, then finishes the text with `finish_answer` exactly as
`Answerer` does. No prompt text lives in the bot; the refusal never calls the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.guilds import GuildSettings
from core.llm.types import Message, Request
from core.rag.answer import (
    Answerer,
    Grounding,
    build_messages,
    finish_answer,
    refusal,
    refusal_text,
)
from core.rag.types import Answer, Source

__all__ = ["PreparedAnswer", "prepare_answer", "prepare_guild_answer", "finish_streamed"]

log = logging.getLogger(__name__)

REPETITION_PENALTY = 1.05  # what Answerer.answer uses; small models loop without it


@dataclass(frozen=True)
class PreparedAnswer:
    """Either a refusal (nothing passed the relevance floor) or a Request ready to stream."""

    question: str
    grounding: Grounding | None
    refusal: Answer | None
    request: Request | None

    @property
    def sources(self) -> tuple[Source, ...]:
        return self.grounding.sources if self.grounding is not None else ()


async def prepare_answer(
    answerer: Answerer,
    guild_id: int,
    question: str,
    *,
    adapter: str | None = None,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    server_instructions: str | None = None,
    request_id: str | None = None,
) -> PreparedAnswer:
    """Ground `question` in the guild's documents and build the Request to stream.

    `server_instructions` (the guild's /settings system prompt) is appended to the grounding
    rules, never replacing them: the rules are what keep answers tied to the sources.
    """
    grounding, closest = await answerer.ground(guild_id, question)
    if grounding is None:
        log.info("grounded ask guild=%s: refused (nothing above the floor)", guild_id)
        return PreparedAnswer(question, None, refusal(closest), None)
    messages = build_messages(question, grounding)
    if server_instructions and server_instructions.strip():
        system = messages[0]
        messages[0] = Message("system", f"{system.content}\n{server_instructions.strip()}")
    extra = {"request_id": request_id} if request_id else {}
    request = Request(
        messages=tuple(messages),
        guild_id=guild_id or None,
        adapter=adapter,
        max_new_tokens=max_new_tokens or answerer.max_new_tokens,
        temperature=temperature if temperature is not None else 0.0,
        repetition_penalty=REPETITION_PENALTY,
        **extra,
    )
    return PreparedAnswer(question, grounding, None, request)


async def prepare_guild_answer(
    services: object, prefs: GuildSettings, question: str, *, request_id: str | None = None
) -> PreparedAnswer:
    """`prepare_answer` as the guild has it set up: its /settings (answer length, temperature,
    system prompt) and its active LoRA adapter. /ask and `guru chat` both answer through this."""
    from core.rag.kb import KnowledgeBase  # kb imports the answerer; keep this module light

    # built per call: free, and it picks up the current `services.llm`
    kb = KnowledgeBase.from_services(services)
    adapters = services.guild_adapters
    return await prepare_answer(
        kb.answerer,
        prefs.guild_id,
        question,
        adapter=adapters.adapter_for(prefs.guild_id),
        max_new_tokens=prefs.max_answer_tokens,
        temperature=prefs.temperature,
        server_instructions=prefs.system_prompt,
        request_id=request_id,
    )


def finish_streamed(prepared: PreparedAnswer, text: str) -> Answer:
    """The `Answer` for the streamed model text: citations checked, or a refusal naming the
    sources when the model itself found nothing in them."""
    if prepared.refusal is not None:
        return prepared.refusal
    assert prepared.grounding is not None
    sources = prepared.grounding.sources
    answer, refused = finish_answer(text, len(sources))
    if refused:
        titles = tuple(s.title for s in sources)
        return Answer(refusal_text(titles), (), True, titles)
    return Answer(answer, sources, False)
