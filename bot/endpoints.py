"""Point discord.py at DISCORD_API_BASE / DISCORD_GATEWAY_URL (a Discord-compatible server).

discord.py 2.7.1 has no constructor option for its hosts; both are class attributes that every
request and connection reads: `discord.http.Route.BASE` (REST, interaction callbacks and
webhooks alike) and `DiscordWebSocket.DEFAULT_GATEWAY`. They are process-wide, so they are set
once, before the client logs in, from the one Settings object.
"""

from __future__ import annotations

import logging

import discord
import yarl

from core.config import Settings

__all__ = ["DISCORD_API_BASE", "DISCORD_GATEWAY", "apply_endpoints", "gateway_overridden"]

log = logging.getLogger(__name__)

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY = "wss://gateway.discord.gg/"


def gateway_overridden(settings: Settings) -> bool:
    """True when the gateway URL is not Discord's own."""
    return settings.discord_gateway_url.rstrip("/") != DISCORD_GATEWAY.rstrip("/")


def apply_endpoints(settings: Settings) -> None:
    """Set the REST base and default gateway; log them when they are not Discord's."""
    discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    gateway = settings.discord_gateway_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(
        gateway if gateway.endswith("/") else gateway + "/"
    )
    if settings.discord_api_base.rstrip("/") != DISCORD_API_BASE or gateway_overridden(settings):
        log.info("using Discord API %s and gateway %s", discord.http.Route.BASE, gateway)
