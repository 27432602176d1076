"""Untrusted files are bounded: zip bombs, too much text, too many chunks per document and per
guild are refused with a reason, and parsing in the isolated child cannot cost the bot."""

from __future__ import annotations

import asyncio
import zipfile
from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.rag.isolated import parse_untrusted
from core.rag.limits import IngestLimits
from core.rag.loaders import MAX_FILE_BYTES, load_file
from core.rag.types import ParsedDocument, Section
from tests.integration.rag.files import write_docx, write_docx_bomb, write_pdf

# Everything but the guard under test lifted, so the test sees that one guard work.
_OPEN = IngestLimits(max_chars=10**9, max_unzipped_bytes=1 << 40, zip_max_ratio=1e9)


def _peak_rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))


def test_a_docx_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    bomb = write_docx_bomb(tmp_path / "bomb.docx", megabytes=40)
    assert bomb.stat().st_size < 200_000
    before = _peak_rss_kib()
    with pytest.raises(InvalidInput, match=r"word/document.xml is compressed \d+:1.*zip bomb"):
        load_file(str(bomb))
    assert _peak_rss_kib() - before < 20_000  # 40 MiB of XML would show here


def test_a_docx_that_unpacks_to_too_much_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:  # no compression: ratio 1:1
        for i in range(3):
            z.writestr(f"word/media/{i}.bin", b"x" * (1 << 20))
    limits = IngestLimits(max_unzipped_bytes=2 << 20)
    with pytest.raises(InvalidInput, match="unpacks to more than 2 MiB"):
        load_file(str(path), limits=limits)


@pytest.mark.parametrize("name", ["notes.txt", "notes.md", "page.html"])
def test_text_over_the_character_cap_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("word " * 2000)
    limits = IngestLimits(max_chars=1000)
    with pytest.raises(InvalidInput, match=r"more than [\d,]+ characters.*GURU_INGEST_MAX_CHARS"):
        load_file(str(path), limits=limits)
    assert load_file(str(path), limits=IngestLimits(max_chars=20_000)).sections


def test_pdf_text_over_the_character_cap_is_refused(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "a.pdf", "The raid starts at nine and ends at ten")
    with pytest.raises(InvalidInput, match="more than 10 characters"):
        load_file(str(path), limits=IngestLimits(max_chars=10))


async def test_isolated_parse_returns_what_the_loader_returns(tmp_path: Path) -> None:
    path = write_docx(tmp_path / "notes.docx", ["Meeting notes", "Ship on Friday"])
    isolated = await parse_untrusted(str(path), IngestLimits(), MAX_FILE_BYTES)
    assert isolated == load_file(str(path))


async def test_isolated_parse_names_the_refusal_of_the_loader(tmp_path: Path) -> None:
    bomb = write_docx_bomb(tmp_path / "bomb.docx")
    with pytest.raises(InvalidInput, match="zip bomb"):
        await parse_untrusted(str(bomb), IngestLimits(), MAX_FILE_BYTES)


async def test_a_parser_over_its_memory_cap_dies_in_the_child_not_the_bot(tmp_path: Path) -> None:
    bomb = write_docx_bomb(tmp_path / "bomb.docx", megabytes=40)
    limits = IngestLimits(**{**_OPEN.to_dict(), "parse_memory_mb": 80})
    before = _peak_rss_kib()
    with pytest.raises(InvalidInput, match="GURU_PARSE_MEMORY_MB"):
        await parse_untrusted(str(bomb), limits, MAX_FILE_BYTES)
    assert _peak_rss_kib() - before < 20_000


async def test_a_parser_past_its_deadline_is_killed(tmp_path: Path) -> None:
    bomb = write_docx_bomb(tmp_path / "bomb.docx", megabytes=40)
    limits = IngestLimits(**{**_OPEN.to_dict(), "parse_timeout_s": 0.05})
    with pytest.raises(InvalidInput, match="took longer than 0.05 s.*GURU_PARSE_TIMEOUT_S"):
        await parse_untrusted(str(bomb), limits, MAX_FILE_BYTES)


async def test_the_parser_child_gets_no_secrets(tmp_path: Path, monkeypatch) -> None:
    from core.rag import isolated

    monkeypatch.setenv("DISCORD_TOKEN", "sekrit")
    seen: dict[str, str] = {}

    async def spy(*args, env, **kwargs):  # the environment the child would be started with
        seen.update(env)
        raise InvalidInput("stop here")

    monkeypatch.setattr(isolated.asyncio, "create_subprocess_exec", spy)
    with pytest.raises(InvalidInput):
        await parse_untrusted(str(tmp_path / "x.txt"), IngestLimits(), MAX_FILE_BYTES)
    assert "PYTHONPATH" in seen and "DISCORD_TOKEN" not in seen


def _doc(uri: str, words: int) -> ParsedDocument:
    return ParsedDocument(uri, uri, (Section("", " ".join(f"word{i}" for i in range(words))),))


async def test_a_document_over_the_chunk_cap_is_refused_and_the_batch_goes_on(
    ingestor, new_guild, tmp_path: Path
) -> None:
    from core.rag.ingest import Ingestor

    small = Ingestor(ingestor.pool, ingestor.embedder, IngestLimits(max_doc_chunks=2))
    (tmp_path / "long.txt").write_text(" ".join(f"word{i}" for i in range(3000)))
    (tmp_path / "short.txt").write_text("Meetups are on Fridays.")
    guild = new_guild()
    outcomes = [o async for o in small.ingest_paths(guild, [str(tmp_path)])]
    by_name = {Path(o.uri).name: o for o in outcomes}
    assert by_name["long.txt"].status == "error"
    assert "GURU_INGEST_MAX_DOC_CHUNKS" in (by_name["long.txt"].error or "")
    assert by_name["short.txt"].status == "added"


async def test_a_guild_over_its_chunk_cap_is_refused_and_other_guilds_are_not(
    ingestor, new_guild
) -> None:
    from core.rag.ingest import Ingestor

    scratch = new_guild()
    size = (await ingestor.ingest_document(scratch, _doc("a", 300))).chunks
    assert size >= 2
    capped = Ingestor(ingestor.pool, ingestor.embedder, IngestLimits(max_guild_chunks=size + 1))
    guild, other = new_guild(), new_guild()
    assert (await capped.ingest_document(guild, _doc("a", 300))).status == "added"
    full = await capped.ingest_document(guild, _doc("b", 300))
    assert full.status == "error" and "GURU_INGEST_MAX_GUILD_CHUNKS" in (full.error or "")
    replaced = await capped.ingest_document(guild, _doc("a", 301))  # its own chunks make room
    assert replaced.status == "replaced"
    assert (await capped.ingest_document(other, _doc("b", 300))).status == "added"
    assert [d.uri for d in await capped.list_documents(guild)] == ["a"]


async def test_parses_beyond_the_parallel_limit_wait_their_turn(
    tmp_path: Path, monkeypatch
) -> None:
    from core.rag import isolated

    running, most = 0, 0
    real = isolated._parse

    async def counted(*args):
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return await real(*args)
        finally:
            running -= 1

    monkeypatch.setattr(isolated, "_parse", counted)
    path = write_docx(tmp_path / "notes.docx", ["Meeting notes", "Ship on Friday"])
    docs = await asyncio.gather(
        *(parse_untrusted(str(path), IngestLimits(), MAX_FILE_BYTES) for _ in range(5))
    )
    assert len({d.sections for d in docs}) == 1 and most == isolated.PARALLEL_PARSES
