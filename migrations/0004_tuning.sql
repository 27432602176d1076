-- 0004: tuning jobs (claimed by `guru tune worker`) and the versioned LoRA adapters they make.
-- Never edit this file once it has been applied anywhere: put changes in the next file.

-- One training run. The worker claims a row with FOR UPDATE SKIP LOCKED, then bumps
-- heartbeat_at while it trains; a 'running' row whose heartbeat is stale belongs to a worker
-- that died and is claimed again (attempts counts the claims).
CREATE TABLE tuning_jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guild_id      bigint NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    spec          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(spec) = 'object'),
    dataset       jsonb NOT NULL CHECK (jsonb_typeof(dataset) = 'array'),
    progress      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(progress) = 'object'),
    error         text,
    attempts      int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    worker        text,
    requested_by  bigint,
    adapter_version int,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    heartbeat_at  timestamptz,
    finished_at   timestamptz
);

CREATE INDEX tuning_jobs_claimable ON tuning_jobs (created_at)
    WHERE status IN ('queued', 'running');
CREATE INDEX tuning_jobs_guild_created ON tuning_jobs (guild_id, created_at DESC);

-- A trained adapter: files under $GURU_DATA_DIR/adapters/<guild>/<version>/, metrics from the
-- run. At most one active version per guild; none active = the base model.
CREATE TABLE adapters (
    guild_id    bigint NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    version     int NOT NULL CHECK (version > 0),
    path        text NOT NULL CHECK (path <> ''),
    job_id      bigint REFERENCES tuning_jobs (id) ON DELETE SET NULL,
    method      text NOT NULL DEFAULT 'lora',
    base_model  text NOT NULL DEFAULT '',
    metrics     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
    active      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    PRIMARY KEY (guild_id, version)
);

CREATE UNIQUE INDEX adapters_one_active_per_guild ON adapters (guild_id) WHERE active;
CREATE UNIQUE INDEX adapters_job ON adapters (job_id) WHERE job_id IS NOT NULL;
