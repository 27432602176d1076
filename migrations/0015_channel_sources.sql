-- 0015: a Discord channel as a source (its resolved help threads become documents), and the
-- answers moderators mark by hand. Never edit this file once it has been applied anywhere.
--
-- A 'discord' source's location is the channel's link (https://discord.com/channels/G/C); its
-- pages in `source_pages` are the resolved threads (uri = the thread's link, content_hash =
-- question + answer), so a re-sync re-embeds only a thread whose question or answer changed
-- and removes the document of a thread that was deleted or is no longer solved. The documents
-- have source 'discord' and metadata channel_id = the thread's parent, so the access rules of
-- 0007 apply: a private channel's history reaches only members who can view that channel.

ALTER TABLE sources DROP CONSTRAINT sources_kind_check;
ALTER TABLE sources ADD CONSTRAINT sources_kind_check CHECK (kind IN ('web', 'git', 'discord'));

-- The running sync's counts so far (NULL when none runs): `/docs list` shows a long sync's
-- progress, not only the last one's summary.
ALTER TABLE sources ADD COLUMN sync_progress jsonb;

-- "Mark as answer" (a moderator's message command): the thread's accepted answer, whatever
-- the reactions and tags say. One per thread; marking another message replaces it.
CREATE TABLE thread_answers (
    guild_id    bigint NOT NULL CHECK (guild_id >= 0),
    thread_id   bigint NOT NULL,
    message_id  bigint NOT NULL,
    marked_by   bigint NOT NULL,
    marked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (guild_id, thread_id)
);
