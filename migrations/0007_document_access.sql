-- 0007: who may read a document. Never edit this file once it has been applied anywhere.
--
-- A document that came from Discord (a pin, a message added with /docs add messages, a file
-- attached to one) may only be used for, cited to or named to a member who can view the
-- channel (or thread) it came from; a file an admin uploads is guild-wide unless it was scoped
-- to a channel or a role. Both are derived from what every such row already records, so
-- existing rows are covered as the columns are added: a Discord document's channel is in its
-- metadata (`channel_id`), else in its jump URL (https://discord.com/channels/G/C/M); a scope
-- is `scope_channel_id` / `scope_role_id` in the metadata. NULL = no restriction.
-- Searches drop the chunks of the documents the asker may not read (core/rag/retrieve.py).

ALTER TABLE documents
    ADD COLUMN access_channel_id bigint GENERATED ALWAYS AS (
        CASE WHEN source = 'discord' THEN coalesce(
                 (metadata ->> 'channel_id')::bigint,
                 substring(uri FROM '/channels/[0-9]+/([0-9]+)/[0-9]+')::bigint)
             ELSE (metadata ->> 'scope_channel_id')::bigint
        END) STORED,
    ADD COLUMN access_role_id bigint GENERATED ALWAYS AS (
        (metadata ->> 'scope_role_id')::bigint) STORED;

-- The restricted documents of a guild, read once per search.
CREATE INDEX documents_restricted ON documents (guild_id)
    WHERE access_channel_id IS NOT NULL OR access_role_id IS NOT NULL;
