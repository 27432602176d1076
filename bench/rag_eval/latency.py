"""Search latency for one guild among several, and HNSW recall@10 against exact search.

Synthetic data: unit vectors scattered around size/200 random centres (real embeddings cluster by
topic; uniform random vectors in 384 dims have no near neighbours worth finding), split evenly
over `GUILDS` guilds, with short texts from a small vocabulary so full-text search has work.
The table is bulk-loaded with COPY before the HNSW index is built, and kept between runs.
Queries come from the same distribution; exact neighbours come from the same SQL with index
scans disabled.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

import numpy as np

from core.db.pool import Pool
from core.rag.embedder import EMBEDDING_DIM, Embedder
from core.rag.retrieve import Retriever

__all__ = ["measure_latency"]

log = logging.getLogger(__name__)

GUILDS = 10
POINTS_PER_CENTRE = 200  # 20 per guild: a query's top 10 share its topic, as real ones do
QUERIES = 100
WORDS = (
    "commit branch merge rebase stash remote fetch push pull tag index tree blob hook "
    "config diff log reset revert clean archive worktree submodule bisect blame"
).split()
EXACT_SQL = """
SELECT id FROM chunks WHERE guild_id = %(guild_id)s
ORDER BY embedding <=> %(embedding)s LIMIT 10
"""


def _vectors(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    picks = centres[rng.integers(0, len(centres), n)]
    # noise of norm ~0.7: cosine ~0.8 to the centre, ~0.65 between neighbours (MiniLM-like)
    v = picks + rng.normal(0, 0.7 / np.sqrt(EMBEDDING_DIM), (n, EMBEDDING_DIM))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


async def _build(pool: Pool, size: int, rng: np.random.Generator, centres: np.ndarray) -> None:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM chunks")
        have = (await cur.fetchone())[0]  # type: ignore[index]
        if have == size:
            return
        started = time.perf_counter()
        await conn.execute("TRUNCATE documents CASCADE")
        await conn.execute("DROP INDEX IF EXISTS chunks_embedding_hnsw")
        per_guild = size // GUILDS
        for g in range(1, GUILDS + 1):
            cur = await conn.execute(
                "INSERT INTO documents (guild_id, source, uri, title, content_hash)"
                " VALUES (%(g)s, 'text', 'synthetic', 'synthetic', repeat('0', 64)) RETURNING id",
                {"g": g},
            )
            doc_id = (await cur.fetchone())[0]  # type: ignore[index]
            vectors = _vectors(rng, centres, per_guild)
            async with conn.cursor().copy(
                "COPY chunks (guild_id, document_id, position, title, text, embedding)"
                " FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "int8", "int4", "text", "text", "vector"])
                for i in range(per_guild):
                    text = " ".join(rng.choice(WORDS, 12))
                    await copy.write_row((g, doc_id, i, "synthetic", text, vectors[i]))
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute(
            "CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops)"
        )
        await conn.execute("ANALYZE chunks")
        log.info(
            "built %d synthetic chunks with HNSW in %.0fs", size, time.perf_counter() - started
        )


async def measure_latency(pool: Pool, embedder: Embedder, size: int) -> dict[str, Any]:
    rng = np.random.default_rng(size)
    centres = rng.normal(size=(max(1, size // POINTS_PER_CENTRE), EMBEDDING_DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    await _build(pool, size, rng, centres)
    retrievers = {
        "vector": Retriever(pool, embedder),
        "hybrid": Retriever(pool, embedder),
    }
    queries = _vectors(np.random.default_rng(size + 1), centres, QUERIES)
    guild = GUILDS // 2
    times: dict[str, list[float]] = {name: [] for name in retrievers}
    recalls = []
    for i, q in enumerate(queries):
        text = " ".join(np.random.default_rng(i).choice(WORDS, 3))
        for name, retriever in retrievers.items():
            mode = "vector" if name == "vector" else "hybrid"
            started = time.perf_counter()
            hits = await retriever.search_embedded(guild, text, q, 10, mode)
            times[name].append((time.perf_counter() - started) * 1000)
            if name == "vector":
                recalls.append(len({h.chunk_id for h in hits} & await _exact(pool, guild, q)) / 10)
    warm = {m: t[5:] for m, t in times.items()}  # the first queries load the index pages
    return {
        "chunks": size,
        "guilds": GUILDS,
        "guild_chunks": size // GUILDS,
        "vector_p50_ms": round(statistics.median(warm["vector"]), 2),
        "vector_p95_ms": round(_p95(warm["vector"]), 2),
        "hybrid_p50_ms": round(statistics.median(warm["hybrid"]), 2),
        "hybrid_p95_ms": round(_p95(warm["hybrid"]), 2),
        "recall@10": round(float(np.mean(recalls)), 4),
    }


async def _exact(pool: Pool, guild: int, q: np.ndarray) -> set[int]:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_indexscan = off")
        cur = await conn.execute(EXACT_SQL, {"guild_id": guild, "embedding": q})
        return {r[0] for r in await cur.fetchall()}


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]
