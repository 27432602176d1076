"""A Discord channel's resolved help threads as documents: which threads count as solved,
which message is the accepted answer, and the document a solved thread becomes.

The bot reads Discord (bot/threadsource.py) and hands plain `ThreadFacts` here; no `discord`
import. A thread is solved when a moderator marked an answer ("Mark as answer", stored in
`thread_answers`), when a helper reacted ✅ to a message in it, or (forums) when the post
carries the solved tag. The accepted answer is, in that order: the marked message, the last
message a helper ✅'d, or — solved by tag alone — the last message by someone else than the
asker. The document is the question (the first message) and that answer, its uri the
thread's link, and `channel_id` the thread's parent: the 0007 access rules then show it only
to members who can view the channel it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from core.db.pool import Pool
from core.errors import InvalidInput
from core.pins import jump_url
from core.rag.types import ParsedDocument, Section
from core.sources.types import PageState, Parsed

__all__ = [
    "SOLVED_TAGS",
    "ResolvedThread",
    "ThreadFacts",
    "ThreadMarks",
    "ThreadMessage",
    "channel_location",
    "parse_since",
    "resolve",
    "solved_tags",
    "thread_document",
    "thread_page",
    "thread_uri",
]

# Forum tags that mean "solved" when the source names none (compared case-insensitively).
SOLVED_TAGS = frozenset({"solved", "resolved", "answered", "✅"})
Solved = Literal["marked", "reaction", "tag"]


_AGO = re.compile(r"^\s*(\d+)\s*([dw])\s*$", re.IGNORECASE)


def parse_since(text: str | None, now: datetime | None = None) -> str | None:
    """ "2026-01-31", "90d" or "12w" → the ISO date threads must be created on or after."""
    if text is None or not text.strip():
        return None
    now = now or datetime.now(UTC)
    if match := _AGO.match(text):
        days = int(match[1]) * (7 if match[2].lower() == "w" else 1)
        return (now - timedelta(days=days)).date().isoformat()
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{text[:20]!r} is not a date; use e.g. 2026-01-31, 90d or 12w."
        ) from None
    if day > now.date():
        raise InvalidInput("`since` is in the future; give a past date such as 2026-01-31.")
    return day.isoformat()


def channel_location(guild_id: int, channel_id: int) -> str:
    """A channel source's location: the channel's link (unique per guild and readable)."""
    return f"https://discord.com/channels/{guild_id}/{channel_id}"


def thread_uri(guild_id: int, thread_id: int) -> str:
    """A resolved thread's document uri: the thread's link (a citation opens the thread)."""
    return f"https://discord.com/channels/{guild_id}/{thread_id}"


@dataclass(frozen=True)
class ThreadMessage:
    message_id: int
    author_id: int
    author: str  # display name
    text: str
    helper_checked: bool = False  # a member with the helper role reacted ✅


@dataclass(frozen=True)
class ThreadFacts:
    """What the bot read of one thread: its first messages in order (the question first)."""

    guild_id: int
    parent_id: int
    parent_name: str
    thread_id: int
    title: str
    messages: tuple[ThreadMessage, ...]
    tags: tuple[str, ...] = ()  # a forum post's applied tags, by name
    marked_answer_id: int | None = None  # "Mark as answer"


@dataclass(frozen=True)
class ResolvedThread:
    facts: ThreadFacts
    question: ThreadMessage
    answer: ThreadMessage
    solved_by: Solved


def resolve(facts: ThreadFacts, solved_tags: frozenset[str] = SOLVED_TAGS) -> ResolvedThread | None:
    """The thread's question and accepted answer, or None when it is not solved (or has no
    question text to show)."""
    if not facts.messages or not facts.messages[0].text.strip():
        return None
    question, replies = facts.messages[0], facts.messages[1:]
    wanted = {t.casefold() for t in solved_tags}
    by_id = {m.message_id: m for m in replies}
    if facts.marked_answer_id in by_id:
        return ResolvedThread(facts, question, by_id[facts.marked_answer_id], "marked")
    checked = [m for m in replies if m.helper_checked and m.text.strip()]
    if checked:
        return ResolvedThread(facts, question, checked[-1], "reaction")
    if any(t.casefold() in wanted for t in facts.tags):
        others = [m for m in replies if m.author_id != question.author_id and m.text.strip()]
        if others:
            return ResolvedThread(facts, question, others[-1], "tag")
    return None


def thread_document(thread: ResolvedThread) -> ParsedDocument:
    """Question + accepted answer, with links to both; source 'discord', so access follows
    the parent channel (metadata `channel_id`)."""
    facts, q, a = thread.facts, thread.question, thread.answer
    answer_url = jump_url(facts.guild_id, facts.thread_id, a.message_id)
    return ParsedDocument(
        thread_uri(facts.guild_id, facts.thread_id),
        facts.title or q.text.strip().splitlines()[0][:100],
        (
            Section("Question", f"{q.author} asked in #{facts.parent_name}:\n{q.text.strip()}"),
            Section("Accepted answer", f"{a.author} answered:\n{a.text.strip()}"),
        ),
        "discord",
        {
            "channel_id": str(facts.parent_id),
            "thread_id": str(facts.thread_id),
            "channel": facts.parent_name,
            "question_id": str(q.message_id),
            "answer_id": str(a.message_id),
            "answer_url": answer_url,
            "solved_by": thread.solved_by,
            "origin": "thread",
        },
    )


def solved_tags(options: dict[str, object]) -> frozenset[str]:
    """The forum tag names that mean solved for a source (its `solved_tag`, else the usual)."""
    named = str(options.get("solved_tag") or "").strip()
    return frozenset({named}) if named else SOLVED_TAGS


def thread_page(facts: ThreadFacts, tags: frozenset[str] = SOLVED_TAGS) -> Parsed | None:
    """The thread as a source page for the sync, or None when it is not (or no longer)
    solved: the sync then removes a document it made of it before."""
    resolved = resolve(facts, tags)
    if resolved is None:
        return None
    doc = thread_document(resolved)
    return Parsed(doc.uri, doc, PageState(doc.uri, etag=str(resolved.answer.message_id)))


class ThreadMarks:
    """`thread_answers`: the answers moderators marked by hand, per guild."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def mark(self, guild_id: int, thread_id: int, message_id: int, by: int) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO thread_answers (guild_id, thread_id, message_id, marked_by)"
                " VALUES (%(g)s, %(t)s, %(m)s, %(by)s) ON CONFLICT (guild_id, thread_id)"
                " DO UPDATE SET message_id = EXCLUDED.message_id,"
                " marked_by = EXCLUDED.marked_by, marked_at = now()",
                {"g": guild_id, "t": thread_id, "m": message_id, "by": by},
            )

    async def unmark(self, guild_id: int, thread_id: int) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM thread_answers WHERE guild_id = %(g)s AND thread_id = %(t)s",
                {"g": guild_id, "t": thread_id},
            )
            return cur.rowcount == 1

    async def marked(self, guild_id: int, thread_ids: list[int]) -> dict[int, int]:
        """thread id → marked answer's message id, for the given threads of the guild."""
        if not thread_ids:
            return {}
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT thread_id, message_id FROM thread_answers"
                " WHERE guild_id = %(g)s AND thread_id = ANY(%(t)s)",
                {"g": guild_id, "t": thread_ids},
            )
            return {int(r[0]): int(r[1]) for r in await cur.fetchall()}
