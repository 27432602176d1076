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
from core.rag.search_sql import TEXT_SQL, VECTOR_SQL
from core.rag.store import DocumentRepo
from core.rag.types import Access, Hit, SearchMode

__all__ = [
    "Retriever",
    "Expansion",
    "Bm25",
    "rrf_fuse",
    "RRF_K",
    "FUSION_WEIGHTS",
    "EXPANDED_WEIGHTS",
    "LIST_NAMES",
    "BM25",
    "MAX_QUERY_CHARS",
    "check_query",
]

log = logging.getLogger(__name__)

RRF_K = 60  # the constant from Cormack et al.; damps the head of each list
MAX_QUERY_CHARS = 2000
EF_SEARCH = 100
# RRF weights of the vector, all-terms and BM25 (any-term) lists. Chosen on half of
# bench/rag_eval (even questions) and reported on the other half: on Discord-style paraphrases
# BM25 rarely finds a page the encoder misses and often ranks pages that share the words, so
# its list only breaks near-ties; chunks with every query term (identifiers, exact phrases)
# weigh as much as meaning.
FUSION_WEIGHTS = (1.0, 1.0, 0.05)
# RRF weights of the five lists (LIST_NAMES) when a query expansion is given (core/rag/
# expansion.py, /ask with GURU_ASK_EXPAND): the passage's lists lead and the question's own
# vector list drops out (weight 0: a paraphrase's nearest chunks are what expansion is there to
# correct); the all-terms list keeps exact identifiers. Chosen on the even half of
# bench/rag_eval with Qwen2.5-Coder-1.5B's passages (grid in expansion.py): hybrid R@5 1.000 on
# both halves. Each hit's `similarity` stays the question's cosine, so the floor is unchanged.
EXPANDED_WEIGHTS = (0.0, 1.0, 0.05, 2.0, 1.0)
# Every list `ranked_lists` may return, in fusion order.
LIST_NAMES = ("vector", "all_terms", "bm25", "vector_expanded", "bm25_expanded")


@dataclass(frozen=True)
class Expansion:
    """A generated passage answering the query (HyDE / query2doc) and the embedding its
    vector list searches with."""

    text: str
    embedding: np.ndarray


@dataclass(frozen=True)
class Bm25:
    """BM25 parameters: k1 and b are the usual defaults (Robertson; Lucene, Elasticsearch);
    a title term counts `title_weight` times (BM25F-style, the title is a short, strong field)."""

    k1: float = 1.2
    b: float = 0.75
    title_weight: float = 2.0


BM25 = Bm25()


def rrf_fuse(
    lists: list[list[Hit]],
    k: int,
    rrf_k: int = RRF_K,
    weights: list[float] | None = None,
) -> list[Hit]:
    """Weighted reciprocal rank fusion: score = Σ w / (rrf_k + rank) over a chunk's lists."""
    scores: dict[int, float] = {}
    best: dict[int, Hit] = {}
    for hits, weight in zip(lists, weights or [1.0] * len(lists)):
        for rank, hit in enumerate(hits, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (rrf_k + rank)
            best.setdefault(hit.chunk_id, hit)
    fused = [_with_score(best[cid], score) for cid, score in scores.items()]
    return sorted(fused, key=lambda h: (-h.score, -h.similarity, h.chunk_id))[:k]


def _with_score(hit: Hit, score: float) -> Hit:
    return Hit(
        hit.chunk_id,
        hit.document_id,
        hit.title,
        hit.uri,
        hit.text,
        score,
        hit.similarity,
        hit.exact,
    )


class Retriever:
    """Read side of the knowledge base: `search(guild_id, query, k, mode)`."""

    def __init__(
        self,
        pool: Pool,
        embedder: Embedder,
        *,
        ef_search: int = EF_SEARCH,
        candidates: int = 50,
        weights: tuple[float, float, float] = FUSION_WEIGHTS,
        expanded_weights: tuple[float, ...] = EXPANDED_WEIGHTS,
        bm25: Bm25 = BM25,
    ) -> None:
        self.pool = pool
        self.bm25 = bm25
        self.weights = weights
        self.expanded_weights = expanded_weights
        self.embedder = embedder
        self.ef_search = ef_search
        self.candidates = candidates

    async def search(
        self,
        guild_id: int,
        query: str,
        k: int = 5,
        mode: SearchMode = "hybrid",
        expansion: Expansion | None = None,
        access: Access | None = None,
    ) -> list[Hit]:
        """The guild's k best chunks for `query` among the documents `access` may read (None:
        all); empty when nothing matches at all."""
        check_guild_id(guild_id)
        query = check_query(query)
        if not 1 <= k <= 100:
            raise InvalidInput("k must be between 1 and 100.")
        embedding = await self.embedder.embed_one(query)
        return await self.search_embedded(guild_id, query, embedding, k, mode, expansion, access)

    async def search_embedded(
        self,
        guild_id: int,
        query: str,
        embedding: np.ndarray,
        k: int,
        mode: SearchMode,
        expansion: Expansion | None = None,
        access: Access | None = None,
    ) -> list[Hit]:
        """`search` with the query already embedded (batch evaluation embeds many at once).

        With an `expansion` (a generated passage, core/rag/expansion.py) hybrid search adds two
        lists, vector search with the expansion's embedding and BM25 over the query's and the
        passage's terms, and fuses with `expanded_weights`; vector and text modes ignore it."""
        started = time.perf_counter()
        lists = await self.ranked_lists(
            guild_id, query, embedding, k, mode, expansion if mode == "hybrid" else None, access
        )
        if mode == "vector":
            hits = lists["vector"][:k]
        elif mode == "text":
            hits = lists["bm25"][:k]
        else:
            weights = dict(
                zip(
                    LIST_NAMES,
                    self.expanded_weights if "vector_expanded" in lists else self.weights,
                )
            )
            names = [n for n in LIST_NAMES if n in lists and weights[n] > 0]
            hits = rrf_fuse(
                [lists[n] for n in names],
                k,
                weights=[weights[n] for n in names],
            )
        log.debug(
            "search guild=%s mode=%s k=%d: %d hits in %.1f ms",
            guild_id,
            mode,
            k,
            len(hits),
            (time.perf_counter() - started) * 1000,
        )
        return hits

    async def ranked_lists(
        self,
        guild_id: int,
        query: str,
        embedding: np.ndarray,
        k: int,
        mode: SearchMode = "hybrid",
        expansion: Expansion | None = None,
        access: Access | None = None,
    ) -> dict[str, list[Hit]]:
        """The ranked lists `mode` fuses, by name (LIST_NAMES), before fusion; each hit's
        `similarity` is the cosine to `embedding` (the question), whatever list found it."""
        pool_size = max(k, self.candidates) if mode == "hybrid" else k
        params = {
            "guild_id": guild_id,
            "query": query,
            "terms": query,
            "embedding": embedding,
            "search": embedding,
            "limit": pool_size,
            "k1": self.bm25.k1,
            "b": self.bm25.b,
            "title_weight": self.bm25.title_weight,
            "prune": max(500, 10 * pool_size),
        }
        lists: dict[str, list[Hit]] = {}
        async with self.pool.connection() as conn, conn.transaction():
            params["hidden"] = await DocumentRepo(conn).hidden_ids(guild_id, access)
            if mode != "text":
                lists["vector"] = await self._vector(conn, params)
            if mode != "vector":
                text, all_terms = await self._text(conn, TEXT_SQL, params)
            if mode != "vector":
                # Three lists: meaning, every (known) query term (strong), BM25 over any term
                # (weak; see FUSION_WEIGHTS).
                lists["all_terms"] = [h for h in text if h.chunk_id in all_terms]
                lists["bm25"] = text
            if expansion is not None:
                # HyDE: the passage's embedding lands near answers phrased like documentation;
                # query2doc: the passage brings the documentation's words into BM25.
                lists["vector_expanded"] = await self._vector(
                    conn, {**params, "search": expansion.embedding}
                )
                # query2doc's sparse query: the question's and the passage's terms, each once
                # (the paper's 5 copies of the question, counted, lost R@5 0.750 -> 0.583 on
                # bench/rag_eval: the passage's feature names are what the question lacks).
                lists["bm25_expanded"], _ = await self._text(
                    conn, TEXT_SQL, {**params, "terms": f"{query} {expansion.text}"}
                )
        return lists

    async def _vector(
        self, conn: psycopg.AsyncConnection[Any], params: dict[str, Any]
    ) -> list[Hit]:
        # set_config(..., true) is SET LOCAL that accepts parameters; it ends with the transaction.
        await conn.execute(
            "SELECT set_config('hnsw.ef_search', %(ef)s, true),"
            " set_config('hnsw.iterative_scan', 'relaxed_order', true)",
            {"ef": str(max(self.ef_search, params["limit"]))},
        )
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(VECTOR_SQL, params)
            rows = await cur.fetchall()
        return [_hit(r, "score") for r in rows]

    async def _text(
        self, conn: psycopg.AsyncConnection[Any], query: str, params: dict[str, Any]
    ) -> tuple[list[Hit], set[int]]:
        """BM25-ranked hits, and the ids of those with every known query term."""
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query.encode(), params)
            rows = await cur.fetchall()
        # `all_known`: the chunk has every query term the guild's documents use at all. A word
        # no document contains ("why do I *get* QX-1474") cannot tell chunks apart, so it must
        # not keep the identifier's page out of the all-terms list that fusion trusts. But one
        # known word of several ("can I post *links* to my shop") is no evidence: then every
        # chunk with that word would outrank meaning, so it takes two known terms (or a
        # one-term query).
        return [_hit(r, "rank") for r in rows], {
            r["chunk_id"] for r in rows if r["all_known"] or r["exact"]
        }


def _hit(row: dict[str, Any], score_column: str) -> Hit:
    return Hit(
        row["chunk_id"],
        row["document_id"],
        row["title"],
        row["uri"],
        row["text"],
        float(row[score_column]),
        float(row["similarity"]),
        bool(row["exact"]),
    )


def check_query(query: str) -> str:
    """The query with its whitespace collapsed; InvalidInput when empty or too long."""
    query = " ".join(query.split())
    if not query:
        raise InvalidInput("The query is empty; ask something.")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"The query is too long (over {MAX_QUERY_CHARS} characters).")
    return query
