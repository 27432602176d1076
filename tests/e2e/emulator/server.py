"""`Emulator`: the aiohttp app plus the Python API tests use to act as users and inspect replies.

async with Emulator() as emu:
    guild = await emu.create_guild("g")
    ... point the bot at emu.api_base / emu.gateway_url, start it ...
    inter = await emu.send_command(guild, guild.owner, "status")
    await emu.wait_for(lambda: inter.acked)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web

from tests.e2e.emulator import channels, history, replies, threads
from tests.e2e.emulator import interactions as ix
from tests.e2e.emulator.gateway import Gateway
from tests.e2e.emulator.history import HistoryActions
from tests.e2e.emulator.rest import RestApi
from tests.e2e.emulator.state import (
    APP_ID,
    Channel,
    Guild,
    Member,
    Message,
    Role,
    Upload,
    User,
    World,
)
from tests.e2e.emulator.threads import ThreadActions

if TYPE_CHECKING:
    from core.config import Settings

__all__ = ["ADMINISTRATOR", "BOT_PERMISSIONS", "DEFAULT_PERMISSIONS", "MANAGE_GUILD", "Emulator"]

log = logging.getLogger(__name__)

ADMINISTRATOR, MANAGE_GUILD = 1 << 3, 1 << 5
# @everyone's usual grant: view channels, send messages, read history, use application commands
DEFAULT_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 31)
# the bot's own (managed) role, as its invite link grants: embed links, attach files, create
# public threads, send messages in threads on top of the usual
BOT_PERMISSIONS = (
    DEFAULT_PERMISSIONS
    | (1 << 14)
    | (1 << 15)
    | threads.CREATE_PUBLIC_THREADS
    | threads.SEND_MESSAGES_IN_THREADS
)


class Emulator(ThreadActions, HistoryActions):
    """A local Discord: one bot application, any number of guilds and users."""

    def __init__(
        self,
        *,
        token: str = "emulator-token",
        heartbeat_interval_ms: int = 41250,
        shards: int = 1,
        host: str = "127.0.0.1",
    ) -> None:
        self.token, self.host, self.shards, self.app_id = token, host, shards, APP_ID
        self.port = 0
        self.world = World()
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.rest = RestApi(self)
        self.gateway = Gateway(self, heartbeat_interval_ms)
        self.interactions: dict[int, ix.Interaction] = {}
        self.interactions_by_token: dict[str, ix.Interaction] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.app.router.add_get("/gw/", self.gateway.handle)
        self.app.router.add_route("*", "/api/v10/{tail:.*}", self.rest.handle)
        channels.install(self)
        replies.install(self)
        threads.install(self)
        history.install(self)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, port: int = 0) -> Self:
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("Discord emulator on %s", self.base_url)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self.gateway.drop_connections(code=1000)
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """What the bot's DISCORD_API_BASE must be."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What the bot's DISCORD_GATEWAY_URL must be."""
        return f"ws://{self.host}:{self.port}/gw/"

    def bot_settings(self, settings: Settings) -> Settings:
        """`settings` pointed at this emulator: its token, REST and gateway, commands synced
        globally (no dev guild exists here)."""
        return dataclasses.replace(
            settings,
            discord_token=self.token,
            dev_guild_id=None,
            discord_api_base=self.api_base,
            discord_gateway_url=self.gateway_url,
        )

    # -- building the world --------------------------------------------------------------------

    async def create_guild(
        self,
        name: str,
        *,
        owner: str = "owner",
        everyone_permissions: int = DEFAULT_PERMISSIONS,
        bot_permissions: int = BOT_PERMISSIONS,
    ) -> Guild:
        """A guild with @everyone, #general, its owner and the bot (a member with its own
        "guru" role of `bot_permissions`); announced if the bot is connected."""
        world = self.world
        owner_user = self.user(owner)
        guild = Guild(world.next_id(), name, owner_user.id)
        guild.roles[guild.id] = Role(guild.id, "@everyone", everyone_permissions)
        general = Channel(world.next_id(), guild.id, "general")
        guild.channels[general.id] = general
        guild.members[owner_user.id] = Member(owner_user)
        bot_role = Role(world.next_id(), "guru", bot_permissions, position=1)
        guild.roles[bot_role.id] = bot_role
        guild.members[world.bot_user.id] = Member(world.bot_user, [bot_role.id])
        world.guilds[guild.id] = guild
        await self.publish(guild)
        return guild

    def user(self, name: str) -> User:
        """A new user (names need not be unique)."""
        user = User(self.world.next_id(), name)
        self.world.users[user.id] = user
        return user

    async def add_role(
        self, guild: Guild, name: str, permissions: int = 0, *, mentionable: bool = False
    ) -> Role:
        role = Role(
            self.world.next_id(), name, permissions, len(guild.roles), mentionable=mentionable
        )
        guild.roles[role.id] = role
        await self.gateway.dispatch(
            "GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.payload()}, guild.id
        )
        return role

    async def add_channel(self, guild: Guild, name: str) -> Channel:
        channel = Channel(self.world.next_id(), guild.id, name, position=len(guild.channels))
        guild.channels[channel.id] = channel
        await self.gateway.dispatch("CHANNEL_CREATE", channel.payload(), guild.id)
        return channel

    async def set_overwrite(
        self, channel: Channel, target: Role | Member, *, allow: int = 0, deny: int = 0
    ) -> None:
        """Set one permission overwrite on `channel` (CHANNEL_UPDATE), as a channel's
        "Permissions" tab does: for a role, or for one member."""
        target_id = target.id if isinstance(target, Role) else target.user.id
        kind = 0 if isinstance(target, Role) else 1
        channel.overwrites = [o for o in channel.overwrites if o["id"] != str(target_id)]
        channel.overwrites.append(
            {"id": str(target_id), "type": kind, "allow": str(allow), "deny": str(deny)}
        )
        await self.gateway.dispatch("CHANNEL_UPDATE", channel.payload(), channel.guild_id)

    def add_member(self, guild: Guild, name: str, roles: tuple[Role, ...] = ()) -> Member:
        """A member; no event, because Guru doesn't ask for the members intent."""
        member = Member(self.user(name), [r.id for r in roles])
        guild.members[member.user.id] = member
        return member

    def bot_role(self, guild: Guild) -> Role:
        """The bot's own role (set `permissions` and `publish` to change what it may do)."""
        return guild.roles[guild.members[self.world.bot_user.id].role_ids[0]]

    def owner(self, guild: Guild) -> Member:
        return guild.members[guild.owner_id]

    async def publish(self, guild: Guild) -> None:
        """(Re)send GUILD_CREATE, as Discord does when the bot joins or a guild comes back."""
        await self.gateway.dispatch("GUILD_CREATE", guild.payload(), guild.id)

    # -- users acting --------------------------------------------------------------------------

    def command(self, guild: Guild, name: str) -> dict[str, Any]:
        """The synced command `name` visible in `guild` (guild commands first, then global)."""
        for scope in (guild.id, None):
            for cmd in self.world.commands.get(scope, []):
                if cmd["name"] == name:
                    return cmd
        raise AssertionError(f"/{name} was never synced for guild {guild.id}")

    async def send_command(
        self,
        guild: Guild,
        member: Member,
        name: str,
        options: dict[str, Any] | None = None,
        channel: Channel | None = None,
    ) -> ix.Interaction:
        """`member` runs `/name options…` in `channel` (default: the first channel).

        `options` may nest a subcommand: `send_command(g, m, "settings", {"show": {}})`."""
        cmd = self.command(guild, name)
        resolved: dict[str, dict[str, Any]] = {}
        data: dict[str, Any] = {
            "id": cmd["id"],
            "name": name,
            "type": 1,
            "options": ix.options_payload(options or {}, resolved),
        }
        if resolved:
            data["resolved"] = resolved
        if "guild_id" in cmd:
            data["guild_id"] = cmd["guild_id"]
        channel = channel or next(iter(guild.channels.values()))
        inter = self._new_interaction(2, guild, channel.id, member, data)
        payload = ix.command_payload(inter, guild.permissions_of(member))
        await self.gateway.dispatch("INTERACTION_CREATE", payload, guild.id)
        return inter

    async def autocomplete(
        self, guild: Guild, member: Member, name: str, options: dict[str, Any], focused: str
    ) -> ix.Interaction:
        """`member` is typing option `focused` of `/name`; the choices land in
        `inter.autocomplete_choices`."""
        cmd = self.command(guild, name)
        payload_options = ix.options_payload(options)
        _mark_focused(payload_options, focused)
        data: dict[str, Any] = {
            "id": cmd["id"],
            "name": name,
            "type": 1,
            "options": payload_options,
        }
        if "guild_id" in cmd:
            data["guild_id"] = cmd["guild_id"]
        channel = next(iter(guild.channels.values()))
        inter = self._new_interaction(4, guild, channel.id, member, data)
        payload = ix.command_payload(inter, guild.permissions_of(member))
        await self.gateway.dispatch("INTERACTION_CREATE", payload, guild.id)
        return inter

    async def click(self, message: Message, custom_id: str, member: Member) -> ix.Interaction:
        """`member` presses the button `custom_id` on `message`."""
        if custom_id not in message.custom_ids():
            raise AssertionError(f"no component {custom_id!r} on message {message.id}")
        guild = self.world.guilds[message.guild_id or 0]
        data = {"custom_id": custom_id, "component_type": 2}
        inter = self._new_interaction(3, guild, message.channel_id, member, data)
        inter.source_message = message
        payload = ix.component_payload(inter, guild.permissions_of(member), self.base_url)
        await self.gateway.dispatch("INTERACTION_CREATE", payload, guild.id)
        return inter

    def _new_interaction(
        self, kind: int, guild: Guild, channel_id: int, member: Member, data: dict[str, Any]
    ) -> ix.Interaction:
        inter = ix.Interaction(
            self.world.next_id(),
            secrets.token_urlsafe(24),
            kind,
            guild,
            channel_id,
            member,
            data,
            created_at=time.monotonic(),
        )
        self.interactions[inter.id] = inter
        self.interactions_by_token[inter.token] = inter
        return inter

    def upload(self, filename: str, data: bytes) -> Upload:
        """A file to pass as an attachment option: `send_command(..., {"file": upload})`."""
        upload_id = self.world.next_id()
        url = f"{self.base_url}/files/uploads/{upload_id}/{filename}"
        self.world.uploads[upload_id] = Upload(upload_id, filename, data, url)
        return self.world.uploads[upload_id]

    async def post_message(
        self,
        channel: Channel,
        member: Member,
        content: str,
        files: Sequence[tuple[str, bytes]] = (),
        *,
        reply_to: Message | None = None,
        mentions: Sequence[User] = (),
    ) -> Message:
        """A user's message in `channel` (MESSAGE_CREATE), with `files` (name, bytes) attached,
        optionally a reply to `reply_to` and mentioning `mentions` (e.g. the bot's user)."""
        msg = self.world.add_message(
            channel.id, member.user, replies.revise(None, {"content": content}, list(files))
        )
        msg.reply_to, msg.mentions = reply_to, list(mentions)
        await self.gateway.dispatch("MESSAGE_CREATE", self.message_event(msg), channel.guild_id)
        return msg

    async def set_pinned(self, msg: Message, pinned: bool) -> None:
        msg.pinned = pinned
        await self.gateway.dispatch(
            "CHANNEL_PINS_UPDATE",
            channels.pins_update(
                msg.channel_id, msg.guild_id, channels.now_iso() if pinned else None
            ),
            msg.guild_id,
        )

    async def edit_message(self, msg: Message, content: str, *, drop_files: bool = False) -> None:
        body: dict[str, Any] = {"content": content}
        if drop_files:  # as a user removing the message's attachments in the edit
            body["attachments"] = []
        msg.revisions.append(replies.revise(msg.latest, body, [], message_id=msg.id))
        await self.gateway.dispatch("MESSAGE_UPDATE", self.message_event(msg), msg.guild_id)

    async def delete_message(self, msg: Message) -> None:
        msg.deleted = True
        data = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
        await self.gateway.dispatch("MESSAGE_DELETE", data, msg.guild_id)

    def message_event(self, msg: Message) -> dict[str, Any]:
        data = msg.payload(self.base_url)
        guild = self.world.guilds.get(msg.guild_id or 0)
        if guild is not None and msg.author.id in guild.members:
            member = guild.members[msg.author.id].payload()
            data["member"] = {k: v for k, v in member.items() if k != "user"}
        return data

    # -- inspecting ----------------------------------------------------------------------------

    def notify(self) -> None:
        self._changed.set()

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
    ) -> None:
        """Wait until `predicate()` is true (re-checked whenever the bot calls REST)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))
            except TimeoutError:
                pass


def _mark_focused(options: list[dict[str, Any]], focused: str) -> None:
    """Flag the option being typed, also inside a subcommand (`{"activate": {"version": …}}`)."""
    for option in options:
        if option.get("type") == 1:
            _mark_focused(option.get("options", []), focused)
        elif option["name"] == focused:
            option["focused"] = True
