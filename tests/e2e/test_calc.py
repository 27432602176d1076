"""/calc end to end: deferred, progress while it works, the program as a ```py block and its
result, friendly errors. The tiny model writes garbage (the error path); an injected program
and, when installed, the real code model exercise the success path through the real sandbox."""

from __future__ import annotations

import pytest

from core.interactions import InteractionRepo
from core.pal.solver import PalSolver
from core.sandbox import SandboxLimits
from core.tuning.data import approved_pairs
from tests.e2e.conftest import finished, guild_ready, recorded
from tests.e2e.emulator import Emulator, Interaction
from tests.fixtures.sandbox_host import host_refusal

_refusal = host_refusal(SandboxLimits())
pytestmark = pytest.mark.skipif(
    _refusal is not None, reason=f"the sandbox refuses on this host: {_refusal}"
)

PROGRAM = """Here you go:
```python
def solution():
    apples_per_bag = 4
    bags = 3
    print("bags:", bags)
    return apples_per_bag * bags
```"""


async def calc(bot, emulator: Emulator, name: str, problem: str, timeout=60) -> Interaction:
    guild = await emulator.create_guild(name)
    await guild_ready(bot, guild.id)
    inter = await emulator.send_command(guild, emulator.owner(guild), "calc", {"problem": problem})
    await emulator.wait_for(lambda: inter.acked, 3, what="the defer")
    return await finished(
        emulator,
        inter,
        timeout,
        done=lambda i: any(
            mark in i.messages[-1].content for mark in ("**Answer:**", "No answer", "⚠️")
        ),
    )


def progress_shown(inter: Interaction) -> list[str]:
    return [r.content for r in inter.original.revisions]


async def test_calc_shows_the_program_and_its_result(bot, emulator: Emulator, monkeypatch):
    async def write(self, messages, *, sample, sampled, guild_id=None):
        return PROGRAM

    monkeypatch.setattr(PalSolver, "generate", write)
    inter = await calc(bot, emulator, "calc-ok", "3 bags of 4 apples: how many apples?")
    assert inter.deferred and inter.ack_latency_s < 3.0
    revisions = progress_shown(inter)
    assert "✍️ Writing code…" in revisions and "▶️ Running the program…" in revisions
    content = inter.original.content
    assert content.startswith("**Program**\n```py\ndef solution():\n    apples_per_bag = 4")
    assert "**Printed**\n```\nbags: 3\n```" in content
    assert content.endswith("**Answer:** 12"), content


async def test_calc_answers_are_stored_and_rated_like_ask(bot, emulator: Emulator, monkeypatch):
    async def write(self, messages, *, sample, sampled, guild_id=None):
        return PROGRAM

    monkeypatch.setattr(PalSolver, "generate", write)
    problem = "3 bags of 4 apples: how many apples?"
    inter = await calc(bot, emulator, "calc-rated", problem)
    assert inter.original.custom_ids() == [f"guru:fb:{inter.id}:up", f"guru:fb:{inter.id}:down"]
    guild, pool = inter.guild, bot.services.db.pool
    row = await recorded(bot.services, guild.id, inter.id)
    assert row["command"] == "calc" and row["question"] == problem
    assert row["answer"] == inter.original.content and row["finish_reason"] == "answer"
    answers = InteractionRepo(pool)
    up = await emulator.click(inter.original, f"guru:fb:{inter.id}:up", emulator.owner(guild))
    await emulator.wait_for(lambda: up.original is not None, 5, what="the thanks")
    assert up.original.ephemeral and up.original.content == "Thanks, noted!"
    assert (await answers.get(guild.id, inter.id))["feedback"] == 1
    async with pool.connection() as conn:  # a moderator approves it for tuning…
        await conn.execute(
            "UPDATE interactions SET approved = true WHERE guild_id = %s", (guild.id,)
        )
    assert await approved_pairs(pool, guild.id) == []  # …yet /calc never becomes chat data


async def test_calc_with_a_model_that_cannot_code_says_so_briefly(bot, emulator: Emulator):
    inter = await calc(bot, emulator, "calc-garbage", "What is 17 times 23?", timeout=120)
    text = "\n".join(m.content for m in inter.messages)
    assert "⚠️ No answer:" in text, text
    assert "Traceback" not in text and all(len(m.content) <= 2000 for m in inter.messages)
    assert "✍️ Writing code…" in progress_shown(inter)


async def test_calc_refuses_an_empty_problem_privately(bot, emulator: Emulator):
    guild = await emulator.create_guild("calc-empty")
    await guild_ready(bot, guild.id)
    inter = await emulator.send_command(guild, emulator.owner(guild), "calc", {"problem": "   "})
    await emulator.wait_for(lambda: inter.original is not None, 5, what="the refusal")
    assert inter.original.ephemeral and "math word problem" in inter.original.content


async def test_calc_and_explain_respect_the_allowed_channels(bot, emulator: Emulator, repo):
    guild = await emulator.create_guild("calc-channels")
    elsewhere = await emulator.add_channel(guild, "elsewhere")
    await guild_ready(bot, guild.id)
    general = next(iter(guild.channels.values()))
    await repo.allow(guild.id, "allowed_channel_ids", general.id, True, actor_id=None)
    member = emulator.add_member(guild, "wanderer")
    replies = [
        await emulator.send_command(guild, member, name, options, elsewhere)
        for name, options in (
            ("calc", {"problem": "What is 2 + 2?"}),
            ("explain", {"topic": "attention"}),
        )
    ]
    await emulator.wait_for(lambda: all(r.original for r in replies), 5, what="refusals")
    for inter in replies:
        assert inter.original.ephemeral and f"<#{general.id}>" in inter.original.content


@pytest.mark.slow
@pytest.mark.model
async def test_calc_with_the_real_code_model(bot, emulator: Emulator, calc_engine, monkeypatch):
    async def code_model():
        return calc_engine

    monkeypatch.setattr(bot.services, "calc_llm", code_model)
    inter = await calc(
        bot,
        emulator,
        "calc-real",
        "Tom has 3 bags with 4 apples in each bag. How many apples does Tom have?",
        timeout=240,
    )
    content = inter.original.content
    assert "```py\n" in content and "def solution" in content, content
    assert content.rstrip().endswith("**Answer:** 12"), content
