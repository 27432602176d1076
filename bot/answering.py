"""Post a prepared answer (core.answering) and finish it: the part /ask and /explain share.

A refusal is posted as it is (the model was never asked); otherwise the model's answer is
streamed into the deferred reply (throttled edits, queue position, Cancel) and finalised with
its checked citations and sources as links. Core records what the asker saw either way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import discord

from bot import render
from bot.access import access_of
from bot.feedback import feedback_view
from bot.streaming import StreamingReply, StreamOutcome
from core.answering import PreparedAnswer
from core.guilds import GuildSettings
from core.interactions import Asker, Turn
from core.llm.types import Request
from core.services import Services

__all__ = [
    "SendPage",
    "asker_of",
    "home_channel_id",
    "post_answer",
    "prepare_message_answer",
    "reply_with_answer",
]

# Posts one page of an answer: (text, view or None, file or None) → the message, if sent
SendPage = Callable[
    [str, discord.ui.View | None, tuple[str, bytes] | None], Awaitable[discord.Message | None]
]

log = logging.getLogger(__name__)

RETRYING = "🔄 That answer was not usable; trying once more…"


def asker_of(interaction: discord.Interaction) -> Asker:
    """The interaction an answer belongs to (the 👍/👎 buttons and the stored row use it)."""
    return Asker(interaction.id, interaction.user.id, interaction.channel_id)


def home_channel_id(channel: object) -> int | None:
    """The channel whose persona applies: a thread's parent, else the channel itself."""
    if isinstance(channel, discord.Thread):
        return channel.parent_id
    return getattr(channel, "id", None)


async def reply_with_answer(
    interaction: discord.Interaction, services: Services, prepared: PreparedAnswer
) -> None:
    """Refuse or stream into `interaction`'s deferred reply, then record how it ended. An
    unusable answer (core.answering's check) is generated once more into the same message."""
    view = feedback_view(interaction.id) if prepared.record is not None else None
    if prepared.request is None:
        assert prepared.refusal is not None
        text, ending, raw = prepared.refusal.answer, "refused", None
        await interaction.edit_original_response(content=render.escape(text), view=view)
    else:
        reply = StreamingReply(interaction)  # one reply for both tries: one edit throttle
        outcome = await _stream(reply, services, prepared, prepared.request, view, True)
        if _should_retry(prepared, outcome):
            log.info("%s %s: unusable answer; generating once more", prepared.kind, interaction.id)
            retry = prepared.retry_request()
            outcome = await _stream(reply, services, prepared, retry, view, False)
        text, raw = outcome.text, None if outcome.cancelled else outcome.raw
        if outcome.cancelled:
            ending = "cancelled"
        else:
            ending = outcome.completion.finish_reason if outcome.completion else "error"
    await services.answers.finish(prepared, text, ending, raw)
    log.info(
        "%s %s: %d chars, %d sources, %s",
        prepared.kind,
        interaction.id,
        len(text),
        len(prepared.sources),
        ending,
    )


def _should_retry(prepared: PreparedAnswer, outcome: StreamOutcome) -> bool:
    finished = outcome.completion is not None and not outcome.cancelled
    return finished and not prepared.usable(outcome.raw)


async def _stream(
    reply: StreamingReply,
    services: Services,
    prepared: PreparedAnswer,
    request: Request,
    view: discord.ui.View | None,
    may_retry: bool,
) -> StreamOutcome:
    """One generation streamed into the reply; when another try may follow, an unusable text
    is shown as a note that it is being retried, without the rating buttons."""

    def finalize(raw: str) -> str:
        if may_retry and not prepared.usable(raw):
            return RETRYING
        return render.answer_text(prepared.finish_text(raw))

    def final_view(raw: str) -> discord.ui.View | None:
        return None if may_retry and not prepared.usable(raw) else view

    assert services.llm is not None
    return await reply.run(services.llm.stream(request), final_view=final_view, finalize=finalize)


async def prepare_message_answer(
    services: Services,
    message: discord.Message,
    question: str,
    history: Sequence[Turn],
    prefs: GuildSettings,
) -> PreparedAnswer:
    """`Answers.prepare` for a question asked in a message (a mention, a follow-up, a help
    post): recorded under the message's id, read as its author may, with its channel's persona."""
    assert services.answers is not None and message.guild is not None
    return await services.answers.prepare(
        "ask",
        message.guild.id,
        question,
        prefs=prefs,
        asker=Asker(message.id, message.author.id, message.channel.id),
        access=access_of(message.guild, message.author),
        history=history,
        channel_id=home_channel_id(message.channel),
        request_id=f"msg-{message.id}",
    )


async def post_answer(
    services: Services,
    prepared: PreparedAnswer,
    send: SendPage,
    view: discord.ui.View | None,
) -> discord.Message | None:
    """Generate a prepared answer (or take its refusal), post it in pages through `send` with
    `view` under the last page, and record it; the last message sent, if any."""
    assert services.answers is not None
    answer, completion = await services.answers.generate(prepared)
    pages = render.pages(render.answer_text(answer))
    sent = None
    for i, page in enumerate(pages):
        last = i == len(pages) - 1
        sent = await send(page.content, view if last else None, page.file)
    ending = "refused" if completion is None else completion.finish_reason
    await services.answers.finish(
        prepared,
        "\n".join(p.content for p in pages),
        ending,
        completion.text if completion is not None else None,
        sent.id if sent is not None else None,
    )
    return sent
