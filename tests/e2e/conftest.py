"""E2E fixtures: the emulator, real core services (embedded Postgres, tiny Llama engine) and
the real GuruBot connected to the emulator — one of each per session, since a bot boot costs
seconds; tests isolate themselves by creating their own guilds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.client import GuruBot
from core.answering import Answers
from core.config import Settings
from core.db.pool import Database, open_pool
from core.guilds import GuildSettingsRepo
from core.interactions import InteractionRepo
from core.llm.engine.engine import Engine
from core.rag.types import ParsedDocument, Section
from core.services import Services
from tests.e2e.emulator import Emulator, Interaction
from tests.fixtures.models import BUNDLED, make_babbling_llama

# The tiny Llama uses rotary positions, so it runs past its nominal 512-token window; a longer
# window lets one answer stream for a few seconds (≈ 2.5 ms a token) to exercise throttled edits.
TINY_CONTEXT = 4096


@pytest.fixture(scope="session")
async def emulator() -> AsyncIterator[Emulator]:
    # Heartbeats every 0.5 s: a blocked event loop shows up at once, not after 41 s.
    emu = Emulator(heartbeat_interval_ms=500)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture(scope="session")
async def e2e_services(
    bundled_tokenizer: Any, migrated_url: str, test_data_dir: Path
) -> AsyncIterator[Services]:
    import torch

    torch.set_num_threads(1)  # one core stays free for the event loop on the shared 2-core host
    settings = Settings(
        data_dir=str(test_data_dir),
        device="cpu",
        threads=1,
        temperature=0.0,
        max_new_tokens=2000,
        context_tokens=TINY_CONTEXT,
        max_queue=128,
        max_queue_per_guild=32,
        model=BUNDLED,
        calc_model=BUNDLED,  # = the core model: /calc runs on the tiny engine too
        sources_allow_private=True,  # /docs add url syncs the tests' site on 127.0.0.1
    )
    # a tiny model that talks (fixtures/models.py): its answers pass the answering path's checks
    loaded = dataclasses.replace(
        make_babbling_llama(bundled_tokenizer), context_tokens=TINY_CONTEXT
    )
    engine = Engine.from_settings(loaded, settings)
    pool = await open_pool(migrated_url, min_size=1, max_size=8)
    services = Services(settings, llm=engine, db=Database(pool))
    # The tiny model talks in random words no source contains: the faithfulness check would
    # (rightly) reject every answer. It is tested on the real model; here the Discord side is.
    services.answers = Answers(services, faithful=False)
    # Load the encoder now, not in a worker thread at bot start (the /explain notes sync):
    # two transformers loads at once in one process can leave a tied lm_head on the meta
    # device ("Tensor.item() cannot be called on meta tensors" when the bundled model loads).
    services.embedder.embed_sync(["warm up"])
    yield services
    await services.aclose()


@pytest.fixture(scope="session")
async def bot(emulator: Emulator, e2e_services: Services) -> AsyncIterator[GuruBot]:
    settings = emulator.bot_settings(e2e_services.settings)
    guru = GuruBot(settings, services=e2e_services, guild_ready_timeout=0.05)
    task = asyncio.create_task(guru.start(emulator.token))
    deadline = time.monotonic() + 30
    while not guru.is_ready():
        if task.done():
            task.result()  # raises the start failure
        assert time.monotonic() < deadline, "bot did not become ready"
        await asyncio.sleep(0.02)
    yield guru
    await guru.close()
    await asyncio.wait_for(task, 10)


@pytest.fixture(scope="session")
def repo(e2e_services: Services) -> GuildSettingsRepo:
    assert e2e_services.db is not None
    return GuildSettingsRepo(e2e_services.db.pool)


async def guild_ready(bot: GuruBot, guild_id: int) -> None:
    """Wait until the bot has processed the guild's GUILD_CREATE."""
    for _ in range(250):
        if bot.get_guild(guild_id) is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"bot never saw guild {guild_id}")


async def finished(
    emu: Emulator,
    inter: Interaction,
    timeout: float = 30.0,
    done: Callable[[Interaction], Any] | None = None,
) -> Interaction:
    """Wait until the reply is final: acked, no longer loading, no Cancel button left
    (or until `done(inter)`, for replies with follow-ups)."""

    def is_final() -> bool:
        if not inter.acked or inter.loading or not inter.messages:
            return False
        if done is not None:
            return bool(done(inter))
        original = inter.messages[0]
        return (
            "guru:cancel" not in original.custom_ids()
            and "▌" not in original.content
            and "Thinking" not in original.content
            and "Waiting in line" not in original.content
        )

    await emu.wait_for(is_final, timeout, what=f"the final reply to interaction {inter.id}")
    return inter


async def recorded(services: Services, guild_id: int, discord_id: int) -> dict[str, Any]:
    """The interaction row once its answer is stored (written just after the final edit)."""
    answers = InteractionRepo(services.db.pool)
    for _ in range(100):
        row = await answers.get(guild_id, discord_id)
        if row is not None and row["finish_reason"] is not None:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"interaction {discord_id} was never finished in the database")


async def add_document(services: Services, guild_id: int, title: str, text: str) -> int:
    """Ingest a document straight into a guild's knowledge base (as `/docs add` of a file would,
    uri `upload:<title>.md`); returns its id."""
    doc = ParsedDocument(f"upload:{title}.md", title, (Section("", text),))
    outcome = await services.knowledge.ingestor.ingest_document(guild_id, doc)
    assert outcome.document_id is not None, outcome
    return outcome.document_id
