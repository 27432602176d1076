-- 0009: what the model was really given, kept with each answer, so tuning learns that task.
-- Never edit this file once it has been applied anywhere.
--
-- An approved 👍 answer used to become a tuning pair of the bare question and the text the
-- asker saw; but the model answered a different prompt (the grounding rules, the guild's
-- system prompt, the numbered sources) and the text shown carries the rendered source links.
-- `prompt` holds the request's messages ([{"role", "content"}, ...]: the sources' passages are
-- in them) and `model_answer` the checked answer as the model's own text (citations kept,
-- links not), so core.tuning.data trains on exactly what the engine will see. Rows written
-- before this migration have neither and are still trained as question → answer.

ALTER TABLE interactions
    ADD COLUMN prompt jsonb CHECK (prompt IS NULL OR jsonb_typeof(prompt) = 'array'),
    ADD COLUMN model_answer text;
