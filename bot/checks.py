"""Checks shared by cogs. They raise `Refused` (an AppCommandError) so the one error handler
answers them ephemerally before anything is deferred."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot.errors import Refused
from core.fairuse import require_guild
from core.guilds import GuildSettings, GuildSettingsRepo

if TYPE_CHECKING:
    from core.services import Services

__all__ = ["admit", "admit_message", "ensure_manage_guild", "ensure_may_ask"]


def ensure_manage_guild(
    interaction: discord.Interaction, action: str = "change Guru's settings"
) -> None:
    """The real check behind `default_permissions(manage_guild=True)`, which only hides the
    command: server admins can re-grant it per role, and old clients ignore it."""
    if interaction.guild is None:
        raise Refused("This command only works in a server.")
    if not interaction.permissions.manage_guild:
        raise Refused(f"You need the Manage Server permission to {action}.")


def ensure_may_ask(interaction: discord.Interaction, prefs: GuildSettings) -> None:
    """Allowed channels and roles from /settings; Manage Server holders are never locked out."""
    _ensure_allowed(
        prefs, interaction.permissions.manage_guild, interaction.channel_id, interaction.user
    )


def _ensure_allowed(
    prefs: GuildSettings, manager: bool, channel_id: int | None, user: discord.abc.User
) -> None:
    if manager:
        return
    if not prefs.channel_allowed(channel_id):
        allowed = ", ".join(f"<#{c}>" for c in prefs.allowed_channel_ids)
        raise Refused(f"Guru answers in {allowed} on this server; please ask there.")
    role_ids = {r.id for r in user.roles} if isinstance(user, discord.Member) else set()
    if not prefs.roles_allowed(role_ids):
        raise Refused("On this server only some roles may ask Guru; ask a moderator for access.")


async def admit(interaction: discord.Interaction, cost: int = 1) -> GuildSettings:
    """The gate of every command that runs the model or the sandbox (/ask, /explain, /calc):
    servers only, their allowed channels and roles, then `cost` uses of the person's and the
    server's fair-use budget (core.fairuse). Returns the server's settings for the caller."""
    services = interaction.client.services  # type: ignore[attr-defined]
    guild_id = require_guild(interaction.guild_id)  # guild_only() only hides the command
    prefs = await GuildSettingsRepo(services.db.pool).get(guild_id)
    ensure_may_ask(interaction, prefs)  # refused here: nothing counted
    services.fair_use.use_model(guild_id, interaction.user.id, prefs.rate_limit_per_minute, cost)
    return prefs


async def admit_message(message: discord.Message, services: Services) -> GuildSettings:
    """`admit` for a message addressed to Guru (a mention, a reply to its answer)."""
    guild_id = require_guild(message.guild.id if message.guild else None)
    prefs = await GuildSettingsRepo(services.db.pool).get(guild_id)  # type: ignore[union-attr]
    author = message.author
    manager = isinstance(author, discord.Member) and author.guild_permissions.manage_guild
    channel = message.channel  # a thread is allowed where its parent channel is
    place = channel.parent_id if isinstance(channel, discord.Thread) else channel.id
    _ensure_allowed(prefs, manager, place, author)
    services.fair_use.use_model(guild_id, author.id, prefs.rate_limit_per_minute)
    return prefs
