"""The schedule, the sync claim, Discord's public-only rule and forgetting a guild."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest

from core.db.pool import Pool
from core.errors import Busy, InvalidInput
from core.rag.store import forget_guild
from core.sources.scheduler import run_schedule
from core.sources.sync import SourceSync
from tests.integration.sources.site import Site, page


async def make_due(pool: Pool, source_id: int) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE sources SET next_sync_at = now() - interval '1 minute' WHERE id = %(id)s",
            {"id": source_id},
        )


async def test_scheduler_syncs_a_due_source_and_schedules_the_next(
    site: Site, sources: SourceSync, rag_pool: Pool, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    site.pages["/"] = page("Home", "Opening hours are nine to five.")
    source = await sources.add(guild, site.url("/"), every="1h")
    await sources.sync(source)
    [synced] = await sources.list(guild)
    assert [
        s for s in await sources.repo.due(sources.kinds, 100) if s.id == source.id
    ] == []  # not yet due
    await make_due(rag_pool, source.id)
    site.log.clear()
    task = asyncio.create_task(run_schedule(sources, check_every_s=0.05))
    try:
        for _ in range(200):
            [stored] = await sources.list(guild)
            if stored.last_sync_at != synced.last_sync_at:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert ("/", 304) in site.log
    assert stored.last_summary and stored.last_summary["not_modified"] == 1
    assert stored.next_sync_at and stored.last_sync_at
    assert 3590 < (stored.next_sync_at - stored.last_sync_at).total_seconds() < 3610


async def test_a_source_already_syncing_is_not_synced_twice(
    site: Site, sources: SourceSync, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    site.pages["/"] = page("Home", "Opening hours are nine to five.")
    source = await sources.add(guild, site.url("/"))
    assert await sources.repo.claim(guild, source.id)  # as if cron's sync were running
    with pytest.raises(Busy, match="syncing right now"):
        await sources.sync(source)
    assert site.log == []


async def test_discord_sources_must_be_public_unless_allowed(
    site: Site, sources: SourceSync, new_guild: Callable[[], int]
) -> None:
    with pytest.raises(InvalidInput, match="not a public address"):
        await sources.add(new_guild(), site.url("/"), public_only=True)
    with pytest.raises(InvalidInput, match="Only http:// and https://"):
        await sources.add(new_guild(), "/etc", public_only=True)


async def test_forgetting_a_guild_erases_its_sources(
    site: Site, sources: SourceSync, rag_pool: Pool, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    site.pages["/"] = page("Home", "Opening hours are nine to five.")
    await sources.sync(await sources.add(guild, site.url("/")))
    async with rag_pool.connection() as conn, conn.transaction():
        counts = await forget_guild(conn, guild)
    assert counts["sources"] == 1 and counts["source_pages"] == 1 and counts["documents"] == 1
    assert await sources.list(guild) == []


async def test_a_cancelled_sync_stops_at_once_and_releases_its_claim(
    site: Site, sources: SourceSync, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    site.pages["/"] = page("Home", "Opening hours are nine to five.", ("/slow.html",))
    source = await sources.add(guild, site.url("/"))
    task = asyncio.create_task(sources.sync(source))
    while ("/", 200) not in site.log:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # the slow page is being fetched now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    [stored] = await sources.list(guild)
    assert stored.last_error == "the sync stopped unexpectedly; it will be retried"
    assert await sources.repo.claim(guild, source.id)  # released: the next sync may run


async def test_the_schedule_stops_when_cancelled_mid_tick(
    site: Site, sources: SourceSync, rag_pool: Pool, new_guild: Callable[[], int]
) -> None:
    """A cancel that lands while a pool connection is handed over is dropped by psycopg_pool;
    the schedule must stop anyway (else the bot's shutdown waits for it forever)."""
    guild = new_guild()
    site.pages["/"] = page("Home", "Opening hours are nine to five.")
    source = await sources.add(guild, site.url("/"), every="1h")
    for _ in range(5):
        await make_due(rag_pool, source.id)
        task = asyncio.create_task(run_schedule(sources, check_every_s=0.05))
        await sources.list(guild)  # the schedule's first queries run meanwhile
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)
        assert done, "the schedule kept running after cancel()"
