"""/docs add url end to end: a site on 127.0.0.1 is synced with progress in the reply, its
summary shows in /docs list, and bad input is refused before anything is deferred."""

from __future__ import annotations

from tests.e2e.emulator import Emulator
from tests.e2e.test_docs import documents, new_guild, run
from tests.integration.sources.site import Site, page, site  # noqa: F401 - the fixture


async def test_docs_add_url_syncs_the_site_and_docs_list_shows_the_summary(
    bot,
    emulator: Emulator,
    repo,
    site: Site,  # noqa: F811
):
    site.pages["/"] = page("Help centre", "Welcome to the help centre.", ("/refunds.html",))
    site.pages["/refunds.html"] = page("Refunds", "Refunds are processed within 14 days.")
    guild = await new_guild(bot, emulator, repo, "docs-url")
    owner = emulator.owner(guild)
    inter = await run(emulator, guild, owner, {"add": {"url": site.url("/"), "every": "1d"}})
    assert inter.deferred and inter.original.ephemeral
    assert inter.original.content == (
        f"🌐 {site.url('/')} (every 1d): 2 added, 0 changed, 0 unchanged, 0 removed, 0 failed."
    ), inter.texts()
    assert any("Syncing" in r.content for r in inter.original.revisions)  # progress shown
    assert {d.uri for d in await documents(bot, guild.id)} == {
        site.url("/"),
        site.url("/refunds.html"),
    }
    listed = await run(emulator, guild, owner, {"list": {}})
    assert "1 sources kept in sync" in listed.original.content
    assert f"<{site.url('/')}> — every 1d, last sync <t:" in listed.original.content
    assert "2 added, 0 changed, 0 unchanged, 0 removed, 0 failed" in listed.original.content


async def test_docs_add_url_refuses_other_schemes_and_bad_schedules(bot, emulator: Emulator, repo):
    guild = await new_guild(bot, emulator, repo, "docs-url-bad")
    for options, words in [
        ({"url": "file:///etc/passwd"}, "Only http:// and https:// URLs can be added"),
        ({"url": "https://example.com/", "every": "1s"}, "is not a schedule"),
    ]:
        inter = await emulator.send_command(guild, emulator.owner(guild), "docs", {"add": options})
        await emulator.wait_for(lambda i=inter: i.original is not None, 5, what="the refusal")
        assert inter.original.ephemeral and words in inter.original.content
        assert not inter.deferred
    assert await documents(bot, guild.id) == []


async def test_docs_add_url_with_a_dead_start_page_says_why_and_keeps_nothing(
    bot,
    emulator: Emulator,
    repo,
    site: Site,  # noqa: F811
):
    guild = await new_guild(bot, emulator, repo, "docs-url-dead")
    inter = await run(emulator, guild, emulator.owner(guild), {"add": {"url": site.url("/gone")}})
    assert inter.original.content == f"⚠️ The start page {site.url('/gone')} failed: HTTP 404."
    listed = await run(emulator, guild, emulator.owner(guild), {"list": {}})
    assert listed.original.content == "No documents yet: add some with `/docs add`."
