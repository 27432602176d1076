"""Conversations: mention Guru with a question, or reply to one of its answers to follow up.

Help channels and Guru's own threads come first (bot.helpdesk): a help post is answered in a
thread, and a message in a thread Guru answers in is a follow-up without any mention.

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
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.answering import post_answer, prepare_message_answer
from bot.checks import admit_message
from bot.errors import Refused, internal_error, user_message_for
from bot.feedback import feedback_view
from bot.helpdesk import HANDLED, HelpDesk, ThreadTurn, help_view
from core.errors import GuruError
from core.interactions import InteractionRepo, Turn

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
        self.helpdesk = HelpDesk(bot)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.author.bot or message.guild is None or message.is_system():
            return  # (a system message, e.g. "… started a thread", is never a question)
        try:
            await self._handle(message, me)
        except GuruError as exc:  # refusals and known failures: say so, briefly
            await _reply(message, exc.user_message)
        except Refused as exc:
            await _reply(message, exc.user_message)
        except Exception as exc:  # noqa: BLE001 - the listener's boundary
            if (known := user_message_for(exc)) is None:
                log.exception("conversation answer to %s failed", message.id)
                known = internal_error(message.id)
            await _reply(message, known)

    async def _handle(self, message: discord.Message, me: discord.ClientUser) -> None:
        question = _question_text(message.content, me.id)
        # help posts and Guru's threads first (bot.helpdesk): no mention needed there
        routed = await self.helpdesk.route(message, question)
        if routed == HANDLED:
            return
        view_of: Callable[[int], discord.ui.View] = feedback_view
        if isinstance(routed, ThreadTurn):
            history = routed.history
            view_of = help_view if routed.help else feedback_view
        else:
            found = await self._earlier_turns(message, me)
            if found is None and me not in message.mentions:
                return  # neither addressed to Guru nor a reply to one of its answers
            history = found or []
        if len(question) < MIN_QUESTION_CHARS:
            return
        await self._answer(message, question, history, view_of)

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

    async def _answer(
        self,
        message: discord.Message,
        question: str,
        history: list[Turn],
        view_of: Callable[[int], discord.ui.View] = feedback_view,
    ) -> None:
        services = self.bot.services
        assert services is not None and message.guild is not None
        prefs = await admit_message(message, services)
        async with message.channel.typing():
            prepared = await prepare_message_answer(services, message, question, history, prefs)
            view = view_of(message.id) if prepared.record is not None else None

            async def send(
                text: str, page_view: discord.ui.View | None, file: tuple[str, bytes] | None
            ) -> discord.Message | None:
                return await _reply(message, text, view=page_view, file=file)

            await post_answer(services, prepared, send, view)
        log.info("conversation %s: %d earlier turns", message.id, len(history))


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
