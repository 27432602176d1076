"""A local Discord API emulator (Gateway + REST) for end-to-end tests of the real discord.py bot.

No maintained emulator exists; this one speaks what discord.py 2.7.1 needs (wire facts in
../shared/DISCORD_EMULATOR.md). Modules: `state` (the world), `gateway`, `rest` (routing,
recording, rate limits), `channels`, `replies` and `threads` (routes; threads and forums),
`interactions`, `server` (API).
"""

from __future__ import annotations

from tests.e2e.emulator.interactions import Interaction
from tests.e2e.emulator.server import (
    ADMINISTRATOR,
    BOT_PERMISSIONS,
    DEFAULT_PERMISSIONS,
    MANAGE_GUILD,
    Emulator,
)
from tests.e2e.emulator.state import Channel, Guild, Member, Message, Role, Upload, User

__all__ = [
    "ADMINISTRATOR",
    "BOT_PERMISSIONS",
    "DEFAULT_PERMISSIONS",
    "MANAGE_GUILD",
    "Channel",
    "Emulator",
    "Guild",
    "Interaction",
    "Member",
    "Message",
    "Role",
    "Upload",
    "User",
]
