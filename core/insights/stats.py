"""The SQL of /insights: weekly counts of a guild's /ask questions and its unanswered ones.

Only `command = 'ask'` rows count (a /ask, or a reply or mention continuing one): they are the
questions about the server's own docs. /explain answers from Guru's notes and /calc runs code,
so neither says anything about what the server's docs are missing. Rows still being answered
(no finish_reason yet) are left out. Every query takes the guild id: no other server's
question can reach a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from core.db.pool import Pool

__all__ = ["REFUSALS", "UNANSWERED_ENDINGS", "Unanswered", "Week", "unanswered", "weekly"]

# finish_reason values (core.answering): "refused" before the model (nothing passed the
# relevance floor), "declined" by the model (its sources do not answer it), "unusable" (no
# usable answer even after the retry).
REFUSALS = ("refused", "declined")
UNANSWERED_ENDINGS = (*REFUSALS, "unusable")

_WEEKLY = """
SELECT date_trunc('week', created_at AT TIME ZONE 'UTC')::date AS week,
       count(*),
       count(*) FILTER (WHERE finish_reason = ANY(%(refusals)s)),
       count(*) FILTER (WHERE finish_reason = 'unusable'),
       count(*) FILTER (WHERE feedback = 1),
       count(*) FILTER (WHERE feedback = -1),
       count(*) FILTER (WHERE needs_help_at IS NOT NULL)
FROM interactions
WHERE guild_id = %(guild_id)s AND command = 'ask' AND finish_reason IS NOT NULL
  AND created_at >= %(since)s
GROUP BY week ORDER BY week
"""
# newest first, so a capped list keeps the recent questions
_UNANSWERED = """
SELECT question, finish_reason, feedback, needs_help_at IS NOT NULL, created_at
FROM interactions
WHERE guild_id = %(guild_id)s AND command = 'ask' AND created_at >= %(since)s
  AND (finish_reason = ANY(%(endings)s) OR feedback = -1 OR needs_help_at IS NOT NULL)
ORDER BY created_at DESC
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class Week:
    """One calendar week (Monday, UTC) of a guild's /ask questions."""

    start: date
    asked: int = 0
    refused: int = 0  # refused before the model or declined by it
    unusable: int = 0
    up: int = 0
    down: int = 0
    needs_help: int = 0

    @property
    def refusal_rate(self) -> float | None:
        return self.refused / self.asked if self.asked else None

    @property
    def rated(self) -> int:
        return self.up + self.down

    @property
    def up_rate(self) -> float | None:
        """👍 share of the rated answers; None when nobody rated one."""
        return self.up / self.rated if self.rated else None


@dataclass(frozen=True)
class Unanswered:
    """A question the docs did not answer, and why we think so."""

    question: str
    reasons: tuple[str, ...]  # "refused", "declined", "unusable", "down" (👎), "needs help"
    created_at: datetime


async def weekly(pool: Pool, guild_id: int, since: datetime) -> list[Week]:
    """The weeks since `since` that had questions, oldest first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            _WEEKLY, {"guild_id": guild_id, "since": since, "refusals": list(REFUSALS)}
        )
        return [Week(*row) for row in await cur.fetchall()]


async def unanswered(pool: Pool, guild_id: int, since: datetime, limit: int) -> list[Unanswered]:
    """The newest `limit` questions since `since` that were refused, declined, unusable,
    rated 👎 or marked "Still need help?"."""
    params = {
        "guild_id": guild_id,
        "since": since,
        "endings": list(UNANSWERED_ENDINGS),
        "limit": limit,
    }
    async with pool.connection() as conn:
        cur = await conn.execute(_UNANSWERED, params)
        rows = await cur.fetchall()
    out = []
    for question, ending, feedback, needs_help, created_at in rows:
        reasons = [ending] if ending in UNANSWERED_ENDINGS else []
        if feedback == -1:
            reasons.append("down")
        if needs_help:
            reasons.append("needs help")
        out.append(Unanswered(question, tuple(reasons), created_at))
    return out
