"""Rendering owns Discord's limits, so no cog has to think about them.

2000 characters per message, embed limits, code fences that survive a split, long output as a
file, mentions neutralised (belt and braces with `AllowedMentions.none()`: escaped text also
*looks* harmless when quoted), and a visible "(truncated)" wherever something was cut.
Links the model writes are shown as their URLs (`unmask_links`): a document can steer the
model into writing `[official login](https://evil.example)`, which Discord would render as
the words alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import discord

from core.rag.types import Answer, Source

__all__ = [
    "MESSAGE_LIMIT",
    "Page",
    "answer_text",
    "code_block",
    "clamp_embed",
    "escape",
    "pages",
    "source_link",
    "sources_block",
    "split_message",
    "stream_frame",
    "truncate",
    "unmask_links",
]

MESSAGE_LIMIT = 2000
TRUNCATED = "… (truncated)"
MAX_PAGES = 4  # more than this many messages reads as spam: send a file instead
FILE_PREVIEW = 1500

# Embed limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits)
EMBED_TITLE, EMBED_DESCRIPTION, EMBED_FIELDS = 256, 4096, 25
FIELD_NAME, FIELD_VALUE, FOOTER, EMBED_TOTAL = 256, 1024, 2048, 6000

_FENCE = re.compile(r"^\s*```(\S*)")
_MENTION = re.compile(r"@(everyone|here)|<@([!&]?)(?=\d)")
_MASKED_LINK = re.compile(
    r"\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]"  # the text, one level of brackets inside
    r"\(\s*<?((?:[^\s()<>]|\([^\s()<>]*\))+)>?(?:\s+\"[^\"\n]*\")?\s*\)"  # url, "title"
)
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)


@dataclass(frozen=True)
class Page:
    """One message to send: text, and optionally a file (name, bytes) attached to it."""

    content: str
    file: tuple[str, bytes] | None = None


def escape(text: str) -> str:
    """Neutralise @everyone, @here and user/role mentions with a zero-width space."""
    return _MENTION.sub(lambda m: m.group(0)[:1] + "\u200b" + m.group(0)[1:], text)


def unmask_links(text: str) -> str:
    """Model-written masked links `[text](url)` as `text (<url>)`: the destination shows (no
    preview). Code is left alone, where Discord renders no links anyway."""
    parts = _CODE.split(text)
    for i in range(0, len(parts), 2):  # odd parts are code spans and blocks
        shown = _MASKED_LINK.sub(lambda m: f"{m[1]} (<{m[2]}>)".lstrip(), parts[i])
        # whatever shape the pattern missed, "](" split by a zero-width space is no link
        parts[i] = shown.replace("](", "]\u200b(")
    return "".join(parts)


def truncate(text: str, limit: int, marker: str = TRUNCATED) -> str:
    """`text` cut to at most `limit` characters, ending in `marker` when something was cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))].rstrip() + marker


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split into chunks of ≤ `limit` chars at line (else word) boundaries.

    A chunk that ends inside a ``` code block is closed with ``` and the next one reopens it
    with the same language, so every chunk renders as valid markdown.
    """
    if not text:
        return []
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    fence: str | None = None  # language of the open code block ("" = none given), None = closed
    for line in _lines_within(text, limit - 8 - 20):  # room for a closing/opening fence
        reopen = f"```{fence}\n" if fence is not None and not current else ""
        closing = 4 if fence is not None else 0  # "\n```" needed if we must split here
        if current and size + len(line) + closing > limit:
            chunks.append("".join(current) + ("```" if fence is not None else ""))
            current, size = [], 0
            reopen = f"```{fence}\n" if fence is not None else ""
        if reopen:
            current.append(reopen)
            size += len(reopen)
        current.append(line)
        size += len(line)
        match = _FENCE.match(line)
        if match:
            fence = None if fence is not None else match.group(1)
    if current:
        chunks.append("".join(current))
    # a closing fence added at a split lands after a "\n"-terminated line; strip empty chunks
    return [c if len(c) <= limit else truncate(c, limit) for c in chunks if c.strip()]


def _lines_within(text: str, limit: int) -> list[str]:
    """Lines of `text` keeping their "\n"; a line longer than `limit` is cut at word breaks."""
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit)
            cut = cut + 1 if cut > limit // 2 else limit
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"  # every line ends in \n, so a closing ``` always starts a new line
    return out


def pages(
    text: str, *, filename: str = "answer.md", max_pages: int = MAX_PAGES, what: str = "answer"
) -> list[Page]:
    """Messages for a complete text: split, or a preview plus the whole text as a file
    (`what` names it in the preview's marker: "the full answer is attached")."""
    text = escape(text.strip()) or f"(empty {what})"
    chunks = split_message(text)
    if len(chunks) <= max_pages:
        return [Page(c.rstrip("\n")) for c in chunks]
    preview = truncate(text, FILE_PREVIEW, marker=f"… (truncated; the full {what} is attached)")
    if preview.count("```") % 2:  # don't leave a code block open in the preview
        preview += "\n```"
    return [Page(preview, (filename, text.encode()))]


def stream_frame(text: str, *, queue_position: int | None = None, note: str = "") -> str:
    """One in-progress edit: the queue position while waiting, else the text so far."""
    if not text.strip():
        if queue_position is not None and queue_position > 0:
            return f"⏳ Waiting in line: position {queue_position}."
        return "✍️ Thinking…"
    body = escape(unmask_links(text.strip()))
    suffix = f"\n\n{note}" if note else " ▌"
    room = MESSAGE_LIMIT - len(suffix)
    if len(body) > room:
        body = truncate(body, room, marker="… (continues below when finished)")
    if body.count("```") % 2:  # an unclosed fence while streaming would swallow the suffix
        body = truncate(body, room - 4, marker="… (continues below when finished)") + "\n```"
    return body + suffix


def clamp_embed(embed: discord.Embed) -> discord.Embed:
    """Cut every part of `embed` to Discord's limits, marking what was cut."""
    if embed.title:
        embed.title = truncate(embed.title, EMBED_TITLE)
    if embed.description:
        embed.description = truncate(embed.description, EMBED_DESCRIPTION)
    fields = embed.fields[:EMBED_FIELDS]
    embed.clear_fields()
    for f in fields:
        embed.add_field(
            name=truncate(f.name or "\u200b", FIELD_NAME),
            value=truncate(f.value or "\u200b", FIELD_VALUE),
            inline=f.inline,
        )
    if embed.footer.text:
        embed.set_footer(text=truncate(embed.footer.text, FOOTER))
    while len(embed) > EMBED_TOTAL and embed.fields:
        embed.remove_field(-1)
    if len(embed) > EMBED_TOTAL and embed.description:
        over = len(embed) - EMBED_TOTAL
        embed.description = truncate(embed.description, len(embed.description) - over)
    return embed


_LINK_TEXT = re.compile(r"[\[\]()<>`*_~|]")


def _link_text(title: str) -> str:
    """A title safe inside a masked link: no brackets or markdown that would break it."""
    return _LINK_TEXT.sub(" ", " ".join(title.split())).strip()[:120] or "source"


def sources_block(sources: tuple[Source, ...] | list[Source]) -> str:
    """Numbered sources: web and Discord URIs as clickable links (previews suppressed with
    <…>), anything else (uploaded files) as the title with its uri in code."""
    return "\n".join(["**Sources**", *(f"[{s.n}] {source_link(s.title, s.uri)}" for s in sources)])


def source_link(title: str, uri: str) -> str:
    """A clickable title for web and Discord URIs, else the title with its uri in code."""
    text = _link_text(title)
    if uri.startswith(("https://", "http://")):
        return f"[{text}](<{uri}>)"
    return f"{text} (`{uri.replace('`', '')}`)"


def answer_text(answer: Answer) -> str:
    """A finished grounded answer: the text, then its sources (a refusal has none). Only the
    sources, which Guru writes, keep masked links."""
    text = unmask_links(answer.answer)
    if not answer.sources:
        return text
    return f"{text.strip()}\n\n{sources_block(answer.sources)}"


def code_block(code: str, language: str = "py") -> str:
    """A fenced block that the code itself cannot close early (``` inside gets a zero-width
    space); `split_message` keeps it valid across messages."""
    body = code.rstrip().replace("```", "`\u200b``")
    return f"```{language}\n{body}\n```"
