"""One error handler for every slash command: friendly words for users, tracebacks for the log.

Core errors (`GuruError`) carry their own user-safe sentence; Discord-side check failures get
one that says what to do; anything else is logged with a reference the user can quote. Every
path answers, so no command ever ends in "The application did not respond".
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from core.errors import GuruError

__all__ = ["GuruTree", "Refused", "internal_error", "reply_privately", "user_message_for"]

log = logging.getLogger(__name__)

_PERMISSION_NAMES = {"manage_guild": "Manage Server", "manage_messages": "Manage Messages"}


def internal_error(ref: int) -> str:
    """What a user sees when we failed: no details, a reference (the interaction's or the
    message's id) that the log carries."""
    return f"Something went wrong on our side; it's been logged (ref {ref})."


class Refused(app_commands.CheckFailure):
    """A check said no; `user_message` says why and what to do (checks must raise these, as
    discord.py only routes AppCommandError subclasses from checks to `on_error`)."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


def _unwrap(error: BaseException) -> BaseException:
    if isinstance(error, app_commands.CommandInvokeError):
        return error.original
    return error


def user_message_for(error: BaseException) -> str | None:
    """The sentence to show for a known error, or None for a bug."""
    error = _unwrap(error)
    if isinstance(error, (GuruError, Refused)):
        return error.user_message
    if isinstance(error, app_commands.MissingPermissions):
        names = ", ".join(
            _PERMISSION_NAMES.get(p, p.replace("_", " ").title()) for p in error.missing_permissions
        )
        return f"You need the {names} permission to use this command."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down a little: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server."
    if isinstance(error, app_commands.TransformerError):
        return f"I couldn't understand {error.value!r}; please check the option and try again."
    return None


async def reply_privately(interaction: discord.Interaction, text: str) -> None:
    """Answer ephemerally if we still can; else as a follow-up (which a defer made public)."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell interaction %s about its error", interaction.id, exc_info=True)


class GuruTree(app_commands.CommandTree):
    """The command tree with Guru's single error handler."""

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        text = user_message_for(error)
        metrics = getattr(interaction.client, "metrics", None)
        if metrics is not None and interaction.command is not None:
            outcome = "error" if text is None else "refused"
            metrics.finished(interaction.id, interaction.command.qualified_name, outcome)
        if text is None:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "command /%s failed (ref %s)", command, interaction.id, exc_info=_unwrap(error)
            )
            text = internal_error(interaction.id)
        else:
            log.info(
                "interaction %s answered with %s", interaction.id, type(_unwrap(error)).__name__
            )
        await reply_privately(interaction, text)
