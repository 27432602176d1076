"""Discord messages as documents, and keeping a channel's pins and the knowledge base in step.

Why a diff rather than events: CHANNEL_PINS_UPDATE carries no message id (only "something in
this channel changed"), so the bot re-reads the channel's pins and `sync_channel` compares them
with the pin documents stored for that channel: new or edited pins are ingested (unchanged
text is a no-op by content hash), pins that are gone are removed. No `discord` import here:
the bot turns its messages into `DiscordMessage` values. Every call is scoped to one guild.

A pin's files (the formats `/docs add` takes) become documents of their own, linked to the
message: uri `<jump url>#<file name>`, so a citation opens the message, and unpinning or
deleting it removes them with it. Discord never changes an attachment's bytes, so a file
already stored under the same attachment id is not downloaded again. A file that cannot be
read is skipped with its reason (logged and in the report); the message text still goes in.

A message a moderator added with `/docs add messages` was vetted as it was: when its author
edits it, the stored text stays and the document is flagged (`EDITED_KEY` in its metadata,
shown by `/docs list`) until a moderator adds it again. Pins follow edits: whoever pins a
message keeps vetting it (and can unpin it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from core.errors import GuruError, NotFound
from core.rag.ingest import Ingestor
from core.rag.store import DocumentRepo
from core.rag.types import DocumentInfo, IngestOutcome, ParsedDocument

__all__ = [
    "EDITED_KEY",
    "DiscordMessage",
    "MessageFile",
    "PinSyncReport",
    "attachment_uri",
    "forget_message",
    "ingest_message",
    "jump_url",
    "pinned_documents",
    "refresh_message",
    "sync_channel",
]

log = logging.getLogger(__name__)

Origin = Literal["pin", "message"]
EDITED_KEY = "edited_since_added"  # metadata: the author changed an added message since


def jump_url(guild_id: int, channel_id: int, message_id: int) -> str:
    """The message's permanent link; it is also the document's uri."""
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def attachment_uri(message_url: str, filename: str) -> str:
    """A message's file as a document: the message's link, the file name as its fragment."""
    return f"{message_url}#{quote(filename)}"


@dataclass(frozen=True)
class MessageFile:
    """A file attached to a message; `load` downloads and parses it (the bot provides it),
    raising a GuruError whose message says why it cannot be read."""

    attachment_id: int
    filename: str
    load: Callable[[], Awaitable[ParsedDocument]] = field(repr=False, compare=False)


@dataclass(frozen=True)
class DiscordMessage:
    guild_id: int
    channel_id: int
    message_id: int
    channel_name: str
    author: str
    text: str
    files: tuple[MessageFile, ...] = ()

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
    """One message as a document (uri = jump URL); `origin` says whether a pin put it there.
    Adding a message again takes its current text and clears its edit flag."""
    outcome = await ingestor.ingest_message(
        msg.guild_id,
        msg.text,
        jump_url=msg.jump_url,
        author=msg.author,
        channel=msg.channel_name,
        extra={
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.message_id),
            "origin": origin,
        },
    )
    if outcome.status == "unchanged" and outcome.document_id is not None:
        async with ingestor.pool.connection() as conn:  # the edit was undone: vetted again
            await DocumentRepo(conn).set_metadata_key(
                msg.guild_id, outcome.document_id, EDITED_KEY, None
            )
    return outcome


async def ingest_file(
    ingestor: Ingestor,
    msg: DiscordMessage,
    file: MessageFile,
    stored: DocumentInfo | None,
    origin: Origin,
) -> IngestOutcome:
    """One attached file as a document linked to its message; `stored` is its current row."""
    uri = attachment_uri(msg.jump_url, file.filename)
    if stored is not None and stored.metadata.get("attachment_id") == str(file.attachment_id):
        return IngestOutcome(uri, "unchanged", stored.id, stored.chunk_count, stored.title)
    try:
        parsed = await file.load()
    except GuruError as exc:  # a bad file is skipped whole: nothing of it is written
        log.warning(
            "file %s of message %s in guild %s skipped: %s",
            file.attachment_id,
            msg.message_id,
            msg.guild_id,
            exc.user_message,
        )
        return IngestOutcome(uri, "error", error=exc.user_message)
    doc = ParsedDocument(
        uri,
        parsed.title,
        parsed.sections,
        "discord",
        {
            "author": msg.author,
            "channel": msg.channel_name,
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.message_id),
            "origin": origin,
            "attachment_id": str(file.attachment_id),
            "filename": file.filename,
        },
    )
    return await ingestor.ingest_document(msg.guild_id, doc)


async def pinned_documents(
    ingestor: Ingestor, guild_id: int, channel_id: int
) -> list[DocumentInfo]:
    """The documents that pins of this channel put in the guild's knowledge base."""
    docs = await ingestor.list_documents(guild_id)
    return [
        d
        for d in docs
        if d.source == "discord"
        and d.metadata.get("origin") == "pin"
        and d.metadata.get("channel_id") == str(channel_id)
    ]


async def sync_channel(
    ingestor: Ingestor,
    guild_id: int,
    channel_id: int,
    pinned: Sequence[DiscordMessage],
    progress: Callable[[int, int], Awaitable[None]] | None = None,
) -> PinSyncReport:
    """Make the channel's pin documents equal to `pinned` (the channel's current pins)."""
    report = PinSyncReport()
    stored = {d.uri: d for d in await pinned_documents(ingestor, guild_id, channel_id)}
    current: set[str] = set()
    for i, msg in enumerate(pinned, start=1):
        if msg.guild_id != guild_id or msg.channel_id != channel_id:
            raise ValueError("a pin from another guild or channel")  # a caller bug, never data
        report.count(await ingest_message(ingestor, msg, "pin"))
        current.add(msg.jump_url)
        seen: set[str] = set()
        for file in msg.files:
            uri = attachment_uri(msg.jump_url, file.filename)
            if uri in seen:  # two files of one name would overwrite each other on every sync
                log.warning(
                    "file %s of message %s skipped: its name is taken by another file",
                    file.attachment_id,
                    msg.message_id,
                )
                report.errors.append((uri, "another file of this message has the same name"))
                continue
            seen.add(uri)
            outcome = await ingest_file(ingestor, msg, file, stored.get(uri), "pin")
            report.count(outcome)
            if outcome.status != "error":  # a file that failed leaves no stale copy behind
                current.add(uri)
        if progress is not None:
            await progress(i, len(pinned))
    for uri in stored.keys() - current:
        if await _remove(ingestor, guild_id, uri):
            report.removed += 1
    log.info("pins of channel %s in guild %s: %s", channel_id, guild_id, report)
    return report


async def refresh_message(ingestor: Ingestor, msg: DiscordMessage) -> IngestOutcome | None:
    """Follow an edited message that is a document: a pin is re-ingested; an added message
    keeps its vetted text and is flagged as edited. None when nothing was re-ingested."""
    async with ingestor.pool.connection() as conn:
        doc = await DocumentRepo(conn).get_by_uri(msg.guild_id, msg.jump_url)
        if doc is not None and doc.metadata.get("origin", "message") == "message":
            await DocumentRepo(conn).set_metadata_key(msg.guild_id, doc.id, EDITED_KEY, "true")
            log.info(
                "message %s in guild %s was edited after it was added; kept as added",
                msg.message_id,
                msg.guild_id,
            )
            return None
    if doc is None:
        return None
    if not msg.text.strip():  # edited down to nothing: nothing left to answer from
        await _remove(ingestor, msg.guild_id, doc.uri)
        return None
    return await ingest_message(ingestor, msg, doc.metadata.get("origin", "message"))


async def forget_message(
    ingestor: Ingestor, guild_id: int, channel_id: int, message_id: int
) -> bool:
    """Remove a deleted message's document and its files' documents, if it had any."""
    async with ingestor.pool.connection() as conn:
        docs = await DocumentRepo(conn).list_family(
            guild_id, jump_url(guild_id, channel_id, message_id)
        )
    removed = [await _remove(ingestor, guild_id, doc.uri) for doc in docs]
    return any(removed)


async def _remove(ingestor: Ingestor, guild_id: int, uri: str) -> bool:
    try:
        await ingestor.remove(guild_id, uri)
    except NotFound:
        return False  # already gone (a racing sync, or never ingested)
    return True
