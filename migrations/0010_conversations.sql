-- 0010: conversations. Never edit this file once it has been applied anywhere.
--
-- A reply to one of Guru's answers (or a mention of the bot) is a turn of a conversation: it
-- is answered with the earlier turns in view. Each answer given as a message records the id
-- of Guru's reply (`reply_message_id`), so a reply to that message finds its turn, and each
-- turn points to the one it follows (`parent_discord_id`: the earlier turn's `discord_id`,
-- the interaction of a /ask or the question's message). Per guild like every other row.

ALTER TABLE interactions
    ADD COLUMN reply_message_id bigint,
    ADD COLUMN parent_discord_id bigint;

CREATE INDEX interactions_reply_message ON interactions (guild_id, reply_message_id)
    WHERE reply_message_id IS NOT NULL;
