-- 0001: pgvector, guilds and their settings, and an audit trail.
-- Never edit this file once it has been applied anywhere: put changes in 0002_*.sql and on.

CREATE EXTENSION IF NOT EXISTS vector;

-- Keeps updated_at honest on every UPDATE; later tables reuse it.
CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- One row per Discord server ("guild"); ids are Discord snowflakes.
CREATE TABLE guilds (
    id          bigint PRIMARY KEY CHECK (id > 0),
    name        text NOT NULL DEFAULT '' CHECK (char_length(name) <= 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER guilds_updated_at BEFORE UPDATE ON guilds
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Per-guild overrides. NULL means "use the process default" (Settings); an empty id array
-- means "no restriction".
CREATE TABLE guild_settings (
    guild_id              bigint PRIMARY KEY REFERENCES guilds (id) ON DELETE CASCADE,
    system_prompt         text CHECK (char_length(system_prompt) <= 4000),
    temperature           real CHECK (temperature >= 0 AND temperature <= 2),
    max_answer_tokens     int CHECK (max_answer_tokens > 0),
    allowed_channel_ids   bigint[] NOT NULL DEFAULT '{}'
                          CHECK (array_position(allowed_channel_ids, NULL) IS NULL),
    allowed_role_ids      bigint[] NOT NULL DEFAULT '{}'
                          CHECK (array_position(allowed_role_ids, NULL) IS NULL),
    rate_limit_per_minute int CHECK (rate_limit_per_minute > 0),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER guild_settings_updated_at BEFORE UPDATE ON guild_settings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Who changed what. No foreign key on purpose: the trail outlives a deleted guild row.
-- guild_id NULL = a process-wide action (CLI); actor_id NULL = Guru itself.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guild_id    bigint,
    actor_id    bigint,
    action      text NOT NULL CHECK (action <> ''),
    detail      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(detail) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_log_guild_created ON audit_log (guild_id, created_at DESC);
