"""The emulator behaves like Discord where it matters, seen through the bot's real discord.py
client: messages, edits, deletes and pins arrive as events; pins and messages over REST; rate
limit headers are obeyed; the 3 s acknowledgement window and double acks are enforced."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.e2e.conftest import guild_ready
from tests.e2e.emulator import Emulator


async def test_message_and_pin_events_reach_the_client(bot, emulator: Emulator):
    guild = await emulator.create_guild("events")
    await guild_ready(bot, guild.id)
    channel = next(iter(guild.channels.values()))
    author = emulator.add_member(guild, "writer")
    created = asyncio.ensure_future(bot.wait_for("message", timeout=5))
    msg = await emulator.post_message(channel, author, "The deploy key lives in the vault.")
    received = await created
    assert received.content == msg.content and received.guild.id == guild.id
    edited = asyncio.ensure_future(bot.wait_for("raw_message_edit", timeout=5))
    await emulator.edit_message(msg, "The deploy key lives in vault 2.")
    assert (await edited).message.content == "The deploy key lives in vault 2."
    pins = asyncio.ensure_future(bot.wait_for("guild_channel_pins_update", timeout=5))
    await emulator.set_pinned(msg, True)
    pinned_channel, last_pin = await pins
    assert pinned_channel.id == channel.id and last_pin is not None
    assert [m.id async for m in bot.get_channel(channel.id).pins()] == [msg.id]
    deleted = asyncio.ensure_future(bot.wait_for("raw_message_delete", timeout=5))
    await emulator.delete_message(msg)
    assert (await deleted).message_id == msg.id


async def test_rest_messages_pins_and_rate_limit_headers(bot, emulator: Emulator):
    guild = await emulator.create_guild("rest")
    await guild_ready(bot, guild.id)
    channel = bot.get_channel(next(iter(guild.channels)))
    emulator.rest.limits.limit(f"POST /channels/{channel.id}/messages$", limit=2, per_s=1.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = [await channel.send(f"note {i}") for i in range(4)]
    assert loop.time() - start >= 0.9  # discord.py waited on X-RateLimit-Remaining: 0
    calls = emulator.rest.find("POST", f"/channels/{channel.id}/messages$")
    assert [c.status for c in calls] == [200] * 4  # …so it never hit a 429
    await sent[1].pin()
    await sent[1].edit(content="note 1 (edited)")
    fetched = await channel.fetch_message(sent[1].id)
    assert fetched.content == "note 1 (edited)" and fetched.pinned
    await sent[1].unpin()
    assert [m async for m in channel.pins()] == []


async def test_the_ack_window_and_double_acks_are_enforced(bot, emulator: Emulator):
    guild = await emulator.create_guild("raw")
    inter = emulator._new_interaction(
        2, guild, next(iter(guild.channels)), emulator.owner(guild), {"name": "nothing"}
    )
    url = f"{emulator.api_base}/interactions/{inter.id}/{inter.token}/callback"
    body = json.dumps({"type": 5}).encode()
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=body, headers=headers) as first:
            assert first.status == 200 and first.headers["Content-Type"] == "application/json"
        async with http.post(url, data=body, headers=headers) as again:
            assert again.status == 400 and (await again.json())["code"] == 40060
        late = emulator._new_interaction(2, guild, inter.channel_id, inter.member, {})
        late.created_at -= 3.5
        late_url = f"{emulator.api_base}/interactions/{late.id}/{late.token}/callback"
        async with http.post(late_url, data=body, headers=headers) as expired:
            assert expired.status == 404 and (await expired.json())["code"] == 10062
        async with http.get(f"{emulator.api_base}/users/@me") as anonymous:
            assert anonymous.status == 401
