"""Ingestion on the real embedded Postgres and the real encoder: atomic, idempotent, isolated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from core.db.pool import Pool, connect
from core.errors import NotFound
from core.rag.ingest import Ingestor
from core.rag.retrieve import Retriever
from core.rag.store import ChunkRepo
from core.rag.types import IngestOutcome
from tests.integration.rag.files import write_pdf

LONG = "\n\n".join(
    f"Paragraph {i}: the guild bank opens on weekday {i % 7} and lends "
    f"{i * 10} gold to members who finished quest number {i}."
    for i in range(60)
)


async def ingest(ingestor: Ingestor, guild: int, *paths: Path | str) -> list[IngestOutcome]:
    return [o async for o in ingestor.ingest_paths(guild, [str(p) for p in paths])]


async def rows(pool: Pool, guild: int) -> tuple[int, int]:
    """(documents, chunks) the guild has."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM documents WHERE guild_id = %(g)s),"
            " (SELECT count(*) FROM chunks WHERE guild_id = %(g)s)",
            {"g": guild},
        )
        docs, chunks = await cur.fetchone()  # type: ignore[misc]
    return docs, chunks


async def test_reingesting_unchanged_content_is_a_no_op(
    ingestor: Ingestor, rag_pool: Pool, new_guild: Callable[[], int], tmp_path: Path
) -> None:
    guild = new_guild()
    path = tmp_path / "bank.md"
    path.write_text("# Guild bank\n\n" + LONG)
    [first] = await ingest(ingestor, guild, path)
    assert first.status == "added" and first.chunks > 3
    async with rag_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT min(id), max(id) FROM chunks WHERE guild_id = %(g)s", {"g": guild}
        )
        before = await cur.fetchone()
    [again] = await ingest(ingestor, guild, path)
    assert (again.status, again.document_id, again.chunks) == (
        "unchanged",
        first.document_id,
        first.chunks,
    )
    async with rag_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT min(id), max(id) FROM chunks WHERE guild_id = %(g)s", {"g": guild}
        )
        assert await cur.fetchone() == before  # not rewritten


async def test_changed_content_replaces_the_old_version(
    ingestor: Ingestor,
    retriever: Retriever,
    rag_pool: Pool,
    new_guild: Callable[[], int],
    tmp_path: Path,
) -> None:
    guild = new_guild()
    path = tmp_path / "rules.md"
    path.write_text("# Rules\n\nVoice chat closes at midnight.")
    [first] = await ingest(ingestor, guild, path)
    path.write_text("# Rules\n\nVoice chat is open all night on weekends.")
    [second] = await ingest(ingestor, guild, path)
    assert second.status == "replaced" and second.document_id == first.document_id
    assert await rows(rag_pool, guild) == (1, 1)
    texts = [h.text for h in await retriever.search(guild, "when does voice chat close", 5)]
    assert texts == ["Voice chat is open all night on weekends."]


class Killed(RuntimeError):
    pass


@pytest.mark.parametrize("replace", [False, True], ids=["new-document", "replacement"])
async def test_connection_killed_mid_ingest_leaves_old_or_nothing(
    ingestor: Ingestor,
    rag_pool: Pool,
    rag_url: str,
    new_guild: Callable[[], int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    replace: bool,
) -> None:
    guild = new_guild()
    path = tmp_path / "bank.md"
    if replace:
        path.write_text("# Guild bank\n\nThe bank is closed.")
        [old] = await ingest(ingestor, guild, path)
        assert old.status == "added"
    path.write_text("# Guild bank\n\n" + LONG)
    real_insert = ChunkRepo.insert_many

    async def insert_then_die(self: ChunkRepo, guild_id, document_id, chunks, embeddings):  # type: ignore[no-untyped-def]
        await real_insert(self, guild_id, document_id, chunks[:2], embeddings[:2])
        pid = self.conn.info.backend_pid
        async with connect(rag_url) as killer:  # the server ends our backend mid-transaction
            await killer.execute("SELECT pg_terminate_backend(%(pid)s)", {"pid": pid})
        return await real_insert(self, guild_id, document_id, chunks[2:], embeddings[2:])

    monkeypatch.setattr(ChunkRepo, "insert_many", insert_then_die)
    [crashed] = await ingest(ingestor, guild, path)
    assert crashed.status == "error" and "nothing of this document was written" in crashed.error
    assert await rows(rag_pool, guild) == ((1, 1) if replace else (0, 0))

    monkeypatch.setattr(ChunkRepo, "insert_many", real_insert)
    [retry] = await ingest(ingestor, guild, path)
    assert retry.status == ("replaced" if replace else "added")
    assert await rows(rag_pool, guild) == (1, retry.chunks)


async def test_exception_between_chunk_inserts_rolls_the_document_back(
    ingestor: Ingestor,
    rag_pool: Pool,
    new_guild: Callable[[], int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guild = new_guild()
    (tmp_path / "bank.md").write_text("# Guild bank\n\n" + LONG)
    (tmp_path / "ok.md").write_text("# Fine\n\nThis one is fine.")
    real_insert = ChunkRepo.insert_many

    async def insert_then_raise(self: ChunkRepo, guild_id, document_id, chunks, embeddings):  # type: ignore[no-untyped-def]
        if len(chunks) > 1:
            await real_insert(self, guild_id, document_id, chunks[:1], embeddings[:1])
            raise Killed("process died")
        return await real_insert(self, guild_id, document_id, chunks, embeddings)

    monkeypatch.setattr(ChunkRepo, "insert_many", insert_then_raise)
    with pytest.raises(Killed):
        await ingest(ingestor, guild, tmp_path / "bank.md")
    assert await rows(rag_pool, guild) == (0, 0)


async def test_bad_inputs_get_one_line_each_and_the_rest_is_ingested(
    ingestor: Ingestor, rag_pool: Pool, new_guild: Callable[[], int], tmp_path: Path
) -> None:
    guild = new_guild()
    (tmp_path / "good.md").write_text("# Good\n\nThe raid is on Friday.")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin1.txt").write_bytes("crème".encode("latin-1"))
    (tmp_path / "binary.md").write_bytes(b"\x00\x01\x02")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    write_pdf(tmp_path / "scan.pdf", None)
    (tmp_path / "zz.txt").write_text("Also good: bring snacks.")
    outcomes = await ingest(ingestor, guild, tmp_path, tmp_path / "missing.md")
    status = {Path(o.uri).name: (o.status, o.error) for o in outcomes}
    assert status["good.md"][0] == status["zz.txt"][0] == "added"
    for name, reason in [
        ("empty.txt", "empty"),
        ("latin1.txt", "UTF-8"),
        ("binary.md", "binary"),
        ("photo.jpg", "unsupported"),
        ("scan.pdf", "no text layer"),
        ("missing.md", "no such file"),
    ]:
        assert status[name][0] == "error" and reason in status[name][1], name
    assert await rows(rag_pool, guild) == (2, 2)


async def test_discord_message_is_a_document_with_its_jump_url(
    ingestor: Ingestor, new_guild: Callable[[], int]
) -> None:
    guild = new_guild()
    url = f"https://discord.com/channels/{guild}/1/2"
    outcome = await ingestor.ingest_message(
        guild, "Server rules: be kind.", jump_url=url, author="mod#1", channel="rules"
    )
    assert outcome.status == "added"
    [doc] = await ingestor.list_documents(guild)
    assert (doc.uri, doc.source, doc.metadata) == (
        url,
        "discord",
        {"author": "mod#1", "channel": "rules"},
    )


async def test_guilds_never_see_each_others_documents(
    ingestor: Ingestor, retriever: Retriever, new_guild: Callable[[], int], tmp_path: Path
) -> None:
    a, b = new_guild(), new_guild()
    path = tmp_path / "secret.md"
    path.write_text("# Secret plans\n\nThe password for the treasure vault is swordfish.")
    [doc] = await ingest(ingestor, a, path)
    (tmp_path / "b.md").write_text("# Cooking\n\nBoil the pasta for nine minutes.")
    await ingest(ingestor, b, tmp_path / "b.md")
    for mode in ("vector", "text", "hybrid"):
        hits = await retriever.search(b, "treasure vault password swordfish", 10, mode)  # type: ignore[arg-type]
        assert all("swordfish" not in h.text for h in hits), mode
    assert [d.title for d in await ingestor.list_documents(b)] == ["Cooking"]
    with pytest.raises(NotFound):
        await ingestor.remove(b, str(doc.document_id))
    with pytest.raises(NotFound):
        await ingestor.remove(b, str(path))
    assert [d.id for d in await ingestor.list_documents(a)] == [doc.document_id]


async def test_the_same_uri_in_two_guilds_is_two_documents(
    ingestor: Ingestor, new_guild: Callable[[], int], tmp_path: Path
) -> None:
    a, b = new_guild(), new_guild()
    path = tmp_path / "faq.md"
    path.write_text("# FAQ\n\nAsk in #help.")
    [da] = await ingest(ingestor, a, path)
    [db] = await ingest(ingestor, b, path)
    assert da.status == db.status == "added" and da.document_id != db.document_id
    await ingestor.remove(a, str(path))
    assert [d.id for d in await ingestor.list_documents(b)] == [db.document_id]


async def test_forget_erases_every_row_of_the_guild_only(
    ingestor: Ingestor, rag_pool: Pool, new_guild: Callable[[], int], tmp_path: Path
) -> None:
    a, b = new_guild(), new_guild()
    (tmp_path / "a.md").write_text("# A\n\n" + LONG)
    await ingest(ingestor, a, tmp_path / "a.md")
    await ingest(ingestor, b, tmp_path / "a.md")
    async with rag_pool.connection() as conn:
        await conn.execute(
            "INSERT INTO guild_settings (guild_id, temperature) VALUES (%(g)s, 0.5)", {"g": a}
        )
        await conn.execute(
            "INSERT INTO audit_log (guild_id, action, detail) VALUES (%(g)s, 'x', '{\"k\": 1}')",
            {"g": a},
        )
    counts = await ingestor.forget_guild(a)
    assert counts["documents"] == 1 and counts["chunks"] > 3 and counts["guilds"] == 1
    assert counts["guild_settings"] == 1 and counts["audit_log"] == 1
    async with rag_pool.connection() as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'guild_id'"
            " AND table_schema = current_schema() AND table_name <> 'audit_log'"
        )
        for (table,) in await cur.fetchall():
            left = await conn.execute(
                psycopg.sql.SQL("SELECT count(*) FROM {} WHERE guild_id = %(g)s").format(
                    psycopg.sql.Identifier(table)
                ),
                {"g": a},
            )
            assert (await left.fetchone())[0] == 0, table  # type: ignore[index]
        cur = await conn.execute("SELECT detail FROM audit_log WHERE guild_id = %(g)s", {"g": a})
        assert await cur.fetchall() == [({},)]  # the trail stays, without its content
    assert (await rows(rag_pool, b))[0] == 1
    with pytest.raises(NotFound):
        await ingestor.forget_guild(a)
