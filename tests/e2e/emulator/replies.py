"""Interaction callbacks and the webhook routes: the bot's replies, follow-ups and edits.

Enforces what makes "The application did not respond" in real Discord: the first callback
must come within 3 s and only once; later replies go through the interaction's webhook.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.e2e.emulator import interactions as ix
from tests.e2e.emulator.rest import Body, error, json_response
from tests.e2e.emulator.state import Message, Revision

if TYPE_CHECKING:
    from tests.e2e.emulator.server import Emulator

__all__ = ["install", "revise"]


def revise(
    previous: Revision | None,
    body: dict[str, Any] | None,
    files: list[tuple[str, bytes]],
    flags: int | None = None,
    message_id: int = 0,
) -> Revision:
    """The message state after a create (previous=None) or an edit with `body`."""
    body = body or {}
    prev = previous or Revision(0.0, "", [], [], [], 0)
    kept = prev.attachments
    if "attachments" in body:  # discord.py lists the attachments to keep (by id) on edits
        keep_ids = {str(a.get("id")) for a in body["attachments"] or []}
        kept = [a for i, a in enumerate(prev.attachments) if str(message_id * 10 + i) in keep_ids]
    content = body.get("content", prev.content)
    new_flags = prev.flags & ~ix.LOADING if previous else 0
    if flags is not None:
        new_flags = flags
    elif "flags" in body and body["flags"] is not None:
        new_flags |= int(body["flags"]) & ix.EPHEMERAL
    return Revision(
        at=time.monotonic(),
        content=content or "",
        embeds=body["embeds"]
        if body.get("embeds") is not None
        else prev.embeds
        if previous
        else [],
        components=body["components"]
        if body.get("components") is not None
        else prev.components
        if previous
        else [],
        attachments=[*kept, *files] if previous else list(files),
        flags=new_flags,
        allowed_mentions=body.get("allowed_mentions", prev.allowed_mentions),
    )


def install(emulator: Emulator) -> None:
    """Register the callback and webhook routes on the emulator's REST API."""
    world, api = emulator.world, emulator.rest

    def lookup(token: str) -> ix.Interaction | None:
        return emulator.interactions_by_token.get(token)

    async def callback(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        inter = emulator.interactions.get(int(p["iid"]))
        if inter is None or inter.token != p["token"] or inter.expired:
            return error(404, 10062, "Unknown interaction")
        if inter.acked:
            return error(400, 40060, "Interaction has already been acknowledged.")
        data, kind = body.json.get("data") or {}, body.json["type"]
        inter.callback_type, inter.acked_at = kind, time.monotonic()
        flags = int(data.get("flags") or 0) & ix.EPHEMERAL
        message: Message | None = None
        if kind in (ix.MESSAGE, ix.DEFERRED_MESSAGE):
            if kind == ix.DEFERRED_MESSAGE:
                flags |= ix.LOADING
            rev = revise(None, data, body.files, flags=flags)
            message = world.add_message(inter.channel_id, world.bot_user, rev, inter.id)
            message.interaction_user = inter.member.user
            inter.original = message
        elif kind == ix.UPDATE_MESSAGE and inter.source_message is not None:
            message = inter.source_message
            message.revisions.append(
                revise(message.latest, data, body.files, message_id=message.id)
            )
        elif kind == ix.AUTOCOMPLETE:
            inter.autocomplete_choices = data.get("choices", [])
        out: dict[str, Any] = {
            "interaction": {
                "id": str(inter.id),
                "type": inter.type,
                "response_message_loading": kind == ix.DEFERRED_MESSAGE,
                "response_message_ephemeral": bool(flags & ix.EPHEMERAL),
            }
        }
        if message is not None:
            out["interaction"]["response_message_id"] = str(message.id)
            out["resource"] = {"type": kind, "message": message.payload(emulator.base_url)}
        return json_response(out)

    async def followup(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        inter = lookup(p["token"])
        if inter is None:
            return error(404, 10015, "Unknown Webhook")
        if not inter.acked:
            return error(400, 40060, "Interaction has not been acknowledged.")
        if inter.original is not None and inter.original.flags & ix.LOADING and not inter.followups:
            # Discord: the first follow-up after a thinking defer replaces the loading message
            msg = inter.original
            msg.revisions.append(revise(msg.latest, body.json, body.files, message_id=msg.id))
            msg.revisions[-1].flags = (msg.flags & ix.EPHEMERAL) | (
                int((body.json or {}).get("flags") or 0) & ix.EPHEMERAL
            )
        else:
            rev = revise(None, body.json, body.files)
            msg = world.add_message(inter.channel_id, world.bot_user, rev, inter.id)
            inter.followups.append(msg)
        return json_response(msg.payload(emulator.base_url))

    def target(inter: ix.Interaction, mid: str) -> Message | None:
        if mid == "@original":
            return inter.original or (inter.source_message if inter.type == 3 else None)
        return next((m for m in inter.messages if m.id == int(mid)), None)

    async def webhook_message(request: web.Request, p: dict[str, str], body: Body) -> web.Response:
        inter = lookup(p["token"])
        msg = target(inter, p["mid"]) if inter else None
        if msg is None or msg.deleted:
            return error(404, 10008, "Unknown Message")
        if request.method == "PATCH":
            msg.revisions.append(revise(msg.latest, body.json, body.files, message_id=msg.id))
        elif request.method == "DELETE":
            msg.deleted = True
            return web.Response(status=204)
        return json_response(msg.payload(emulator.base_url))

    api.route("POST", "/interactions/{iid}/{token}/callback", callback)
    api.route("POST", "/webhooks/{app}/{token}", followup)
    for method in ("GET", "PATCH", "DELETE"):
        api.route(method, "/webhooks/{app}/{token}/messages/{mid}", webhook_message)
