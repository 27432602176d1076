"""Values of the sources subsystem: a stored source, a page's last state, a sync's summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from core.errors import GuruError
from core.rag.types import ParsedDocument

__all__ = [
    "Failed",
    "PageResult",
    "PageState",
    "Parsed",
    "SourceInfo",
    "SourceKindName",
    "SourceUnavailable",
    "SyncSummary",
    "Unchanged",
    "summary_line",
]

SourceKindName = Literal["web", "git", "discord"]


class SourceUnavailable(GuruError):
    """The whole source could not be read (start page, sitemap, robots.txt, clone): the sync
    stops before it changes anything, so nothing stored is lost."""


@dataclass(frozen=True)
class SourceInfo:
    id: int
    guild_id: int
    kind: SourceKindName
    location: str
    options: dict[str, Any]
    every_s: int | None
    next_sync_at: datetime | None
    last_sync_at: datetime | None
    last_summary: dict[str, Any] | None
    last_error: str | None
    sync_started_at: datetime | None = None  # set while a sync runs (its claim)
    sync_progress: dict[str, Any] | None = None  # that sync's counts so far


@dataclass(frozen=True)
class PageState:
    """What the last sync stored for one page (its document's uri)."""

    uri: str
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unchanged:
    """The page is as the last sync left it (304, or the same git blob): nothing parsed."""

    uri: str
    state: PageState


@dataclass(frozen=True)
class Parsed:
    """A fetched and parsed page, for the ingestor (which no-ops on an unchanged hash)."""

    uri: str
    doc: ParsedDocument
    state: PageState


@dataclass(frozen=True)
class Failed:
    """A page that could not be had; `keep`: its old copy stays (a timeout, a 5xx, a bad
    file), else it goes (404 / 410). `links` keep a crawl going past a failed page."""

    uri: str
    reason: str
    keep: bool = True
    links: tuple[str, ...] = ()


PageResult = Unchanged | Parsed | Failed


@dataclass
class SyncSummary:
    """Counts of one sync; `failures` keeps the first few reasons for the reply."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    not_modified: int = 0  # of `unchanged`: answered 304 / same git blob, nothing parsed
    failures: list[tuple[str, str]] = field(default_factory=list)

    MAX_REASONS = 10

    def fail(self, uri: str, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < self.MAX_REASONS:
            self.failures.append((uri, reason))

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": self.failed,
            "not_modified": self.not_modified,
            "failures": [list(f) for f in self.failures],
        }

    def line(self) -> str:
        return (
            f"{self.added} added, {self.changed} changed, {self.unchanged} unchanged, "
            f"{self.removed} removed, {self.failed} failed"
        )


def summary_line(summary: dict[str, Any] | None) -> str:
    """The one-line form of a stored summary ("never synced" when there is none)."""
    if not summary:
        return "never synced"
    keys = ("added", "changed", "unchanged", "removed", "failed")
    return ", ".join(f"{summary.get(k, 0)} {k}" for k in keys)
