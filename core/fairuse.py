"""Fair use of the shared machine: how often each person and each server may run the model.

One Guru process serves every server that invited it, on one model and one sandbox, so a
single busy member (or a whole busy server) could otherwise keep everyone else waiting. Every
command that runs the model or the sandbox (/ask, /explain and its heatmap, /calc) draws from
two sliding one-minute windows: one per (server, person) and one per server. /tune start has
its own hourly window per server (one live job per server is enforced by the job queue).

Limits are counted in this process's memory: a restart forgets them, which only ever lets a
few more requests through. Direct messages are refused outright: there is no server whose
moderators, allowed channels and budget would apply.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from core.config import Settings
from core.errors import GuruError, InvalidInput, NotAllowed

__all__ = ["FairUse", "RateLimited", "SlidingWindows", "Window", "require_guild", "wait_text"]

log = logging.getLogger(__name__)

MINUTE_S, HOUR_S = 60.0, 3600.0
SWEEP_EVERY = 1024  # uses between sweeps of idle keys, so memory follows active users only


class RateLimited(GuruError):
    """Over a limit; `retry_after_s` is when the request would be admitted."""

    def __init__(self, user_message: str, retry_after_s: float) -> None:
        super().__init__(user_message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Window:
    """At most `count` uses per `seconds`; a count of 0 means no limit."""

    count: int
    seconds: float


def wait_text(seconds: float) -> str:
    """'in 23 s', 'in 4 min': rounded up, so trying again then always works."""
    if seconds < 90:
        return f"in {max(1, math.ceil(seconds))} s"
    return f"in {math.ceil(seconds / 60)} min"


class SlidingWindows:
    """The times of recent uses per key. Pure bookkeeping with an injectable clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._uses: dict[tuple[object, ...], deque[float]] = {}
        self._since_sweep = 0

    def wait_s(self, key: tuple[object, ...], window: Window, cost: int = 1) -> float:
        """Seconds until `cost` more uses fit in `window` for `key` (0.0: they fit now)."""
        if window.count <= 0:
            return 0.0
        uses = self._trimmed(key, window.seconds)
        # a cost above the limit would never fit: it needs the whole window, no more
        over = len(uses) + min(cost, window.count) - window.count
        if over <= 0:
            return 0.0
        return uses[over - 1] + window.seconds - self.clock()

    def record(self, key: tuple[object, ...], cost: int = 1) -> None:
        now = self.clock()
        self._uses.setdefault(key, deque()).extend([now] * cost)
        self._since_sweep += 1
        if self._since_sweep >= SWEEP_EVERY:
            self._sweep(now)

    def __len__(self) -> int:
        return len(self._uses)

    def _trimmed(self, key: tuple[object, ...], seconds: float) -> deque[float]:
        uses = self._uses.get(key, deque())
        now = self.clock()
        while uses and now - uses[0] >= seconds:
            uses.popleft()
        return uses

    def _sweep(self, now: float) -> None:
        """Forget keys unused for an hour (the longest window), so a flood of one-off users
        cannot grow memory without bound."""
        self._since_sweep = 0
        idle = [k for k, uses in self._uses.items() if not uses or now - uses[-1] >= HOUR_S]
        for key in idle:
            del self._uses[key]


class FairUse:
    """The process's limits (from Settings, tightened per server by /settings) and the
    windows that count uses against them. One per process, shared by every command."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.user_cap = settings.user_requests_per_minute
        self.guild_cap = settings.guild_requests_per_minute
        self.tune_cap = settings.tune_starts_per_hour
        self.windows = SlidingWindows(clock)

    def user_limit(self, guild_override: int | None) -> int:
        """Uses per person per minute in a server: its /settings value (None: this host's
        default), never above the host's limit (0 = none)."""
        if guild_override is None:
            return self.user_cap
        return min(guild_override, self.user_cap) if self.user_cap else guild_override

    def check_override(self, per_minute: int) -> None:
        """Refuse a /settings rate limit above what this host allows."""
        if self.user_cap and per_minute > self.user_cap:
            raise InvalidInput(
                f"This host allows at most {self.user_cap} a minute per person; pick 1 to "
                f"{self.user_cap}, or 0 for that default."
            )

    def use_model(
        self, guild_id: int | None, user_id: int, guild_override: int | None, cost: int = 1
    ) -> None:
        """Count `cost` model or sandbox uses, or raise RateLimited (nothing counted)."""
        guild = require_guild(guild_id)
        per_user = self.user_limit(guild_override)
        user_wait = self.windows.wait_s(("model", guild, user_id), Window(per_user, MINUTE_S), cost)
        guild_wait = self.windows.wait_s(("model", guild), Window(self.guild_cap, MINUTE_S), cost)
        if user_wait > 0:
            noun = "time" if per_user == 1 else "times"
            extra = " (an attention heatmap counts as one more)" if cost > 1 else ""
            raise RateLimited(
                f"You can use Guru's model {per_user} {noun} a minute on this server{extra}; "
                f"try again {wait_text(user_wait)}.",
                user_wait,
            )
        if guild_wait > 0:
            log.info("guild %d over its %d a minute", guild, self.guild_cap)
            raise RateLimited(
                f"This server has used its share of Guru's model ({self.guild_cap} a minute "
                f"for everyone together); try again {wait_text(guild_wait)}.",
                guild_wait,
            )
        self.windows.record(("model", guild, user_id), cost)
        self.windows.record(("model", guild), cost)

    def may_start_tuning(self, guild_id: int | None) -> None:
        """RateLimited when the server has started its hourly number of tuning jobs. Starting
        and cancelling in a loop would otherwise keep the trainer loading models for nothing.
        Only jobs really queued count (`tuning_started`): a rejected upload costs nothing."""
        guild = require_guild(guild_id)
        wait = self.windows.wait_s(("tune", guild), Window(self.tune_cap, HOUR_S))
        if wait > 0:
            noun = "job" if self.tune_cap == 1 else "jobs"
            raise RateLimited(
                f"This server can start {self.tune_cap} tuning {noun} an hour; try again "
                f"{wait_text(wait)}.",
                wait,
            )

    def tuning_started(self, guild_id: int) -> None:
        self.windows.record(("tune", guild_id))


def require_guild(guild_id: int | None) -> int:
    """The server a model command runs for; direct messages are refused (see the module)."""
    if guild_id is None:
        raise NotAllowed(
            "Guru only answers in servers, where their moderators and limits apply; "
            "use this command in a server you share with Guru."
        )
    return guild_id
