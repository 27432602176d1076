"""bot/errors.py and bot/checks.py: which words users see, and who may ask where."""

from __future__ import annotations

from discord import app_commands

from bot.errors import Refused, user_message_for
from core.errors import Busy
from core.guilds import GuildSettings


def test_core_errors_and_refusals_carry_their_own_words():
    assert (
        user_message_for(Busy("The model is busy; try again.")) == "The model is busy; try again."
    )
    assert user_message_for(Refused("Ask in #help.")) == "Ask in #help."


def test_missing_permissions_are_named_the_way_discord_shows_them():
    text = user_message_for(app_commands.MissingPermissions(["manage_guild"]))
    assert text == "You need the Manage Server permission to use this command."


def test_bugs_get_no_user_message_so_the_handler_logs_them():
    assert user_message_for(RuntimeError("boom")) is None


def test_guild_settings_restrict_only_when_lists_are_set():
    open_ = GuildSettings(1)
    assert open_.channel_allowed(5) and open_.roles_allowed(set())
    closed = GuildSettings(1, allowed_channel_ids=(5,), allowed_role_ids=(9,))
    assert closed.channel_allowed(5) and not closed.channel_allowed(6)
    assert closed.roles_allowed({9, 10}) and not closed.roles_allowed({10})
