"""The grounded adapter end to end, on real Postgres, the real encoder and a tiny random Llama:
the builder's prompt is the answering path's own, training goes through `run_lora_job` into a
versioned folder, and serving gives it only to guilds without an adapter of their own."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

from bench.grounded.build import Chunk, example_for, prompt_for
from bench.grounded.filters import REFUSAL_TARGET, Written
from bench.grounded.train import train
from core.answering import Answers
from core.answering.grounded import ENGINE_NAME, grounded_root, resolve
from core.config import Settings
from core.db.pool import Database, Pool
from core.llm.engine.engine import Engine
from core.rag.embedder import Embedder
from core.rag.types import ParsedDocument, Section
from core.services import Services
from core.tuning.data import Pair, write_jsonl
from core.tuning.registry import AdapterRepo
from tests.fixtures.models import make_tiny_llama
from tests.integration.test_engine_adapters import make_adapter
from tests.integration.tuning.test_hotswap import _register

POOL = (
    "The pool keeps at most max_size connections open; the default max_size is 4. "
    "Raise it with PSYCOPG_POOL_MAX when many tasks wait for a connection."
)
DOCS = {
    "upload:pool.md": ("Connection pool", POOL),
    "upload:pool-tuning.md": (
        "Pool tuning",
        "A connection pool reuses connections between tasks; size the pool to the number of "
        "workers that wait for a connection at the same time.",
    ),
    "upload:raids.md": ("Raids", "Guild raids start every Friday at 21:00 in the Crystal Caves."),
}
QUESTION = Written("How do I raise the maximum size of the connection pool?", "PSYCOPG_POOL_MAX")


async def _ingest(services: Services, guild: int) -> None:
    for uri, (title, text) in DOCS.items():
        doc = ParsedDocument(uri, title, (Section("", text),))
        await services.knowledge.ingestor.ingest_document(guild, doc)


async def test_the_builders_prompt_is_what_answering_builds(
    fresh_pool: Pool, embedder: Embedder, model_settings: Settings, bundled_tokenizer: object
) -> None:
    engine = Engine(make_tiny_llama(bundled_tokenizer, seed=2), max_batch=2)
    services = Services(model_settings, llm=engine, db=Database(fresh_pool), embedder=embedder)
    answers = Answers(services)
    guild = 930_000_000_000_000_301
    try:
        await _ingest(services, guild)
        gold = Chunk(guild, "upload:pool.md", "Connection pool", POOL)
        made = await prompt_for(answers, gold, QUESTION, refusal=False, rng=random.Random(0))
        assert not isinstance(made, str)
        prepared = await answers.prepare("ask", guild, QUESTION.question)
        assert prepared.request is not None
        assert made.messages == list(prepared.request.messages)  # retrieval found the gold
        assert made.gold_n is not None
        assert made.grounding.sources[made.gold_n - 1].uri == "upload:pool.md"

        # the gold page is removed: the other sources stay, the target is the refusal
        refusal = await example_for(
            answers, engine, gold, QUESTION, refusal=True, rng=random.Random(0)
        )
        assert refusal.pair is not None and refusal.pair.output == REFUSAL_TARGET
        prompt = refusal.pair.messages[-1][1]
        assert "PSYCOPG_POOL_MAX" not in prompt and "reuses connections" in prompt
        assert refusal.pair.messages[0] == ("system", prepared.request.messages[0].content)

        # a span the chunk does not hold: nothing is asked of the model
        wrong = Written(QUESTION.question, "PSYCOPG_POOL_LIMIT")
        dropped = await example_for(
            answers, engine, gold, wrong, refusal=False, rng=random.Random(0)
        )
        assert dropped.pair is None and dropped.reason == "span not in chunk"
    finally:
        await engine.aclose()


def test_training_writes_a_versioned_adapter_with_its_metadata(
    tmp_path: Path, bundled_tokenizer: object
) -> None:
    tiny = make_tiny_llama(bundled_tokenizer, seed=4)
    model_dir = tmp_path / "tiny"
    tiny.model.save_pretrained(model_dir)
    bundled_tokenizer.save_pretrained(model_dir)  # type: ignore[attr-defined]
    system = ("system", "Answer the question using only the numbered sources.")
    pairs = [
        Pair(
            (system, ("user", f"<sources>[1] pool: size {i}</sources>\nQuestion: size?")),
            f"{i} [1].",
        )
        for i in range(8)
    ] + [Pair((system, ("user", "<sources>[1] raids</sources>\nQuestion: size?")), REFUSAL_TARGET)]
    data = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, str(data))
    settings = Settings(data_dir=str(tmp_path / "data"), model=str(model_dir), threads=1)

    out = train(settings, data, max_steps=2, checkpoint_every=1)

    assert out == grounded_root(settings.data_dir) / "v1"
    meta = json.loads((out / "grounded.json").read_text())
    assert meta["base_model"] == str(model_dir) and meta["steps"] == 2
    assert meta["data"]["pairs"] == 9 and meta["data"]["refusals"] == 1
    assert meta["data"]["train"] + meta["data"]["eval"] == 9 and meta["data"]["eval"] >= 1
    assert meta["eval_loss_after"] < meta["eval_loss_before"]
    found = resolve(str(out), settings.model)
    assert found is not None and found.adapter_dir == out / "adapter"
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert not (out / "checkpoint.pt").exists()  # resume state is not shipped
    assert train(settings, data, max_steps=1) == out.parent / "v2"  # never overwritten


async def test_the_shipped_adapter_serves_only_guilds_without_their_own(
    fresh_pool: Pool,
    embedder: Embedder,
    model_settings: Settings,
    bundled_tokenizer: object,
    tmp_path: Path,
) -> None:
    tiny = make_tiny_llama(bundled_tokenizer, seed=5)
    own_guild, plain_guild = 930_000_000_000_000_311, 930_000_000_000_000_312
    await _register(fresh_pool, own_guild, make_adapter(tiny.model.config, tmp_path / "own", 1))
    await AdapterRepo(fresh_pool).activate(own_guild, 1)
    shipped = tmp_path / "v1"
    make_adapter(tiny.model.config, shipped / "adapter", 2)
    (shipped / "grounded.json").write_text(json.dumps({"base_model": model_settings.model}))
    engine = Engine(tiny, max_batch=2)
    settings = dataclasses.replace(model_settings, grounded_adapter=str(shipped))
    services = Services(settings, llm=engine, db=Database(fresh_pool), embedder=embedder)
    try:
        # a guild's own adapter replaces the shipped one; the others get the shipped one
        assert await services.adapter_for(own_guild) == f"g{own_guild}-v1"
        assert await services.adapter_for(plain_guild) == ENGINE_NAME
        assert ENGINE_NAME in engine.adapters.names()
        await _ingest(services, plain_guild)
        prepared = await Answers(services).prepare("ask", plain_guild, QUESTION.question)
        assert prepared.request is not None and prepared.request.adapter == ENGINE_NAME

        # off (the default), or trained on another preset: the base model
        off = Services(model_settings, llm=engine, db=Database(fresh_pool), embedder=embedder)
        assert await off.adapter_for(plain_guild) is None
        (shipped / "grounded.json").write_text(json.dumps({"base_model": "qwen2.5-coder-0.5b"}))
        other = Services(settings, llm=engine, db=Database(fresh_pool), embedder=embedder)
        assert await other.adapter_for(plain_guild) is None
    finally:
        await engine.aclose()
