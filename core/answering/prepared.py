"""`PreparedAnswer`: one question ready to generate, and how the model's text is judged.

`check` decides what the model's text is worth showing (refused, unusable or ok, with what the
sources do not support dropped: core.rag.faithful), `finish_text` turns it into the `Answer`
shown, and `retry_request` is the one more try an unusable answer gets.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Literal

from core.interactions import RecordedQuestion
from core.llm.types import Request
from core.rag.answer import cite, declines, drop_repeated_lines, refusal_text
from core.rag.attribute import Lead, LeadMode, attribute
from core.rag.faithful import check_answer, drop_repeated_sentences, strip_preamble, usable
from core.rag.grounding import Grounding
from core.rag.types import Answer, Source

__all__ = [
    "ANSWER_TEMPERATURE",
    "ANSWER_TOKENS",
    "DECLINED",
    "Kind",
    "NO_USABLE_ANSWER",
    "PreparedAnswer",
    "LEAD_MIN_SIMILARITY",
    "LEAD_MIN_TERMS",
    "REPETITION_PENALTY",
    "UNUSABLE",
    "Verdict",
    "strip_sources_line",
]

log = logging.getLogger(__name__)

Kind = Literal["ask", "explain"]
REPETITION_PENALTY = 1.05  # small models loop without it (SmolLM2: "The answer is:" ×20)
# An answer's length and temperature unless the guild's /settings say otherwise: greedy, because
# a grounded answer should restate its source, not vary it.
ANSWER_TOKENS = 200
ANSWER_TEMPERATURE = 0.0
# An unusable greedy answer is generated once more, sampled (a different path, same prompt).
RETRY_TEMPERATURE, RETRY_SEED = 0.7, 7
NO_USABLE_ANSWER = (
    "The model gave no usable answer from these sources; they may still help, or try asking "
    "another way."
)
Verdict = Literal["ok", "refused", "unusable"]
# interactions.finish_reason of a generated answer that was not one: the model said its sources
# do not answer the question, or what it wrote was unusable even after the retry. "refused"
# stays the refusal before the model (nothing passed the relevance floor).
DECLINED, UNUSABLE = "declined", "unusable"
# When the model says the sources do not answer, the lead still answers if it is this close to
# the question (MiniLM cosine): below it, near-miss off-topic questions that passed the floor
# would get a quoted sentence that does not answer them.
LEAD_MIN_SIMILARITY = 0.5
# ...and it states a command, option or number, or contains this share of the question's
# words: a close but vague sentence ("You can go back and modify the old commit." for "I lost a
# commit in a hard reset, can I get it back?") quoted in the model's place is confidently wrong.
LEAD_MIN_TERMS = 0.5


@dataclass(frozen=True)
class PreparedAnswer:
    """Either a refusal (nothing passed the floor) or the Request to generate."""

    kind: Kind
    question: str
    guild_id: int | None
    grounding: Grounding | None
    refusal: Answer | None
    request: Request | None
    record: RecordedQuestion | None = None  # the interaction row, when an Asker was given
    started: float = 0.0  # time.monotonic() when preparing began
    faithful: bool = True  # drop statements the sources do not support (core.rag.faithful)
    lead: Lead | None = None  # the sources' best sentences for the question (core.rag.attribute)
    lead_mode: LeadMode = "off"  # when the lead is shown

    @property
    def sources(self) -> tuple[Source, ...]:
        return self.grounding.sources if self.grounding is not None else ()

    def check(self, text: str) -> tuple[Verdict, str]:
        """What the model's text is worth showing: "refused" (it found nothing in the sources),
        "unusable" (empty, a citation or heading alone, a loop, or nothing left once what the
        sources do not support is dropped) or "ok", with the text as it may be shown."""
        verdict, text, _ = self._checked(text)
        return verdict, text

    def _checked(self, text: str) -> tuple[Verdict, str, int]:
        """`check`, and how many statements the sources contradicted or did not support."""
        text = drop_repeated_sentences(drop_repeated_lines(strip_preamble(text.strip())))
        if declines(text):
            return "refused", text, 0
        dropped = 0
        if self.faithful and self.grounding is not None:
            evidence = "\n".join(
                [*self.grounding.passages, *(s.title for s in self.grounding.sources)]
            )
            checked = check_answer(text, evidence, self.question)
            dropped = len(checked.dropped)
            if dropped:
                log.info("%s: dropped %d unsupported statement(s)", self.kind, dropped)
            text = checked.text
        return ("ok" if usable(text) else "unusable"), text, dropped

    def usable(self, text: str) -> bool:
        """False when the text should be generated again (see `check`); never when a lead
        can answer instead (a second generation costs as long as the first)."""
        if self.refusal is not None or self._shows_lead_alone():
            return True
        return self.check(text)[0] != "unusable"

    def _shows_lead_alone(self) -> bool:
        return self.lead is not None and self.lead_mode != "off"

    def retry_request(self) -> Request:
        """The Request once more, sampled: the greedy path just gave nothing usable."""
        assert self.request is not None
        return dataclasses.replace(
            self.request,
            temperature=RETRY_TEMPERATURE,
            top_p=0.9,
            seed=RETRY_SEED,
            repetition_penalty=max(self.request.repetition_penalty, 1.15),
            request_id=f"{self.request.request_id}-retry",
        )

    def finish_text(self, text: str) -> Answer:
        """The `Answer` to show for the model's (complete or streamed) text: checked against
        the sources, citations fixed; a refusal naming the sources when the model found nothing
        in them; a plain "no usable answer" rather than an empty or invented one."""
        if self.refusal is not None:
            return self.refusal
        verdict, text, dropped = self._checked(text)
        titles = tuple(s.title for s in self.sources)
        lead = self.lead if self.lead_mode != "off" else None
        if verdict == "ok":
            assert self.grounding is not None
            text, cited = attribute(text, self.grounding)
            # the model's answer misses the source that answers the question best (no
            # sentence of it is measured in that source: "180 days" from the strike rules for
            # "when can I appeal") or contradicts its sources (a statement was dropped): the
            # sources' own words go first
            misses = lead is not None and lead.n not in cited
            if lead is not None and (self.lead_mode == "always" or dropped or misses):
                text = f"{lead.render()}\n\n{text}"
            return Answer(cite(text, len(self.sources)), self.sources, False)
        if lead is not None and (verdict == "unusable" or _answers_alone(lead)):
            return Answer(cite(lead.render(), len(self.sources)), self.sources, False)
        if verdict == "unusable":  # retrieval did find these: they may still help
            return Answer(NO_USABLE_ANSWER, self.sources, True, titles)
        if self.kind == "explain":
            named = ", ".join(f"“{t}”" for t in titles)
            text = (
                f"My concept notes do not answer that directly; the closest are {named}. "
                "For your server's docs, try /ask."
            )
            return Answer(text, (), True, titles)
        return Answer(refusal_text(titles), (), True, titles)


def _answers_alone(lead: Lead) -> bool:
    """The lead may answer where the model said its sources do not (see LEAD_MIN_TERMS)."""
    return lead.similarity >= LEAD_MIN_SIMILARITY and (lead.fact or lead.terms >= LEAD_MIN_TERMS)


def strip_sources_line(text: str) -> str:
    """The answer without the "Sources: [1] [2]" line `cite` appends when none is cited."""
    return text.split("\n\nSources: [")[0].strip()
