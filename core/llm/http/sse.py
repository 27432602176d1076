"""Server-Sent Events, the framing OpenAI-compatible servers stream chat chunks in.

Both ends live here so `guru serve` and `RemoteBackend` agree byte for byte. The parser is
incremental and works on bytes: network reads split lines (and UTF-8 characters) anywhere,
and servers differ in line endings (`\\n`, `\\r\\n`), keep-alive comments and `data:` spacing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["SSEItem", "SSEParser", "encode_data", "encode_comment", "DONE"]

DONE = "[DONE]"  # OpenAI's end-of-stream sentinel, sent as a data payload


@dataclass(frozen=True)
class SSEItem:
    """One dispatched event (`data` set) or one comment line (`comment` set)."""

    data: str | None = None
    comment: str | None = None


def encode_data(payload: Any) -> bytes:
    """`data: <json>` plus the blank line that ends the event (a str payload is sent as is)."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def encode_comment(text: str) -> bytes:
    """A comment line: ignored by SSE clients, so it can keep idle connections alive."""
    return f": {text}\n\n".encode()


class SSEParser:
    """Feed raw bytes as they arrive; get back the complete items they finish."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEItem]:
        self._buffer += chunk
        items: list[SSEItem] = []
        while True:
            cut = self._line_end()
            if cut is None:
                return items
            end, skip = cut
            line = self._buffer[:end].decode("utf-8", errors="replace")
            self._buffer = self._buffer[end + skip :]
            item = self._line(line)
            if item is not None:
                items.append(item)

    def close(self) -> list[SSEItem]:
        """Flush what is left when the stream ends without a final blank line."""
        items = self.feed(b"\n") if self._buffer else []
        if self._data:
            items.append(SSEItem(data="\n".join(self._data)))
            self._data = []
        return items

    def _line_end(self) -> tuple[int, int] | None:
        """Index of the first line terminator in the buffer and its length."""
        lf = self._buffer.find(b"\n")
        cr = self._buffer.find(b"\r")
        if cr == -1 or (lf != -1 and lf < cr):
            return None if lf == -1 else (lf, 1)
        if cr == len(self._buffer) - 1:
            return None  # could be the first half of "\r\n": wait for the next byte
        return (cr, 2) if self._buffer[cr + 1 : cr + 2] == b"\n" else (cr, 1)

    def _line(self, line: str) -> SSEItem | None:
        if line == "":  # a blank line dispatches the event gathered so far
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return SSEItem(data=data)
        if line.startswith(":"):
            return SSEItem(comment=line[1:].strip())
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        # `event:`, `id:` and `retry:` carry nothing OpenAI-style streams need.
        return None
