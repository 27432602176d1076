"""Discord channel sources through the real sync: the bot's reader is a plain provider here
(what the bot would read), the database, ingestor and embedder are real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from core.db.pool import Pool
from core.errors import InvalidInput
from core.sources.sync import SourceSync
from core.sources.threads import ThreadFacts, ThreadMessage, solved_tags, thread_page
from core.sources.types import PageResult, PageState, SourceInfo
from tests.integration.sources.test_web_sync import chunk_ids


def thread(guild: int, tid: int, answer: str, *, solved: bool = True) -> ThreadFacts:
    return ThreadFacts(
        guild,
        500,
        "help",
        tid,
        f"Question {tid}",
        (
            ThreadMessage(tid, 1, "ann", f"How do I configure feature {tid}?"),
            ThreadMessage(tid + 1, 2, "cy", answer),
        ),
        ("solved",) if solved else (),
    )


@pytest.fixture
def channel() -> dict[int, ThreadFacts]:
    return {}


@pytest.fixture
def discord_sources(sources: SourceSync, channel: dict[int, ThreadFacts]) -> SourceSync:
    async def read(source: SourceInfo, known: dict[str, PageState]) -> AsyncIterator[PageResult]:
        for facts in channel.values():
            page = thread_page(facts, solved_tags(source.options))
            if page is not None:
                yield page

    return SourceSync(sources.ingestor, sources.settings, {"discord": read})


async def test_resync_reembeds_only_the_edited_thread_and_drops_unsolved_and_deleted(
    discord_sources: SourceSync,
    sources: SourceSync,
    channel: dict[int, ThreadFacts],
    rag_pool: Pool,
    new_guild: Callable[[], int],
) -> None:
    guild = new_guild()
    for tid in (1000, 2000, 3000):
        channel[tid] = thread(guild, tid, f"Set option {tid} in the config file.")
    channel[4000] = thread(guild, 4000, "No idea.", solved=False)
    source = await discord_sources.add_channel(guild, 500, every="1d")
    first = await discord_sources.sync(source)
    assert (first.added, first.changed, first.removed) == (3, 0, 0)
    before = await chunk_ids(rag_pool, guild)
    assert set(before) == {f"https://discord.com/channels/{guild}/{t}" for t in (1000, 2000, 3000)}

    channel[2000] = thread(guild, 2000, "Set option 2000 in the admin panel instead.")
    edited = await discord_sources.sync(source)
    assert (edited.changed, edited.unchanged, edited.added) == (1, 2, 0)
    after = await chunk_ids(rag_pool, guild)
    assert [u for u in before if after[u] != before[u]] == [
        f"https://discord.com/channels/{guild}/2000"
    ]

    del channel[1000]  # deleted
    channel[3000] = thread(guild, 3000, "Set option 3000.", solved=False)  # unsolved
    gone = await discord_sources.sync(source)
    assert (gone.removed, gone.unchanged) == (2, 1)
    assert set(await chunk_ids(rag_pool, guild)) == {f"https://discord.com/channels/{guild}/2000"}

    # the CLI has no Discord reader: it lists and removes a channel source but cannot sync it
    with pytest.raises(InvalidInput, match="the running bot syncs it"):
        await sources.sync(source)
    assert source.id not in [s.id for s in await sources.repo.due(sources.kinds, 100)]
    removed_source, removed = await sources.remove(guild, str(source.id))
    assert removed == 1 and await chunk_ids(rag_pool, guild) == {}


async def test_a_running_sync_records_its_progress_for_docs_list(
    sources: SourceSync, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    halfway, resume = asyncio.Event(), asyncio.Event()

    async def read(source: SourceInfo, known: dict[str, PageState]) -> AsyncIterator[PageResult]:
        for tid in (1000, 2000, 3000):
            if tid == 3000:
                halfway.set()
                await resume.wait()
            page = thread_page(thread(guild, tid, f"Set option {tid}."), solved_tags({}))
            assert page is not None
            yield page

    syncer = SourceSync(sources.ingestor, sources.settings, {"discord": read})
    syncer.progress_every_s = 0.0
    source = await syncer.add_channel(guild, 500)
    running = asyncio.create_task(syncer.sync(source))
    await asyncio.wait_for(halfway.wait(), 60)
    [during] = await syncer.list(guild)
    assert during.sync_started_at is not None
    assert during.sync_progress is not None and during.sync_progress["added"] == 2
    resume.set()
    summary = await running
    [after] = await syncer.list(guild)
    assert summary.added == 3 and after.sync_started_at is None and after.sync_progress is None
    assert after.last_summary is not None and after.last_summary["added"] == 3
