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
                          sources, finish_reason, latency_ms, prompt)
VALUES (%(guild_id)s, %(discord_id)s, %(channel_id)s, %(user_id)s, %(command)s, %(question)s,
        %(answer)s, %(sources)s, %(finish_reason)s, %(latency_ms)s, %(prompt)s)
ON CONFLICT (guild_id, discord_id) DO NOTHING
"""
_FINISH = """
UPDATE interactions SET answer = %(answer)s, finish_reason = %(finish_reason)s,
                        latency_ms = %(latency_ms)s, model_answer = %(model_answer)s
WHERE guild_id = %(guild_id)s AND discord_id = %(discord_id)s
"""
_FEEDBACK = """
UPDATE interactions SET feedback = %(value)s
WHERE guild_id = %(guild_id)s AND discord_id = %(discord_id)s AND user_id = %(user_id)s
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
    ) -> None:
        """Complete a recorded question with the answer shown and how it ended; `model_answer`
        is the model's own checked text when it answered (what tuning learns)."""
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

    async def finish(self, shown: str, ending: str, model_answer: str | None = None) -> None:
        elapsed_ms = int((time.monotonic() - self.started) * 1000)
        await self.repo.finish(
            self.guild_id, self.discord_id, shown, ending, elapsed_ms, model_answer
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
        )
    )
    return RecordedQuestion(repo, guild_id, asker.discord_id, started or time.monotonic())
