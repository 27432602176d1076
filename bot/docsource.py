"""Discord things that become documents: messages (pins, links), their files, uploaded files.

The adapter half of `core.pins`: it reads Discord objects and hands plain values to core.
Message links are only followed within the guild the command came from (guild isolation: a
link to another server's message is refused, never fetched). A message's files in the formats
`/docs add` takes are handed over as `MessageFile`s (downloaded only if core asks); other
attachments (images, archives) are not documents and are left out. Every file is parsed by
`core.rag.isolated` in a child process with memory and time limits: any member can pin a
file, so a parser bug or a decompression bomb must cost that child, not the bot.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import discord

from bot.errors import Refused
from core.errors import InvalidInput
from core.pins import DiscordMessage, MessageFile
from core.rag.isolated import parse_untrusted
from core.rag.limits import IngestLimits
from core.rag.loaders import MAX_FILE_BYTES, SUPPORTED
from core.rag.types import ParsedDocument

__all__ = [
    "MessageRef",
    "attachment_document",
    "document_message",
    "fetch_message",
    "parse_message_refs",
    "upload_document",
]

log = logging.getLogger(__name__)

_LINK = re.compile(r"https?://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/(\d+)/(\d+)/(\d+)")
_BARE_ID = re.compile(r"(?<![\d/])(\d{15,21})(?![\d/])")
MAX_REFS = 25


@dataclass(frozen=True)
class MessageRef:
    channel_id: int
    message_id: int


def parse_message_refs(text: str, guild_id: int, default_channel_id: int) -> list[MessageRef]:
    """Message links (this guild only) and bare message ids (in `default_channel_id`)."""
    refs: list[MessageRef] = []
    for match in _LINK.finditer(text):
        if int(match[1]) != guild_id:
            raise Refused(
                "That link points to a message in another server; "
                "only this server's messages can be added here."
            )
        refs.append(MessageRef(int(match[2]), int(match[3])))
    for match in _BARE_ID.finditer(_LINK.sub(" ", text)):
        refs.append(MessageRef(default_channel_id, int(match[1])))
    if not refs and text.strip():
        raise Refused("Give message links (Copy Message Link) or message ids, separated by spaces.")
    if len(refs) > MAX_REFS:
        raise Refused(f"At most {MAX_REFS} messages at a time, please.")
    return list(dict.fromkeys(refs))


def document_message(
    message: discord.Message, limits: IngestLimits | None = None
) -> DiscordMessage:
    """The value core ingests for a message: its text and its document files (not read yet)."""
    limits = limits or IngestLimits()
    assert message.guild is not None
    channel = getattr(message.channel, "name", None) or str(message.channel.id)
    files = []
    for attachment in message.attachments:
        if Path(attachment.filename).suffix.lower() in SUPPORTED:
            files.append(
                MessageFile(
                    attachment.id,
                    _safe_name(attachment.filename),
                    lambda a=attachment: attachment_document(a, limits),
                )
            )
        else:
            log.debug(
                "attachment %s of message %s is not a document type", attachment.id, message.id
            )
    return DiscordMessage(
        message.guild.id,
        message.channel.id,
        message.id,
        channel,
        message.author.display_name,
        message.content or "",
        tuple(files),
    )


async def fetch_message(
    guild: discord.Guild, ref: MessageRef, limits: IngestLimits | None = None
) -> DiscordMessage:
    """Fetch a message of this guild; Refused with a reason when it cannot be read."""
    channel = guild.get_channel_or_thread(ref.channel_id)
    if not isinstance(channel, discord.abc.Messageable):
        raise Refused(f"Channel {ref.channel_id} is not a text channel of this server.")
    try:
        message = await channel.fetch_message(ref.message_id)
    except discord.NotFound:
        raise Refused(f"Message {ref.message_id} was not found in <#{ref.channel_id}>.") from None
    except discord.Forbidden:
        raise Refused(
            f"I can't read <#{ref.channel_id}>; give me Read Message History there."
        ) from None
    return document_message(message, limits)


def _safe_name(filename: str) -> str:
    name = re.sub(r"[^\w.\- ]", "_", Path(filename).name).strip(" .") or "file"
    return name[:120]


async def attachment_document(
    attachment: discord.Attachment, limits: IngestLimits | None = None
) -> ParsedDocument:
    """Download a file and parse it in a limited child; InvalidInput says why it cannot be used."""
    limits = limits or IngestLimits()
    name = _safe_name(attachment.filename)
    if Path(name).suffix.lower() not in SUPPORTED:
        raise InvalidInput(f"{name}: unsupported file type; use one of {' '.join(SUPPORTED)}.")
    if attachment.size > MAX_FILE_BYTES:
        raise InvalidInput(f"{name} is larger than {MAX_FILE_BYTES // 2**20} MiB.")
    try:
        data = await attachment.read()
    except discord.HTTPException as exc:
        raise InvalidInput(
            f"{name} could not be downloaded (HTTP {exc.status}); try again later."
        ) from None
    with tempfile.TemporaryDirectory(prefix="guru-upload-") as tmp:
        path = Path(tmp) / name
        await asyncio.to_thread(path.write_bytes, data)
        parsed = await parse_untrusted(str(path), limits, MAX_FILE_BYTES)
    return ParsedDocument(
        name, parsed.title, parsed.sections, "file", {"filename": name, "bytes": len(data)}
    )


async def upload_document(
    attachment: discord.Attachment, limits: IngestLimits | None = None
) -> ParsedDocument:
    """An uploaded file as a document; uri `upload:<filename>`, so uploading a new version of
    the same file replaces the old one."""
    doc = await attachment_document(attachment, limits)
    return ParsedDocument(f"upload:{doc.uri}", doc.title, doc.sections, doc.source, doc.metadata)
