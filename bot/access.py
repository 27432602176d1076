"""What a member may read, from Discord's permissions: core's `Access`, and the moderators'
read check.

A document that came from a channel is only used for, cited to or named to members who can
view that channel (core/rag: migration 0007, `DocumentRepo.hidden_ids`). The visible set is
computed when the member asks, from the gateway's cache of channels, threads, roles and
overwrites (discord.py's `permissions_for`), so a revoked role or a new overwrite applies to
the very next question; it costs no API call.
"""

from __future__ import annotations

import discord

from bot.errors import Refused
from core.rag.types import Access

__all__ = ["NO_ACCESS", "access_of", "ensure_can_read", "member_access"]

NO_ACCESS = Access(frozenset(), frozenset())  # guild-wide documents only


def member_access(interaction: discord.Interaction) -> Access:
    """The channels and threads the asking member can view, and their roles."""
    return access_of(interaction.guild, interaction.user)


def access_of(guild: discord.Guild | None, member: discord.abc.User) -> Access:
    """`member_access` for any member of `guild` (e.g. a message's author)."""
    if guild is None or not isinstance(member, discord.Member):
        return NO_ACCESS
    places: list[discord.abc.GuildChannel | discord.Thread] = [*guild.channels, *guild.threads]
    visible = frozenset(p.id for p in places if p.permissions_for(member).view_channel)
    return Access(visible, frozenset(role.id for role in member.roles))


def ensure_can_read(
    interaction: discord.Interaction, channel: discord.abc.GuildChannel | discord.Thread | None
) -> None:
    """A moderator may only add what they can read themselves: a private channel's messages
    must not become every member's answers through someone who cannot see them."""
    member = interaction.user
    if channel is None or not isinstance(member, discord.Member):
        raise Refused("That channel is not one of this server's channels.")
    perms = channel.permissions_for(member)
    if not (perms.view_channel and perms.read_message_history):
        raise Refused(f"You can't read <#{channel.id}>, so its messages can't be added by you.")
