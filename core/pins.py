"""Discord messages as documents, and keeping a channel's pins and the knowledge base in step.

Why a diff rather than events: CHANNEL_PINS_UPDATE carries no message id (only "something in
this channel changed"), so the bot re-reads the channel's pins and `sync_channel` compares them
with the pin documents stored for that channel: new or edited pins are ingested (unchanged
text is a no-op by content hash), pins that are gone are removed. No `discord` import here:
the bot turns its messages into `DiscordMessage` values. Every call is scoped to one guild.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from core.errors import NotFound
from core.rag.ingest import Ingestor
from core.rag.store import DocumentRepo
from core.rag.types import DocumentInfo, IngestOutcome

__all__ = ["DiscordMessage", "PinSyncReport", "forget_message", "ingest_message", "jump_url",
           "pinned_documents", "refresh_message", "sync_channel"]

log = logging.getLogger(__name__)

Origin = Literal["pin", "message"]


def jump_url(guild_id: int, channel_id: int, message_id: int) -> str:
    """The message's permanent link; it is also the document's uri."""
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


@dataclass(frozen=True)
class DiscordMessage:
    guild_id: int
    channel_id: int
    message_id: int
    channel_name: str
    author: str
    text: str

    @property
    def jump_url(self) -> str:
        return jump_url(self.guild_id, self.channel_id, self.message_id)


@dataclass
class PinSyncReport:
    """What a sync did; `errors` are (jump url, reason)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0  # pins without text (an image alone)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def count(self, outcome: IngestOutcome) -> None:
        if outcome.status == "added":
            self.added += 1
        elif outcome.status == "replaced":
            self.updated += 1
        elif outcome.status == "unchanged":
            self.unchanged += 1
        elif outcome.error == "empty message":
            self.skipped += 1
        else:
            self.errors.append((outcome.uri, outcome.error or "error"))


async def ingest_message(ingestor: Ingestor, msg: DiscordMessage, origin: Origin) -> IngestOutcome:
    """One message as a document (uri = jump URL); `origin` says whether a pin put it there."""
    return await ingestor.ingest_message(
        msg.guild_id, msg.text, jump_url=msg.jump_url, author=msg.author,
        channel=msg.channel_name,
        extra={"channel_id": str(msg.channel_id), "message_id": str(msg.message_id),
               "origin": origin},
    )


async def pinned_documents(
    ingestor: Ingestor, guild_id: int, channel_id: int
) -> list[DocumentInfo]:
    """The documents that pins of this channel put in the guild's knowledge base."""
    docs = await ingestor.list_documents(guild_id)
    return [d for d in docs if d.source == "discord" and d.metadata.get("origin") == "pin"
            and d.metadata.get("channel_id") == str(channel_id)]


async def sync_channel(
    ingestor: Ingestor, guild_id: int, channel_id: int, pinned: Sequence[DiscordMessage],
    progress: Callable[[int, int], Awaitable[None]] | None = None,
) -> PinSyncReport:
    """Make the channel's pin documents equal to `pinned` (the channel's current pins)."""
    report = PinSyncReport()
    for i, msg in enumerate(pinned, start=1):
        if msg.guild_id != guild_id or msg.channel_id != channel_id:
            raise ValueError("a pin from another guild or channel")  # a caller bug, never data
        report.count(await ingest_message(ingestor, msg, "pin"))
        if progress is not None:
            await progress(i, len(pinned))
    current = {m.jump_url for m in pinned}
    for doc in await pinned_documents(ingestor, guild_id, channel_id):
        if doc.uri not in current and await _remove(ingestor, guild_id, doc.uri):
            report.removed += 1
    log.info("pins of channel %s in guild %s: %s", channel_id, guild_id, report)
    return report


async def refresh_message(ingestor: Ingestor, msg: DiscordMessage) -> IngestOutcome | None:
    """Re-ingest an edited message if it is a document (keeping its origin); else None."""
    async with ingestor.pool.connection() as conn:
        doc = await DocumentRepo(conn).get_by_uri(msg.guild_id, msg.jump_url)
    if doc is None:
        return None
    if not msg.text.strip():  # edited down to nothing: nothing left to answer from
        await _remove(ingestor, msg.guild_id, doc.uri)
        return None
    return await ingest_message(ingestor, msg, doc.metadata.get("origin", "message"))


async def forget_message(ingestor: Ingestor, guild_id: int, channel_id: int,
                         message_id: int) -> bool:
    """Remove a deleted message's document, if it was one."""
    return await _remove(ingestor, guild_id, jump_url(guild_id, channel_id, message_id))


async def _remove(ingestor: Ingestor, guild_id: int, uri: str) -> bool:
    try:
        await ingestor.remove(guild_id, uri)
    except NotFound:
        return False  # already gone (a racing sync, or never ingested)
    return True
