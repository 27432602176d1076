"""Help channels and the threads Guru answers in (core.helpdesk holds the rows).

A new post in a help channel (a message in a text channel, or a forum post's first message)
is answered in a thread through the one answering path: sources, the refusal floor, 👍/👎 and
"Still need help?", which pings the channel's helper role and marks the question unanswered
(`InteractionRepo.mark_needs_help`, read by /insights). Below the floor nothing is posted (the
question is still marked unanswered), or, if the channel says so, the refusal is. In a thread
Guru started (a help post's, or a /ask answer's with `/settings ask-thread`) every message is a
follow-up of the thread's conversation, no mention needed — until a member with the helper
role replies in a help thread: from then on Guru stays out of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord

from bot import render
from bot.answering import home_channel_id, post_answer, prepare_message_answer
from bot.checks import admit_message
from bot.errors import internal_error
from bot.feedback import FeedbackButton, feedback_view
from core.answering import PreparedAnswer
from core.helpdesk import GuruThread, GuruThreads, HelpChannel, HelpChannels
from core.interactions import InteractionRepo, Turn

if TYPE_CHECKING:
    from bot.client import GuruBot
    from core.services import Services

__all__ = [
    "HANDLED",
    "HelpDesk",
    "NeedHelpButton",
    "ThreadTurn",
    "help_view",
    "missing_thread_permissions",
    "open_ask_thread",
    "thread_name",
]

log = logging.getLogger(__name__)

HANDLED = "handled"  # HelpDesk.route: the message was a help post, or is left alone on purpose
MIN_QUESTION_CHARS = 2
THREAD_NAME_MAX = 100  # Discord's limit


@dataclass(frozen=True)
class ThreadTurn:
    """A message in a thread Guru answers in: a follow-up of the thread's conversation."""

    history: list[Turn]
    help: bool  # a help thread: its answers get "Still need help?" too


def thread_name(question: str) -> str:
    """A thread named after the question: its first line, cut to Discord's 100 characters."""
    first = next((line.strip() for line in question.splitlines() if line.strip()), "Question")
    return render.truncate(" ".join(first.split()), THREAD_NAME_MAX)


def missing_thread_permissions(
    channel: discord.TextChannel | discord.ForumChannel, me: discord.Member
) -> list[str]:
    """The permissions Guru lacks to answer in threads of `channel` (names as Discord's UI
    shows them); empty when it has them all. A forum post is already a thread."""
    perms = channel.permissions_for(me)
    needed = {
        "View Channel": perms.view_channel,
        "Send Messages in Threads": perms.send_messages_in_threads,
        "Read Message History": perms.read_message_history,
    }
    if isinstance(channel, discord.TextChannel):
        needed["Create Public Threads"] = perms.create_public_threads
    return [name for name, granted in needed.items() if not granted]


class NeedHelpButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"guru:needhelp:(?P<id>[0-9]+)",
):
    """ "Still need help?" under a help-channel answer: the asker pings the helpers."""

    def __init__(self, discord_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Still need help?",
                style=discord.ButtonStyle.primary,
                custom_id=f"guru:needhelp:{discord_id}",
            )
        )
        self.discord_id = discord_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> NeedHelpButton:
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        services = getattr(interaction.client, "services", None)
        if services is None or services.db is None or interaction.guild_id is None:
            await interaction.response.send_message("This isn't available here.", ephemeral=True)
            return
        try:
            await self._ask_for_help(interaction, services)
        except Exception:  # noqa: BLE001 - the button's boundary
            log.exception("still-need-help on %s failed (ref %s)", self.discord_id, interaction.id)
            if not interaction.response.is_done():
                await interaction.response.send_message(
                    internal_error(interaction.id), ephemeral=True
                )

    async def _ask_for_help(self, interaction: discord.Interaction, services: Services) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None and services.db is not None
        pool = services.db.pool
        asked = await GuruThreads(pool).question(guild_id, self.discord_id)
        if asked is None or asked.user_id != interaction.user.id:
            text = (
                "That question is no longer on record."
                if asked is None
                else "Only the person who asked can call for help here; you can reply in the"
                " thread."
            )
            await interaction.response.send_message(text, ephemeral=True)
            return
        await InteractionRepo(pool).mark_needs_help(guild_id, self.discord_id)
        channel = await HelpChannels(pool).get(guild_id, home_channel_id(interaction.channel))
        role_id = channel.helper_role_id if channel is not None else None
        user = interaction.user
        if role_id is None:
            await interaction.response.send_message(
                f"<@{user.id}> still needs help with this question. (No helper role is set for"
                " this channel, so nobody was pinged.)",
                allowed_mentions=discord.AllowedMentions.none(),
            )
        else:
            await interaction.response.send_message(
                f"<@&{role_id}> <@{user.id}> still needs help with this question.",
                allowed_mentions=discord.AllowedMentions(
                    everyone=False, users=False, roles=[discord.Object(role_id)]
                ),
            )
        log.info("guild %s: question %s needs help; pinged %s", guild_id, self.discord_id, role_id)
        # leave only 👍/👎: the helpers are called once (a refused post was already marked
        # unanswered when it was posted, so the mark can't tell a second press)
        if interaction.message is not None:
            try:
                await interaction.message.edit(view=feedback_view(self.discord_id))
            except discord.HTTPException:
                log.warning("could not remove Still need help? from %s", interaction.message.id)


def help_view(discord_id: int) -> discord.ui.View:
    """👍/👎 and "Still need help?" under a help-channel answer."""
    view = discord.ui.View(timeout=None)
    view.add_item(FeedbackButton(discord_id, "up"))
    view.add_item(FeedbackButton(discord_id, "down"))
    view.add_item(NeedHelpButton(discord_id))
    return view


@dataclass
class _Lock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders and waiters; the entry goes when none are left


class HelpDesk:
    """Routes messages in help channels and in Guru's threads (used by the conversation cog)."""

    def __init__(self, bot: GuruBot) -> None:
        assert bot.services is not None and bot.services.db is not None
        self.bot = bot
        pool = bot.services.db.pool
        self.channels = HelpChannels(pool)
        self.threads = GuruThreads(pool)
        self.interactions = InteractionRepo(pool)
        self._locks: dict[int, _Lock] = {}

    @contextlib.asynccontextmanager
    async def _thread_lock(self, thread_id: int) -> AsyncIterator[None]:
        entry = self._locks.setdefault(thread_id, _Lock())
        entry.users += 1
        try:
            async with entry.lock:  # FIFO: messages are routed in the order they arrived
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[thread_id]  # idle threads keep no lock

    async def route(self, message: discord.Message, question: str) -> str | ThreadTurn | None:
        """HANDLED (a help post, answered here, or a message Guru stays out of), a ThreadTurn
        (a follow-up in one of Guru's threads, for the caller to answer), or None (not ours)."""
        guild, channel = message.guild, message.channel
        assert guild is not None
        if isinstance(channel, discord.Thread):
            # one message of a thread at a time until its route is known: a helper's reply
            # and the asker's message right after it must not both see "no helper yet"
            async with self._thread_lock(channel.id):
                known = await self.threads.get(guild.id, channel.id)
                if known is not None:
                    return await self._in_thread(message, known)
            forum = channel.parent
            if message.id == channel.id and isinstance(forum, discord.ForumChannel):
                # a forum post's first message (its id is the thread's)
                help_channel = await self.channels.get(guild.id, forum.id)
                if help_channel is not None:
                    title = channel.name.strip()
                    if title and not question.lower().startswith(title.lower()):
                        question = f"{title}\n{question}"  # the post's title is half the question
                    await self._new_post(message, question, help_channel, channel)
                    return HANDLED
            return None
        if message.reference is not None or not isinstance(channel, discord.TextChannel):
            return None  # replies in a help channel are conversations, not new posts
        help_channel = await self.channels.get(guild.id, channel.id)
        if help_channel is None:
            return None
        await self._new_post(message, question, help_channel, None)
        return HANDLED

    async def _in_thread(self, message: discord.Message, known: GuruThread) -> str | ThreadTurn:
        guild = message.guild
        assert guild is not None
        if known.kind == "help":
            if known.helper_replied_at is not None:
                return HANDLED  # a helper took over
            help_channel = await self.channels.get(guild.id, known.parent_id)
            role_id = help_channel.helper_role_id if help_channel else None
            author = message.author
            if (
                role_id is not None
                and author.id != known.asker_id
                and isinstance(author, discord.Member)
                and any(r.id == role_id for r in author.roles)
            ):
                await self.threads.helper_replied(guild.id, known.thread_id)
                log.info("guild %s: a helper replied in thread %s", guild.id, known.thread_id)
                return HANDLED
        latest = await self.threads.latest_turn(guild.id, known)
        history = (
            await self.interactions.conversation(guild.id, interaction_id=latest) if latest else []
        )
        return ThreadTurn(history, known.kind == "help")

    async def _new_post(
        self,
        message: discord.Message,
        question: str,
        help_channel: HelpChannel,
        thread: discord.Thread | None,
    ) -> None:
        """Answer a help post in a thread (its own, for a forum post), or stay silent."""
        if len(question) < MIN_QUESTION_CHARS:
            return
        services = self.bot.services
        guild = message.guild
        assert services is not None and guild is not None
        parent = thread.parent if thread is not None else message.channel
        assert isinstance(parent, discord.TextChannel | discord.ForumChannel)
        if missing := missing_thread_permissions(parent, guild.me):
            log.warning(
                "guild %s: can't answer in help channel %s, missing %s",
                guild.id,
                parent.id,
                ", ".join(missing),
            )
            return
        prefs = await admit_message(message, services)
        async with message.channel.typing():
            prepared = await prepare_message_answer(services, message, question, [], prefs)
        refused = prepared.request is None
        if refused and prepared.record is not None:
            await self.interactions.mark_needs_help(guild.id, message.id)  # for /insights
        if refused and not help_channel.say_when_unanswered:
            await services.answers.finish(prepared, "", "refused")
            log.info("guild %s: help post %s unanswered (silent)", guild.id, message.id)
            return
        # recorded first: a thread started from a message has the message's id, and the
        # asker's next message may arrive the moment the thread exists
        thread_id = thread.id if thread is not None else message.id
        await self.threads.add(
            guild.id, GuruThread(thread_id, "help", parent.id, message.author.id, message.id)
        )
        if thread is None:
            thread = await _thread_from(message, thread_name(question))
        if thread is None:
            await services.answers.finish(prepared, "", "error")
            return
        await self._post_in(thread, services, prepared)
        log.info("guild %s: help post %s answered in thread %s", guild.id, message.id, thread.id)

    async def _post_in(
        self, thread: discord.Thread, services: Services, prepared: PreparedAnswer
    ) -> None:
        assert prepared.record is not None
        view = help_view(prepared.record.discord_id)

        async def send(
            text: str, page_view: discord.ui.View | None, file: tuple[str, bytes] | None
        ) -> discord.Message:
            return await thread.send(
                text,
                view=page_view or discord.utils.MISSING,
                file=discord.File(io.BytesIO(file[1]), filename=file[0])
                if file
                else discord.utils.MISSING,
                allowed_mentions=discord.AllowedMentions.none(),
            )

        async with thread.typing():
            await post_answer(services, prepared, send, view)


async def _thread_from(message: discord.Message, name: str) -> discord.Thread | None:
    """A public thread started from `message` (the one a member already started, if any)."""
    try:
        return await message.create_thread(name=name)
    except discord.HTTPException as exc:
        if exc.code == 160004 and message.guild is not None:  # a thread exists already
            existing = message.guild.get_thread(message.id)
            if existing is not None:
                return existing
        log.warning("could not start a thread on message %s: %s", message.id, exc)
        return None


async def open_ask_thread(
    interaction: discord.Interaction, services: Services, question: str
) -> discord.Thread | None:
    """Open a thread on a /ask answer (`/settings ask-thread`), named after the question; its
    messages are then follow-ups of that answer. Says so privately when it can't."""
    channel, guild = interaction.channel, interaction.guild
    if not isinstance(channel, discord.TextChannel) or guild is None:
        return None  # already in a thread (or a forum post): the answer stays where it is
    if missing := missing_thread_permissions(channel, guild.me):
        await interaction.followup.send(
            f"I couldn't open a thread for this answer: I need {', '.join(missing)} here.",
            ephemeral=True,
        )
        return None
    answer = await interaction.original_response()
    assert services.db is not None
    await GuruThreads(services.db.pool).add(  # first: the thread will have the answer's id
        guild.id, GuruThread(answer.id, "ask", channel.id, interaction.user.id, interaction.id)
    )
    return await _thread_from(answer, thread_name(question))
