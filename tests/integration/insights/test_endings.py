"""How an /ask ended is recorded so /insights can tell the cases apart: refused before the model
(nothing passed the relevance floor), declined by the model (its sources do not answer), no
usable answer, or answered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.answering import Answers
from core.db.pool import Pool
from core.interactions import Asker, InteractionRepo
from core.rag.ingest import Ingestor


async def test_a_decline_and_no_usable_answer_are_recorded_apart(
    answers_with: Callable[..., Answers],
    ingestor: Ingestor,
    new_guild: Callable[[], int],
    rag_pool: Pool,
    tmp_path: Path,
):
    guild = new_guild()
    (tmp_path / "raids.md").write_text(
        "# Raid schedule\n\nGuild raids start every Friday at 21:00 server time."
    )
    assert {o.status async for o in ingestor.ingest_paths(guild, [str(tmp_path)])} == {"added"}
    # the model's text is given: this is about what is recorded. Without the quoted lead the
    # asker reads the model's decline or "no usable answer"; with it (the product's default)
    # the docs' sentence answers in the model's place, and that is recorded as an answer.
    with_lead = answers_with(None)
    no_lead = Answers(with_lead.services, lead="off")
    repo = InteractionRepo(rag_pool)
    generated = [
        (no_lead, "That is not in this server's docs.", "declined"),
        (no_lead, "[1]", "unusable"),  # a citation alone
        (no_lead, "Raids start every Friday at 21:00 server time [1].", "stop"),
        (with_lead, "That is not in this server's docs.", "stop"),
    ]
    for n, (answers, text, ending) in enumerate(generated):
        asked = await answers.prepare(
            "ask", guild, "When do raids start?", asker=Asker(800 + n, 42)
        )
        assert asked.request is not None
        await answers.finish(asked, asked.finish_text(text).answer, "stop", text)
        row = await repo.get(guild, 800 + n)
        assert row is not None and row["finish_reason"] == ending, (text, row)

    off_topic = "How do I bake sourdough bread?"
    refused = await answers.prepare("ask", guild, off_topic, asker=Asker(810, 42))
    assert refused.request is None and refused.refusal is not None
    await answers.finish(refused, refused.refusal.answer, "refused")
    assert (await repo.get(guild, 810))["finish_reason"] == "refused"
