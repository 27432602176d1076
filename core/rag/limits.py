"""How much one untrusted document may cost: bytes, unzipped bytes, characters, chunks.

Any member of a server can pin a message with a file, and every pinned file is parsed, so a
few KB must never become gigabytes: a 41 KB .docx whose document.xml is 40 MiB of repeated
text once cost the bot process +206 MiB. Zip-based files are checked from their central
directory before any member is read (Python's zipfile never returns more than a member's
declared size, so the declared sizes bound what parsing can unpack); extracted text and chunks
are capped per document, and chunks per guild. `IngestLimits.from_settings` reads the
`GURU_INGEST_*` / `GURU_PARSE_*` settings (`/status` shows them).
"""

from __future__ import annotations

import zipfile
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import InvalidInput

__all__ = ["IngestLimits", "MAX_ZIP_MEMBERS", "check_zip"]

# Small members (styles, repeated XML) may compress better than any text: below this size the
# ratio is not judged.
_RATIO_FLOOR_BYTES = 1 << 20
MAX_ZIP_MEMBERS = 2000


@dataclass(frozen=True)
class IngestLimits:
    """Caps on one document and one guild; the defaults are the settings' defaults."""

    max_chars: int = 1_000_000  # extracted characters per document (~1000 chunks)
    max_doc_chunks: int = 1500
    max_guild_chunks: int = 50_000
    max_unzipped_bytes: int = 64 << 20  # all members of a zip-based file together
    parse_memory_mb: int = 512  # address space of the parser subprocess
    parse_timeout_s: float = 60.0
    # Deflate reaches ~1030:1 at best; real .docx parts compress 3-20:1, so 100:1 on a member
    # big enough to matter is a bomb, not a document. Not a setting: tests lower the guard.
    zip_max_ratio: float = 100

    @classmethod
    def from_settings(cls, settings: Any) -> IngestLimits:
        """From `core.config.Settings` (any object with the `ingest_*` / `parse_*` fields)."""
        return cls(
            max_chars=settings.ingest_max_chars,
            max_doc_chunks=settings.ingest_max_doc_chunks,
            max_guild_chunks=settings.ingest_max_guild_chunks,
            max_unzipped_bytes=settings.ingest_max_unzipped_mb << 20,
            parse_memory_mb=settings.parse_memory_mb,
            parse_timeout_s=settings.parse_timeout_s,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_zip(path: str, limits: IngestLimits) -> None:
    """Refuse a zip whose members would unpack to too much, before reading any of them."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidInput(f"unreadable DOCX ({type(exc).__name__})") from None
    if len(members) > MAX_ZIP_MEMBERS:
        raise InvalidInput(f"too many parts in the file ({len(members)} > {MAX_ZIP_MEMBERS})")
    total = 0
    for info in members:
        total += info.file_size
        if total > limits.max_unzipped_bytes:
            raise InvalidInput(
                f"unpacks to more than {limits.max_unzipped_bytes >> 20} MiB "
                f"(at {info.filename}); a zip bomb or too big a document"
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_FLOOR_BYTES and ratio > limits.zip_max_ratio:
            raise InvalidInput(
                f"{info.filename} is compressed {ratio:.0f}:1"
                f" (more than {limits.zip_max_ratio:g}:1); refused as a zip bomb"
            )
