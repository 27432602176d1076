-- 0006: a moderator's review of 👍 answers before they become tuning pairs (/tune review,
-- `guru tune approve|reject`). Never edit this file once it has been applied anywhere: put
-- changes in a later migration.
--
-- A 👍 answer of a tunable command is pending until reviewed; approving sets `approved` (what
-- core.tuning.data.approved_pairs reads), rejecting leaves it false. Either way `reviewed_at`
-- is set, so a rejected answer never comes up for review again. `reviewed_by` is the
-- moderator's Discord id (NULL from the CLI, as in audit_log). Rows approved before this
-- migration (by hand) count as reviewed: pending means NOT approved AND reviewed_at IS NULL.

ALTER TABLE interactions
    ADD COLUMN reviewed_by bigint,
    ADD COLUMN reviewed_at timestamptz;

-- The review queue: a guild's unreviewed 👍 answers, oldest first.
CREATE INDEX interactions_review_pending ON interactions (guild_id, id)
    WHERE feedback = 1 AND reviewed_at IS NULL AND NOT approved;
