-- 0014: help channels and the threads Guru answers in. Never edit this file once applied.
--
-- `/settings ask-thread` makes /ask open a thread for its answer (`ask_in_thread`). A help
-- channel (a text channel or a forum) gets every new post answered in a thread; its helpers'
-- role is pinged by "Still need help?", and `say_when_unanswered` chooses between silence and a
-- short "not in the docs" when nothing passes the relevance floor. `guru_threads` remembers the
-- threads Guru answers in (messages there are follow-ups of `question_id`'s conversation, no
-- mention needed) and when a helper first replied in one (Guru stays out from then on).

ALTER TABLE guild_settings ADD COLUMN ask_in_thread boolean NOT NULL DEFAULT false;

CREATE TABLE help_channels (
    guild_id             bigint NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    channel_id           bigint NOT NULL,
    helper_role_id       bigint,
    say_when_unanswered  boolean NOT NULL DEFAULT false,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (guild_id, channel_id)
);

CREATE TABLE guru_threads (
    guild_id           bigint NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
    thread_id          bigint NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('ask', 'help')),
    parent_id          bigint NOT NULL,          -- the channel or forum it belongs to
    asker_id           bigint NOT NULL,
    question_id        bigint NOT NULL,          -- interactions.discord_id of the first question
    helper_replied_at  timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (guild_id, thread_id)
);
