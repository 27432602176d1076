"""core/fairuse.py: each person's and each server's share of the model, the tuning budget, and
no model commands in direct messages."""

from __future__ import annotations

import dataclasses

import pytest

from bot.cogs.ask import Ask
from bot.cogs.calc import Calc
from bot.cogs.explain import Explain
from core.config import Settings
from core.errors import InvalidInput, NotAllowed
from core.fairuse import FairUse, RateLimited, SlidingWindows, Window, wait_text

GUILD, OTHER = 10, 20
ALICE, BOB = 1, 2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fair_use(clock: Clock, **limits: int) -> FairUse:
    settings = dataclasses.replace(Settings(), **limits)
    return FairUse(settings, clock=clock)


def test_a_person_gets_the_hosts_default_per_minute_then_a_wait_naming_when():
    clock = Clock()
    limits = fair_use(clock, user_requests_per_minute=2, guild_requests_per_minute=0)
    limits.use_model(GUILD, ALICE, None)
    clock.now += 10
    limits.use_model(GUILD, ALICE, None)
    with pytest.raises(RateLimited, match="2 times a minute on this server") as refused:
        limits.use_model(GUILD, ALICE, None)
    assert refused.value.retry_after_s == pytest.approx(50.0)
    assert "try again in 50 s" in refused.value.user_message
    limits.use_model(GUILD, BOB, None)  # another person
    limits.use_model(OTHER, ALICE, None)  # the same person in another server
    clock.now += 50
    limits.use_model(GUILD, ALICE, None)  # the first use left the window


def test_refused_requests_do_not_count():
    clock = Clock()
    limits = fair_use(clock, user_requests_per_minute=1, guild_requests_per_minute=0)
    limits.use_model(GUILD, ALICE, None)
    for _ in range(5):
        clock.now += 10
        with pytest.raises(RateLimited):
            limits.use_model(GUILD, ALICE, None)
    clock.now += 10.0  # 60 s after the one admitted use, however often refused since
    limits.use_model(GUILD, ALICE, None)


def test_a_whole_server_shares_one_budget_and_other_servers_are_unaffected():
    clock = Clock()
    limits = fair_use(clock, user_requests_per_minute=5, guild_requests_per_minute=3)
    for user in range(3):
        limits.use_model(GUILD, 100 + user, None)
    with pytest.raises(RateLimited, match="This server has used its share") as refused:
        limits.use_model(GUILD, 200, None)  # a fresh member: the server is out
    assert "3 a minute for everyone together" in refused.value.user_message
    limits.use_model(OTHER, 200, None)


def test_a_server_may_lower_the_per_person_limit_but_never_raise_it():
    limits = fair_use(Clock(), user_requests_per_minute=5)
    assert limits.user_limit(None) == 5
    assert limits.user_limit(2) == 2
    assert limits.user_limit(50) == 5  # stored before the host lowered its limit
    limits.check_override(5)
    with pytest.raises(InvalidInput, match="at most 5 a minute per person"):
        limits.check_override(6)
    unlimited_host = fair_use(Clock(), user_requests_per_minute=0)
    assert unlimited_host.user_limit(None) == 0 and unlimited_host.user_limit(7) == 7
    unlimited_host.check_override(600)


def test_a_heatmap_costs_one_more_and_never_more_than_the_whole_limit():
    clock = Clock()
    limits = fair_use(clock, user_requests_per_minute=3, guild_requests_per_minute=0)
    limits.use_model(GUILD, ALICE, None, cost=2)
    with pytest.raises(RateLimited, match="heatmap counts as one more"):
        limits.use_model(GUILD, ALICE, None, cost=2)
    limits.use_model(GUILD, ALICE, None)  # one left
    strict = fair_use(clock, user_requests_per_minute=1, guild_requests_per_minute=0)
    strict.use_model(GUILD, ALICE, None, cost=2)  # capped at the limit, not refused forever


def test_zero_means_no_limit():
    limits = fair_use(Clock(), user_requests_per_minute=0, guild_requests_per_minute=0)
    for _ in range(1000):
        limits.use_model(GUILD, ALICE, None)


def test_direct_messages_are_refused_with_a_reason():
    limits = fair_use(Clock())
    with pytest.raises(NotAllowed, match="only answers in servers"):
        limits.use_model(None, ALICE, None)
    with pytest.raises(NotAllowed):
        limits.may_start_tuning(None)


def test_model_commands_are_registered_for_servers_only():
    """Discord then hides them in DMs; `admit` refuses a DM that gets through anyway."""
    for command in (Ask.ask, Calc.calc, Explain.explain):
        assert command.guild_only, command.name


def test_tuning_starts_are_counted_per_server_per_hour_once_queued():
    clock = Clock()
    limits = fair_use(clock, tune_starts_per_hour=2)
    for _ in range(3):
        limits.may_start_tuning(GUILD)  # checks alone (refused uploads) cost nothing
    limits.tuning_started(GUILD)
    clock.now += 600
    limits.tuning_started(GUILD)
    with pytest.raises(RateLimited, match="2 tuning jobs an hour; try again in 50 min"):
        limits.may_start_tuning(GUILD)
    limits.may_start_tuning(OTHER)
    clock.now += 3000
    limits.may_start_tuning(GUILD)


def test_idle_keys_are_forgotten_so_one_off_users_cannot_grow_memory():
    clock = Clock()
    windows = SlidingWindows(clock)
    for user in range(3000):
        windows.record(("model", GUILD, user))
    clock.now += 3600
    windows.record(("model", GUILD, 0))  # 3001st use: the sweep after 1024 uses ran since
    for user in range(2000):
        windows.record(("model", OTHER, user))
    assert len(windows) < 2100
    assert windows.wait_s(("model", OTHER, 5), Window(1, 60.0)) > 0


def test_waits_are_said_in_seconds_then_minutes_rounded_up():
    assert wait_text(0.2) == "in 1 s" and wait_text(23.1) == "in 24 s"
    assert wait_text(89) == "in 89 s" and wait_text(121) == "in 3 min"
