-- 0003: answers the bot gave and the asker's 👍/👎 on them. The tuning pipeline reads rated
-- (and moderator-approved) answers from here; latency and finish reason feed /status and bench.
-- Never edit this file once it has been applied anywhere: put changes in the next file.

CREATE TABLE interactions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guild_id       bigint NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    discord_id     bigint NOT NULL,              -- the Discord interaction's snowflake
    channel_id     bigint,
    user_id        bigint NOT NULL,
    command        text NOT NULL CHECK (command <> ''),
    question       text NOT NULL,
    answer         text NOT NULL,
    sources        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(sources) = 'array'),
    finish_reason  text,
    latency_ms     int CHECK (latency_ms >= 0),
    feedback       smallint CHECK (feedback IN (-1, 1)),
    approved       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (guild_id, discord_id)
);

CREATE INDEX interactions_guild_created ON interactions (guild_id, created_at DESC);
