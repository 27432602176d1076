"""The one answering path (core.answering): what the bot's /ask gets, `guru ask` gets too.

A CLI process has no adapter listener: `Services.adapter_for` loads the guild's active adapter
itself, and the guild's /settings shape the Request exactly as they do for the bot.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.answering import Answers
from core.cli import main
from core.config import Settings
from core.db.pool import Database, Pool
from core.guilds import GuildSettingsRepo
from core.interactions import Asker, InteractionRepo
from core.llm.engine.engine import Engine
from core.llm.types import Request
from core.rag.embedder import Embedder
from core.rag.types import ParsedDocument, Section
from core.services import Services
from core.tuning.data import approved_pairs
from core.tuning.registry import AdapterRepo
from core.tuning.review import ReviewRepo
from tests.fixtures.models import make_babbling_llama
from tests.integration.test_engine_adapters import make_adapter
from tests.integration.tuning.test_hotswap import _register

GUILD = 930_000_000_000_000_101
RAIDS = "Guild raids start every Friday at 21:00 server time, in the Crystal Caves."


async def _guild_with_settings(
    services: Services,
    guild: int,
    system_prompt: str | None = "Answer like a pirate.",
    temperature: float | None = 0.3,
) -> None:
    doc = ParsedDocument("upload:raids.md", "Raid schedule", (Section("", RAIDS),))
    await services.knowledge.ingestor.ingest_document(guild, doc)
    await GuildSettingsRepo(services.knowledge.retriever.pool).set(
        guild,
        actor_id=None,
        max_answer_tokens=40,
        temperature=temperature,
        system_prompt=system_prompt,
    )


async def test_the_guilds_settings_and_active_adapter_shape_every_answer(
    fresh_pool: Pool,
    embedder: Embedder,
    model_settings: Settings,
    bundled_tokenizer: object,
    tmp_path: Path,
) -> None:
    tiny = make_babbling_llama(bundled_tokenizer, seed=3)  # it answers
    await _register(fresh_pool, GUILD, make_adapter(tiny.model.config, tmp_path / "a", seed=1))
    await AdapterRepo(fresh_pool).activate(GUILD, 1)
    engine = Engine(tiny, max_batch=2)
    services = Services(model_settings, llm=engine, db=Database(fresh_pool), embedder=embedder)
    # the babbling model's words come from no source: without the faithfulness check it still
    # "answers" (the check is tested on the real model in tests/integration/rag/test_answer.py)
    services.answers = Answers(services, faithful=False)
    try:
        await _guild_with_settings(services, GUILD)
        prepared = await services.answers.prepare(
            "ask", GUILD, "when do raids start?", asker=Asker(77, 42, 5)
        )
        request = prepared.request
        assert request is not None and prepared.sources[0].title == "Raid schedule"
        assert request.adapter == f"g{GUILD}-v1" and request.adapter in engine.adapters.names()
        assert request.max_new_tokens == 40 and request.temperature == pytest.approx(0.3)
        assert request.messages[0].content.endswith("Answer like a pirate.")
        assert "Crystal Caves" in request.messages[1].content

        completion = await engine.complete(request)
        answer = prepared.finish_text(completion.text)
        await services.answers.finish(
            prepared, answer.answer, completion.finish_reason, completion.text
        )
        row = await InteractionRepo(fresh_pool).get(GUILD, 77)
        assert row is not None and row["command"] == "ask"
        assert row["answer"] == answer.answer and row["finish_reason"] == completion.finish_reason

        # 👍 + a moderator's approval: tuning learns the prompt the engine was given
        assert await InteractionRepo(fresh_pool).set_feedback(GUILD, 77, 42, 1)
        reviews = ReviewRepo(fresh_pool)
        await reviews.decide(GUILD, [item.id for item in await reviews.pending(GUILD)], True, 1)
        pairs = await approved_pairs(fresh_pool, GUILD)
        assert [p.messages for p in pairs] == [tuple((m.role, m.content) for m in request.messages)]
        # the model's own words: the extractive lead shown before them is not learned
        assert prepared.lead is not None and answer.answer.startswith(prepared.lead.render())
        shown = answer.answer.removeprefix(prepared.lead.render()).strip()
        assert not answer.refused and pairs[0].output == shown.split("\n\nSources:")[0]

        # /explain is Guru's curriculum, not the guild's: no adapter, no guild prompt
        explained = await services.answers.prepare("explain", GUILD, "what is attention?")
        assert explained.request is None or explained.request.adapter is None
    finally:
        await engine.aclose()


@pytest.fixture
async def configured_guild(
    fresh_database_url: str, fresh_pool: Pool, embedder: Embedder, model_settings: Settings
) -> str:
    """A database whose guild has one document and /settings of its own; its URL."""
    services = Services(model_settings, db=Database(fresh_pool), embedder=embedder)
    # greedy and no persona: SmolLM2-135M asked to be a pirate, or sampling, often stops at
    # "The answer to this question is:" (which the answer checks rightly refuse to show)
    await _guild_with_settings(services, GUILD, system_prompt=None, temperature=None)
    return fresh_database_url


@pytest.mark.model
def test_guru_ask_answers_as_the_guild_set_it_up(
    configured_guild: str,
    test_data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`guru ask` sends the model the request the guild's settings make (it used to ignore
    them: 200 tokens, no server prompt, no adapter). The real engine still answers: the spy only
    records what it was asked."""
    asked: list[Request] = []
    complete = Engine.complete

    async def spy(self: Engine, request: Request):  # noqa: ANN202
        asked.append(request)
        return await complete(self, request)

    monkeypatch.setattr(Engine, "complete", spy)
    monkeypatch.setenv("DATABASE_URL", configured_guild)
    monkeypatch.setenv("GURU_DATA_DIR", str(test_data_dir))
    monkeypatch.setenv("GURU_THREADS", "1")
    monkeypatch.setenv("GURU_LOG_LEVEL", "WARNING")
    assert main(["ask", "when do raids start?", "--guild", str(GUILD), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert asked and asked[0].max_new_tokens == 40 and asked[0].temperature == 0.0
    assert "Crystal Caves" in asked[0].messages[-1].content  # grounded in the guild's page
    assert set(answer) == {"answer", "sources", "refused"}
