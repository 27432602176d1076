-- 0013: "Still need help?". Never edit this file once it has been applied anywhere.
--
-- An answer whose asker pressed "Still need help?" (or whose help-channel post got no answer)
-- is marked unanswered: `needs_help_at` is when. /insights counts these beside refusals and 👎
-- as the questions the docs do not answer yet.

ALTER TABLE interactions ADD COLUMN needs_help_at timestamptz;

CREATE INDEX interactions_needs_help ON interactions (guild_id, needs_help_at)
    WHERE needs_help_at IS NOT NULL;
