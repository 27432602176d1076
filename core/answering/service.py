"""`Answers`, the one answering path: `prepare` → generate (streamed or not) → `finish`.

/ask and /explain (bot cogs), `guru ask`, `guru explain` and `guru chat` all answer through
`Answers`, so a question gets the same sources, prompt, guild settings and LoRA adapter
whichever face it came in by:

1. `prepare` grounds the question (core.rag.grounding: retrieval, the relevance floor) and
   either refuses without the model or builds the `Request`: the numbered-sources prompt, the
   guild's /settings (answer length, temperature, system prompt) and its active adapter. When an
   `Asker` is given the question and its sources are recorded as an interaction at once, so a
   👍 on the final message always finds its row.
2. The caller generates: `llm.stream(prepared.request)` (the bot edits its reply as tokens
   arrive) or `Answers.answer`, which completes it in one call.
3. `PreparedAnswer.finish_text` turns the model's text into the `Answer` shown (citations
   checked; a model that found nothing in its sources becomes a refusal), and `finish` records
   what was shown and how it ended.

/explain differs only in data: it grounds in Guru's concept notes (guild 0) with the
curriculum's floor, and its refusals point to /ask. The asker's guild stays its fairness lane.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.answering.prepared import (
    ANSWER_TEMPERATURE,
    ANSWER_TOKENS,
    DECLINED,
    REPETITION_PENALTY,
    UNUSABLE,
    Kind,
    PreparedAnswer,
    strip_sources_line,
)
from core.explain.answer import explain_grounder, out_of_scope
from core.guilds import GuildSettings, GuildSettingsRepo
from core.interactions import Asker, Turn, record_question
from core.llm.types import Completion, Message, Request
from core.rag.answer import build_messages, model_family, refusal
from core.rag.attribute import ASK_LEAD_WEIGHTS, EXPLAIN_LEAD_WEIGHTS, LeadMode, pick_lead
from core.rag.grounding import Grounder, Grounding
from core.rag.types import CONCEPTS_GUILD_ID, Access, Answer

if TYPE_CHECKING:
    from core.services import Services

__all__ = ["Answers", "LEAD_MODE"]

log = logging.getLogger(__name__)

# When the sources' own best sentences are shown first (core.rag.attribute): always, a short
# answer from the docs, then the model's checked explanation. Chosen on bench/answer_eval's
# table (its README): with SmolLM2-135M it won on Emberfall's held-out half (cited after
# attribution 29% -> 64%) and on git-doc, which it was not tuned on.
LEAD_MODE: LeadMode = "always"


class Answers:
    """Prepares, generates and finishes answers for every face of Guru (see module doc)."""

    def __init__(
        self,
        services: Services,
        *,
        faithful: bool = True,
        few_shot: bool = False,
        lead: LeadMode = LEAD_MODE,
    ) -> None:
        assert services.db is not None, "answering needs Services opened with db=True"
        self.services = services
        self.faithful = faithful  # off only to measure what the check gains (guru bench answers)
        self.few_shot = few_shot  # a worked example before the question (core.rag.answer)
        self.lead = lead  # the sources' best sentences first: off, fallback or always
        knowledge = services.knowledge
        self.grounders: dict[Kind, Grounder] = {
            "ask": Grounder(knowledge.retriever, expand=services.settings.ask_expand),
            "explain": explain_grounder(services.db.pool, services.embedder),
        }
        self.pool = services.db.pool
        self.guild_settings = GuildSettingsRepo(self.pool)

    async def prepare(
        self,
        kind: Kind,
        guild_id: int | None,
        question: str,
        *,
        prefs: GuildSettings | None = None,
        asker: Asker | None = None,
        access: Access | None = None,
        history: Sequence[Turn] = (),
        channel_id: int | None = None,
        request_id: str | None = None,
    ) -> PreparedAnswer:
        """Ground `question` in what `access` may read (None: everything, e.g. the operator's
        CLI) and build its Request (or its refusal); record it for `asker`. `history`: the
        earlier turns of a conversation (oldest first) this question follows up; `channel_id`:
        where it was asked (a thread's parent), whose persona applies on top of the server's."""
        started = time.monotonic()
        grounder = self.grounders[kind]
        source_guild = guild_id if kind == "ask" else CONCEPTS_GUILD_ID
        assert source_guild is not None, "/ask needs a guild"
        # expansion has the model write a passage before the search (GURU_ASK_EXPAND)
        llm = await self.services.ensure_llm() if grounder.expand else None
        # Guru's own concept notes are public; a guild's documents are read as the asker may
        grounding, closest = await grounder.ground(
            source_guild, _standalone(question, history), llm, access if kind == "ask" else None
        )
        if grounding is None:
            log.info("%s guild=%s: refused (nothing above the floor)", kind, guild_id)
            empty = refusal(closest) if kind == "ask" else _out_of_scope(closest)
            prepared = PreparedAnswer(kind, question, guild_id, None, empty, None)
        else:
            request = await self._request(
                kind, guild_id, question, grounding, prefs, request_id, history, channel_id
            )
            lead = None
            if self.lead != "off":  # MiniLM over the sources' sentences: ~0.1-0.3 s on CPU
                weights = EXPLAIN_LEAD_WEIGHTS if kind == "explain" else ASK_LEAD_WEIGHTS
                lead = await pick_lead(self.services.embedder, question, grounding, weights)
            prepared = PreparedAnswer(
                kind, question, guild_id, grounding, None, request, lead=lead, lead_mode=self.lead
            )
        prompt = None
        if prepared.request is not None:
            prompt = [{"role": m.role, "content": m.content} for m in prepared.request.messages]
        record = await record_question(
            self.pool,
            guild_id,
            asker,
            kind,
            question,
            [s.to_dict() for s in prepared.sources],
            started,
            prompt,
            history[-1].discord_id if history else None,
        )
        return dataclasses.replace(prepared, record=record, started=started, faithful=self.faithful)

    async def finish(
        self,
        prepared: PreparedAnswer,
        shown: str,
        ending: str,
        model_text: str | None = None,
        reply_message_id: int | None = None,
    ) -> None:
        """Record the text the asker saw and how it ended (stop, length, refused, cancelled…);
        with `model_text` (the raw generation) also the checked answer tuning would learn, and
        a generation that ended as a decline or no usable answer is recorded as "declined" or
        "unusable" rather than as the engine's "stop"/"length"."""
        if prepared.record is None:
            return
        model_answer = None
        if model_text is not None:
            # what the model wrote, checked, without the lead: tuning learns the model's part
            answer = dataclasses.replace(prepared, lead_mode="off").finish_text(model_text)
            model_answer = None if answer.refused else strip_sources_line(answer.answer)
            # /insights counts these apart from a refusal before the model (nothing passed the
            # floor): the docs were found but did not answer, or the model failed. Judged on
            # what the asker read: a quoted lead that answered in the model's place is an answer.
            if ending in ("stop", "length") and prepared.finish_text(model_text).refused:
                ending = DECLINED if prepared.check(model_text)[0] == "refused" else UNUSABLE
        await prepared.record.finish(shown, ending, model_answer, reply_message_id)

    async def answer(self, kind: Kind, guild_id: int | None, question: str) -> Answer:
        """prepare → generate → finish in one call (the CLI and the console)."""
        prepared = await self.prepare(kind, guild_id, question)
        answer, _ = await self.generate(prepared)
        return answer

    async def generate(self, prepared: PreparedAnswer) -> tuple[Answer, Completion | None]:
        """Generate a prepared answer to completion (once more, sampled, if the first is not
        usable) → (what to show, the completion; None for a refusal)."""
        if prepared.request is None:
            assert prepared.refusal is not None
            return prepared.refusal, None
        llm = await self.services.ensure_llm()
        completion = await llm.complete(prepared.request)
        if not prepared.usable(completion.text):
            log.info(
                "%s guild=%s: unusable answer; generating once more",
                prepared.kind,
                prepared.guild_id,
            )
            completion = await llm.complete(prepared.retry_request())
        answer = prepared.finish_text(completion.text)
        log.info(
            "%s guild=%s: %d sources, refused=%s, %.1fs",
            prepared.kind,
            prepared.guild_id,
            len(prepared.sources),
            answer.refused,
            time.monotonic() - prepared.started,
        )
        return answer, completion

    async def messages(
        self, kind: Kind, question: str, grounding: Grounding, history: Sequence[Turn] = ()
    ) -> list[Message]:
        """The model's prompt for a grounded question, before any guild's own system prompt:
        the rules of the loaded model's family, the numbered sources, the question. Also what
        the grounded adapter is trained on (bench/grounded), so it learns the served task."""
        asked = _as_question(question) if kind == "explain" else question
        turns = [(t.question, t.answer) for t in history]
        # the prompt for the loaded model's family (core.rag.answer.model_family)
        family = model_family((await self.services.ensure_llm()).stats().model)
        return build_messages(
            asked,
            grounding,
            turns,
            few_shot=self.few_shot,
            family=family,
            explain=kind == "explain",
        )

    async def _request(
        self,
        kind: Kind,
        guild_id: int | None,
        question: str,
        grounding: Grounding,
        prefs: GuildSettings | None,
        request_id: str | None,
        history: Sequence[Turn] = (),
        channel_id: int | None = None,
    ) -> Request:
        """The Request for a grounded question: /ask as the guild has it set up, /explain as
        Guru's own curriculum (no guild prompt or adapter: the notes are not the guild's)."""
        messages = await self.messages(kind, question, grounding, history)
        extra = {"request_id": request_id} if request_id else {}
        if kind == "explain":
            return Request(
                messages=tuple(messages),
                guild_id=guild_id,
                # never a guild's own adapter (the notes are not the guild's); the shipped one
                adapter=await self.services.grounded_adapter(),
                max_new_tokens=ANSWER_TOKENS,
                temperature=0.0,
                repetition_penalty=REPETITION_PENALTY,
                **extra,
            )
        assert guild_id is not None
        if prefs is None:
            prefs = await self.guild_settings.get(guild_id)
        if channel_id is not None and (
            persona := await self.guild_settings.persona(guild_id, channel_id)
        ):
            prefs = persona.over(prefs)
        if prefs.system_prompt and prefs.system_prompt.strip():
            # appended to the grounding rules, never replacing them: the rules keep answers
            # tied to the sources
            system = messages[0]
            messages[0] = Message("system", f"{system.content}\n{prefs.system_prompt.strip()}")
        await self.services.ensure_llm()  # the adapter loads into it; a refusal never gets here
        return Request(
            messages=tuple(messages),
            guild_id=guild_id or None,
            adapter=await self.services.adapter_for(guild_id),
            max_new_tokens=prefs.max_answer_tokens or ANSWER_TOKENS,
            temperature=prefs.temperature if prefs.temperature is not None else ANSWER_TEMPERATURE,
            repetition_penalty=REPETITION_PENALTY,
            **extra,
        )


_QUESTION_WORDS = (
    "what",
    "why",
    "how",
    "when",
    "which",
    "who",
    "where",
    "is",
    "are",
    "do",
    "does",
    "can",
    "should",
    "explain",
    "tell",
    "describe",
    "compare",
)


def _as_question(topic: str) -> str:
    """/explain takes a topic ("attention"); a small model given a bare noun writes lists of
    headlines, so a topic is asked as a request for a short explanation."""
    words = topic.strip().rstrip("?").split()
    if topic.strip().endswith("?") or (words and words[0].lower() in _QUESTION_WORDS):
        return topic
    return f"Explain {topic.strip()} in a few sentences."


def _standalone(question: str, history: Sequence[Turn]) -> str:
    """What to search for a follow-up: a follow-up leans on the turn before ("and how do I
    undo it?"), so the previous question is searched with it. (A model-written rewrite costs a
    generation before every follow-up; the small models write poor ones.)"""
    if not history:
        return question
    return f"{history[-1].question} {question}"


def _out_of_scope(closest: list[str]) -> Answer:
    return out_of_scope(closest)
