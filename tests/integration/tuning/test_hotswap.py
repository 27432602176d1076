"""Activation and rollback reach a running engine through NOTIFY, for one guild only."""

from __future__ import annotations

import asyncio

import pytest

from core.db.pool import Pool
from core.llm.engine.engine import Engine
from core.llm.types import Request, user
from core.tuning.hotswap import AdapterListener, GuildAdapters
from core.tuning.jobs import JobRepo
from core.tuning.registry import AdapterRepo
from tests.fixtures.models import make_tiny_llama
from tests.integration.test_engine_adapters import make_adapter

GUILD_A, GUILD_B = 810, 820
PROMPT = user("what does our server like?")


@pytest.fixture
def pool(fresh_pool: Pool) -> Pool:
    return fresh_pool


async def _register(pool: Pool, guild: int, adapter_path: str, base_model: str = "tiny") -> int:
    """Record an adapter version as a finished job would."""
    jobs = JobRepo(pool)
    await jobs.enqueue(
        guild,
        {},
        [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}],
    )
    job = await jobs.claim("w", 60, 3)
    adapter = await AdapterRepo(pool).record(
        guild_id=guild,
        job_id=job.id,
        worker="w",
        source_dir=adapter_path,
        data_dir=str(adapter_path) + "-data",
        method="lora-float32",
        base_model=base_model,
        metrics={},
        progress={},
    )
    return adapter.version


async def _until(check, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_activation_and_rollback_swap_one_guild_in_a_running_engine(
    pool, bundled_tokenizer, tmp_path
):
    tiny = make_tiny_llama(bundled_tokenizer, seed=7)
    config = tiny.model.config
    for guild, seed, name in ((GUILD_A, 1, "a1"), (GUILD_A, 2, "a2"), (GUILD_B, 3, "b1")):
        await _register(pool, guild, make_adapter(config, tmp_path / name, seed=seed))
    repo = AdapterRepo(pool)
    await repo.activate(GUILD_B, 1)
    engine = Engine(tiny, max_batch=4)
    routes = GuildAdapters()
    listener = AdapterListener(pool, engine, routes, unload_grace_s=0.2)

    async def answer(guild: int | None) -> str:
        adapter = routes.adapter_for(guild)
        request = Request(PROMPT, guild_id=guild, adapter=adapter, max_new_tokens=12)
        return (await engine.complete(request)).text

    try:
        base = await answer(None)
        listener.start()
        await asyncio.wait_for(listener.listening.wait(), 15)
        assert routes.snapshot() == {GUILD_B: f"g{GUILD_B}-v1"}  # synced at start
        b_text = await answer(GUILD_B)
        assert await answer(GUILD_A) == base != b_text

        await repo.activate(GUILD_A, 1)
        await _until(lambda: routes.adapter_for(GUILD_A) == f"g{GUILD_A}-v1")
        a1 = await answer(GUILD_A)
        await repo.activate(GUILD_A, 2)
        await _until(lambda: routes.adapter_for(GUILD_A) == f"g{GUILD_A}-v2")
        a2 = await answer(GUILD_A)
        assert len({base, a1, a2, b_text}) == 4
        await _until(lambda: f"g{GUILD_A}-v1" not in engine.adapters.names())  # old one unloaded

        await repo.rollback(GUILD_A)
        await _until(lambda: routes.adapter_for(GUILD_A) == f"g{GUILD_A}-v1")
        assert await answer(GUILD_A) == a1
        await repo.rollback(GUILD_A)
        await _until(lambda: routes.adapter_for(GUILD_A) is None)
        assert await answer(GUILD_A) == base
        await _until(lambda: engine.adapters.names() == (f"g{GUILD_B}-v1",))
        # Quick flips end on the last one, each version loaded at most once.
        for version in (2, 1, 2):
            await repo.activate(GUILD_A, version)
        await _until(
            lambda: (
                routes.adapter_for(GUILD_A) == f"g{GUILD_A}-v2"
                and f"g{GUILD_A}-v1" not in engine.adapters.names()
            )
        )
        assert await answer(GUILD_A) == a2
        await repo.rollback(GUILD_A)
        await repo.rollback(GUILD_A)
        await _until(lambda: engine.adapters.names() == (f"g{GUILD_B}-v1",))
        # Guild B was never touched: same route, same answer, throughout.
        assert routes.snapshot() == {GUILD_B: f"g{GUILD_B}-v1"}
        assert await answer(GUILD_B) == b_text
    finally:
        await listener.aclose()
        await engine.aclose()


async def test_services_start_the_listener_and_route_by_guild(pool, bundled_tokenizer, tmp_path):
    from core.config import Settings
    from core.db.pool import Database
    from core.services import Services

    tiny = make_tiny_llama(bundled_tokenizer, seed=8)
    await _register(pool, GUILD_A, make_adapter(tiny.model.config, tmp_path / "a1", seed=1))
    await AdapterRepo(pool).activate(GUILD_A, 1)
    services = Services(Settings(data_dir=str(tmp_path)), llm=Engine(tiny), db=Database(pool))
    try:
        await services.start_adapter_listener()  # returns once the first sync is done
        assert services.guild_adapters.adapter_for(GUILD_A) == f"g{GUILD_A}-v1"
        assert services.guild_adapters.adapter_for(GUILD_B) is None
        assert services.llm.adapters.names() == (f"g{GUILD_A}-v1",)
    finally:
        services.db = None  # the fixture owns the pool
        await services.aclose()


async def test_reactivating_during_a_pending_unload_keeps_the_adapter_loaded(
    pool, bundled_tokenizer, tmp_path
):
    tiny = make_tiny_llama(bundled_tokenizer, seed=9)
    for name, seed in (("v1", 1), ("v2", 2)):
        await _register(pool, GUILD_A, make_adapter(tiny.model.config, tmp_path / name, seed))
    repo, engine, routes = AdapterRepo(pool), Engine(tiny), GuildAdapters()
    listener = AdapterListener(pool, engine, routes, unload_grace_s=0.5)  # not started: driven
    try:
        await repo.activate(GUILD_A, 1)
        await listener.sync_guild(GUILD_A)
        await repo.activate(GUILD_A, 2)
        await listener.sync_guild(GUILD_A)  # v1's unload is now pending
        await repo.activate(GUILD_A, 1)
        await listener.sync_guild(GUILD_A)  # waits for that unload, then loads v1 again
        await asyncio.sleep(0.8)  # v2's unload runs
        assert routes.adapter_for(GUILD_A) == f"g{GUILD_A}-v1"
        assert engine.adapters.names() == (f"g{GUILD_A}-v1",)
        request = Request(
            PROMPT, guild_id=GUILD_A, adapter=routes.adapter_for(GUILD_A), max_new_tokens=4
        )
        assert (await engine.complete(request)).finish_reason in ("stop", "length")
    finally:
        await listener.aclose()
        await engine.aclose()


async def test_an_adapter_of_another_preset_is_neither_activated_nor_served(
    pool, bundled_tokenizer, tmp_path
):
    """After GURU_MODEL changes (the default went from SmolLM2 to Qwen2.5), a guild's adapter
    trained on the old preset does not fit the new one's layers: activating it is refused
    with the reason, and one already active is not loaded; that guild gets the base model."""
    from core.errors import InvalidInput

    tiny = make_tiny_llama(bundled_tokenizer, seed=9)
    path = make_adapter(tiny.model.config, tmp_path / "old", seed=1)
    await _register(pool, GUILD_A, path, base_model="smollm2-135m")
    repo = AdapterRepo(pool)
    with pytest.raises(InvalidInput, match="trained on smollm2-135m, but this bot runs qwen2"):
        await repo.activate(GUILD_A, 1, serving="qwen2.5-coder-0.5b")
    assert await repo.active(GUILD_A) is None
    await repo.activate(GUILD_A, 1, serving="smollm2-135m")  # its own preset: fine
    engine = Engine(tiny, max_batch=2)
    routes = GuildAdapters()
    try:
        await AdapterListener(pool, engine, routes, base_model="qwen2.5-coder-0.5b").sync_all()
        assert routes.adapter_for(GUILD_A) is None and engine.adapters.names() == ()
        await AdapterListener(pool, engine, routes, base_model="smollm2-135m").sync_all()
        assert routes.adapter_for(GUILD_A) == f"g{GUILD_A}-v1"
    finally:
        await engine.aclose()
