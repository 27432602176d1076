"""Help channels and the threads Guru answers in (migration 0014), per guild.

A help channel (a text channel or a forum) has every new post answered in a thread; its
helpers' role is pinged when the asker presses "Still need help?". `GuruThreads` remembers each
thread Guru answers in — a /ask answer's thread or a help post's — so a message there is a
follow-up of that thread's conversation without a mention, and so Guru stays out of a help
thread once a helper replied. Every query takes `guild_id`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.db.audit import record_action
from core.db.pool import Pool
from core.guilds import record_guild

__all__ = ["GuruThread", "GuruThreads", "HelpChannel", "HelpChannels", "QuestionState"]

log = logging.getLogger(__name__)

ThreadKind = Literal["ask", "help"]

_SET_HELP = """
INSERT INTO help_channels (guild_id, channel_id, helper_role_id, say_when_unanswered)
VALUES (%(guild_id)s, %(channel_id)s, %(helper_role_id)s, %(say_when_unanswered)s)
ON CONFLICT (guild_id, channel_id) DO UPDATE
SET helper_role_id = EXCLUDED.helper_role_id, say_when_unanswered = EXCLUDED.say_when_unanswered,
    updated_at = now()
"""
_CLEAR_HELP = (
    "DELETE FROM help_channels WHERE guild_id = %(guild_id)s AND channel_id = %(channel_id)s"
)
_HELP_COLUMNS = "channel_id, helper_role_id, say_when_unanswered"
_ADD_THREAD = """
INSERT INTO guru_threads (guild_id, thread_id, kind, parent_id, asker_id, question_id)
VALUES (%(guild_id)s, %(thread_id)s, %(kind)s, %(parent_id)s, %(asker_id)s, %(question_id)s)
ON CONFLICT (guild_id, thread_id) DO NOTHING
"""
_GET_THREAD = """
SELECT thread_id, kind, parent_id, asker_id, question_id, helper_replied_at FROM guru_threads
WHERE guild_id = %(guild_id)s AND thread_id = %(thread_id)s
"""
_HELPER_REPLIED = """
UPDATE guru_threads SET helper_replied_at = coalesce(helper_replied_at, now())
WHERE guild_id = %(guild_id)s AND thread_id = %(thread_id)s
"""
# The thread's latest answered turn: a follow-up asked in the thread, else its first question
# (a /ask or a text channel's post is asked outside the thread it opens).
_LATEST_TURN = """
SELECT discord_id FROM interactions
WHERE guild_id = %(guild_id)s AND command = 'ask' AND answer <> ''
  AND (channel_id = %(thread_id)s OR discord_id = %(question_id)s)
ORDER BY (discord_id = %(question_id)s), created_at DESC
LIMIT 1
"""
_QUESTION = """
SELECT user_id, channel_id, needs_help_at FROM interactions
WHERE guild_id = %(guild_id)s AND discord_id = %(discord_id)s
"""


@dataclass(frozen=True)
class HelpChannel:
    """A channel or forum whose new posts Guru answers in a thread."""

    channel_id: int
    helper_role_id: int | None = None  # pinged by "Still need help?"
    say_when_unanswered: bool = False  # below the floor: say so (True) or post nothing


@dataclass(frozen=True)
class GuruThread:
    thread_id: int
    kind: ThreadKind
    parent_id: int
    asker_id: int
    question_id: int
    helper_replied_at: datetime | None = None


@dataclass(frozen=True)
class QuestionState:
    """Who asked a recorded question, where, and whether it was marked unanswered."""

    user_id: int
    channel_id: int | None
    needs_help_at: datetime | None


class HelpChannels:
    """`help_channels` rows; each change is audited in the same transaction."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def get(self, guild_id: int, channel_id: int | None) -> HelpChannel | None:
        if channel_id is None:
            return None
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_HELP_COLUMNS} FROM help_channels"
                " WHERE guild_id = %(guild_id)s AND channel_id = %(channel_id)s",
                {"guild_id": guild_id, "channel_id": channel_id},
            )
            row = await cur.fetchone()
        return HelpChannel(*row) if row is not None else None

    async def of_guild(self, guild_id: int) -> list[HelpChannel]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_HELP_COLUMNS} FROM help_channels WHERE guild_id = %(guild_id)s"
                " ORDER BY updated_at",
                {"guild_id": guild_id},
            )
            return [HelpChannel(*row) for row in await cur.fetchall()]

    async def set(
        self, guild_id: int, channel: HelpChannel, *, actor_id: int | None, guild_name: str = ""
    ) -> None:
        params = {"guild_id": guild_id, **channel.__dict__}
        detail = {**channel.__dict__}
        await self._write(
            guild_id, actor_id, guild_name, "settings.help_channel", detail, _SET_HELP, params
        )

    async def clear(
        self, guild_id: int, channel_id: int, *, actor_id: int | None, guild_name: str = ""
    ) -> bool:
        """Stop answering in `channel_id`; False if it was not a help channel."""
        params = {"guild_id": guild_id, "channel_id": channel_id}
        detail = {"channel_id": channel_id}
        return await self._write(
            guild_id,
            actor_id,
            guild_name,
            "settings.help_channel.clear",
            detail,
            _CLEAR_HELP,
            params,
        )

    async def _write(
        self,
        guild_id: int,
        actor_id: int | None,
        guild_name: str,
        action: str,
        detail: dict[str, object],
        query: str,
        params: dict[str, object],
    ) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            await record_guild(conn, guild_id, guild_name)
            cur = await conn.execute(query, params)
            changed = cur.rowcount > 0
            await record_action(conn, guild_id, actor_id, action, detail)
        log.info("guild %s: %s by %s", guild_id, action, actor_id)
        return changed


class GuruThreads:
    """The threads Guru answers in, and the questions asked there."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def add(self, guild_id: int, thread: GuruThread) -> None:
        params = {"guild_id": guild_id, **thread.__dict__}
        async with self.pool.connection() as conn:
            await conn.execute(_ADD_THREAD, params)

    async def get(self, guild_id: int, thread_id: int) -> GuruThread | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_GET_THREAD, {"guild_id": guild_id, "thread_id": thread_id})
            row = await cur.fetchone()
        return GuruThread(*row) if row is not None else None

    async def helper_replied(self, guild_id: int, thread_id: int) -> None:
        """A helper answered in the thread: Guru stays out of it from now on."""
        async with self.pool.connection() as conn:
            await conn.execute(_HELPER_REPLIED, {"guild_id": guild_id, "thread_id": thread_id})

    async def latest_turn(self, guild_id: int, thread: GuruThread) -> int | None:
        """The discord_id of the thread's latest answered question (what a message in the
        thread follows up), or None when nothing was answered there yet."""
        params = {
            "guild_id": guild_id,
            "thread_id": thread.thread_id,
            "question_id": thread.question_id,
        }
        async with self.pool.connection() as conn:
            cur = await conn.execute(_LATEST_TURN, params)
            row = await cur.fetchone()
        return row[0] if row is not None else None

    async def question(self, guild_id: int, discord_id: int) -> QuestionState | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_QUESTION, {"guild_id": guild_id, "discord_id": discord_id})
            row = await cur.fetchone()
        return QuestionState(*row) if row is not None else None
