"""Website sources against a local site: conditional re-syncs embed only what changed."""

from __future__ import annotations

from collections.abc import Callable

from core.db.pool import Pool
from core.sources.sync import SourceSync
from tests.integration.sources.site import Site, page

PAGES = {
    "/a.html": page("Refunds", "Refunds are processed within fourteen days of the request."),
    "/b.html": page("Shipping", "Parcels ship from the Lisbon warehouse every weekday."),
    "/c.html": page("Accounts", "Reset a forgotten password from the login screen."),
    "/private/secret.html": page("Secret", "The staff door code is 4711."),
}


async def chunk_ids(pool: Pool, guild: int) -> dict[str, list[int]]:
    """Each document uri's chunk ids (new ids = re-embedded)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT d.uri, array_agg(c.id ORDER BY c.id) FROM documents d"
            " JOIN chunks c ON c.document_id = d.id WHERE d.guild_id = %(g)s GROUP BY d.uri",
            {"g": guild},
        )
        return {uri: ids for uri, ids in await cur.fetchall()}


async def test_resync_fetches_conditionally_and_reembeds_only_the_changed_page(
    site: Site, sources: SourceSync, rag_pool: Pool, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    site.pages.update(PAGES)
    source = await sources.add(guild, site.url("/sitemap.xml"), every="1d")
    first = await sources.sync(source)
    assert (first.added, first.changed, first.unchanged, first.removed, first.failed) == (
        3, 0, 0, 0, 0
    )  # fmt: skip
    assert site.statuses("/private/secret.html") == []  # robots.txt disallows it
    before = await chunk_ids(rag_pool, guild)
    assert set(before) == {site.url(p) for p in ("/a.html", "/b.html", "/c.html")}

    site.log.clear()
    again = await sources.sync(source)
    assert (again.added, again.changed, again.unchanged, again.not_modified) == (0, 0, 3, 3)
    assert [s for p, s in site.log if p.endswith(".html")] == [304, 304, 304]
    assert await chunk_ids(rag_pool, guild) == before  # nothing re-embedded

    site.pages["/b.html"] = page("Shipping", "Parcels now ship from the Porto warehouse.")
    changed = await sources.sync(source)
    assert (changed.changed, changed.unchanged, changed.added) == (1, 2, 0)
    after = await chunk_ids(rag_pool, guild)
    assert [uri for uri in before if after[uri] != before[uri]] == [site.url("/b.html")]

    del site.pages["/c.html"]
    removed = await sources.sync(source)
    assert (removed.removed, removed.unchanged) == (1, 2)
    assert set(await chunk_ids(rag_pool, guild)) == {site.url("/a.html"), site.url("/b.html")}
    [stored] = await sources.list(guild)
    assert stored.last_summary is not None and stored.last_summary["removed"] == 1
    assert stored.last_error is None and stored.next_sync_at is not None


async def test_crawl_stays_on_the_host_and_one_bad_page_fails_alone(
    site: Site, sources: SourceSync, rag_pool: Pool, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    links = ("/a.html", "/moved", "/missing.html", "/big.html", "/away", "/private/secret.html",
             "http://other.invalid/page.html", "mailto:x@example.com", "/logo.png")  # fmt: skip
    site.pages.update(PAGES)
    site.pages["/"] = page("Home", "Welcome to the help centre.", links)
    source = await sources.add(guild, site.url("/"))
    summary = await sources.sync(source)
    assert (summary.added, summary.failed) == (2, 3), summary.failures
    reasons = dict(summary.failures)
    assert reasons[site.url("/missing.html")] == "HTTP 404"
    assert reasons[site.url("/big.html")].startswith("page too large")
    assert reasons[site.url("/away")] == "redirects to another host (other.invalid)"
    assert set(await chunk_ids(rag_pool, guild)) == {site.url("/"), site.url("/a.html")}
    assert "/logo.png" not in {p for p, _ in site.log}
    assert site.statuses("/moved") == [301] and summary.unchanged == 0  # same host: followed once


async def test_unreachable_start_page_changes_nothing(
    site: Site, sources: SourceSync, rag_pool: Pool, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    site.pages.update(PAGES)
    site.pages["/"] = page("Home", "Welcome.", ("/a.html",))
    source = await sources.add(guild, site.url("/"))
    await sources.sync(source)
    del site.pages["/"]
    try:
        await sources.sync(source)
    except Exception as exc:  # noqa: BLE001 - asserted below
        assert "start page" in str(exc) and "404" in str(exc)
    else:
        raise AssertionError("the sync should have failed")
    assert len(await chunk_ids(rag_pool, guild)) == 2  # kept
    [stored] = await sources.list(guild)
    assert stored.last_error and "404" in stored.last_error
    assert stored.last_summary is not None and stored.last_summary["added"] == 2


async def test_without_validators_the_content_hash_decides(
    site: Site, sources: SourceSync, rag_pool: Pool, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    site.pages["/"] = page("Home", "Opening hours are nine to five.")
    site.no_validators.add("/")
    source = await sources.add(guild, site.url("/"))
    await sources.sync(source)
    before = await chunk_ids(rag_pool, guild)
    again = await sources.sync(source)
    assert site.statuses("/") == [200, 200]  # no ETag: fetched in full both times
    assert (again.unchanged, again.not_modified, again.changed) == (1, 0, 0)
    assert await chunk_ids(rag_pool, guild) == before  # same hash: nothing re-embedded
