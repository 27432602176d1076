"""BM25 full-text ranking (migration 0005): rare terms win, statistics stay exact, per guild."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.db.migrate import migrate
from core.db.pool import Pool, connect
from core.rag.ingest import Ingestor
from core.rag.retrieve import Retriever
from core.rag.types import IngestOutcome

# Five pages that say "commit" over and over, one that says it once next to a rare word.
COMMON = (
    "Commit your work often. Every commit records a commit message, and a commit author "
    "signs each commit. Review the commit before you push the commit."
)
RARE = "The reflog remembers where the branch tip was, even after a commit is lost."


async def ingest(ingestor: Ingestor, guild: int, *paths: Path) -> list[IngestOutcome]:
    outcomes = [o async for o in ingestor.ingest_paths(guild, [str(p) for p in paths])]
    assert all(o.status != "error" for o in outcomes), outcomes
    return outcomes


def write_pages(root: Path, extra: int = 0) -> list[Path]:
    paths = []
    for i in range(5 + extra):
        path = root / f"commits-{i}.md"
        path.write_text(f"# Commit guide part {i}\n\n{COMMON}")
        paths.append(path)
    rare = root / "recovery.md"
    rare.write_text(f"# Recovery\n\n{RARE}")
    return [*paths, rare]


async def stats(pool: Pool, guild: int) -> tuple[dict[str, int], tuple[int, int] | None]:
    """The maintained statistics of a guild: ({term: df}, (chunks, tokens))."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT term, df FROM rag_term_stats WHERE guild_id = %(g)s", {"g": guild}
        )
        terms = {t: df for t, df in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT chunks, tokens FROM rag_guild_stats WHERE guild_id = %(g)s", {"g": guild}
        )
        row = await cur.fetchone()
    return terms, (row[0], row[1]) if row else None


async def recomputed(pool: Pool, guild: int) -> tuple[dict[str, int], tuple[int, int] | None]:
    """The same statistics counted from scratch over the guild's chunks."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u"
            " WHERE c.guild_id = %(g)s GROUP BY 1",
            {"g": guild},
        )
        terms = {t: n for t, n in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT count(*), sum(rag_tsv_length(tsv)) FROM chunks WHERE guild_id = %(g)s",
            {"g": guild},
        )
        n, tokens = await cur.fetchone()  # type: ignore[misc]
    return terms, (n, tokens) if n else None


async def test_bm25_ranks_the_rare_term_document_first(
    ingestor: Ingestor, retriever: Retriever, new_guild: Callable[[], int], tmp_path: Path
) -> None:
    guild = new_guild()
    await ingest(ingestor, guild, *write_pages(tmp_path))
    hits = await retriever.search(guild, "commit reflog", 6, "text")
    # Without IDF the pages saying "commit" six times outrank the one with the rare word.
    assert Path(hits[0].uri).name == "recovery.md"
    assert hits[0].score > hits[1].score > 0


async def test_term_statistics_stay_exact_through_replace_remove_and_rollback(
    ingestor: Ingestor, rag_pool: Pool, new_guild: Callable[[], int], tmp_path: Path
) -> None:
    guild = new_guild()
    paths = write_pages(tmp_path)
    await ingest(ingestor, guild, *paths)
    assert await stats(rag_pool, guild) == await recomputed(rag_pool, guild)
    assert (await stats(rag_pool, guild))[0]["reflog"] == 1

    paths[-1].write_text("# Recovery\n\nUse fsck to find dangling objects.")  # replace
    await ingest(ingestor, guild, paths[-1])
    terms, _ = await stats(rag_pool, guild)
    assert "reflog" not in terms and terms["fsck"] == 1
    assert await stats(rag_pool, guild) == await recomputed(rag_pool, guild)

    before = await stats(rag_pool, guild)
    with pytest.raises(RuntimeError):  # a write that rolls back leaves the statistics alone
        async with rag_pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM documents WHERE guild_id = %(g)s", {"g": guild})
            raise RuntimeError("crash mid-transaction")
    assert await stats(rag_pool, guild) == before

    await ingestor.remove(guild, str(paths[0]))
    assert (await stats(rag_pool, guild))[0]["commit"] == 4  # one chunk per remaining page
    assert await stats(rag_pool, guild) == await recomputed(rag_pool, guild)

    await ingestor.forget_guild(guild)
    assert await stats(rag_pool, guild) == ({}, None)


async def test_another_guilds_documents_do_not_change_the_ranking(
    ingestor: Ingestor, retriever: Retriever, new_guild: Callable[[], int], tmp_path: Path
) -> None:
    a, b = new_guild(), new_guild()
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    await ingest(ingestor, a, *write_pages(tmp_path / "a"))
    before = [(h.chunk_id, h.score) for h in await retriever.search(a, "commit reflog", 6, "text")]
    # Guild B makes "reflog" common and "commit" rare in its own statistics.
    for i in range(8):
        (tmp_path / "b" / f"r{i}.md").write_text(f"# Reflog {i}\n\nThe reflog, the reflog.")
    await ingest(ingestor, b, *(tmp_path / "b").glob("*.md"))
    after = [(h.chunk_id, h.score) for h in await retriever.search(a, "commit reflog", 6, "text")]
    assert after == before


async def test_pruned_ranking_scores_like_the_reference_function(
    ingestor: Ingestor,
    retriever: Retriever,
    rag_pool: Pool,
    new_guild: Callable[[], int],
    tmp_path: Path,
) -> None:
    guild = new_guild()
    await ingest(ingestor, guild, *write_pages(tmp_path, extra=3))
    hits = await retriever.search(guild, "lost commit reflog", 9, "text")
    async with rag_pool.connection() as conn:
        cur = await conn.execute(
            "WITH g AS (SELECT chunks::float8 AS n, tokens::float8 / chunks AS avgdl"
            "           FROM rag_guild_stats WHERE guild_id = %(g)s),"
            " w AS (SELECT array_agg(s.term) AS terms,"
            "              array_agg(ln(1 + (g.n - s.df + 0.5) / (s.df + 0.5))) AS idfs"
            "       FROM g, rag_term_stats s WHERE s.guild_id = %(g)s"
            "       AND s.term IN ('lost', 'commit', 'reflog'))"
            " SELECT c.id, rag_bm25(c.tsv, w.terms, w.idfs, g.avgdl, 1.2, 0.75, 2.0) AS score"
            " FROM chunks c, g, w WHERE c.guild_id = %(g)s ORDER BY score DESC, c.id LIMIT 9",
            {"g": guild},
        )
        reference = await cur.fetchall()
    assert [h.chunk_id for h in hits] == [r[0] for r in reference]
    assert [h.score for h in hits] == pytest.approx([r[1] for r in reference])


async def test_quotes_and_backslashes_in_a_query_are_just_text(
    ingestor: Ingestor, retriever: Retriever, new_guild: Callable[[], int], tmp_path: Path
) -> None:
    guild = new_guild()
    (tmp_path / "odd.md").write_text("# Odd\n\nThe path C:\\temp\\it's and O'Brien's \\\\ share.")
    await ingest(ingestor, guild, tmp_path / "odd.md")
    for query in ["O'Brien's", "C:\\temp\\it's", "'''", "\\\\", 'it\'s -not "a phrase"']:
        await retriever.search(guild, query, 5, "text")  # no SQL or tsquery syntax error
    hits = await retriever.search(guild, "O'Brien's share", 5, "text")
    assert hits and Path(hits[0].uri).name == "odd.md"


async def test_truncate_empties_the_statistics(fresh_database_url: str) -> None:
    async with connect(fresh_database_url) as conn:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO documents (guild_id, source, uri, content_hash)"
            " VALUES (7, 'text', 'a', repeat('0', 64))"
        )
        await conn.execute(
            "INSERT INTO chunks (guild_id, document_id, position, text, embedding)"
            " SELECT 7, id, 0, 'reflog', array_fill(0.1, ARRAY[384])::vector FROM documents"
        )
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM rag_term_stats), (SELECT count(*) FROM rag_guild_stats)"
        )
        assert await cur.fetchone() == (1, 1)
        await conn.execute("TRUNCATE documents CASCADE")  # no DELETE triggers fire
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM rag_term_stats), (SELECT count(*) FROM rag_guild_stats)"
        )
        assert await cur.fetchone() == (0, 0)
