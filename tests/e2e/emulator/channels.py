"""Login, gateway discovery, application commands, channel messages and pins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.e2e.emulator.replies import revise
from tests.e2e.emulator.rest import Body, error, json_response
from tests.e2e.emulator.state import FORUM
from tests.e2e.emulator.threads import SEND_MESSAGES_IN_THREADS, missing_permission

if TYPE_CHECKING:
    from tests.e2e.emulator.server import Emulator

__all__ = ["install"]


def install(emulator: Emulator) -> None:
    """Register the non-interaction routes on the emulator's REST API."""
    world, api = emulator.world, emulator.rest

    async def me(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        return json_response(world.bot_user.payload())

    async def application(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        owner = {"id": "1", "username": "owner", "discriminator": "0", "avatar": None}
        return json_response(
            {
                "id": str(emulator.app_id),
                "name": "guru",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": owner,
                "verify_key": "00",
                "flags": 0,
            }
        )

    async def gateway_bot(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        return json_response(
            {
                "url": emulator.gateway_url,
                "shards": emulator.shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def put_commands(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        guild_id = int(p["gid"]) if "gid" in p else None
        synced = []
        for command in body.json or []:
            synced.append(
                {
                    "description": "",  # Discord answers "" for context menus (type 2, 3)
                    **command,
                    "id": str(world.next_id()),
                    "version": "1",
                    "application_id": str(emulator.app_id),
                    **({"guild_id": str(guild_id)} if guild_id else {}),
                }
            )
        world.commands[guild_id] = synced
        return json_response(synced)

    async def get_commands(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        return json_response(world.commands.get(int(p["gid"]) if "gid" in p else None, []))

    async def create_message(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        channel = world.channel(int(p["cid"]))
        if channel is None:
            return error(404, 10003, "Unknown Channel")
        if channel.type == FORUM:  # a forum holds posts (threads) only
            return error(400, 50024, "Cannot execute action on this channel type")
        if channel.is_thread:
            guild = world.guilds[channel.guild_id]
            if missing_permission(guild, world.bot_user, channel, SEND_MESSAGES_IN_THREADS):
                return error(403, 50013, "Missing Permissions")
            if channel.locked:
                return error(400, 50083, "Thread is locked")
            if channel.archived:  # Discord: a message unarchives an (unlocked) thread
                await emulator.set_archived(channel, False)
        msg = world.add_message(int(p["cid"]), world.bot_user, revise(None, body.json, body.files))
        reference = (body.json or {}).get("message_reference") or {}
        if reference.get("message_id"):
            msg.reply_to = world.messages.get(int(reference["message_id"]))
        await emulator.gateway.dispatch("MESSAGE_CREATE", emulator.message_event(msg), msg.guild_id)
        return json_response(msg.payload(emulator.base_url))

    async def typing(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        if world.channel(int(p["cid"])) is None:
            return error(404, 10003, "Unknown Channel")
        return web.Response(status=204)

    async def message(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        msg = world.messages.get(int(p["mid"]))
        if msg is None or msg.deleted or msg.channel_id != int(p["cid"]):
            return error(404, 10008, "Unknown Message")
        if request.method == "PATCH":
            msg.revisions.append(revise(msg.latest, body.json, body.files, message_id=msg.id))
        elif request.method == "DELETE":
            msg.deleted = True
            return web.Response(status=204)
        return json_response(msg.payload(emulator.base_url))

    async def history(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        """Newest first, as Discord answers: `before` pages back, `after` pages forward (the
        `limit` oldest messages after the id, still newest first)."""
        cid, limit = int(p["cid"]), int(request.query.get("limit", 50))
        msgs = sorted(
            (m for m in world.messages.values() if m.channel_id == cid and not m.deleted),
            key=lambda m: m.id,
        )
        if "after" in request.query:
            msgs = [m for m in msgs if m.id > int(request.query["after"])][:limit]
        elif "before" in request.query:
            msgs = [m for m in msgs if m.id < int(request.query["before"])][-limit:]
        else:
            msgs = msgs[-limit:]
        return json_response([m.payload(emulator.base_url) for m in reversed(msgs)])

    async def pins(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        cid = int(p["cid"])
        pinned = [
            m for m in world.messages.values() if m.channel_id == cid and m.pinned and not m.deleted
        ]
        items = [
            {"pinned_at": m.timestamp, "message": m.payload(emulator.base_url)}
            for m in reversed(pinned)
        ]
        return json_response({"items": items, "has_more": False})

    async def pin(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        msg = world.messages.get(int(p["mid"]))
        if msg is None or msg.channel_id != int(p["cid"]):
            return error(404, 10008, "Unknown Message")
        await emulator.set_pinned(msg, request.method == "PUT")
        return web.Response(status=204)

    async def uploaded(request: web.Request) -> web.Response:
        upload = world.uploads.get(int(request.match_info["uid"]))
        if upload is None:
            return web.Response(status=404)
        return web.Response(body=upload.data, headers={"Content-Type": "application/octet-stream"})

    async def file(request: web.Request) -> web.Response:
        msg = world.messages.get(int(request.match_info["mid"]))
        index = int(request.match_info["index"])
        if msg is None or index >= len(msg.attachments):
            return web.Response(status=404)
        return web.Response(
            body=msg.attachments[index][1], headers={"Content-Type": "application/octet-stream"}
        )

    api.route("GET", "/users/@me", me)
    api.route("GET", "/oauth2/applications/@me", application)
    api.route("GET", "/gateway/bot", gateway_bot)
    api.route("GET", "/gateway", gateway_bot)
    for path in ("/applications/{app}/commands", "/applications/{app}/guilds/{gid}/commands"):
        api.route("PUT", path, put_commands)
        api.route("GET", path, get_commands)
    api.route("GET", "/channels/{cid}/messages/pins", pins)
    api.route("PUT", "/channels/{cid}/messages/pins/{mid}", pin)
    api.route("DELETE", "/channels/{cid}/messages/pins/{mid}", pin)
    api.route("POST", "/channels/{cid}/messages", create_message)
    api.route("POST", "/channels/{cid}/typing", typing)
    api.route("GET", "/channels/{cid}/messages", history)
    for method in ("GET", "PATCH", "DELETE"):
        api.route(method, "/channels/{cid}/messages/{mid}", message)
    emulator.app.router.add_get("/files/uploads/{uid}/{name}", uploaded)
    emulator.app.router.add_get("/files/{mid}/{index}/{name}", file)


def pins_update(channel_id: int, guild_id: int | None, last_pin: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"channel_id": str(channel_id), "last_pin_timestamp": last_pin}
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    return data


def now_iso() -> str:
    return datetime.now(UTC).isoformat()
