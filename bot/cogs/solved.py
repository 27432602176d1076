"""Solved marks as they happen: "Mark as answer", ✅ reactions, forum tags, edits, deletions.

A channel source is re-read on its schedule, but a thread marked solved should reach Guru's
docs now, and a deleted one leave now: each of these events brings that one thread up to date
(`Sources.sync_thread`, which re-embeds only when its question or answer changed). Events in
channels that are no source cost one indexed lookup and nothing else.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import Refused
from bot.threadsource import CHECK
from core.errors import GuruError

if TYPE_CHECKING:
    from bot.client import GuruBot
    from bot.cogs.sources import Sources

log = logging.getLogger(__name__)

_OUTCOMES = {
    "added": "it is in Guru's docs now",
    "changed": "Guru's docs have the new answer",
    "unchanged": "Guru's docs already had it",
}


class Solved(commands.Cog):
    """Keeps channel sources' threads current between syncs."""

    def __init__(self, bot: GuruBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Mark as answer", callback=self.mark_answer)
        self.menu.guild_only = True
        self.menu.default_permissions = discord.Permissions(manage_messages=True)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    def _sources(self) -> Sources | None:
        return self.bot.get_cog("Sources")  # type: ignore[return-value]

    async def mark_answer(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """A moderator accepts `message` as its thread's answer (Manage Messages there)."""
        thread = message.channel
        if not isinstance(thread, discord.Thread) or interaction.guild is None:
            raise Refused("Only a reply in a thread or forum post can be marked as its answer.")
        if not thread.permissions_for(interaction.user).manage_messages:  # type: ignore[arg-type]
            raise Refused("You need Manage Messages in this channel to mark answers.")
        if message.id == thread.id:
            raise Refused("That is the question; mark the reply that answers it.")
        sources = self._sources()
        if sources is None:
            raise Refused("Source syncing is not running right now; try again in a minute.")
        await interaction.response.defer(thinking=True, ephemeral=True)
        await sources.marks.mark(interaction.guild.id, thread.id, message.id, interaction.user.id)
        outcome = await sources.sync_thread(thread)
        if outcome == "none":
            text = (
                f"✅ Marked as the answer. <#{thread.parent_id}> is not one of Guru's sources; "
                "add it with `/docs add channel:` to use its solved threads."
            )
        elif outcome == "failed":
            text = "✅ Marked as the answer, but the thread could not be indexed; see `/docs list`."
        else:
            text = f"✅ Marked as the answer: {_OUTCOMES.get(outcome, outcome)}."
        await interaction.followup.send(text, ephemeral=True)

    async def _refresh(self, guild_id: int | None, channel_id: int) -> None:
        """Re-read thread `channel_id` if it is one (errors are logged: an event has no reply)."""
        sources = self._sources()
        guild = self.bot.get_guild(guild_id) if guild_id else None
        thread = guild.get_thread(channel_id) if guild else None
        if sources is None or thread is None:
            return
        try:
            outcome = await sources.sync_thread(thread)
        except (GuruError, discord.HTTPException) as exc:
            log.warning("could not refresh thread %s: %s", channel_id, exc)
            return
        if outcome != "none":
            log.info("thread %s of guild %s: %s", channel_id, guild_id, outcome)

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if str(payload.emoji) == CHECK:
            await self._refresh(payload.guild_id, payload.channel_id)

    @commands.Cog.listener()
    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        if str(payload.emoji) == CHECK:
            await self._refresh(payload.guild_id, payload.channel_id)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if payload.message.author.id == getattr(self.bot.user, "id", None):
            return  # Guru's own streamed answers edit ≤ 1/s: never a question to re-read
        await self._refresh(payload.guild_id, payload.channel_id)

    @commands.Cog.listener()
    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        await self._refresh(payload.guild_id, payload.thread_id)  # tags, archived, renamed

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        sources = self._sources()
        if sources is None or payload.parent_id is None:
            return
        try:
            await sources.thread_gone(payload.guild_id, payload.parent_id, payload.thread_id)
        except GuruError as exc:
            log.warning("could not drop deleted thread %s: %s", payload.thread_id, exc)


async def setup(bot: GuruBot) -> None:
    await bot.add_cog(Solved(bot))
