"""Checks shared by cogs. They raise `Refused` (an AppCommandError) so the one error handler
answers them ephemerally before anything is deferred."""

from __future__ import annotations

import time
from collections import deque

import discord

from bot.errors import Refused
from core.guilds import GuildSettings, GuildSettingsRepo

__all__ = ["RateLimiter", "ensure_allowed_here", "ensure_manage_guild", "ensure_may_ask"]


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
    if interaction.permissions.manage_guild:
        return
    if not prefs.channel_allowed(interaction.channel_id):
        allowed = ", ".join(f"<#{c}>" for c in prefs.allowed_channel_ids)
        raise Refused(f"Guru answers in {allowed} on this server; please ask there.")
    member = interaction.user
    role_ids = {r.id for r in member.roles} if isinstance(member, discord.Member) else set()
    if not prefs.roles_allowed(role_ids):
        raise Refused("On this server only some roles may ask Guru; ask a moderator for access.")


class RateLimiter:
    """Sliding one-minute window per (guild, user); the limit comes from the guild's settings."""

    def __init__(self) -> None:
        self._hits: dict[tuple[int, int], deque[float]] = {}

    def hit(self, guild_id: int, user_id: int, per_minute: int | None) -> None:
        if not per_minute:
            return
        now = time.monotonic()
        hits = self._hits.setdefault((guild_id, user_id), deque())
        while hits and now - hits[0] >= 60.0:
            hits.popleft()
        if len(hits) >= per_minute:
            wait = 60.0 - (now - hits[0])
            noun = "question" if per_minute == 1 else "questions"
            raise Refused(
                f"You can ask {per_minute} {noun} a minute here; try again in {wait:.0f} s."
            )
        hits.append(now)


async def ensure_allowed_here(interaction: discord.Interaction) -> None:
    """`ensure_may_ask` for commands that have no other use for the guild's settings (/calc,
    /explain): the allowed channels and roles apply to everything that runs the model."""
    services = getattr(interaction.client, "services", None)
    if interaction.guild_id is None or services is None or services.db is None:
        return
    ensure_may_ask(interaction, await GuildSettingsRepo(services.db.pool).get(interaction.guild_id))
