"""Reading a channel source's help threads from Discord: the adapter half of
`core.sources.threads` (which decides what is solved and what the document says).

A sync reads the channel's public threads, active (`Guild.active_threads`) and archived
(`archived_threads`), at most `max_threads`; private threads are never read (their members
chose who sees them). Of each thread it reads the first `MAX_MESSAGES` messages, who reacted
✅ to them (only helpers count: the source's helper role, or Manage Messages in the channel)
and, in a forum, the post's tags. A channel the bot can no longer read fails the whole sync
(`SourceUnavailable`: nothing is removed); one thread that fails is kept as it was.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import discord

from core.sources.threads import (
    ThreadFacts,
    ThreadMarks,
    ThreadMessage,
    solved_tags,
    thread_page,
    thread_uri,
)
from core.sources.types import Failed, PageResult, PageState, SourceInfo, SourceUnavailable

__all__ = [
    "CHECK",
    "MAX_MESSAGES",
    "ThreadReader",
    "bot_can_read",
    "is_helper",
    "source_channel",
]

log = logging.getLogger(__name__)

CHECK = "✅"
MAX_MESSAGES = 100  # a help thread's question and answer are near its start
Readable = discord.TextChannel | discord.ForumChannel


def bot_can_read(channel: discord.abc.GuildChannel | discord.Thread) -> bool:
    perms = channel.permissions_for(channel.guild.me)
    return perms.view_channel and perms.read_message_history


def source_channel(guild: discord.Guild, source: SourceInfo) -> Readable:
    """The source's channel if it still exists and the bot can read it; else SourceUnavailable."""
    channel_id = int(source.options["channel_id"])
    channel = guild.get_channel(channel_id)
    if not isinstance(channel, Readable):
        raise SourceUnavailable(
            f"<#{channel_id}> is gone; remove this source with `/docs sources remove`."
        )
    if not bot_can_read(channel):
        raise SourceUnavailable(
            f"I can't read <#{channel_id}> any more; give me View Channel and "
            "Read Message History there."
        )
    return channel


def is_helper(member: discord.Member, channel: Readable, helper_role_id: int | None) -> bool:
    """Whose ✅ accepts an answer: the source's helper role, or a moderator of the channel."""
    if helper_role_id is not None and any(r.id == helper_role_id for r in member.roles):
        return True
    return channel.permissions_for(member).manage_messages


class ThreadReader:
    """The `discord` page provider of `SourceSync`, bound to the running bot."""

    def __init__(self, client: discord.Client, marks: ThreadMarks, max_threads: int) -> None:
        self.client = client
        self.marks = marks
        self.max_threads = max_threads

    async def __call__(
        self, source: SourceInfo, known: dict[str, PageState]
    ) -> AsyncIterator[PageResult]:
        guild = self.client.get_guild(source.guild_id)
        if guild is None:
            raise SourceUnavailable("I am not in this server's gateway session right now.")
        channel = source_channel(guild, source)
        threads = await self.threads(channel, _since(source))
        marked = await self.marks.marked(guild.id, [t.id for t in threads])
        tags = solved_tags(source.options)
        for thread in threads:
            try:
                facts = await self.facts(thread, channel, source, marked.get(thread.id))
            except discord.HTTPException as exc:
                reason = f"could not be read (HTTP {exc.status})"
                yield Failed(thread_uri(guild.id, thread.id), reason, keep=True)
                continue
            page = thread_page(facts, tags)
            if page is not None:
                yield page

    async def threads(self, channel: Readable, since: datetime | None) -> list[discord.Thread]:
        """The channel's public threads, newest first, created since `since`."""
        found: dict[int, discord.Thread] = {}
        try:
            for thread in await channel.guild.active_threads():
                if thread.parent_id == channel.id:
                    found[thread.id] = thread
            async for thread in channel.archived_threads(limit=self.max_threads):
                found.setdefault(thread.id, thread)
        except discord.HTTPException as exc:
            raise SourceUnavailable(
                f"Listing the threads of <#{channel.id}> failed (HTTP {exc.status})."
            ) from None
        public = [
            t
            for t in found.values()
            if t.type != discord.ChannelType.private_thread
            and (since is None or discord.utils.snowflake_time(t.id) >= since)
        ]
        public.sort(key=lambda t: t.id, reverse=True)
        return public[: self.max_threads]

    async def facts(
        self,
        thread: discord.Thread,
        channel: Readable,
        source: SourceInfo,
        marked: int | None = None,
    ) -> ThreadFacts:
        """What one thread says: its first messages, helpers' ✅ and its tags."""
        role = source.options.get("helper_role_id")
        helper_role_id = int(role) if role else None
        messages = [m async for m in thread.history(limit=MAX_MESSAGES, oldest_first=True)]
        if isinstance(channel, discord.TextChannel) and all(m.id != thread.id for m in messages):
            try:  # a thread started from a message: the question is that message
                messages.insert(0, await channel.fetch_message(thread.id))
            except discord.NotFound:
                pass
        posts = [
            ThreadMessage(
                m.id,
                m.author.id,
                m.author.display_name,
                m.content or "",
                await self._helper_checked(m, channel, helper_role_id),
            )
            for m in messages
            if m.type in (discord.MessageType.default, discord.MessageType.reply)
        ]
        return ThreadFacts(
            thread.guild.id,
            channel.id,
            channel.name,
            thread.id,
            thread.name,
            tuple(posts),
            tuple(t.name for t in thread.applied_tags),
            marked,
        )

    async def _helper_checked(
        self, message: discord.Message, channel: Readable, helper_role_id: int | None
    ) -> bool:
        reaction = next((r for r in message.reactions if str(r.emoji) == CHECK), None)
        if reaction is None:
            return False
        guild = channel.guild
        async for user in reaction.users(limit=50):
            member = user if isinstance(user, discord.Member) else guild.get_member(user.id)
            if member is None:
                try:
                    member = await guild.fetch_member(user.id)
                except discord.NotFound:
                    continue  # left the server
            if is_helper(member, channel, helper_role_id):
                return True
        return False


def _since(source: SourceInfo) -> datetime | None:
    since = source.options.get("since")
    if not since:
        return None
    parsed = datetime.fromisoformat(str(since))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
