"""The emulator's world: guilds, channels, roles, members, messages, and what the bot sent.

Everything here is plain data plus the payload builders discord.py 2.7.1 insists on
(../shared/DISCORD_EMULATOR.md lists the required keys). Times are `time.monotonic()` so tests
can measure latencies (ack within 3 s, ≤ 1 edit/s) against the moment a user acted.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "APP_ID",
    "BOT_USER_ID",
    "FORUM",
    "PRIVATE_THREAD",
    "PUBLIC_THREAD",
    "TEXT",
    "THREAD_TYPES",
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
    mentionable: bool = False  # may anyone ping it (else only Mention @everyone holders)

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": self.mentionable,
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


# Channel types (Discord's numbers): text, public and private thread, forum
TEXT, PUBLIC_THREAD, PRIVATE_THREAD, FORUM = 0, 11, 12, 15
THREAD_TYPES = (PUBLIC_THREAD, PRIVATE_THREAD)


@dataclass
class Channel:
    """A guild channel: a text channel, a forum, or a thread (`parent_id` set) of either."""

    id: int
    guild_id: int
    name: str
    position: int = 0
    # Discord's permission overwrites: {"id", "type" (0 role, 1 member), "allow", "deny"}
    overwrites: list[dict[str, Any]] = field(default_factory=list)
    type: int = TEXT
    parent_id: int | None = None  # threads: the channel (or forum) they belong to
    owner_id: int | None = None  # threads: who started it
    available_tags: list[dict[str, Any]] = field(default_factory=list)  # forums: {"id","name"}
    applied_tags: list[int] = field(default_factory=list)  # forum posts: tag ids
    member_ids: list[int] = field(default_factory=list)  # threads: who joined it
    message_count: int = 0
    archived: bool = False
    locked: bool = False
    created: str = field(default_factory=lambda: iso_now())
    archived_at: str = field(default_factory=lambda: iso_now())  # threads: last (un)archived

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    def tag_id(self, name: str) -> int:
        """A forum's tag id by name."""
        for tag in self.available_tags:
            if tag["name"] == name:
                return int(tag["id"])
        raise AssertionError(f"forum {self.name!r} has no tag {name!r}")

    def payload(self) -> dict[str, Any]:
        if self.is_thread:
            return self._thread_payload()
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "guild_id": str(self.guild_id),
            "permission_overwrites": self.overwrites,
            "nsfw": False,
        }
        if self.type == FORUM:
            data |= {
                "available_tags": self.available_tags,
                "default_auto_archive_duration": 1440,
                "default_forum_layout": 0,
                "default_reaction_emoji": None,
                "default_sort_order": None,
                "flags": 0,
                "topic": None,
                "rate_limit_per_user": 0,
            }
        return data

    def _thread_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "guild_id": str(self.guild_id),
            "parent_id": str(self.parent_id),
            "owner_id": str(self.owner_id),
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": self.message_count,
            "total_message_sent": self.message_count,
            "member_count": min(len(self.member_ids), 50),
            "applied_tags": [str(t) for t in self.applied_tags],
            "flags": 0,
            "thread_metadata": {
                "archived": self.archived,
                "auto_archive_duration": 1440,
                "archive_timestamp": self.archived_at,
                "locked": self.locked,
                "invitable": True,
                "create_timestamp": self.created,
            },
        }

    def member_payload(self, user_id: int) -> dict[str, Any]:
        """A thread member (what the thread-members routes return)."""
        return {
            "id": str(self.id),
            "user_id": str(user_id),
            "join_timestamp": self.created,
            "flags": 0,
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
    # the sender's allowed_mentions (None: Discord's default, everything in the text pings)
    allowed_mentions: dict[str, Any] | None = None


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
    thread: Channel | None = None  # the thread started from this message, if any
    system_type: int | None = None  # a system message's type (18: "started a thread")
    reactions: dict[str, list[int]] = field(default_factory=dict)  # emoji → user ids, in order

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

    def mentioned_role_ids(self) -> list[int]:
        """Roles `<@&id>` in the text."""
        return [int(r) for r in re.findall(r"<@&(\d+)>", self.content)]

    def pinged_role_ids(self) -> list[int]:
        """Roles whose members this message notified: mentioned and let through by the
        sender's allowed_mentions (discord.py sends them on every message)."""
        allowed = self.latest.allowed_mentions
        mentioned = self.mentioned_role_ids()
        if allowed is None:
            return mentioned
        if "roles" in (allowed.get("parse") or []):
            return mentioned
        permitted = {int(r) for r in allowed.get("roles") or []}
        return [r for r in mentioned if r in permitted]

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
            "type": self.system_type or (20 if self.interaction_id else 0),
            "content": rev.content,
            "author": self.author.payload(),
            "timestamp": self.timestamp,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [u.payload() for u in self.mentions],
            "mention_roles": [str(r) for r in self.mentioned_role_ids()],
            "attachments": attachments,
            "embeds": rev.embeds,
            "components": rev.components,
            "pinned": self.pinned,
            "flags": rev.flags,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.reactions:
            data["reactions"] = [
                {
                    "emoji": {"id": None, "name": emoji},
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "burst_colors": [],
                    "me": BOT_USER_ID in users,
                    "me_burst": False,
                }
                for emoji, users in self.reactions.items()
                if users
            ]
        if self.thread is not None:  # Discord embeds the thread started from a message
            data["thread"] = self.thread.payload()
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
    threads: dict[int, Channel] = field(default_factory=dict)

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

    def channel_permissions(self, member: Member, channel: Channel) -> int:
        """Permissions in `channel` after its overwrites (@everyone, roles, then the member),
        as Discord computes them; a thread has its parent's."""
        if channel.is_thread and channel.parent_id is not None:
            channel = self.channels[channel.parent_id]
        base = self.permissions_of(member)
        if base == (1 << 53) - 1:
            return base
        by_id = {int(o["id"]): o for o in channel.overwrites}
        for target in (self.id,):
            if (o := by_id.get(target)) is not None:
                base = (base & ~int(o["deny"])) | int(o["allow"])
        allow = deny = 0
        for role_id in member.role_ids:
            if (o := by_id.get(role_id)) is not None and o["type"] == 0:
                allow, deny = allow | int(o["allow"]), deny | int(o["deny"])
        base = (base & ~deny) | allow
        if (o := by_id.get(member.user.id)) is not None and o["type"] == 1:
            base = (base & ~int(o["deny"])) | int(o["allow"])
        return base

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
            "threads": [t.payload() for t in self.threads.values() if not t.archived],
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
        """A channel, forum or thread by id."""
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild.channels[channel_id]
            if channel_id in guild.threads:
                return guild.threads[channel_id]
        return None

    def threads_of(self, channel_id: int) -> list[Channel]:
        """The threads (forum posts) started in a channel (forum), oldest first."""
        parent = self.channel(channel_id)
        if parent is None:
            return []
        return [
            t for t in self.guilds[parent.guild_id].threads.values() if t.parent_id == channel_id
        ]

    def add_message(
        self,
        channel_id: int,
        author: User,
        revision: Revision,
        interaction_id: int | None = None,
        message_id: int | None = None,
    ) -> Message:
        """A new message; `message_id` for a forum post's first one (its id is the thread's)."""
        channel = self.channel(channel_id)
        msg = Message(
            message_id or self.next_id(),
            channel_id,
            channel.guild_id if channel else None,
            author,
            [revision],
            interaction_id=interaction_id,
        )
        self.messages[msg.id] = msg
        if channel is not None and channel.is_thread:
            channel.message_count += 1
        return msg

    def bot_messages(self, channel_id: int | None = None) -> list[Message]:
        return [
            m
            for m in self.messages.values()
            if m.author.id == BOT_USER_ID and (channel_id is None or m.channel_id == channel_id)
        ]
