"""GuruBot: the discord.py client. It only adapts Discord to `core.Services`."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.endpoints import apply_endpoints, gateway_overridden
from bot.errors import GuruTree
from bot.feedback import FeedbackButton
from bot.helpdesk import NeedHelpButton
from bot.metrics import Metrics
from core.config import Settings
from core.errors import GuruError
from core.llm.types import BackendStats
from core.services import Services

__all__ = ["GuruBot", "run_bot"]

log = logging.getLogger(__name__)

# One extension per feature; a broken one is logged and skipped (see setup_hook).
EXTENSIONS: tuple[str, ...] = (
    "bot.cogs.status",
    "bot.cogs.settings",
    "bot.cogs.ask",
    "bot.cogs.conversation",
    "bot.cogs.calc",
    "bot.cogs.explain",
    "bot.cogs.docs",
    "bot.cogs.pins",
    "bot.cogs.sources",
    "bot.cogs.solved",
    "bot.cogs.tune",
    "bot.cogs.insights",
)


def _intents() -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    # pins, message ingestion, conversations and help channels read message text
    intents.message_content = True
    intents.guild_reactions = True  # a helper's ✅ marks a help thread's answer
    return intents


class GuruBot(commands.AutoShardedBot):
    """The bot. Pass `services` to reuse ones built elsewhere (tests); they stay the caller's."""

    def __init__(
        self, settings: Settings, services: Services | None = None, **options: Any
    ) -> None:
        apply_endpoints(settings)  # before login: every Route and the gateway read them
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=_intents(),
            allowed_mentions=discord.AllowedMentions.none(),  # model output never pings anyone
            tree_cls=GuruTree,
            **options,
        )
        self.settings = settings
        self.services: Services | None = services
        self._owns_services = services is None
        self.metrics = Metrics(self._llm_stats)

    async def setup_hook(self) -> None:
        if self.services is None:
            self.services = await Services.open(self.settings)
            # Moderators' `guru tune activate/rollback` reach this process without a restart.
            await self.services.start_adapter_listener()
        # 👍/👎 (and help channels' "Still need help?") under any past answer keep working
        # across restarts
        self.add_dynamic_items(FeedbackButton, NeedHelpButton)
        for name in EXTENSIONS:
            try:
                await self.load_extension(name)
            except Exception:  # noqa: BLE001 - one broken cog must not stop the bot
                log.exception("failed to load extension %s", name)
        await self.sync_commands()
        await self.start_metrics()

    async def start_metrics(self) -> int | None:
        """Serve /metrics on GURU_METRICS_HOST (loopback unless the operator opens it: the
        numbers tell anyone how busy the bot is); the bound port, or None when off."""
        if self.settings.metrics_port is None:
            return None
        return await self.metrics.start(self.settings.metrics_host, self.settings.metrics_port)

    def _llm_stats(self) -> BackendStats | None:
        llm = self.services.llm if self.services is not None else None
        return llm.stats() if llm is not None else None

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is discord.InteractionType.application_command:
            self.metrics.started(interaction.id)

    async def on_app_command_completion(
        self,
        interaction: discord.Interaction,
        command: app_commands.Command[Any, ..., Any] | app_commands.ContextMenu,
    ) -> None:
        self.metrics.finished(interaction.id, command.qualified_name, "ok")

    async def sync_commands(self) -> None:
        """Publish the slash commands: to GURU_DEV_GUILD only (instant), else globally.

        A bulk overwrite of unchanged commands is free of Discord's daily create limit, so
        syncing on every start keeps Discord in step with the code without bookkeeping.
        """
        if (guild_id := self.settings.dev_guild_id) is not None:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %s", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands", len(synced))

    async def launch_shards(self) -> None:
        # discord.py connects to the URL that /gateway/bot returns unless the shard count is
        # already known, then to DEFAULT_GATEWAY (shard.py:497-502). With a configured gateway,
        # learn the count first so DISCORD_GATEWAY_URL wins.
        if self.shard_count is None and gateway_overridden(self.settings):
            self.shard_count, _, _ = await self.http.get_bot_gateway()
        await super().launch_shards()

    async def on_ready(self) -> None:
        log.info("connected as %s to %d guilds", self.user, len(self.guilds))

    async def on_message(self, message: discord.Message) -> None:
        """Guru has slash commands only: a message that mentions it is a question for the
        conversation cog, not a prefix command (commands.Bot would try to parse one)."""

    async def close(self) -> None:
        await self.metrics.stop()
        try:
            if self.services is not None and self._owns_services:
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
    except GuruError as exc:  # the model or database could not start: say which, no traceback
        log.error("guru bot could not start: %s", exc.user_message)
        return 1
    return 0
