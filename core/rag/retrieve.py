"""`Retriever`: vector, full-text and hybrid (reciprocal rank fusion) search within one guild.

Two parameterised queries fused in Python rather than one big SQL: each list stays a plain
index scan (HNSW for vectors, GIN for text), both run in one read-only transaction, and the
fusion is easy to test. Vector search sets `hnsw.iterative_scan = relaxed_order` for its
transaction so a guild filter on a shared index still returns k rows; the outer ORDER BY
restores exact order. Full-text search ORs the query's terms (questions rarely contain every
word of the answer) and reports whether the chunk matched all of them (`Hit.exact`); chunks
matching every term come first in the text list.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row

from core.db.pool import Pool
from core.errors import InvalidInput
from core.rag.embedder import Embedder
from core.rag.ingest import check_guild_id
from core.rag.types import Hit, SearchMode

__all__ = ["Retriever", "Bm25", "rrf_fuse", "RRF_K", "FUSION_WEIGHTS", "BM25", "MAX_QUERY_CHARS"]

log = logging.getLogger(__name__)

RRF_K = 60  # the constant from Cormack et al.; damps the head of each list
MAX_QUERY_CHARS = 2000
EF_SEARCH = 100
# RRF weights of the vector, all-terms and BM25 (any-term) lists; see `Retriever.search_embedded`.
FUSION_WEIGHTS = (1.0, 1.0, 0.3)


@dataclass(frozen=True)
class Bm25:
    """BM25 parameters: k1 and b are the usual defaults (Robertson; Lucene, Elasticsearch);
    a title term counts `title_weight` times (BM25F-style, the title is a short, strong field)."""

    k1: float = 1.2
    b: float = 0.75
    title_weight: float = 2.0


BM25 = Bm25()

_VECTOR_SQL = """
WITH nearest AS MATERIALIZED (
    SELECT c.id, c.document_id, c.title, c.text, c.tsv, c.embedding <=> %(embedding)s AS distance
    FROM chunks c
    WHERE c.guild_id = %(guild_id)s
    ORDER BY c.embedding <=> %(embedding)s
    LIMIT %(limit)s
)
SELECT n.id AS chunk_id, n.document_id, n.title, d.uri, n.text, 1 - n.distance AS similarity,
       n.tsv @@ websearch_to_tsquery('english', %(query)s) AS exact
FROM nearest n
JOIN documents d ON d.guild_id = %(guild_id)s AND d.id = n.document_id
WHERE d.status = 'ready'
ORDER BY n.distance
"""

# BM25 over the guild's own term statistics (migration 0007): idf from rag_term_stats, avgdl
# from rag_guild_stats, the score from rag_bm25(). Candidates are the chunks with any query term
# (GIN); `exact` still means "every term" (websearch AND) and feeds the relevance floor.
_TEXT_SQL = """
WITH q AS (
    SELECT strict,
           CASE WHEN numnode(strict) = 0 OR position('!' IN strict::text) > 0 THEN strict
                ELSE replace(strict::text, ' & ', ' | ')::tsquery END AS loose
    FROM websearch_to_tsquery('english', %(query)s) AS strict
),
g AS (
    SELECT chunks::float8 AS n, tokens::float8 / greatest(chunks, 1) AS avgdl
    FROM rag_guild_stats WHERE guild_id = %(guild_id)s
),
w AS (
    SELECT array_agg(s.term ORDER BY s.term) AS terms,
           array_agg(ln(1 + (g.n - s.df + 0.5) / (s.df + 0.5)) ORDER BY s.term) AS idfs
    FROM g, (SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %(query)s))) t
    JOIN rag_term_stats s ON s.guild_id = %(guild_id)s AND s.term = t.lexeme
)
SELECT c.id AS chunk_id, c.document_id, c.title, d.uri, c.text,
       rag_bm25(c.tsv, w.terms, w.idfs, g.avgdl, %(k1)s, %(b)s, %(title_weight)s) AS rank,
       1 - (c.embedding <=> %(embedding)s) AS similarity,
       c.tsv @@ q.strict AS exact
FROM q, g, w, chunks c
JOIN documents d ON d.guild_id = c.guild_id AND d.id = c.document_id
WHERE c.guild_id = %(guild_id)s AND d.status = 'ready' AND {match}
ORDER BY rank DESC, c.id
LIMIT %(limit)s
"""
# Ranking every chunk with any query term costs ~100 ms at 5k real chunks and ~200 ms at 100k
# synthetic ones (common words match most chunks). `fast_hybrid` ranks only the chunks with all
# the terms plus the vector candidates with any: faster, but it misses text-only finds.
_TEXT_ANY = _TEXT_SQL.replace("{match}", "c.tsv @@ q.loose")
_TEXT_HYBRID = _TEXT_SQL.replace(
    "{match}", "(c.tsv @@ q.strict OR (c.id = ANY(%(candidates)s) AND c.tsv @@ q.loose))")


def rrf_fuse(lists: list[list[Hit]], k: int, rrf_k: int = RRF_K,
             weights: list[float] | None = None) -> list[Hit]:
    """Weighted reciprocal rank fusion: score = Σ w / (rrf_k + rank) over a chunk's lists."""
    scores: dict[int, float] = {}
    best: dict[int, Hit] = {}
    for hits, weight in zip(lists, weights or [1.0] * len(lists)):
        for rank, hit in enumerate(hits, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (rrf_k + rank)
            best.setdefault(hit.chunk_id, hit)
    ranked = sorted(scores, key=lambda cid: (-scores[cid], -best[cid].similarity, cid))[:k]
    return [_with_score(best[cid], scores[cid]) for cid in ranked]


def _with_score(hit: Hit, score: float) -> Hit:
    return Hit(hit.chunk_id, hit.document_id, hit.title, hit.uri, hit.text, score,
               hit.similarity, hit.exact)


class Retriever:
    """Read side of the knowledge base: `search(guild_id, query, k, mode)`."""

    def __init__(self, pool: Pool, embedder: Embedder, *, ef_search: int = EF_SEARCH,
                 candidates: int = 50,
                 weights: tuple[float, float, float] = FUSION_WEIGHTS,
                 bm25: Bm25 = BM25, fast_hybrid: bool = False) -> None:
        self.pool = pool
        self.bm25 = bm25
        self.fast_hybrid = fast_hybrid
        self.weights = weights
        self.embedder = embedder
        self.ef_search = ef_search
        self.candidates = candidates

    async def search(self, guild_id: int, query: str, k: int = 5,
                     mode: SearchMode = "hybrid") -> list[Hit]:
        """The guild's k best chunks for `query`; empty when nothing matches at all."""
        check_guild_id(guild_id)
        query = _check_query(query)
        if not 1 <= k <= 100:
            raise InvalidInput("k must be between 1 and 100.")
        embedding = await self.embedder.embed_one(query)
        return await self.search_embedded(guild_id, query, embedding, k, mode)

    async def search_embedded(self, guild_id: int, query: str, embedding: np.ndarray, k: int,
                              mode: SearchMode) -> list[Hit]:
        """`search` with the query already embedded (batch evaluation embeds many at once)."""
        started = time.perf_counter()
        pool_size = max(k, self.candidates) if mode == "hybrid" else k
        params = {"guild_id": guild_id, "query": query, "embedding": embedding,
                  "limit": pool_size, "k1": self.bm25.k1, "b": self.bm25.b,
                  "title_weight": self.bm25.title_weight}
        async with self.pool.connection() as conn, conn.transaction():
            vector = await self._vector(conn, params) if mode != "text" else []
            if mode == "text":
                text = await self._text(conn, _TEXT_ANY, params)
            elif mode == "hybrid" and self.fast_hybrid:
                params["candidates"] = [h.chunk_id for h in vector]
                text = await self._text(conn, _TEXT_HYBRID, params)
            elif mode == "hybrid":
                text = await self._text(conn, _TEXT_ANY, params)
            else:
                text = []
        if mode == "vector":
            hits = [_with_score(h, h.similarity) for h in vector[:k]]
        elif mode == "text":
            hits = text[:k]
        else:
            # Three lists: meaning, all query terms (strong), any query term (weak). On git-doc
            # the any-term list alone ranks below vector search (common words everywhere), so
            # it gets a small weight; it still lifts rare identifiers the encoder cannot see.
            strict = [h for h in text if h.exact]
            hits = rrf_fuse([vector, strict, text], k, weights=list(self.weights))
        log.debug("search guild=%s mode=%s k=%d: %d hits in %.1f ms", guild_id, mode, k,
                  len(hits), (time.perf_counter() - started) * 1000)
        return hits

    async def _vector(self, conn: psycopg.AsyncConnection[Any],
                      params: dict[str, Any]) -> list[Hit]:
        # set_config(..., true) is SET LOCAL that accepts parameters; it ends with the transaction.
        await conn.execute(
            "SELECT set_config('hnsw.ef_search', %(ef)s, true),"
            " set_config('hnsw.iterative_scan', 'relaxed_order', true)",
            {"ef": str(max(self.ef_search, params["limit"]))},
        )
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_VECTOR_SQL, params)
            rows = await cur.fetchall()
        return [Hit(r["chunk_id"], r["document_id"], r["title"], r["uri"], r["text"],
                    float(r["similarity"]), float(r["similarity"]), bool(r["exact"])) for r in rows]

    async def _text(self, conn: psycopg.AsyncConnection[Any], query: str,
                    params: dict[str, Any]) -> list[Hit]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query.encode(), params)
            rows = await cur.fetchall()
        return [Hit(r["chunk_id"], r["document_id"], r["title"], r["uri"], r["text"],
                    float(r["rank"]), float(r["similarity"]), bool(r["exact"])) for r in rows]


def _check_query(query: str) -> str:
    query = " ".join(query.split())
    if not query:
        raise InvalidInput("The query is empty; ask something.")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"The query is too long (over {MAX_QUERY_CHARS} characters).")
    return query
