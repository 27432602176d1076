"""A server's history as the bot reads it back: thread listings (active and archived),
reactions and who reacted, a member by id; and users reacting, re-tagging forum posts and
deleting threads.

Shapes as discord.py 2.7.1 parses them: `GET /guilds/{id}/threads/active` and
`GET /channels/{id}/threads/archived/public` answer `{"threads", "members", "has_more"}`
(archived newest-archived first, paged with `before` = an archive timestamp); reaction users
are plain users; MESSAGE_REACTION_ADD/REMOVE carry `type`, and THREAD_DELETE `parent_id`.
Channel history with `before` / `after` paging lives with the message routes (channels.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from tests.e2e.emulator import interactions as ix
from tests.e2e.emulator.rest import Body, error, json_response
from tests.e2e.emulator.state import PRIVATE_THREAD, Channel, Guild, Member, Message, iso_now
from tests.e2e.emulator.threads import thread_event

if TYPE_CHECKING:
    from tests.e2e.emulator.server import Emulator

__all__ = ["HistoryActions", "install"]

READ_HISTORY = 1 << 16


def install(emulator: Emulator) -> None:
    """Register the history routes on the emulator's REST API."""
    world, api = emulator.world, emulator.rest
    bot = world.bot_user

    def listing(threads: list[Channel], has_more: bool = False) -> web.Response:
        return json_response(
            {
                "threads": [thread_event(t, bot.id, newly_created=False) for t in threads],
                "members": [t.member_payload(bot.id) for t in threads if bot.id in t.member_ids],
                "has_more": has_more,
            }
        )

    async def active(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        guild = world.guilds.get(int(p["gid"]))
        if guild is None:
            return error(404, 10004, "Unknown Guild")
        return listing([t for t in guild.threads.values() if not t.archived])

    async def archived(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        channel = world.channel(int(p["cid"]))
        if channel is None or channel.is_thread:
            return error(404, 10003, "Unknown Channel")
        guild = world.guilds[channel.guild_id]
        if not guild.channel_permissions(guild.members[bot.id], channel) & READ_HISTORY:
            return error(403, 50001, "Missing Access")
        limit = int(request.query.get("limit", 50))
        found = [t for t in world.threads_of(channel.id) if t.archived and t.type != PRIVATE_THREAD]
        found.sort(key=lambda t: t.archived_at, reverse=True)
        if "before" in request.query:
            before = datetime.fromisoformat(request.query["before"])
            found = [t for t in found if datetime.fromisoformat(t.archived_at) < before]
        return listing(found[:limit], has_more=len(found) > limit)

    async def reaction_users(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        msg = world.messages.get(int(p["mid"]))
        if msg is None or msg.deleted or msg.channel_id != int(p["cid"]):
            return error(404, 10008, "Unknown Message")
        users = msg.reactions.get(unquote(p["emoji"]), [])
        after = int(request.query.get("after", 0))
        limit = int(request.query.get("limit", 25))
        chosen = sorted(u for u in users if u > after)[:limit]
        return json_response([world.users[u].payload() for u in chosen])

    async def member(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        guild = world.guilds.get(int(p["gid"]))
        found = guild.members.get(int(p["uid"])) if guild else None
        if found is None:
            return error(404, 10007, "Unknown Member")
        return json_response(found.payload())

    api.route("GET", "/guilds/{gid}/threads/active", active)
    api.route("GET", "/channels/{cid}/threads/archived/public", archived)
    api.route("GET", "/channels/{cid}/messages/{mid}/reactions/{emoji}", reaction_users)
    api.route("GET", "/guilds/{gid}/members/{uid}", member)


class HistoryActions:
    """Users' side: reactions, forum tags, archiving and deleting threads, and message
    commands (a context menu on a message)."""

    async def message_command(
        self: Emulator, guild: Guild, member: Member, name: str, msg: Message
    ) -> ix.Interaction:
        """`member` picks Apps → `name` on `msg` (an application command of type 3)."""
        cmd = self.command(guild, name)
        assert cmd.get("type") == 3, f"{name!r} is not a message command"
        data: dict[str, Any] = {
            "id": cmd["id"],
            "name": name,
            "type": 3,
            "target_id": str(msg.id),
            "resolved": {"messages": {str(msg.id): msg.payload(self.base_url)}},
        }
        if "guild_id" in cmd:
            data["guild_id"] = cmd["guild_id"]
        inter = self._new_interaction(2, guild, msg.channel_id, member, data)
        payload = ix.command_payload(inter, guild.permissions_of(member))
        await self.gateway.dispatch("INTERACTION_CREATE", payload, guild.id)
        return inter

    async def react(self: Emulator, msg: Message, member: Member, emoji: str = "✅") -> None:
        """`member` reacts to `msg`: MESSAGE_REACTION_ADD (with the member, as Discord sends)."""
        users = msg.reactions.setdefault(emoji, [])
        if member.user.id not in users:
            users.append(member.user.id)
        await self.gateway.dispatch(
            "MESSAGE_REACTION_ADD",
            self._reaction_event(msg, member, emoji) | {"member": member.payload()},
            msg.guild_id,
        )

    async def unreact(self: Emulator, msg: Message, member: Member, emoji: str = "✅") -> None:
        users = msg.reactions.get(emoji, [])
        if member.user.id in users:
            users.remove(member.user.id)
        await self.gateway.dispatch(
            "MESSAGE_REACTION_REMOVE", self._reaction_event(msg, member, emoji), msg.guild_id
        )

    def _reaction_event(self: Emulator, msg: Message, member: Member, emoji: str) -> dict[str, Any]:
        return {
            "user_id": str(member.user.id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "guild_id": str(msg.guild_id),
            "message_author_id": str(msg.author.id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }

    async def set_tags(self: Emulator, post: Channel, tags: Sequence[str]) -> None:
        """Re-tag a forum post (by tag names): THREAD_UPDATE."""
        assert post.parent_id is not None
        forum = self.world.channel(post.parent_id)
        assert forum is not None
        post.applied_tags = [forum.tag_id(t) for t in tags]
        await self.gateway.dispatch(
            "THREAD_UPDATE",
            thread_event(post, self.world.bot_user.id, newly_created=False),
            post.guild_id,
        )

    async def archive(self: Emulator, thread: Channel) -> None:
        """Archive a thread (it leaves the active list for the archived one)."""
        thread.archived_at = iso_now()
        await self.set_archived(thread, True)

    async def delete_thread(self: Emulator, thread: Channel) -> None:
        """Delete a thread and its messages: THREAD_DELETE."""
        guild = self.world.guilds[thread.guild_id]
        guild.threads.pop(thread.id, None)
        for msg in self.world.messages.values():
            if msg.channel_id == thread.id:
                msg.deleted = True
        await self.gateway.dispatch(
            "THREAD_DELETE",
            {
                "id": str(thread.id),
                "guild_id": str(thread.guild_id),
                "parent_id": str(thread.parent_id),
                "type": thread.type,
            },
            thread.guild_id,
        )
