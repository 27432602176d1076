"""Interactions: what a user's slash command or button click looks like, and the bot's replies.

Like Discord, an interaction must be acknowledged (callback) within 3 s, or the callback gets
`10062 Unknown interaction` and the user sees "The application did not respond"; follow-ups
and edits of the original response go through the webhook routes with the interaction token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.emulator.state import APP_ID, Channel, Guild, Member, Message, Role, Upload, User

__all__ = ["ACK_WINDOW_S", "Interaction", "command_payload", "component_payload", "options_payload"]

ACK_WINDOW_S = 3.0
EPHEMERAL, LOADING = 64, 128

# Callback types (interaction response types)
PONG, MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, AUTOCOMPLETE, MODAL = (
    1,
    4,
    5,
    6,
    7,
    8,
    9,
)
# Application command option types, inferred from Python values
OPTION_TYPES = {str: 3, int: 4, bool: 5, float: 10}


@dataclass
class Interaction:
    """One interaction a user started, and everything the bot answered to it."""

    id: int
    token: str
    type: int  # 2 = slash command, 3 = component
    guild: Guild
    channel_id: int
    member: Member
    data: dict[str, Any]
    created_at: float = field(default_factory=time.monotonic)
    callback_type: int | None = None
    acked_at: float | None = None
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    autocomplete_choices: list[dict[str, Any]] | None = None
    source_message: Message | None = None  # for component clicks: the message clicked on

    @property
    def user(self) -> User:
        return self.member.user

    @property
    def acked(self) -> bool:
        return self.acked_at is not None

    @property
    def ack_latency_s(self) -> float | None:
        return None if self.acked_at is None else self.acked_at - self.created_at

    @property
    def expired(self) -> bool:
        return time.monotonic() - self.created_at > ACK_WINDOW_S

    @property
    def messages(self) -> list[Message]:
        """The original response (if any) followed by the follow-ups, in order."""
        return ([self.original] if self.original else []) + self.followups

    @property
    def deferred(self) -> bool:
        return self.callback_type in (DEFERRED_MESSAGE, DEFERRED_UPDATE)

    @property
    def loading(self) -> bool:
        """True while the reply still shows "<bot> is thinking…" (deferred, never edited)."""
        return self.original is not None and bool(self.original.flags & LOADING)

    def texts(self) -> list[str]:
        return [m.content for m in self.messages]


def options_payload(
    options: dict[str, Any], resolved: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Slash command options from a plain dict; nested dicts become subcommands, Channel, Role
    and Upload values become channel/role/attachment options (their objects go into
    `resolved`)."""
    out = []
    resolved = resolved if resolved is not None else {}
    for name, value in options.items():
        if isinstance(value, dict):
            out.append({"name": name, "type": 1, "options": options_payload(value, resolved)})
        elif isinstance(value, Channel):
            resolved.setdefault("channels", {})[str(value.id)] = value.payload() | {
                "permissions": str((1 << 53) - 1)
            }
            out.append({"name": name, "type": 7, "value": str(value.id)})
        elif isinstance(value, Upload):
            resolved.setdefault("attachments", {})[str(value.id)] = value.payload()
            out.append({"name": name, "type": 11, "value": str(value.id)})
        elif isinstance(value, Role):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            out.append({"name": name, "type": 8, "value": str(value.id)})
        else:
            out.append({"name": name, "type": OPTION_TYPES[type(value)], "value": value})
    return out


def _base(interaction: Interaction, permissions: int) -> dict[str, Any]:
    guild = interaction.guild
    channel = guild.channels.get(interaction.channel_id) or guild.threads[interaction.channel_id]
    member = interaction.member.payload() | {"permissions": str(permissions)}
    return {
        "id": str(interaction.id),
        "application_id": str(APP_ID),
        "type": interaction.type,
        "token": interaction.token,
        "version": 1,
        "guild_id": str(guild.id),
        "channel_id": str(channel.id),
        "channel": channel.payload(),
        "member": member,
        "app_permissions": str((1 << 53) - 1),
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "context": 0,
        "authorizing_integration_owners": {"0": str(guild.id)},
        "attachment_size_limit": 10 * 1024 * 1024,
    }


def command_payload(interaction: Interaction, permissions: int) -> dict[str, Any]:
    return _base(interaction, permissions) | {"data": interaction.data}


def component_payload(interaction: Interaction, permissions: int, base_url: str) -> dict[str, Any]:
    assert interaction.source_message is not None
    return _base(interaction, permissions) | {
        "data": interaction.data,
        "message": interaction.source_message.payload(base_url),
    }
