"""bot/errors.py and bot/checks.py: which words users see, and the per-user rate limit."""

from __future__ import annotations

import pytest
from discord import app_commands

from bot.checks import RateLimiter
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


def test_rate_limiter_allows_n_per_minute_per_user_and_guild(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("bot.checks.time.monotonic", lambda: now[0])
    limiter = RateLimiter()
    limiter.hit(1, 7, 2)
    limiter.hit(1, 7, 2)
    with pytest.raises(Refused, match="2 questions a minute"):
        limiter.hit(1, 7, 2)
    limiter.hit(1, 8, 2)  # another user
    limiter.hit(2, 7, 2)  # another guild
    now[0] += 60.0
    limiter.hit(1, 7, 2)  # the window slid on
    limiter.hit(1, 7, None)  # no limit configured


def test_guild_settings_restrict_only_when_lists_are_set():
    open_ = GuildSettings(1)
    assert open_.channel_allowed(5) and open_.roles_allowed(set())
    closed = GuildSettings(1, allowed_channel_ids=(5,), allowed_role_ids=(9,))
    assert closed.channel_allowed(5) and not closed.channel_allowed(6)
    assert closed.roles_allowed({9, 10}) and not closed.roles_allowed({10})
