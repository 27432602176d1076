"""Threads and forums: the bot's thread routes, and users starting threads and forum posts.

As in Discord (and as discord.py 2.7.1 parses them): a thread is a channel (type 11 public,
12 private) with a `parent_id`; one started from a message has that message's id; a forum
(type 15) holds only threads ("posts"), each created together with its first message, whose id
is the thread's. THREAD_CREATE announces a thread before any message in it, so the client has
it cached when MESSAGE_CREATE for the thread arrives. Permissions are checked like Discord's:
Create Public/Private Threads to start one, Send Messages in Threads to write in one (403 50013).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.e2e.emulator.replies import revise
from tests.e2e.emulator.rest import Body, error, json_response
from tests.e2e.emulator.state import (
    FORUM,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    TEXT,
    Channel,
    Guild,
    Member,
    Message,
    User,
)

if TYPE_CHECKING:
    from tests.e2e.emulator.server import Emulator

__all__ = [
    "CREATE_PRIVATE_THREADS",
    "CREATE_PUBLIC_THREADS",
    "SEND_MESSAGES",
    "SEND_MESSAGES_IN_THREADS",
    "install",
    "missing_permission",
    "thread_event",
]

SEND_MESSAGES = 1 << 11
CREATE_PUBLIC_THREADS, CREATE_PRIVATE_THREADS = 1 << 35, 1 << 36
SEND_MESSAGES_IN_THREADS = 1 << 38
THREAD_CREATED = 18  # the message type of "… started a thread"
NAME_MAX = 100


def thread_event(thread: Channel, viewer_id: int, *, newly_created: bool) -> dict[str, Any]:
    """THREAD_CREATE/UPDATE data as `viewer_id` (the bot) receives it: with its own thread
    member object when it is in the thread."""
    data = thread.payload()
    if newly_created:
        data["newly_created"] = True
    if viewer_id in thread.member_ids:
        data["member"] = thread.member_payload(viewer_id)
    return data


def missing_permission(guild: Guild, user: User, channel: Channel, permission: int) -> bool:
    """True when `user` (a guild member) lacks `permission` in `channel`."""
    member = guild.members.get(user.id)
    return member is None or not guild.channel_permissions(member, channel) & permission


def _bad_name(name: Any) -> web.Response | None:
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX:
        return error(400, 50035, f"Invalid Form Body (name: 1 to {NAME_MAX} characters)")
    return None


def install(emulator: Emulator) -> None:
    """Register the thread routes on the emulator's REST API."""
    world, api = emulator.world, emulator.rest
    bot = world.bot_user

    async def announce(thread: Channel) -> None:
        await emulator.gateway.dispatch(
            "THREAD_CREATE", thread_event(thread, bot.id, newly_created=True), thread.guild_id
        )

    async def from_message(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        channel, msg = world.channel(int(p["cid"])), world.messages.get(int(p["mid"]))
        if channel is None:
            return error(404, 10003, "Unknown Channel")
        if msg is None or msg.deleted or msg.channel_id != channel.id:
            return error(404, 10008, "Unknown Message")
        if channel.type != TEXT:
            return error(400, 50024, "Cannot execute action on this channel type")
        if msg.thread is not None:
            return error(400, 160004, "A thread has already been created for this message")
        guild = world.guilds[channel.guild_id]
        if missing_permission(guild, bot, channel, CREATE_PUBLIC_THREADS):
            return error(403, 50013, "Missing Permissions")
        name = (body.json or {}).get("name")
        if (bad := _bad_name(name)) is not None:
            return bad
        thread = emulator.new_thread(channel, bot, name, PUBLIC_THREAD, thread_id=msg.id)
        msg.thread = thread
        await announce(thread)
        return json_response(thread_event(thread, bot.id, newly_created=False))

    async def without_message(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        channel = world.channel(int(p["cid"]))
        if channel is None:
            return error(404, 10003, "Unknown Channel")
        data = body.json or {}
        if (bad := _bad_name(data.get("name"))) is not None:
            return bad
        guild = world.guilds[channel.guild_id]
        if channel.type == FORUM:
            return await forum_post(guild, channel, data)
        if channel.type != TEXT:
            return error(400, 50024, "Cannot execute action on this channel type")
        kind = int(data.get("type") or PRIVATE_THREAD)  # Discord's default is private
        needed = CREATE_PUBLIC_THREADS if kind == PUBLIC_THREAD else CREATE_PRIVATE_THREADS
        if missing_permission(guild, bot, channel, needed):
            return error(403, 50013, "Missing Permissions")
        thread = emulator.new_thread(channel, bot, data["name"], kind)
        await announce(thread)
        return json_response(thread_event(thread, bot.id, newly_created=False))

    async def forum_post(guild: Guild, forum: Channel, data: dict[str, Any]) -> web.Response:
        first = data.get("message") or {}
        if not (first.get("content") or first.get("embeds")):
            return error(400, 50006, "Cannot send an empty message")
        if missing_permission(guild, bot, forum, SEND_MESSAGES):
            return error(403, 50013, "Missing Permissions")
        tags = [int(t) for t in data.get("applied_tags") or []]
        if not set(tags) <= {int(t["id"]) for t in forum.available_tags}:
            return error(400, 50035, "Invalid Form Body (applied_tags: unknown tag)")
        thread = emulator.new_thread(forum, bot, data["name"], PUBLIC_THREAD, tags=tags)
        msg = world.add_message(thread.id, bot, revise(None, first, []), message_id=thread.id)
        await announce(thread)
        await emulator.gateway.dispatch("MESSAGE_CREATE", emulator.message_event(msg), guild.id)
        out = thread_event(thread, bot.id, newly_created=False)
        return json_response(out | {"message": msg.payload(emulator.base_url)})

    async def get_channel(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        channel = world.channel(int(p["cid"]))
        if channel is None:
            return error(404, 10003, "Unknown Channel")
        if channel.is_thread:
            return json_response(thread_event(channel, bot.id, newly_created=False))
        return json_response(channel.payload())

    async def members(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        thread = world.channel(int(p["cid"]))
        if thread is None or not thread.is_thread:
            return error(404, 10003, "Unknown Channel")
        if "uid" not in p:
            return json_response([thread.member_payload(u) for u in thread.member_ids])
        user_id = bot.id if p["uid"] == "@me" else int(p["uid"])
        if request.method == "GET":
            if user_id not in thread.member_ids:
                return error(404, 10007, "Unknown Member")
            return json_response(thread.member_payload(user_id))
        if request.method == "PUT" and user_id not in thread.member_ids:
            thread.member_ids.append(user_id)
        elif request.method == "DELETE" and user_id in thread.member_ids:
            thread.member_ids.remove(user_id)
        return web.Response(status=204)

    api.route("POST", "/channels/{cid}/messages/{mid}/threads", from_message)
    api.route("POST", "/channels/{cid}/threads", without_message)
    api.route("GET", "/channels/{cid}", get_channel)
    api.route("GET", "/channels/{cid}/thread-members", members)
    for method in ("GET", "PUT", "DELETE"):
        api.route(method, "/channels/{cid}/thread-members/{uid}", members)


class ThreadActions:
    """Users' side: forums, threads and forum posts (mixed into `Emulator`)."""

    async def add_forum(
        self: Emulator, guild: Guild, name: str, tags: Sequence[str] = ("question",)
    ) -> Channel:
        """A forum channel (type 15) with `tags` available; CHANNEL_CREATE."""
        forum = Channel(
            self.world.next_id(), guild.id, name, position=len(guild.channels), type=FORUM
        )
        forum.available_tags = [
            {
                "id": str(self.world.next_id()),
                "name": t,
                "moderated": False,
                "emoji_id": None,
                "emoji_name": None,
            }
            for t in tags
        ]
        guild.channels[forum.id] = forum
        await self.gateway.dispatch("CHANNEL_CREATE", forum.payload(), guild.id)
        return forum

    def new_thread(
        self: Emulator,
        parent: Channel,
        owner: User,
        name: str,
        kind: int = PUBLIC_THREAD,
        *,
        thread_id: int | None = None,
        tags: Sequence[int] = (),
    ) -> Channel:
        """Record a thread (no event); the routes and the user actions announce it."""
        thread = Channel(
            thread_id or self.world.next_id(),
            parent.guild_id,
            name,
            type=kind,
            parent_id=parent.id,
            owner_id=owner.id,
            applied_tags=list(tags),
            member_ids=[owner.id],
        )
        self.world.guilds[parent.guild_id].threads[thread.id] = thread
        return thread

    async def start_thread(
        self: Emulator,
        channel: Channel,
        member: Member,
        name: str,
        *,
        from_message: Message | None = None,
        private: bool = False,
    ) -> Channel:
        """`member` starts a thread in `channel`, from a message or without one."""
        kind = PRIVATE_THREAD if private else PUBLIC_THREAD
        thread_id = from_message.id if from_message is not None else None
        thread = self.new_thread(channel, member.user, name, kind, thread_id=thread_id)
        if from_message is not None:
            from_message.thread = thread
        await self._announce_thread(thread)
        if from_message is None and not private:
            # Discord's system message in the channel: "<member> started a thread: <name>"
            notice = self.world.add_message(
                channel.id, member.user, revise(None, {"content": name}, [])
            )
            notice.system_type = THREAD_CREATED
            event = self.message_event(notice)
            await self.gateway.dispatch("MESSAGE_CREATE", event, channel.guild_id)
        return thread

    async def create_post(
        self: Emulator,
        forum: Channel,
        member: Member,
        title: str,
        content: str,
        *,
        tags: Sequence[str] = (),
        files: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[Channel, Message]:
        """`member` posts in `forum`: THREAD_CREATE for the post, then MESSAGE_CREATE for its
        first message (same id), as Discord sends them."""
        assert forum.type == FORUM, f"{forum.name} is not a forum"
        tag_ids = [forum.tag_id(t) for t in tags]
        thread = self.new_thread(forum, member.user, title, PUBLIC_THREAD, tags=tag_ids)
        revision = revise(None, {"content": content}, list(files))
        msg = self.world.add_message(thread.id, member.user, revision, message_id=thread.id)
        await self._announce_thread(thread)
        await self.gateway.dispatch("MESSAGE_CREATE", self.message_event(msg), forum.guild_id)
        return thread, msg

    async def set_archived(self: Emulator, thread: Channel, archived: bool = True) -> None:
        thread.archived = archived
        await self.gateway.dispatch(
            "THREAD_UPDATE",
            thread_event(thread, self.world.bot_user.id, newly_created=False),
            thread.guild_id,
        )

    async def _announce_thread(self: Emulator, thread: Channel) -> None:
        await self.gateway.dispatch(
            "THREAD_CREATE",
            thread_event(thread, self.world.bot_user.id, newly_created=True),
            thread.guild_id,
        )
