"""The two search queries `Retriever` runs: nearest chunks by vector (HNSW) and BM25 over text.

Plain parameterised SQL (`%(name)s`); every query is filtered by `guild_id`, and drops the
chunks of the documents the asker may not read (`hidden`: DocumentRepo.hidden_ids).
"""

__all__ = ["TEXT_SQL", "VECTOR_SQL"]

VECTOR_SQL = """
WITH nearest AS MATERIALIZED (
    SELECT c.id, c.document_id, c.title, c.text, c.tsv, c.embedding <=> %(search)s AS distance,
           c.embedding <=> %(embedding)s AS query_distance
    FROM chunks c
    WHERE c.guild_id = %(guild_id)s AND c.document_id <> ALL(%(hidden)s::bigint[])
    ORDER BY c.embedding <=> %(search)s
    LIMIT %(limit)s
)
SELECT n.id AS chunk_id, n.document_id, n.title, d.uri, n.text, 1 - n.distance AS score,
       1 - n.query_distance AS similarity,
       n.tsv @@ websearch_to_tsquery('english', %(query)s) AS exact
FROM nearest n
JOIN documents d ON d.guild_id = %(guild_id)s AND d.id = n.document_id
WHERE d.status = 'ready'
ORDER BY n.distance
"""

# BM25 over the guild's own statistics (migration 0005): idf from rag_term_stats, avgdl from
# rag_guild_stats; a title term (tsvector weight A) counts `title_weight` times (BM25F-style).
# Scoring needs each candidate's term frequencies and length, i.e. unnesting its tsvector: for
# every chunk with a common word that cost ~300 ms at 5k chunks. So candidates are first ranked
# by Σ idf of the query terms they contain (GIN, one probe per term; an upper bound on BM25 up
# to the tf factor) and only the best `prune` are scored exactly: ~70 ms, the same top 50 on
# the eval questions checked. `exact` still means "every term" (websearch AND) and feeds the
# relevance floor. rag_bm25() in the migration is the per-chunk reference the tests compare to.
TEXT_SQL = r"""
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
t AS (SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %(terms)s))),
w AS (
    SELECT s.term, ln(1 + (g.n - s.df + 0.5) / (s.df + 0.5)) AS idf,
           ('''' || replace(replace(s.term, '\', '\\'), '''', '''''') || '''')::tsquery AS tq
    FROM g, t JOIN rag_term_stats s ON s.guild_id = %(guild_id)s AND s.term = t.lexeme
),
counts AS (SELECT (SELECT count(*) FROM w) AS known, (SELECT count(*) FROM t) AS asked),
top AS (
    SELECT c.id, sum(w.idf) AS bound
    FROM q, w JOIN chunks c ON c.guild_id = %(guild_id)s AND c.tsv @@ w.tq
        AND c.document_id <> ALL(%(hidden)s::bigint[])
    GROUP BY c.id ORDER BY bound DESC, c.id LIMIT %(prune)s
),
cand AS MATERIALIZED (
    SELECT c.id, c.tsv FROM top JOIN chunks c ON c.id = top.id
),
lex AS MATERIALIZED (
    SELECT cand.id, u.lexeme, u.positions, u.weights FROM cand, unnest(cand.tsv) u
),
len AS (SELECT id, sum(cardinality(positions))::float8 AS dl FROM lex GROUP BY id),
bm AS (
    SELECT l.id, count(*) AS matched, sum(w.idf * tf.tf * (%(k1)s + 1) / (tf.tf + %(k1)s
                     * (1 - %(b)s + %(b)s * len.dl / greatest(g.avgdl, 1)))) AS rank
    FROM lex l JOIN w ON w.term = l.lexeme JOIN len ON len.id = l.id CROSS JOIN g
    CROSS JOIN LATERAL (
        SELECT sum(CASE x WHEN 'A' THEN %(title_weight)s ELSE 1 END)::float8 AS tf
        FROM unnest(l.weights) x) tf
    GROUP BY l.id
)
SELECT c.id AS chunk_id, c.document_id, c.title, d.uri, c.text, bm.rank,
       1 - (c.embedding <=> %(embedding)s) AS similarity, c.tsv @@ q.strict AS exact,
       bm.matched = counts.known AND (counts.known >= 2 OR counts.asked <= 1) AS all_known
FROM q, counts, bm JOIN chunks c ON c.id = bm.id
JOIN documents d ON d.guild_id = c.guild_id AND d.id = c.document_id
WHERE c.guild_id = %(guild_id)s AND d.status = 'ready'
ORDER BY bm.rank DESC, c.id
LIMIT %(limit)s
"""
