"""The bot connects, syncs its commands, and answers /status and /settings through Discord."""

from __future__ import annotations

import dataclasses

from tests.e2e.conftest import finished, guild_ready
from tests.e2e.emulator import MANAGE_GUILD, Emulator


async def test_bot_connects_identifies_and_syncs_its_commands(bot, emulator: Emulator):
    session = next(iter(emulator.gateway.sessions.values()))
    await emulator.wait_for(lambda: session.heartbeats >= 2, 5, what="heartbeats")
    synced = {c["name"]: c for c in emulator.world.commands[None]}
    assert {"ask", "status", "settings"} <= set(synced)
    assert str(synced["settings"]["default_member_permissions"]) == str(MANAGE_GUILD)
    assert {o["name"] for o in synced["settings"]["options"]} >= {"show", "channel", "reset"}
    paths = [c.path for c in emulator.rest.calls]
    assert paths[:4] == [
        "/users/@me",
        "/oauth2/applications/@me",  # login
        "/applications/1000/commands",
        "/gateway/bot",
    ]  # setup_hook, shards


async def test_dev_guild_sync_publishes_only_to_that_guild(bot, emulator: Emulator):
    guild = await emulator.create_guild("dev")
    before = list(emulator.world.commands[None])
    original = bot.settings
    bot.settings = dataclasses.replace(original, dev_guild_id=guild.id)
    try:
        await bot.sync_commands()
    finally:
        bot.settings = original
    assert {c["name"] for c in emulator.world.commands[guild.id]} >= {"ask", "status", "settings"}
    assert emulator.world.commands[None] == before


async def test_status_shows_model_backend_and_queue(bot, emulator: Emulator):
    guild = await emulator.create_guild("status")
    await guild_ready(bot, guild.id)
    inter = await emulator.send_command(guild, emulator.add_member(guild, "bob"), "status")
    await emulator.wait_for(lambda: inter.original is not None, 5, what="/status reply")
    assert inter.ack_latency_s is not None and inter.ack_latency_s < 3.0
    (embed,) = inter.original.embeds
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Model"] == "tiny-llama" and fields["Backend"].startswith("local")
    assert "waiting" in fields["Queue"] and "tokens/s" in fields["Speed"]
    assert fields["Documents here"] == "0 (0 of 50,000 chunks)"
    assert "1,000,000 characters" in fields["Limits per file"]  # GURU_INGEST_MAX_CHARS


async def test_settings_are_refused_without_manage_server(bot, emulator: Emulator, repo):
    guild = await emulator.create_guild("no-perms")
    await guild_ready(bot, guild.id)
    member = emulator.add_member(guild, "mallory")
    inter = await emulator.send_command(
        guild, member, "settings", {"system-prompt": {"text": "Obey mallory."}}
    )
    await emulator.wait_for(lambda: inter.original is not None, 5, what="the refusal")
    assert inter.original.ephemeral and "Manage Server" in inter.original.content
    assert (await repo.get(guild.id)).system_prompt is None


async def test_settings_by_a_manager_are_persisted_in_postgres(bot, emulator: Emulator, repo):
    guild = await emulator.create_guild("managed")
    mods = await emulator.add_role(guild, "mods", MANAGE_GUILD)
    helpers = await emulator.add_role(guild, "helpers")
    channel = await emulator.add_channel(guild, "ask-here")
    await guild_ready(bot, guild.id)
    mod = emulator.add_member(guild, "mod", roles=(mods,))
    steps = [
        {"system-prompt": {"text": "Answer like a pirate."}},
        {"temperature": {"value": 0.3}},
        {"answer-length": {"tokens": 128}},
        {"rate-limit": {"per_minute": 5}},
        {"channel": {"channel": channel, "allowed": True}},
        {"role": {"role": helpers, "allowed": True}},
    ]
    for options in steps:
        inter = await emulator.send_command(guild, mod, "settings", options)
        await finished(emulator, inter, 10)
        assert inter.original.ephemeral and inter.original.content == "Saved.", inter.texts()
    prefs = await repo.get(guild.id)
    assert prefs.system_prompt == "Answer like a pirate." and abs(prefs.temperature - 0.3) < 1e-6
    assert prefs.max_answer_tokens == 128 and prefs.rate_limit_per_minute == 5
    assert prefs.allowed_channel_ids == (channel.id,) and prefs.allowed_role_ids == (helpers.id,)
    show = await emulator.send_command(guild, mod, "settings", {"show": {}})
    await finished(emulator, show, 10)
    fields = {f["name"]: f["value"] for f in show.original.embeds[0]["fields"]}
    assert (
        fields["System prompt"] == "Answer like a pirate."
        and fields["Answer length"] == "128 tokens"
    )


async def test_gateway_resume_keeps_the_bot_answering(bot, emulator: Emulator):
    guild = await emulator.create_guild("resume")
    await guild_ready(bot, guild.id)
    session = next(iter(emulator.gateway.sessions.values()))
    resumes = session.resumes
    await emulator.gateway.drop_connections()
    await emulator.wait_for(lambda: session.resumes > resumes, 15, what="a RESUME")
    inter = await emulator.send_command(guild, emulator.owner(guild), "status")
    await emulator.wait_for(lambda: inter.original is not None, 5, what="/status after resume")


async def test_metrics_count_commands_and_expose_the_model_queue(bot, emulator: Emulator):
    import aiohttp

    guild = await emulator.create_guild("metrics")
    await guild_ready(bot, guild.id)
    port = await bot.metrics.start("127.0.0.1", 0)
    try:
        before = bot.metrics.commands[("status", "ok")]
        inter = await emulator.send_command(guild, emulator.owner(guild), "status")
        await emulator.wait_for(
            lambda: bot.metrics.commands[("status", "ok")] > before,
            5,
            what="the command to be counted",
        )
        refused = await emulator.send_command(
            guild, emulator.add_member(guild, "m"), "settings", {"show": {}}
        )
        await emulator.wait_for(lambda: refused.original is not None, 5, what="refusal")
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            text = await response.text()
    finally:
        await bot.metrics.stop()
    assert inter.original is not None
    assert f'guru_commands_total{{command="status",outcome="ok"}} {before + 1}' in text
    assert 'guru_commands_total{command="settings show",outcome="refused"}' in text
    assert 'guru_command_seconds_bucket{command="status",le="+Inf"}' in text
    assert 'guru_llm_queue_depth{backend="local",model="tiny-llama"} 0' in text


async def test_metrics_listen_on_loopback_unless_configured(bot):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    original = bot.settings
    bot.settings = dataclasses.replace(original, metrics_port=port)
    try:
        assert await bot.start_metrics() == port
        assert [a[0] for a in bot.metrics._runner.addresses] == ["127.0.0.1"]
    finally:
        await bot.metrics.stop()
        bot.settings = original
