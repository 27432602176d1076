"""The answers Guru gave (`interactions` table) and the asker's feedback on them.

Kept per guild like everything else: writes and feedback updates take `guild_id`, so a button
click from one server can never rate another server's answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from core.db.pool import Pool

__all__ = [
    "AnswerRecord",
    "Asker",
    "InteractionRepo",
    "RecordedQuestion",
    "TUNABLE_COMMANDS",
    "Turn",
    "record_question",
]

log = logging.getLogger(__name__)

# Commands whose rated answers may become tuning pairs (core.tuning.data.approved_pairs).
# /ask and /explain answers are the chat model's own text for a question, which is what a
# guild's adapter learns. /calc is not: its answer is a program written by another model
# (GURU_CALC_MODEL) under the PAL prompt, shown with its sandbox result; training the chat
# model on "problem -> rendered program + result" would teach it to fake code runs.
TUNABLE_COMMANDS = ("ask", "explain")

_UPSERT_GUILD = "INSERT INTO guilds (id) VALUES (%(guild_id)s) ON CONFLICT DO NOTHING"
_INSERT = """
INSERT INTO interactions (guild_id, discord_id, channel_id, user_id, command, question, answer,
                          sources, finish_reason, latency_ms, prompt, parent_discord_id)
VALUES (%(guild_id)s, %(discord_id)s, %(channel_id)s, %(user_id)s, %(command)s, %(question)s,
        %(answer)s, %(sources)s, %(finish_reason)s, %(latency_ms)s, %(prompt)s,
        %(parent_discord_id)s)
ON CONFLICT (guild_id, discord_id) DO NOTHING
"""
_FINISH = """
UPDATE interactions SET answer = %(answer)s, finish_reason = %(finish_reason)s,
                        latency_ms = %(latency_ms)s, model_answer = %(model_answer)s,
                        reply_message_id = coalesce(%(reply_message_id)s, reply_message_id)
WHERE guild_id = %(guild_id)s AND discord_id = %(discord_id)s
"""
_FEEDBACK = """
UPDATE interactions SET feedback = %(value)s
WHERE guild_id = %(guild_id)s AND discord_id = %(discord_id)s AND user_id = %(user_id)s
"""
# A conversation's turns, newest first: the turn answered by message `message_id` (or the
# interaction `message_id` itself, for a /ask answer), then the turns it followed up.
_CONVERSATION = """
WITH RECURSIVE turns AS (
    SELECT discord_id, parent_discord_id, question, coalesce(model_answer, answer) AS answer,
           1 AS depth
    FROM interactions
    WHERE guild_id = %(guild_id)s
      AND (reply_message_id = %(message_id)s OR discord_id = %(interaction_id)s)
      AND command = 'ask' AND answer <> ''
    UNION ALL
    SELECT i.discord_id, i.parent_discord_id, i.question, coalesce(i.model_answer, i.answer),
           t.depth + 1
    FROM turns t JOIN interactions i
      ON i.guild_id = %(guild_id)s AND i.discord_id = t.parent_discord_id
    WHERE t.depth < %(turns)s AND i.command = 'ask' AND i.answer <> ''
)
SELECT discord_id, question, answer FROM turns ORDER BY depth DESC
"""
_GET = """
SELECT command, question, answer, feedback, finish_reason FROM interactions
WHERE guild_id = %(guild_id)s AND discord_id = %(discord_id)s
"""


@dataclass(frozen=True)
class Asker:
    """Who asked, where: the Discord interaction an answer belongs to."""

    discord_id: int
    user_id: int
    channel_id: int | None = None


@dataclass(frozen=True)
class AnswerRecord:
    guild_id: int
    discord_id: int
    user_id: int
    command: str
    question: str
    answer: str
    channel_id: int | None = None
    finish_reason: str | None = None
    latency_ms: int | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    # the messages the model was given ([{"role", "content"}]); None when it was not asked
    prompt: list[dict[str, str]] | None = None
    parent_discord_id: int | None = None  # the turn this one follows up (conversations)


@dataclass(frozen=True)
class Turn:
    """One earlier question and answer of a conversation."""

    discord_id: int
    question: str
    answer: str


class InteractionRepo:
    """Records answers and the asker's 👍/👎."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def record(self, rec: AnswerRecord) -> None:
        """Store an answer (or the question alone, answer "", when it starts; see `finish`)."""
        prompt = Jsonb(rec.prompt) if rec.prompt is not None else None
        params = {**rec.__dict__, "sources": Jsonb(rec.sources), "prompt": prompt}
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(_UPSERT_GUILD, {"guild_id": rec.guild_id})
            await conn.execute(_INSERT, params)

    async def finish(
        self,
        guild_id: int,
        discord_id: int,
        answer: str,
        finish_reason: str,
        latency_ms: int,
        model_answer: str | None = None,
        reply_message_id: int | None = None,
    ) -> None:
        """Complete a recorded question with the answer shown and how it ended; `model_answer`
        is the model's own checked text when it answered (what tuning learns), and
        `reply_message_id` the message that showed it, when it was a message (conversations)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                _FINISH,
                {
                    "guild_id": guild_id,
                    "discord_id": discord_id,
                    "answer": answer,
                    "finish_reason": finish_reason,
                    "latency_ms": latency_ms,
                    "model_answer": model_answer,
                    "reply_message_id": reply_message_id,
                },
            )

    async def set_feedback(self, guild_id: int, discord_id: int, user_id: int, value: int) -> bool:
        """Rate an answer (+1/-1) as its asker; False if there is no such answer of theirs."""
        if value not in (-1, 1):
            raise ValueError("feedback is +1 or -1")
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                _FEEDBACK,
                {
                    "guild_id": guild_id,
                    "discord_id": discord_id,
                    "user_id": user_id,
                    "value": value,
                },
            )
            return cur.rowcount == 1

    async def mark_needs_help(self, guild_id: int, discord_id: int) -> bool:
        """Mark an answer as not having helped ("Still need help?"); False if no such answer.
        The first mark's time is kept: pressing the button twice is one unanswered question."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE interactions SET needs_help_at = coalesce(needs_help_at, now())"
                " WHERE guild_id = %(guild_id)s AND discord_id = %(discord_id)s",
                {"guild_id": guild_id, "discord_id": discord_id},
            )
            return cur.rowcount == 1

    async def conversation(
        self,
        guild_id: int,
        *,
        message_id: int | None = None,
        interaction_id: int | None = None,
        turns: int = 3,
    ) -> list[Turn]:
        """The last `turns` turns of the conversation whose latest answer is Guru's message
        `message_id` (or the /ask interaction `interaction_id`), oldest first; [] if none."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                _CONVERSATION,
                {
                    "guild_id": guild_id,
                    "message_id": message_id,
                    "interaction_id": interaction_id,
                    "turns": turns,
                },
            )
            return [Turn(*row) for row in await cur.fetchall()]

    async def get(self, guild_id: int, discord_id: int) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_GET, {"guild_id": guild_id, "discord_id": discord_id})
            row = await cur.fetchone()
        if row is None:
            return None
        return dict(zip(("command", "question", "answer", "feedback", "finish_reason"), row))


@dataclass(frozen=True)
class RecordedQuestion:
    """A question stored when its answer started; `finish` adds the answer shown."""

    repo: InteractionRepo
    guild_id: int
    discord_id: int
    started: float  # time.monotonic(): the stored latency counts from here

    async def finish(
        self,
        shown: str,
        ending: str,
        model_answer: str | None = None,
        reply_message_id: int | None = None,
    ) -> None:
        elapsed_ms = int((time.monotonic() - self.started) * 1000)
        await self.repo.finish(
            self.guild_id,
            self.discord_id,
            shown,
            ending,
            elapsed_ms,
            model_answer,
            reply_message_id,
        )


async def record_question(
    pool: Pool,
    guild_id: int | None,
    asker: Asker | None,
    command: str,
    question: str,
    sources: Sequence[dict[str, Any]] = (),
    started: float | None = None,
    prompt: list[dict[str, str]] | None = None,
    parent_discord_id: int | None = None,
) -> RecordedQuestion | None:
    """Store the question before answering, so a 👍 on the final message always finds its row;
    None without an asker (the CLI) or outside a server (rows are per guild)."""
    if asker is None or guild_id is None:
        return None
    repo = InteractionRepo(pool)
    await repo.record(
        AnswerRecord(
            guild_id=guild_id,
            discord_id=asker.discord_id,
            user_id=asker.user_id,
            channel_id=asker.channel_id,
            command=command,
            question=question,
            answer="",
            sources=list(sources),
            prompt=prompt,
            parent_discord_id=parent_discord_id,
        )
    )
    return RecordedQuestion(repo, guild_id, asker.discord_id, started or time.monotonic())
