"""GuruBot: the discord.py client. It only adapts Discord to `core.Services`."""

from __future__ import annotations

import asyncio
import logging
import signal

import discord
from discord.ext import commands

from core.config import Settings
from core.services import Services

__all__ = ["GuruBot", "run_bot"]

log = logging.getLogger(__name__)

# Cogs land here as the slash-command work arrives (ask, calc, explain, docs, settings, status).
EXTENSIONS: tuple[str, ...] = ()


def _intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = True  # pins and message ingestion read message text
    return intents


class GuruBot(commands.AutoShardedBot):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=_intents(),
            allowed_mentions=discord.AllowedMentions.none(),  # model output never pings anyone
        )
        self.settings = settings
        self.services: Services | None = None

    async def setup_hook(self) -> None:
        self.services = await Services.open(self.settings)
        for name in EXTENSIONS:
            try:
                await self.load_extension(name)
            except Exception:  # noqa: BLE001 - one broken cog must not stop the bot
                log.exception("failed to load extension %s", name)

    async def on_ready(self) -> None:
        log.info("connected as %s to %d guilds", self.user, len(self.guilds))

    async def close(self) -> None:
        try:
            if self.services is not None:
                await self.services.aclose()
        finally:
            await super().close()


async def _serve(settings: Settings) -> None:
    bot = GuruBot(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # clean shutdown: engine, pool, embedded db
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.close()))
    async with bot:
        await bot.start(settings.discord_token or "")


def run_bot(settings: Settings) -> int:
    try:
        asyncio.run(_serve(settings))
    except discord.LoginFailure:
        log.error("Discord rejected DISCORD_TOKEN; check the token in your bot's settings.")
        return 2
    return 0
