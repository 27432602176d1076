-- 0002: the knowledge base behind /ask and /explain: documents and their embedded chunks.
-- Never edit this file once it has been applied anywhere: put changes in a later migration
-- (0003 is reserved for the bot, 0004 for tuning).
--
-- guild_id 0 is reserved for Guru's own knowledge base (the /explain concept notes). It is not
-- a Discord snowflake, so it has no row in `guilds` (whose ids are > 0) and documents carry no
-- foreign key to `guilds`: the bot may index a server before it records the guild row.
-- Every query on these tables takes guild_id; chunks repeat it (guarded by a composite foreign
-- key) so the vector and full-text searches filter on it without a join.

CREATE TABLE documents (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guild_id      bigint NOT NULL CHECK (guild_id >= 0),
    source        text NOT NULL CHECK (source IN ('file', 'discord', 'text', 'concept')),
    uri           text NOT NULL CHECK (uri <> '' AND char_length(uri) <= 2048),
    title         text NOT NULL DEFAULT '' CHECK (char_length(title) <= 500),
    content_hash  text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    -- 'ready': searchable; 'disabled': kept but hidden from search (an admin's soft remove).
    -- A document is written with all its chunks in one transaction, so there is no
    -- 'ingesting' state to clean up after a crash.
    status        text NOT NULL DEFAULT 'ready' CHECK (status IN ('ready', 'disabled')),
    metadata      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    chunk_count   int NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (guild_id, uri),
    UNIQUE (guild_id, id)  -- target of the chunks' composite key
);

CREATE TRIGGER documents_updated_at BEFORE UPDATE ON documents
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE chunks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guild_id     bigint NOT NULL,
    document_id  bigint NOT NULL,
    position     int NOT NULL CHECK (position >= 0),
    title        text NOT NULL DEFAULT '',  -- document title › section heading
    text         text NOT NULL CHECK (text <> ''),
    embedding    vector(384) NOT NULL,
    -- Title words weigh more than body words; 'english' stems so "commits" finds "commit".
    tsv          tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('english', title), 'A')
                     || setweight(to_tsvector('english', text), 'B')) STORED,
    UNIQUE (document_id, position),
    -- A chunk can only belong to a document of its own guild.
    FOREIGN KEY (guild_id, document_id) REFERENCES documents (guild_id, id) ON DELETE CASCADE
);

-- Cosine HNSW; queries set hnsw.iterative_scan so the guild filter does not starve results.
CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX chunks_tsv_gin ON chunks USING gin (tsv);
CREATE INDEX chunks_guild ON chunks (guild_id);
