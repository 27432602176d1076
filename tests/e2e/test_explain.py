"""/explain end to end: autocomplete over the concept notes, an answer grounded in the notes
with their sources, the out-of-scope refusal, and the attention heatmap as a PNG."""

from __future__ import annotations

from core.explain.topics import topics
from core.tuning.data import approved_pairs
from tests.e2e.conftest import finished, guild_ready, recorded
from tests.e2e.emulator import Emulator


async def test_explain_autocompletes_topics_from_the_notes(bot, emulator: Emulator):
    guild = await emulator.create_guild("explain-topics")
    await guild_ready(bot, guild.id)
    inter = await emulator.autocomplete(
        guild, emulator.owner(guild), "explain", {"topic": "lora"}, focused="topic"
    )
    await emulator.wait_for(lambda: inter.autocomplete_choices is not None, 5, what="choices")
    names = [c["name"] for c in inter.autocomplete_choices]
    expected = [t["title"] for t in topics() if "lora" in t["title"].lower()]
    assert names == expected and names, names


async def test_explain_answers_from_the_notes_with_sources_and_a_heatmap(bot, emulator):
    guild = await emulator.create_guild("explain")
    await guild_ready(bot, guild.id)
    await bot.get_cog("Explain").notes_ready  # the notes are ingested at start
    lora = next(t["title"] for t in topics() if t["topic"] == "lora")
    inter = await emulator.send_command(
        guild, emulator.owner(guild), "explain", {"topic": lora, "heatmap": True}
    )
    await finished(emulator, inter, 90, done=lambda i: any(m.attachments for m in i.messages))
    text = "\n".join(m.content for m in inter.messages)
    assert "`concepts/lora.md`" in text or "My concept notes do not answer" in text, text
    (name, png) = inter.messages[-1].attachments[0]
    assert name == "attention.png" and png.startswith(b"\x89PNG")
    assert "Attention of tiny-llama" in inter.messages[-1].content


async def test_explain_answers_are_stored_rated_and_eligible_for_tuning(bot, emulator):
    guild = await emulator.create_guild("explain-rated")
    await guild_ready(bot, guild.id)
    await bot.get_cog("Explain").notes_ready
    topic = next(t["title"] for t in topics() if t["topic"] == "attention-qkv")
    inter = await emulator.send_command(guild, emulator.owner(guild), "explain", {"topic": topic})
    # the tiny model babbles to its token limit: with the four sources the reply may run past
    # 2,000 characters and continue in a follow-up, which then carries the rating buttons
    rating = [f"guru:fb:{inter.id}:up", f"guru:fb:{inter.id}:down"]
    await finished(emulator, inter, 60, done=lambda i: i.messages[-1].custom_ids() == rating)
    rated = inter.messages[-1]
    row = await recorded(bot.services, guild.id, inter.id)
    assert row["command"] == "explain" and row["question"] == topic
    shown = "".join(m.content for m in inter.messages)
    assert "".join(row["answer"].split()) == "".join(shown.split())  # split at line ends only
    up = await emulator.click(rated, f"guru:fb:{inter.id}:up", emulator.owner(guild))
    await emulator.wait_for(lambda: up.original is not None, 5, what="the thanks")
    assert up.original.content == "Thanks, noted!"
    pool = bot.services.db.pool
    async with pool.connection() as conn:  # a moderator approves it for tuning
        await conn.execute(
            "UPDATE interactions SET approved = true WHERE guild_id = %s", (guild.id,)
        )
    (pair,) = await approved_pairs(pool, guild.id)  # the task the model did (migration 0009)
    chat = pair.chat()
    assert [m["role"] for m in chat] == ["system", "user"]
    assert topic in chat[-1]["content"] and "Source [1]" in chat[-1]["content"]
    assert pair.output and "**Sources**" not in pair.output


async def test_explain_refuses_questions_outside_the_curriculum(bot, emulator: Emulator):
    guild = await emulator.create_guild("explain-off")
    await guild_ready(bot, guild.id)
    await bot.get_cog("Explain").notes_ready
    inter = await emulator.send_command(
        guild, emulator.owner(guild), "explain", {"topic": "How do I bake sourdough bread?"}
    )
    await finished(emulator, inter, 30)
    assert "outside them" in inter.original.content and "/ask" in inter.original.content
    assert inter.original.custom_ids() == [f"guru:fb:{inter.id}:up", f"guru:fb:{inter.id}:down"]
    row = await recorded(bot.services, guild.id, inter.id)
    assert row["finish_reason"] == "refused" and row["command"] == "explain"
