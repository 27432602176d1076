"""`SourceSync`: add, sync, list and remove a guild's website, git and Discord channel sources.

A sync (1) claims the source, so the bot's scheduler and `guru sources sync --due` from cron
never run it twice at once; (2) walks its pages, fetching conditionally; (3) hands each new or
changed page to the `Ingestor` (which embeds only when the content hash changed); (4) removes
the documents of pages that are gone; (5) records a summary. A failure of the whole source
(start page, sitemap, robots.txt, clone) ends the sync before step 4: nothing is removed.

Web and git pages are read here; a Discord channel's threads only by the bot, which passes
its reader in `providers` (core never talks to Discord). Without one (the CLI), a channel
source can be listed and removed but not synced, and `sync_due` leaves it to the bot.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from core.config import Settings
from core.errors import Busy, GuruError, InvalidInput, NotFound
from core.rag.chunking import content_hash
from core.rag.ingest import Ingestor, check_guild_id
from core.sources.fetch import Fetcher
from core.sources.git import git_pages
from core.sources.store import SourceRepo
from core.sources.threads import channel_location
from core.sources.types import (
    Failed,
    PageResult,
    PageState,
    Parsed,
    SourceInfo,
    SourceUnavailable,
    SyncSummary,
    Unchanged,
)
from core.sources.urls import check_public_host, check_web_url, classify, parse_every
from core.sources.web import web_pages

__all__ = ["PageProvider", "Progress", "SourceSync", "raise_if_cancelled"]

log = logging.getLogger(__name__)

Progress = Callable[[SyncSummary], Awaitable[None]]
PROGRESS_EVERY_S = 5.0  # how often a running sync records its counts
# Reads a source's pages given what the last sync stored (the bot's Discord channel reader).
PageProvider = Callable[[SourceInfo, dict[str, PageState]], AsyncIterator[PageResult]]


def raise_if_cancelled() -> None:
    """Re-raise a cancellation something below swallowed: psycopg_pool's getconn can return a
    connection and drop a CancelledError that arrived as the connection was handed over, and
    a swallowed cancel would keep a sync (or the schedule) running through the bot's shutdown."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class SourceSync:
    """One per process (it shares the `Ingestor`); stateless apart from the database."""

    def __init__(
        self,
        ingestor: Ingestor,
        settings: Settings,
        providers: dict[str, PageProvider] | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.settings = settings
        self.repo = SourceRepo(ingestor.pool)
        self.providers = dict(providers or {})
        self.progress_every_s = PROGRESS_EVERY_S

    @property
    def kinds(self) -> list[str]:
        """The kinds of source this process can sync."""
        return ["web", "git", *self.providers]

    def can_sync(self, source: SourceInfo) -> bool:
        return source.kind in self.kinds

    async def add(
        self,
        guild_id: int,
        location: str,
        *,
        every: str | None = None,
        git: bool = False,
        folder: str = "",
        public_only: bool = False,
    ) -> SourceInfo:
        """Check and store a source (or update an existing one's schedule and folder).

        `public_only` (Discord): http(s) only, no private addresses, no local paths."""
        check_guild_id(guild_id)
        every_s = parse_every(every)
        kind = classify(location, git=git)
        if kind == "web" or public_only:
            location = check_web_url(location)
            if public_only and not self.settings.sources_allow_private:
                await check_public_host(location)
        elif os.path.isdir(location):
            location = str(Path(location).resolve())
        options: dict[str, Any] = {"public_only": public_only}
        if kind == "git":
            options["folder"] = folder.strip("/")
        return await self.repo.upsert(guild_id, kind, location, options, every_s)

    async def add_channel(
        self,
        guild_id: int,
        channel_id: int,
        *,
        every: str | None = None,
        since: str | None = None,
        helper_role_id: int | None = None,
        solved_tag: str | None = None,
    ) -> SourceInfo:
        """Store a Discord channel as a source (the bot has checked who may read it).
        `since`: an ISO date; threads created before it are left out."""
        check_guild_id(guild_id)
        options: dict[str, Any] = {"channel_id": str(channel_id)}
        if since:
            options["since"] = since
        if helper_role_id is not None:
            options["helper_role_id"] = str(helper_role_id)
        if solved_tag:
            options["solved_tag"] = solved_tag.strip()
        location = channel_location(guild_id, channel_id)
        return await self.repo.upsert(guild_id, "discord", location, options, parse_every(every))

    async def list(self, guild_id: int) -> list[SourceInfo]:
        check_guild_id(guild_id)
        return await self.repo.list(guild_id)

    async def get(self, guild_id: int, key: str) -> SourceInfo:
        check_guild_id(guild_id)
        found = await self.repo.find(guild_id, key)
        if found is None:
            raise NotFound(f"No source {key!r} here; see `guru sources list` or `/docs list`.")
        return found

    async def remove(self, guild_id: int, key: str) -> tuple[SourceInfo, int]:
        """Delete the source and the documents of its pages; (source, documents removed)."""
        source = await self.get(guild_id, key)
        removed = 0
        for uri in await self.repo.pages(guild_id, source.id):
            removed += await self._drop_page(source, uri)
        await self.repo.delete(guild_id, source.id)
        return source, removed

    async def sync(self, source: SourceInfo, progress: Progress | None = None) -> SyncSummary:
        """Sync one source now; Busy when it is syncing already, SourceUnavailable (recorded
        as the source's last error) when it cannot be read at all."""
        if not self.can_sync(source):  # refused before the claim: nothing recorded
            raise InvalidInput(
                f"Source {source.id} is a Discord channel: the running bot syncs it "
                "(`/docs sources resync`)."
            )
        if not await self.repo.claim(source.guild_id, source.id):
            raise Busy("This source is syncing right now; its summary appears in `/docs list`.")
        summary, error = SyncSummary(), None
        try:
            await self._sync(source, summary, progress)
        except GuruError as exc:
            error = exc.user_message
            raise
        except BaseException:
            error = "the sync stopped unexpectedly; it will be retried"
            raise
        finally:
            await self.repo.finish(
                source.guild_id, source.id, None if error else summary.to_dict(), error
            )
            log.info(
                "synced source %s of guild %s: %s%s",
                source.id,
                source.guild_id,
                summary.line(),
                f" (error: {error})" if error else "",
            )
        return summary

    async def sync_new(self, source: SourceInfo, progress: Progress | None = None) -> SyncSummary:
        """The first sync of a source just added: when the source cannot be read at all (an
        unreachable repository, a dead start page) it is not kept, so nothing half-made stays
        scheduled; a source that synced before keeps its pages and records the error."""
        try:
            return await self.sync(source, progress)
        except SourceUnavailable:
            if source.last_sync_at is None:
                await self.repo.delete(source.guild_id, source.id)
            raise

    async def sync_due(self, limit: int = 10) -> list[tuple[SourceInfo, SyncSummary | str]]:
        """Sync every scheduled source whose time has come; one bad source never stops the
        rest (its error is in the result and in the source's row)."""
        done: list[tuple[SourceInfo, SyncSummary | str]] = []
        for source in await self.repo.due(self.kinds, limit):
            try:
                done.append((source, await self.sync(source)))
            except GuruError as exc:
                done.append((source, exc.user_message))
        return done

    async def _sync(
        self, source: SourceInfo, summary: SyncSummary, progress: Progress | None
    ) -> None:
        guild_id = source.guild_id
        known = await self.repo.pages(guild_id, source.id)
        seen: set[str] = set()
        loop = asyncio.get_running_loop()
        recorded = loop.time()
        async for result in self._pages(source, known):
            raise_if_cancelled()
            if isinstance(result, Failed):
                summary.fail(result.uri, result.reason)
                if result.keep and result.uri in known:
                    seen.add(result.uri)
            else:
                seen.add(result.uri)
                await self._apply(source, result, result.uri in known, summary)
            if progress is not None:
                await progress(summary)
            if loop.time() - recorded >= self.progress_every_s:  # for `/docs list`
                await self.repo.progress(guild_id, source.id, summary.to_dict())
                recorded = loop.time()
        for uri in known.keys() - seen:
            summary.removed += await self._drop_page(source, uri)

    async def sync_page(
        self, source: SourceInfo, uri: str, result: Parsed | None
    ) -> Literal["added", "changed", "unchanged", "removed", "failed", "none"]:
        """Bring one page up to date between syncs (a thread just marked solved, edited,
        unsolved or deleted): `result` None means the page is gone or no longer qualifies."""
        known = await self.repo.pages(source.guild_id, source.id)
        if result is None:
            if uri not in known:
                return "none"
            return "removed" if await self._drop_page(source, uri) else "none"
        summary = SyncSummary()
        await self._apply(source, result, uri in known, summary)
        for name in ("added", "changed", "unchanged", "failed"):
            if getattr(summary, name):
                return name  # type: ignore[return-value]
        return "none"

    async def _pages(
        self, source: SourceInfo, known: dict[str, PageState]
    ) -> AsyncIterator[PageResult]:
        if source.kind in self.providers:
            async for result in self.providers[source.kind](source, known):
                yield result
            return
        max_bytes = int(self.settings.sources_page_max_mb * 1e6)
        max_pages = self.settings.sources_max_pages
        public_only = bool(source.options.get("public_only")) and not (
            self.settings.sources_allow_private
        )
        if source.kind == "git":
            work_dir = self.settings.data_path / "sources"
            folder = str(source.options.get("folder", ""))
            async for result in git_pages(
                source.location,
                folder,
                known,
                work_dir,
                max_bytes=max_bytes,
                max_pages=max_pages,
                public_only=public_only,
            ):
                yield result
            return
        async with Fetcher(
            max_bytes=max_bytes, timeout_s=self.settings.sources_timeout_s, public_only=public_only
        ) as fetcher:
            async for result in web_pages(source.location, known, fetcher, max_pages):
                yield result

    async def _apply(
        self, source: SourceInfo, result: Unchanged | Parsed, was_known: bool, summary: SyncSummary
    ) -> None:
        state = result.state
        if isinstance(result, Unchanged):
            summary.unchanged += 1
            summary.not_modified += 1
        else:
            # Always through the ingestor: its content-hash check is the fallback for servers
            # without validators (an unchanged page embeds nothing), and it restores a page an
            # admin removed by hand. The hash is kept with the page's state for `--json`.
            state = replace(state, content_hash=content_hash(result.doc))
            outcome = await self.ingestor.ingest_document(source.guild_id, result.doc)
            if outcome.status == "error":
                summary.fail(result.uri, outcome.error or "could not be indexed")
                return
            if outcome.status == "unchanged":
                summary.unchanged += 1
            elif outcome.status == "added" and not was_known:
                summary.added += 1
            else:
                summary.changed += 1
        await self.repo.save_page(source.guild_id, source.id, state)

    async def _drop_page(self, source: SourceInfo, uri: str) -> int:
        """Forget a page; remove its document unless another source still lists it."""
        if not await self.repo.forget_page(source.guild_id, source.id, uri):
            return 0
        try:
            await self.ingestor.remove(source.guild_id, uri)
        except NotFound:
            return 0
        return 1
