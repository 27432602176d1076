"""`guru ingest URL`, `guru sources list|sync|remove` against the local site and test database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from core.cli import main
from core.sources.sync import SourceSync
from tests.integration.sources.site import Site, page

Guru = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def guru(rag_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Guru:
    """`guru ARGS…` in a worker thread (its own event loop), so the test's loop keeps serving
    the site; (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", rag_url)
    monkeypatch.setenv("GURU_LOG_LEVEL", "WARNING")

    async def run(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def test_ingest_url_then_list_sync_and_remove(site: Site, guru: Guru) -> None:
    site.pages["/"] = page("Home", "Welcome to the help centre.", ("/a.html",))
    site.pages["/a.html"] = page("Refunds", "Refunds take fourteen days.")
    guild = "950000000000000001"
    code, out, _ = await guru("ingest", site.url("/"), "--guild", guild, "--every", "1d", "--json")
    [report] = json.loads(out)
    assert code == 0 and report["summary"]["added"] == 2, out

    code, out, _ = await guru("sources", "list", "--guild", guild)
    assert code == 0 and f"web  {site.url('/')}  [every 1d]" in out
    assert "2 added, 0 changed, 0 unchanged, 0 removed, 0 failed" in out

    code, out, _ = await guru("sources", "sync", "--due")
    assert (code, out) == (0, "")  # scheduled a day from now: nothing due

    code, out, _ = await guru("sources", "sync", "--guild", guild)
    assert code == 0 and "0 added, 0 changed, 2 unchanged" in out and "(2 not modified)" in out

    code, out, _ = await guru("sources", "remove", site.url("/"), "--guild", guild)
    assert code == 0 and "and 2 of its documents" in out
    code, out, _ = await guru("docs", "list", "--guild", guild)
    assert out.strip().endswith("0 documents")


@pytest.mark.parametrize(
    ("location", "extra", "message"),
    [
        ("ftp://example.com/docs", (), "Only http:// and https:// URLs can be added (ftp given)"),
        ("https://example.com/", ("--every", "5m"), "Sync at most every 15 minutes"),
        ("https://example.com/", ("--every", "daily"), "is not a schedule"),
    ],
)
async def test_bad_source_input_is_one_clear_line(
    guru: Guru, location: str, extra: tuple[str, ...], message: str
) -> None:
    code, out, err = await guru("ingest", location, "--guild", "950000000000000002", *extra)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


async def test_a_discord_channel_source_is_listed_and_removed_but_synced_by_the_bot(
    guru: Guru, sources: SourceSync
) -> None:
    guild = 950000000000000003
    source = await sources.add_channel(guild, 777, every="1d", since="2026-01-01")
    code, out, _ = await guru("sources", "list", "--guild", str(guild))
    assert code == 0 and f"discord  https://discord.com/channels/{guild}/777  [every 1d]" in out
    assert "last sync never: never synced" in out

    code, out, _ = await guru("sources", "sync", "--guild", str(guild))  # all: it is skipped
    assert (code, out) == (0, "")
    code, out, err = await guru("sources", "sync", str(source.id), "--guild", str(guild))
    assert code == 2 and "the running bot syncs it" in err and err.count("\n") == 1

    code, out, _ = await guru("sources", "remove", str(source.id), "--guild", str(guild))
    assert code == 0 and out.startswith(f"Removed source {source.id}")
    assert await sources.list(guild) == []
