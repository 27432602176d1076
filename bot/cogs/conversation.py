"""Conversations: mention Guru with a question, or reply to one of its answers to follow up.

A message that mentions the bot is asked like /ask; a reply to Guru's answer (a /ask reply or
an earlier conversation answer) is a follow-up: the earlier turns are found through the reply
chain (core.interactions' conversation query), searched with the question and put in the
prompt, so "and how do I undo that?" is understood. The answer is a reply to the question,
with its sources and 👍/👎, and the turn is stored per guild like /ask's. The same gate as the
slash commands applies (allowed channels and roles, fair-use budget), and members only get
what they can read (bot.access). Needs the Message Content intent (the bot requests it).
"""

from __future__ import annotations

import io
import logging
import re
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot import render
from bot.access import access_of
from bot.answering import home_channel_id
from bot.checks import admit_message
from bot.errors import Refused, internal_error, user_message_for
from bot.feedback import feedback_view
from core.errors import GuruError
from core.interactions import Asker, InteractionRepo, Turn

if TYPE_CHECKING:
    from bot.client import GuruBot

log = logging.getLogger(__name__)

MIN_QUESTION_CHARS = 2


class Conversation(commands.Cog):
    """Answer mentions and follow-up replies like /ask."""

    def __init__(self, bot: GuruBot) -> None:
        assert bot.services is not None and bot.services.db is not None
        self.bot = bot
        self.interactions = InteractionRepo(bot.services.db.pool)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.author.bot or message.guild is None:
            return
        history = await self._earlier_turns(message, me)
        if history is None and me not in message.mentions:
            return  # neither addressed to Guru nor a reply to one of its answers
        question = _question_text(message.content, me.id)
        if len(question) < MIN_QUESTION_CHARS:
            return
        try:
            await self._answer(message, question, history or [])
        except GuruError as exc:  # refusals and known failures: say so, briefly
            await _reply(message, exc.user_message)
        except Refused as exc:
            await _reply(message, exc.user_message)
        except Exception as exc:  # noqa: BLE001 - the listener's boundary
            if (known := user_message_for(exc)) is None:
                log.exception("conversation answer to %s failed", message.id)
                known = internal_error(message.id)
            await _reply(message, known)

    async def _earlier_turns(
        self, message: discord.Message, me: discord.ClientUser
    ) -> list[Turn] | None:
        """The conversation a reply continues; None when it is not a reply to Guru's answer."""
        ref = message.reference
        if ref is None or ref.message_id is None or message.guild is None:
            return None
        parent = ref.resolved if isinstance(ref.resolved, discord.Message) else None
        if parent is None:
            try:
                parent = await message.channel.fetch_message(ref.message_id)
            except discord.HTTPException:
                return None
        if parent.author.id != me.id:
            return None
        interaction = parent.interaction_metadata
        turns = await self.interactions.conversation(
            message.guild.id,
            message_id=parent.id,
            interaction_id=interaction.id if interaction is not None else None,
        )
        return turns or None

    async def _answer(self, message: discord.Message, question: str, history: list[Turn]) -> None:
        services = self.bot.services
        assert services is not None and message.guild is not None
        prefs = await admit_message(message, services)
        async with message.channel.typing():
            prepared = await services.answers.prepare(
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
            answer, completion = await services.answers.generate(prepared)
        view = feedback_view(message.id) if prepared.record is not None else None
        pages = render.pages(render.answer_text(answer))
        sent = None
        for i, page in enumerate(pages):
            last = i == len(pages) - 1
            sent = await _reply(message, page.content, view=view if last else None, file=page.file)
        ending = "refused" if completion is None else completion.finish_reason
        await services.answers.finish(
            prepared,
            "\n".join(p.content for p in pages),
            ending,
            completion.text if completion is not None else None,
            sent.id if sent is not None else None,
        )
        log.info("conversation %s: %d earlier turns, %s", message.id, len(history), ending)


def _question_text(content: str, bot_id: int) -> str:
    """The message without the bot's mention (<@id> or <@!id>)."""
    return " ".join(re.sub(rf"<@!?{bot_id}>", " ", content).split())


async def _reply(
    message: discord.Message,
    text: str,
    *,
    view: discord.ui.View | None = None,
    file: tuple[str, bytes] | None = None,
) -> discord.Message | None:
    extra = {"file": discord.File(io.BytesIO(file[1]), filename=file[0])} if file else {}
    try:
        return await message.reply(
            text,
            view=view or discord.utils.MISSING,
            mention_author=False,
            allowed_mentions=discord.AllowedMentions.none(),
            **extra,
        )
    except discord.HTTPException:
        log.warning("could not reply to message %s", message.id, exc_info=True)
        return None


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Conversation(bot))
