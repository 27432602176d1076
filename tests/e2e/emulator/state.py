"""The emulator's world: guilds, channels, roles, members, messages, and what the bot sent.

Everything here is plain data plus the payload builders discord.py 2.7.1 insists on
(../shared/DISCORD_EMULATOR.md lists the required keys). Times are `time.monotonic()` so tests
can measure latencies (ack within 3 s, ≤ 1 edit/s) against the moment a user acted.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "APP_ID",
    "BOT_USER_ID",
    "Channel",
    "Guild",
    "Member",
    "Message",
    "Revision",
    "Role",
    "Upload",
    "User",
    "World",
    "iso_now",
]

APP_ID = 1000
BOT_USER_ID = 1000  # Discord gives the bot user the application's id
JOINED_AT = "2024-01-01T00:00:00+00:00"


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class User:
    id: int
    name: str
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.name,
            "avatar": None,
            "bot": self.bot,
        }


@dataclass
class Role:
    id: int
    name: str
    permissions: int = 0
    position: int = 0

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }


@dataclass
class Member:
    user: User
    role_ids: list[int] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {
            "user": self.user.payload(),
            "roles": [str(r) for r in self.role_ids],
            "joined_at": JOINED_AT,
            "flags": 0,
            "deaf": False,
            "mute": False,
        }


@dataclass
class Channel:
    id: int
    guild_id: int
    name: str
    position: int = 0
    # Discord's permission overwrites: {"id", "type" (0 role, 1 member), "allow", "deny"}
    overwrites: list[dict[str, Any]] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": 0,
            "name": self.name,
            "position": self.position,
            "guild_id": str(self.guild_id),
            "permission_overwrites": self.overwrites,
            "nsfw": False,
        }


@dataclass
class Revision:
    """One state of a message: what it looked like from `at` on."""

    at: float
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachments: list[tuple[str, bytes]]
    flags: int


@dataclass
class Message:
    """A message in a channel: sent by the bot (REST/webhook) or by a user (gateway)."""

    id: int
    channel_id: int
    guild_id: int | None
    author: User
    revisions: list[Revision]
    interaction_id: int | None = None
    pinned: bool = False
    deleted: bool = False
    timestamp: str = field(default_factory=iso_now)
    interaction_user: User | None = None  # who ran the command this message answers
    reply_to: Message | None = None  # a reply's message_reference (and referenced_message)
    mentions: list[User] = field(default_factory=list)

    @property
    def latest(self) -> Revision:
        return self.revisions[-1]

    @property
    def content(self) -> str:
        return self.latest.content

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.latest.embeds

    @property
    def components(self) -> list[dict[str, Any]]:
        return self.latest.components

    @property
    def attachments(self) -> list[tuple[str, bytes]]:
        return self.latest.attachments

    @property
    def flags(self) -> int:
        return self.latest.flags

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & 64)

    def custom_ids(self) -> list[str]:
        """custom_id of every button/select in the message's current components."""
        return [
            c["custom_id"]
            for row in self.components
            for c in row.get("components", [])
            if "custom_id" in c
        ]

    def payload(self, base_url: str = "") -> dict[str, Any]:
        rev = self.latest
        attachments = [
            {
                "id": str(self.id * 10 + i),
                "filename": name,
                "size": len(data),
                "url": f"{base_url}/files/{self.id}/{i}/{name}",
                "proxy_url": f"{base_url}/files/{self.id}/{i}/{name}",
            }
            for i, (name, data) in enumerate(rev.attachments)
        ]
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "type": 0 if not self.interaction_id else 20,
            "content": rev.content,
            "author": self.author.payload(),
            "timestamp": self.timestamp,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [u.payload() for u in self.mentions],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": rev.embeds,
            "components": rev.components,
            "pinned": self.pinned,
            "flags": rev.flags,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.interaction_id is not None:  # a command's reply says which interaction
            user = self.interaction_user or self.author
            data["interaction_metadata"] = {
                "id": str(self.interaction_id),
                "type": 2,
                "user": user.payload(),
            }
        if self.reply_to is not None:
            data["type"] = 19  # REPLY
            data["message_reference"] = {
                "message_id": str(self.reply_to.id),
                "channel_id": str(self.reply_to.channel_id),
                "guild_id": str(self.reply_to.guild_id),
            }
            data["referenced_message"] = self.reply_to.payload(base_url)
        return data


@dataclass
class Upload:
    """A file a user attached to a slash command option (served at `url`)."""

    id: int
    filename: str
    data: bytes
    url: str

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url,
            "content_type": "application/octet-stream",
        }


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]  # @everyone's id is the guild's id

    def permissions_of(self, member: Member) -> int:
        """Guild-level permissions (no channel overwrites); the owner and ADMINISTRATOR get all."""
        if member.user.id == self.owner_id:
            return (1 << 53) - 1
        perms = self.everyone.permissions
        for role_id in member.role_ids:
            perms |= self.roles[role_id].permissions
        return (1 << 53) - 1 if perms & 8 else perms

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "owner_id": str(self.owner_id),
            "unavailable": False,
            "member_count": len(self.members),
            "icon": None,
            "features": [],
            "emojis": [],
            "stickers": [],
            "threads": [],
            "roles": [r.payload() for r in self.roles.values()],
            "channels": [c.payload() for c in self.channels.values()],
            "members": [m.payload() for m in self.members.values()],
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "system_channel_flags": 0,
        }


class World:
    """All state of the emulated Discord, owned by one `Emulator`."""

    def __init__(self) -> None:
        self._ids = itertools.count(10_000_000)
        self.bot_user = User(BOT_USER_ID, "guru", bot=True)
        self.guilds: dict[int, Guild] = {}
        self.users: dict[int, User] = {}
        self.messages: dict[int, Message] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # None = global
        self.uploads: dict[int, Upload] = {}
        self.started = time.monotonic()

    def next_id(self) -> int:
        return next(self._ids)

    def channel(self, channel_id: int) -> Channel | None:
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild.channels[channel_id]
        return None

    def add_message(
        self, channel_id: int, author: User, revision: Revision, interaction_id: int | None = None
    ) -> Message:
        channel = self.channel(channel_id)
        msg = Message(
            self.next_id(),
            channel_id,
            channel.guild_id if channel else None,
            author,
            [revision],
            interaction_id=interaction_id,
        )
        self.messages[msg.id] = msg
        return msg

    def bot_messages(self, channel_id: int | None = None) -> list[Message]:
        return [
            m
            for m in self.messages.values()
            if m.author.id == BOT_USER_ID and (channel_id is None or m.channel_id == channel_id)
        ]
