"""`guru bench answers` end to end on three Emberfall questions with the real bundled model:
ingest, answer through guru ask's path, score, write rows, resume without the model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bench.answer_eval.harness import ATTRIBUTED, run_set, summarize
from bench.answer_eval.path import answer_path
from bench.answer_eval.score import OFF_TOPIC_VERDICTS, VERDICTS
from bench.answer_eval.sets import load_set
from core.config import Settings
from core.db.pool import Pool
from core.guilds import GuildSettingsRepo
from core.llm.engine.engine import Engine
from core.llm.models.loading import LoadedModel
from core.rag.embedder import Embedder
from core.rag.ingest import Ingestor


@pytest.fixture(scope="module")
async def engine(bundled_model: LoadedModel) -> AsyncIterator[Engine]:
    engine = Engine(bundled_model, max_batch=2)
    yield engine
    await engine.aclose()


class _NoModel:
    """A backend that fails if asked: resumed rows must not call the model again."""

    async def complete(self, request: object) -> object:
        raise AssertionError("the model was called for a question that already has a row")


@pytest.mark.model
@pytest.mark.slow
async def test_bench_answers_end_to_end(
    engine: Engine,
    ingestor: Ingestor,
    rag_pool: Pool,
    embedder: Embedder,
    model_settings: Settings,
    new_guild: Callable[[], int],
    tmp_path: Path,
) -> None:
    emberfall = load_set("emberfall")
    guild = new_guild()
    statuses = {o.status async for o in ingestor.ingest_paths(guild, [str(emberfall.corpus)])}
    assert statuses == {"added"}
    picked = (*emberfall.answerable[:2], emberfall.off_topic[-1])  # last: a general question
    qset = replace(emberfall, guild=guild, items=picked)
    rows_file = tmp_path / "rows.jsonl"

    # the path is under test, not answer length: the guild's setting keeps it under 60 s
    await GuildSettingsRepo(rag_pool).set(guild, actor_id=None, max_answer_tokens=48)
    rows = await run_set(answer_path(model_settings, rag_pool, embedder, engine), qset, rows_file)

    assert [r["id"] for r in rows] == [i.id for i in picked]
    for row in rows[:2]:
        assert row["verdict"] in VERDICTS
        assert row["model_called"] and row["raw"] is not None and row["seconds"] > 0
        assert "appeals.md" in row["sources"]  # both questions are about ban appeals
    assert rows[2]["verdict"] in OFF_TOPIC_VERDICTS
    stored = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert sorted(r["id"] for r in stored) == sorted(i.id for i in picked)
    summary = summarize(rows)
    assert summary["questions"] == 2 and summary["off_topic"]["questions"] == 1
    assert sum(summary["counts"][v] for v in VERDICTS) == 2  # one verdict per question
    assert (
        summary["counts"][ATTRIBUTED]
        <= summary["counts"]["correct_uncited"] + (summary["counts"]["correct_cited"])
    )  # "cited after attribution" is a subset of the correct answers, not a verdict

    no_model = answer_path(model_settings, rag_pool, embedder, _NoModel())  # type: ignore[arg-type]
    again = await run_set(no_model, qset, rows_file)
    assert [r["verdict"] for r in again] == [r["verdict"] for r in rows]
