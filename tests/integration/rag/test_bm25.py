"""BM25 full-text ranking (migration 0007): rare terms win, statistics stay exact, per guild."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.db.pool import Pool
from core.rag.ingest import Ingestor
from core.rag.retrieve import Retriever
from core.rag.types import IngestOutcome

# Five pages that say "commit" over and over, one that says it once next to a rare word.
COMMON = "Commit your work often. Every commit records a commit message, and a commit author " \
         "signs each commit. Review the commit before you push the commit."
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
        cur = await conn.execute("SELECT term, df FROM rag_term_stats WHERE guild_id = %(g)s",
                                 {"g": guild})
        terms = {t: df for t, df in await cur.fetchall()}
        cur = await conn.execute("SELECT chunks, tokens FROM rag_guild_stats"
                                 " WHERE guild_id = %(g)s", {"g": guild})
        row = await cur.fetchone()
    return terms, (row[0], row[1]) if row else None


async def recomputed(pool: Pool, guild: int) -> tuple[dict[str, int], tuple[int, int] | None]:
    """The same statistics counted from scratch over the guild's chunks."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u"
                                 " WHERE c.guild_id = %(g)s GROUP BY 1", {"g": guild})
        terms = {t: n for t, n in await cur.fetchall()}
        cur = await conn.execute("SELECT count(*), sum(rag_tsv_length(tsv)) FROM chunks"
                                 " WHERE guild_id = %(g)s", {"g": guild})
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
