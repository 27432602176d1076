"""A moderator's review of 👍 answers: the step between a rating and a tuning pair.

An answer of a tunable command (`TUNABLE_COMMANDS`: /ask, /explain) that its asker rated 👍 is
*pending* until a moderator approves or rejects it (`/tune review`, `guru tune approve|reject`).
Approving sets `interactions.approved`, which is all `core.tuning.data.approved_pairs` reads;
rejecting leaves it false. Both set `reviewed_at`/`reviewed_by` (migration 0006), so a decided
answer never comes up again, and both write an audit_log row (`tune.approve`, `tune.reject`).

Everything takes `guild_id`: the id of another guild's answer is refused exactly like an id
that does not exist (NotFound), so one server can neither see nor decide another's answers.
Ids are the `interactions.id` of the row (what `guru tune review` lists), not Discord ids.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import dict_row

from core.db.audit import record_action
from core.db.pool import Pool
from core.errors import InvalidInput, NotFound
from core.interactions import TUNABLE_COMMANDS

__all__ = ["Decision", "ReviewCounts", "ReviewItem", "ReviewRepo", "MAX_IDS"]

log = logging.getLogger(__name__)

MAX_IDS = 500  # one CLI call; more is a script's job, in batches

# A 👍 answer that could become a pair (the same conditions as approved_pairs, less approval).
_RATED = """guild_id = %(guild_id)s AND feedback = 1 AND answer <> ''
             AND command = ANY(%(commands)s)"""
_PENDING = "NOT approved AND reviewed_at IS NULL"
_ITEM_COLUMNS = "id, discord_id, channel_id, user_id, command, question, answer, created_at"
_LIST = f"""
SELECT {_ITEM_COLUMNS} FROM interactions
WHERE {_RATED} AND {_PENDING} AND id > %(after)s
ORDER BY id LIMIT %(limit)s
"""
_COUNTS = f"""
SELECT count(*) FILTER (WHERE approved),
       count(*) FILTER (WHERE {_PENDING}),
       count(*) FILTER (WHERE NOT approved AND reviewed_at IS NOT NULL)
FROM interactions WHERE {_RATED}
"""
_LOCK = f"""
SELECT id, approved, reviewed_at IS NOT NULL AS reviewed FROM interactions
WHERE {_RATED} AND id = ANY(%(ids)s)
ORDER BY id FOR UPDATE
"""
_DECIDE = """
UPDATE interactions SET approved = %(approve)s, reviewed_by = %(actor_id)s, reviewed_at = now()
WHERE guild_id = %(guild_id)s AND id = ANY(%(ids)s)
"""


@dataclass(frozen=True)
class ReviewItem:
    """A 👍 answer waiting for a moderator."""

    id: int
    discord_id: int
    channel_id: int | None
    user_id: int
    command: str
    question: str
    answer: str
    created_at: datetime


@dataclass(frozen=True)
class ReviewCounts:
    """A guild's 👍 answers of tunable commands, by review state."""

    approved: int
    pending: int
    rejected: int


@dataclass(frozen=True)
class Decision:
    """What a decision did to one answer: `before` is "pending", "approved" or "rejected"."""

    id: int
    approved: bool
    before: str

    @property
    def changed(self) -> bool:
        return self.before != ("approved" if self.approved else "rejected")


class ReviewRepo:
    """The review queue of each guild, in `interactions`."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def _params(self, guild_id: int, **more: object) -> dict[str, object]:
        return {"guild_id": guild_id, "commands": list(TUNABLE_COMMANDS), **more}

    async def pending(self, guild_id: int, *, after: int = 0, limit: int = 20) -> list[ReviewItem]:
        """The guild's answers waiting for review, oldest first, those with id > `after`."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_LIST, self._params(guild_id, after=after, limit=limit))
            return [ReviewItem(**row) for row in await cur.fetchall()]

    async def next_pending(self, guild_id: int, *, after: int = 0) -> ReviewItem | None:
        """The first pending answer after id `after` (Skip moves `after` past an answer)."""
        found = await self.pending(guild_id, after=after, limit=1)
        return found[0] if found else None

    async def counts(self, guild_id: int) -> ReviewCounts:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_COUNTS, self._params(guild_id))
            approved, pending, rejected = await cur.fetchone()  # type: ignore[misc]
        return ReviewCounts(approved, pending, rejected)

    async def decide(
        self,
        guild_id: int,
        ids: Sequence[int],
        approve: bool,
        actor_id: int | None = None,
        *,
        pending_only: bool = False,
    ) -> list[Decision]:
        """Approve (or reject) the guild's 👍 answers `ids`, all or none.

        NotFound names every id that is not a 👍 /ask or /explain answer of this guild (another
        guild's included), and nothing changes. An answer decided already is changed to the new
        decision, unless `pending_only` (a review button: someone else decided first), when it
        is left as it is; `Decision.changed` tells which. Each change is audited."""
        wanted = sorted(set(ids))
        if not wanted:
            raise InvalidInput("Name at least one answer id.")
        if len(wanted) > MAX_IDS:
            raise InvalidInput(f"{len(wanted)} ids at once; the limit is {MAX_IDS}.")
        action = "tune.approve" if approve else "tune.reject"
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_LOCK, self._params(guild_id, ids=wanted))
            rows = await cur.fetchall()
            missing = sorted(set(wanted) - {r[0] for r in rows})
            if missing:
                raise NotFound(_not_found(missing))
            decisions = []
            for i, was_approved, reviewed in rows:
                before = _state(was_approved, reviewed)
                keep = pending_only and before != "pending"  # someone else decided first
                decisions.append(Decision(i, was_approved if keep else approve, before))
            change = [d.id for d in decisions if d.changed]
            if change:
                await conn.execute(
                    _DECIDE,
                    {"guild_id": guild_id, "ids": change, "approve": approve, "actor_id": actor_id},
                )
                for d in decisions:
                    if d.id in change:
                        await record_action(
                            conn,
                            guild_id,
                            actor_id,
                            action,
                            {"interaction": d.id, "before": d.before},
                        )
        log.info("guild %d: %s %s by %s", guild_id, action, change or "nothing new", actor_id)
        return decisions


def _state(approved: bool, reviewed: bool) -> str:
    return "approved" if approved else "rejected" if reviewed else "pending"


def _not_found(ids: list[int]) -> str:
    shown = ", ".join(f"#{i}" for i in ids[:10]) + (
        f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    )
    noun = "answer" if len(ids) == 1 else "answers"
    return (
        f"This server has no 👍 {noun} {shown} to review; only answers of "
        f"{' and '.join('/' + c for c in TUNABLE_COMMANDS)} that got a 👍 can be "
        "approved or rejected. Nothing was changed."
    )
