-- 0012: a persona per channel. Never edit this file once it has been applied anywhere.
--
-- A server's /settings (system prompt, answer length) can be set again for one channel: a
-- support channel answers briefly and formally, a lounge chattily. Threads use their parent
-- channel's row (the bot resolves the parent). Unset columns fall back to the server's.

CREATE TABLE channel_personas (
    guild_id           bigint NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    channel_id         bigint NOT NULL,
    system_prompt      text CHECK (char_length(system_prompt) <= 4000),
    max_answer_tokens  int CHECK (max_answer_tokens > 0),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (guild_id, channel_id)
);
