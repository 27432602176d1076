-- 0005: per-guild term statistics for BM25 full-text ranking of `chunks`.
-- Never edit this file once it has been applied anywhere: put changes in a later migration.
--
-- ts_rank_cd has no inverse document frequency, so on a corpus whose pages share their
-- vocabulary ("commit", "branch" on every Git page) a common word ranks as high as a rare one.
-- BM25 needs, per guild: N (chunks), the average chunk length and each term's document
-- frequency (chunks containing it). Computing them at query time (ts_stat over the guild's
-- chunks) is a full scan per query, so they are kept here and maintained by statement-level
-- triggers on `chunks`: in the same transaction as the rows they count, so a document's
-- chunks and its statistics commit or roll back together, and every path that changes chunks
-- (ingest, replace, remove, cascades from `documents`, guild forget) keeps them exact.
-- Statistics are per guild: one server's documents never change another's ranking.

-- Token count of a tsvector (every stored position; stop words are not in it). This is a
-- chunk's length |d| in BM25.
CREATE FUNCTION rag_tsv_length(doc tsvector) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(sum(cardinality(u.positions)), 0)::int FROM unnest(doc) AS u
$$;

CREATE TABLE rag_guild_stats (
    guild_id  bigint PRIMARY KEY,
    chunks    bigint NOT NULL CHECK (chunks >= 0),   -- N
    tokens    bigint NOT NULL CHECK (tokens >= 0)    -- Σ |d|, so avgdl = tokens / chunks
);

CREATE TABLE rag_term_stats (
    guild_id  bigint NOT NULL,
    term      text NOT NULL,                          -- a lexeme of chunks.tsv
    df        int NOT NULL CHECK (df > 0),            -- chunks of the guild containing it
    PRIMARY KEY (guild_id, term)
);

-- Writers of one guild take this lock first (from the trigger), so concurrent ingests into the
-- same guild queue on it instead of deadlocking on term rows locked in different orders. The
-- write transactions are short (embedding happens before they open).
CREATE FUNCTION rag_lock_guild_stats(guild bigint) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('guru.rag_bm25_stats', guild))
$$;

-- The trigger: subtract the statistics of the old rows, add those of the new ones. Transition
-- tables are only visible inside the trigger function itself, hence one body, not helpers.
-- Terms whose df reaches 0 are deleted, guilds with no chunks left too.
CREATE FUNCTION rag_chunks_stats_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM rag_lock_guild_stats(g)
        FROM (SELECT DISTINCT guild_id AS g FROM old_chunks ORDER BY 1) s;
        UPDATE rag_guild_stats s SET chunks = s.chunks - o.n, tokens = s.tokens - o.t
        FROM (SELECT guild_id, count(*) AS n, sum(rag_tsv_length(tsv)) AS t
              FROM old_chunks GROUP BY guild_id) o
        WHERE s.guild_id = o.guild_id;
        DELETE FROM rag_guild_stats s USING (SELECT DISTINCT guild_id FROM old_chunks) o
        WHERE s.guild_id = o.guild_id AND s.chunks <= 0;
        -- Disjoint rows, so one statement may both shrink and drop.
        WITH gone AS (SELECT r.guild_id, u.lexeme AS term, count(*)::int AS n
                      FROM old_chunks r, unnest(r.tsv) u GROUP BY 1, 2),
             dropped AS (DELETE FROM rag_term_stats s USING gone g
                         WHERE s.guild_id = g.guild_id AND s.term = g.term AND s.df <= g.n
                         RETURNING s.guild_id)
        UPDATE rag_term_stats s SET df = s.df - g.n FROM gone g
        WHERE s.guild_id = g.guild_id AND s.term = g.term AND s.df > g.n;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM rag_lock_guild_stats(g)
        FROM (SELECT DISTINCT guild_id AS g FROM new_chunks ORDER BY 1) s;
        INSERT INTO rag_guild_stats AS s (guild_id, chunks, tokens)
        SELECT guild_id, count(*), sum(rag_tsv_length(tsv)) FROM new_chunks
        GROUP BY guild_id ORDER BY guild_id
        ON CONFLICT (guild_id) DO UPDATE
        SET chunks = s.chunks + EXCLUDED.chunks, tokens = s.tokens + EXCLUDED.tokens;
        INSERT INTO rag_term_stats AS s (guild_id, term, df)
        SELECT r.guild_id, u.lexeme, count(*) FROM new_chunks r, unnest(r.tsv) u
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (guild_id, term) DO UPDATE SET df = s.df + EXCLUDED.df;
    END IF;
    RETURN NULL;
END
$$;

-- Fill the statistics of chunks stored before this migration (same transaction as the
-- triggers, so no write slips between the two).
INSERT INTO rag_guild_stats (guild_id, chunks, tokens)
SELECT guild_id, count(*), sum(rag_tsv_length(tsv)) FROM chunks GROUP BY guild_id;

INSERT INTO rag_term_stats (guild_id, term, df)
SELECT c.guild_id, u.lexeme, count(*) FROM chunks c, unnest(c.tsv) u GROUP BY 1, 2;

CREATE TRIGGER chunks_stats_insert AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS new_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION rag_chunks_stats_trigger();
CREATE TRIGGER chunks_stats_delete AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS old_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION rag_chunks_stats_trigger();
CREATE TRIGGER chunks_stats_update AFTER UPDATE ON chunks
    REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION rag_chunks_stats_trigger();

-- BM25 of one chunk for a query: Σ over query terms of idf · tf·(k1+1) / (tf + k1·(1−b+b·|d|/avgdl)).
-- `terms` and `idfs` are parallel arrays (the caller computes idf from rag_term_stats); a term
-- in the chunk's title (tsvector weight A) counts `title_weight` times, a body term once
-- (BM25F-style field weighting: "document › section" titles say what a chunk is about).
CREATE FUNCTION rag_bm25(doc tsvector, terms text[], idfs float8[], avgdl float8,
                         k1 float8, b float8, title_weight float8) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    WITH u AS (SELECT lexeme, positions, weights FROM unnest(doc)),
         len AS (SELECT sum(cardinality(positions))::float8 AS dl FROM u)
    SELECT coalesce(sum(q.idf * tf.tf * (k1 + 1)
                        / (tf.tf + k1 * (1 - b + b * len.dl / greatest(avgdl, 1)))), 0)
    FROM len, u
    JOIN unnest(terms, idfs) AS q (term, idf) ON q.term = u.lexeme
    CROSS JOIN LATERAL (
        SELECT sum(CASE w WHEN 'A' THEN title_weight ELSE 1 END)::float8 AS tf
        FROM unnest(u.weights) AS w
    ) tf
$$;

-- TRUNCATE fires no DELETE triggers (benchmarks rebuild their tables with it): it empties the
-- statistics too, of every guild, like the chunks.
CREATE FUNCTION rag_chunks_truncate_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM rag_term_stats;
    DELETE FROM rag_guild_stats;
    RETURN NULL;
END
$$;

CREATE TRIGGER chunks_stats_truncate AFTER TRUNCATE ON chunks
    FOR EACH STATEMENT EXECUTE FUNCTION rag_chunks_truncate_trigger();
