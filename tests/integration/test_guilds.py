"""core/guilds.py on the real embedded Postgres: defaults, updates, allow-lists, isolation,
audit."""

from __future__ import annotations

import itertools

import pytest

from core.errors import InvalidInput
from core.guilds import GuildSettings, GuildSettingsRepo

_ids = itertools.count(7_000_001)


@pytest.fixture
def repo(db_pool) -> GuildSettingsRepo:
    return GuildSettingsRepo(db_pool)


async def test_a_guild_without_a_row_has_all_defaults(repo):
    gid = next(_ids)
    assert await repo.get(gid) == GuildSettings(gid)


async def test_settings_are_stored_per_guild_and_audited(repo, db_pool):
    a, b = next(_ids), next(_ids)
    await repo.set(a, actor_id=42, guild_name="A", system_prompt="Be brief.", temperature=0.2)
    await repo.allow(a, "allowed_channel_ids", 555, True, actor_id=42)
    await repo.allow(a, "allowed_channel_ids", 555, True, actor_id=42)  # idempotent
    got = await repo.get(a)
    assert got.system_prompt == "Be brief." and got.temperature == pytest.approx(0.2)
    assert got.allowed_channel_ids == (555,)
    assert await repo.get(b) == GuildSettings(b)  # another guild sees none of it
    async with db_pool.connection() as conn:
        cur = await conn.execute("SELECT action FROM audit_log WHERE guild_id = %s", (a,))
        assert [r[0] for r in await cur.fetchall()].count("settings.allow") == 2
    assert (
        await repo.allow(a, "allowed_channel_ids", 555, False, actor_id=1)
    ).allowed_channel_ids == ()
    assert await repo.reset(a, actor_id=1) == GuildSettings(a) == await repo.get(a)


async def test_unknown_settings_are_refused(repo):
    with pytest.raises(InvalidInput):
        await repo.set(next(_ids), actor_id=None, owner_id=1)
    with pytest.raises(InvalidInput):
        await repo.allow(next(_ids), "guild_id", 1, True, actor_id=None)
