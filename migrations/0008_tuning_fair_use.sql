-- 0008: fair use of the trainer (core.tuning.jobs): at most one live (queued or running) job
-- per guild, and the worker takes guilds in turn. Never edit this file once it has been
-- applied anywhere: put changes in a later migration.

-- Until now a guild could queue any number of jobs. A guild that has several live ones keeps
-- one (a running one first, else its oldest); the others are cancelled with a reason its
-- moderators see in /tune status.
WITH ranked AS (
    SELECT id, row_number() OVER (
        PARTITION BY guild_id ORDER BY (status = 'running') DESC, created_at, id
    ) AS n
    FROM tuning_jobs
    WHERE status IN ('queued', 'running')
)
UPDATE tuning_jobs
SET status = 'cancelled', finished_at = now(),
    error = 'Cancelled on upgrade: Guru now runs one tuning job per server at a time.'
FROM ranked
WHERE tuning_jobs.id = ranked.id AND ranked.n > 1;

-- The guarantee itself: a second live job for a guild fails to insert, even when two
-- `/tune start` race.
CREATE UNIQUE INDEX tuning_jobs_one_live_per_guild ON tuning_jobs (guild_id)
    WHERE status IN ('queued', 'running');

-- The claim orders guilds by when they were last served (their newest started_at).
CREATE INDEX tuning_jobs_guild_started ON tuning_jobs (guild_id, started_at DESC)
    WHERE started_at IS NOT NULL;
