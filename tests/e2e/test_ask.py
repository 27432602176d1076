"""/ask end to end: defer at once, grounded answers streamed with throttled edits and sources,
refusals without the model, Cancel, 429s, long answers, errors.

The tiny random Llama writes garbage, which is fine here: what is tested is the Discord side of
a grounded answer (retrieval is real: the real encoder and embedded Postgres).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re

import pytest

from bot import render
from bot.streaming import CANCELLED
from core.guilds import GuildSettingsRepo
from core.interactions import InteractionRepo
from tests.e2e.conftest import add_document, finished, guild_ready, recorded
from tests.e2e.emulator import Emulator, Interaction
from tests.fixtures.models import pace

QUESTION = "What is retrieval-augmented generation?"
RAG_DOC = (
    "Retrieval-augmented generation (RAG) retrieves passages from this server's documents and "
    "gives them to the language model, so answers about retrieval-augmented generation cite "
    "their sources instead of guessing."
)


async def ask_in_new_guild(
    bot, emulator: Emulator, repo, name: str, tokens: int, question: str = QUESTION
):
    guild = await emulator.create_guild(name)
    await guild_ready(bot, guild.id)
    await add_document(bot.services, guild.id, "Retrieval-augmented generation", RAG_DOC)
    await repo.set(guild.id, actor_id=None, max_answer_tokens=tokens)
    member = emulator.add_member(guild, "asker")
    inter = await emulator.send_command(guild, member, "ask", {"question": question})
    return guild, member, inter


def edit_times(emulator: Emulator, inter: Interaction, status: int = 200) -> list[float]:
    path = f"/webhooks/\\d+/{re.escape(inter.token)}/messages/@original$"
    return [c.at for c in emulator.rest.find("PATCH", path) if c.status == status]


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def rated(inter: Interaction) -> bool:
    """The answer is complete: its last message carries the 👍/👎 buttons."""
    return bool(inter.messages) and f"guru:fb:{inter.id}:up" in inter.messages[-1].custom_ids()


@pytest.fixture
def paced(e2e_services, monkeypatch) -> None:
    """The tiny test model writes ~1000 tokens a second: too fast to watch 1-per-second edits,
    press Cancel mid-answer or meet two 429s. A 3 ms pause per decode step (on the engine's
    thread, as a slower model would take) stretches an answer to several seconds."""
    pace(e2e_services.llm, monkeypatch, 0.003)


async def test_ask_is_deferred_at_once_and_streamed_with_throttled_edits(
    bot, emulator, repo, paced
):
    _, _, inter = await ask_in_new_guild(bot, emulator, repo, "stream", tokens=1200)
    await emulator.wait_for(lambda: inter.acked, 3, what="the defer")
    assert inter.deferred and inter.ack_latency_s < 3.0
    await finished(emulator, inter, 60, done=rated)
    revisions = inter.original.revisions
    streamed = [r for r in revisions if "▌" in r.content]
    assert len(streamed) >= 2, [r.content[:40] for r in revisions]
    assert all(r.components for r in streamed)  # Cancel button while streaming…
    assert "guru:cancel" not in inter.original.custom_ids()  # …gone at the end, for 👍/👎
    last = inter.messages[-1]
    assert last.custom_ids() == [f"guru:fb:{inter.id}:up", f"guru:fb:{inter.id}:down"]
    assert all(len(r.content) <= 2000 for m in inter.messages for r in m.revisions)
    assert min(gaps(edit_times(emulator, inter))) >= 0.95  # ≤ 1 edit per second
    assert "**Sources**" in last.content or last.attachments


async def test_long_answers_are_split_into_valid_messages(bot, emulator, repo, e2e_services):
    guild, _, inter = await ask_in_new_guild(bot, emulator, repo, "long", tokens=600)
    prepared = await e2e_services.answers.prepare("ask", guild.id, QUESTION)  # 600 tokens set
    expected = await e2e_services.llm.complete(prepared.request)
    final = render.answer_text(prepared.finish_text(expected.text))
    pages = render.pages(final)
    assert 2 <= len(pages) <= 4
    await finished(
        emulator,
        inter,
        60,
        done=lambda i: (
            len(i.messages) == len(pages)
            and not i.messages[0].custom_ids()
            and i.messages[-1].custom_ids()
        ),
    )
    assert [m.content for m in inter.messages] == [p.content for p in pages]
    assert all(len(m.content) <= 2000 for m in inter.messages)


async def test_cancel_stops_the_generation(bot, emulator: Emulator, repo, e2e_services, paced):
    guild, member, inter = await ask_in_new_guild(bot, emulator, repo, "cancel", tokens=2000)
    engine = e2e_services.llm
    await emulator.wait_for(
        lambda: inter.original is not None and "▌" in inter.original.content,
        20,
        what="streaming to start",
    )
    (cancel_id,) = inter.original.custom_ids()
    assert cancel_id == "guru:cancel"
    stranger = await emulator.click(inter.original, cancel_id, emulator.add_member(guild, "eve"))
    await emulator.wait_for(lambda: stranger.original is not None, 5, what="refusal")
    assert stranger.original.ephemeral and "Only the person who asked" in stranger.original.content
    click = await emulator.click(inter.original, cancel_id, member)
    await finished(emulator, inter, 20)
    assert click.callback_type == 6  # deferred update: the stream loop edits the message
    assert inter.original.content.endswith(CANCELLED)
    await emulator.wait_for(lambda: engine.stats().active == 0, 5, what="the batch slot freed")
    generated = engine.stats().tokens_generated
    await asyncio.sleep(0.5)
    assert engine.stats().tokens_generated == generated  # nothing runs on
    assert len(inter.original.content) < 2000
    assert not inter.original.custom_ids()  # no rating of a cancelled answer


async def test_429_on_edits_is_waited_out_and_slows_later_edits(
    bot, emulator: Emulator, repo, paced
):
    _, _, inter = await ask_in_new_guild(bot, emulator, repo, "ratelimited", tokens=1200)
    pattern = f"PATCH /webhooks/\\d+/{re.escape(inter.token)}/messages/@original$"
    emulator.rest.limits.inject_429(pattern, times=2, retry_after=0.6)
    await finished(emulator, inter, 60, done=rated)
    refused, ok = edit_times(emulator, inter, 429), edit_times(emulator, inter, 200)
    assert len(refused) == 2
    retry = min(t for t in ok if t > refused[-1])
    assert retry - refused[-1] >= 0.55  # retry_after honoured
    assert min(gaps(ok)) >= 0.95
    assert max(gaps([t for t in ok if t > retry]) or [2.0]) >= 1.9  # backed off after the 429s
    assert rated(inter)  # and still finished


async def test_core_errors_are_shown_as_friendly_messages(bot, emulator: Emulator, repo):
    guild = await emulator.create_guild("too-long")
    await guild_ready(bot, guild.id)
    await add_document(bot.services, guild.id, "Retrieval-augmented generation", RAG_DOC)
    await repo.set(guild.id, actor_id=None, system_prompt="語" * 3999)  # > the model's window
    inter = await emulator.send_command(
        guild, emulator.add_member(guild, "x"), "ask", {"question": QUESTION}
    )
    await finished(emulator, inter, 20)
    assert "shorten it" in inter.original.content and "Traceback" not in inter.original.content


async def test_a_question_the_docs_do_not_cover_is_refused_without_the_model(
    bot, emulator: Emulator, repo, e2e_services
):
    guild = await emulator.create_guild("refusal")
    await guild_ready(bot, guild.id)
    await add_document(bot.services, guild.id, "Retrieval-augmented generation", RAG_DOC)
    generated = e2e_services.llm.stats().tokens_generated
    inter = await emulator.send_command(
        guild, emulator.owner(guild), "ask", {"question": "How do I bake sourdough bread?"}
    )
    await finished(emulator, inter, 20)
    assert inter.deferred and inter.ack_latency_s < 3.0
    content = inter.original.content
    assert content.startswith("That is not in this server's docs"), content
    assert "Retrieval-augmented generation" in content  # the closest titles
    assert e2e_services.llm.stats().tokens_generated == generated  # the model was never asked
    row = await recorded(e2e_services, guild.id, inter.id)
    assert row["finish_reason"] == "refused" and row["answer"] == content


async def test_streamed_answers_end_with_their_sources_as_links(bot, emulator, repo, e2e_services):
    guild, _, inter = await ask_in_new_guild(
        bot, emulator, repo, "sources", tokens=120
    )  # fits one message
    await finished(emulator, inter, 30)
    content = inter.original.content
    assert "**Sources**\n[1] Retrieval-augmented generation (`upload:" in content, content
    assert inter.original.custom_ids() == [f"guru:fb:{inter.id}:up", f"guru:fb:{inter.id}:down"]
    row = await recorded(e2e_services, guild.id, inter.id)
    assert row["answer"] == content and row["finish_reason"] in ("length", "stop")


async def test_unexpected_errors_are_logged_with_a_reference(bot, emulator, monkeypatch, caplog):
    async def broken(self, guild_id):
        raise RuntimeError("database on fire")

    guild = await emulator.create_guild("bug")
    await guild_ready(bot, guild.id)
    monkeypatch.setattr(GuildSettingsRepo, "get", broken)
    with caplog.at_level(logging.ERROR, logger="bot.errors"):
        inter = await emulator.send_command(
            guild, emulator.owner(guild), "ask", {"question": QUESTION}
        )
        await emulator.wait_for(lambda: inter.original is not None, 5, what="the apology")
    assert inter.original.ephemeral
    assert inter.original.content == (
        f"Something went wrong on our side; it's been logged (ref {inter.id})."
    )
    record = next(r for r in caplog.records if str(inter.id) in r.getMessage())
    assert "database on fire" in str(record.exc_info[1])


async def test_channel_and_rate_limits_from_settings_are_enforced(bot, emulator, repo):
    guild = await emulator.create_guild("limits")
    elsewhere = await emulator.add_channel(guild, "elsewhere")
    await guild_ready(bot, guild.id)
    general = next(iter(guild.channels.values()))
    await repo.set(guild.id, actor_id=None, rate_limit_per_minute=1, max_answer_tokens=8)
    await repo.allow(guild.id, "allowed_channel_ids", general.id, True, actor_id=None)
    member = emulator.add_member(guild, "chatty")
    wrong = await emulator.send_command(guild, member, "ask", {"question": QUESTION}, elsewhere)
    first = await emulator.send_command(guild, member, "ask", {"question": QUESTION})
    await finished(emulator, first, 20)
    second = await emulator.send_command(guild, member, "ask", {"question": QUESTION})
    await emulator.wait_for(lambda: wrong.original and second.original, 5, what="refusals")
    assert wrong.original.ephemeral and f"<#{general.id}>" in wrong.original.content
    assert second.original.ephemeral and "1 time a minute" in second.original.content


async def test_feedback_is_saved_for_the_asker_only(bot, emulator: Emulator, repo, e2e_services):
    guild, member, inter = await ask_in_new_guild(bot, emulator, repo, "feedback", tokens=16)
    await finished(emulator, inter, 30)
    answers = InteractionRepo(e2e_services.db.pool)
    row = await answers.get(guild.id, inter.id)
    assert row is not None and row["question"] == QUESTION and row["feedback"] is None
    stranger = await emulator.click(
        inter.original, f"guru:fb:{inter.id}:down", emulator.add_member(guild, "troll")
    )
    up = await emulator.click(inter.original, f"guru:fb:{inter.id}:up", member)
    await emulator.wait_for(lambda: stranger.original and up.original, 5, what="feedback replies")
    assert stranger.original.ephemeral and "Only the person who asked" in stranger.original.content
    assert up.original.ephemeral and up.original.content == "Thanks, noted!"
    assert (await answers.get(guild.id, inter.id))["feedback"] == 1
    assert await answers.get(guild.id + 1, inter.id) is None  # per guild, by construction


async def test_deleting_the_reply_stops_the_generation(bot, emulator: Emulator, repo, e2e_services):
    _, _, inter = await ask_in_new_guild(bot, emulator, repo, "deleted", tokens=2000)
    engine = e2e_services.llm
    await emulator.wait_for(
        lambda: inter.original is not None and "▌" in inter.original.content,
        20,
        what="streaming to start",
    )
    await emulator.delete_message(inter.original)  # a moderator removes the answer
    await emulator.wait_for(lambda: engine.stats().active == 0, 10, what="the batch slot freed")
    generated = engine.stats().tokens_generated
    await asyncio.sleep(0.5)
    assert engine.stats().tokens_generated == generated
    assert not inter.followups
