"""Post a prepared answer (core.answering) and finish it: the part /ask and /explain share.

A refusal is posted as it is (the model was never asked); otherwise the model's answer is
streamed into the deferred reply (throttled edits, queue position, Cancel) and finalised with
its checked citations and sources as links. Core records what the asker saw either way.
"""

from __future__ import annotations

import logging

import discord

from bot import render
from bot.feedback import feedback_view
from bot.streaming import StreamingReply
from core.answering import PreparedAnswer
from core.interactions import Asker
from core.services import Services

__all__ = ["asker_of", "reply_with_answer"]

log = logging.getLogger(__name__)


def asker_of(interaction: discord.Interaction) -> Asker:
    """The interaction an answer belongs to (the 👍/👎 buttons and the stored row use it)."""
    return Asker(interaction.id, interaction.user.id, interaction.channel_id)


async def reply_with_answer(
    interaction: discord.Interaction, services: Services, prepared: PreparedAnswer
) -> None:
    """Refuse or stream into `interaction`'s deferred reply, then record how it ended."""
    view = feedback_view(interaction.id) if prepared.record is not None else None
    if prepared.request is None:
        assert prepared.refusal is not None
        text, ending = prepared.refusal.answer, "refused"
        await interaction.edit_original_response(content=render.escape(text), view=view)
    else:
        assert services.llm is not None
        outcome = await StreamingReply(interaction).run(
            services.llm.stream(prepared.request),
            final_view=view,
            finalize=lambda raw: render.answer_text(prepared.finish_text(raw)),
        )
        text = outcome.text
        if outcome.cancelled:
            ending = "cancelled"
        else:
            ending = outcome.completion.finish_reason if outcome.completion else "error"
    await services.answers.finish(prepared, text, ending)
    log.info(
        "%s %s: %d chars, %d sources, %s",
        prepared.kind,
        interaction.id,
        len(text),
        len(prepared.sources),
        ending,
    )
