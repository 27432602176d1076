-- 0011: sources that change (websites, git repositories' docs folders), synced on a schedule.
-- A source owns the documents of its pages; `source_pages` remembers, per page, what the last
-- sync saw (validators for conditional requests, the content hash, the page's links), so a
-- re-sync fetches conditionally and re-embeds only what changed.

ALTER TABLE documents DROP CONSTRAINT documents_source_check;
ALTER TABLE documents ADD CONSTRAINT documents_source_check
    CHECK (source IN ('file', 'discord', 'text', 'concept', 'web', 'git'));

CREATE TABLE sources (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guild_id         bigint NOT NULL CHECK (guild_id >= 0),
    kind             text NOT NULL CHECK (kind IN ('web', 'git')),
    location         text NOT NULL CHECK (location <> '' AND char_length(location) <= 2048),
    options          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    every_s          int CHECK (every_s > 0),  -- NULL: synced only when asked
    next_sync_at     timestamptz,
    -- A claim, not a lock: a sync sets it and clears it when done; a crashed sync's claim
    -- expires, so the bot and `guru sources sync --due` from cron never sync one source twice.
    sync_started_at  timestamptz,
    last_sync_at     timestamptz,
    last_summary     jsonb,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (guild_id, kind, location),
    UNIQUE (guild_id, id)
);

CREATE TRIGGER sources_updated_at BEFORE UPDATE ON sources
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE INDEX sources_due ON sources (next_sync_at) WHERE every_s IS NOT NULL;

CREATE TABLE source_pages (
    guild_id       bigint NOT NULL,
    source_id      bigint NOT NULL,
    uri            text NOT NULL,  -- the document's uri
    etag           text,
    last_modified  text,
    content_hash   text,
    links          text[] NOT NULL DEFAULT '{}',  -- a 304 has no body: crawl on from these
    synced_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, uri),
    FOREIGN KEY (guild_id, source_id) REFERENCES sources (guild_id, id) ON DELETE CASCADE
);

CREATE INDEX source_pages_uri ON source_pages (guild_id, uri);
