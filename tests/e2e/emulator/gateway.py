"""The Gateway websocket: HELLO, IDENTIFY → READY + GUILD_CREATE, heartbeats, RESUME, dispatch.

Frames go out as TEXT JSON: discord.py only decompresses BINARY frames, so we never have to
speak zlib-stream (or zstd-stream) even though the client asks for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from tests.e2e.emulator.server import Emulator

__all__ = ["Gateway", "Session"]

log = logging.getLogger(__name__)

HELLO, HEARTBEAT, IDENTIFY, RESUME, HEARTBEAT_ACK, REQUEST_MEMBERS, DISPATCH = 10, 1, 2, 6, 11, 8, 0


@dataclass
class Session:
    """One gateway session; it survives its websocket so a client can RESUME it."""

    id: str
    shard: tuple[int, int]
    seq: int = 0
    ws: web.WebSocketResponse | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)  # dispatches, for resume replay
    heartbeats: int = 0
    last_heartbeat: float = 0.0
    resumes: int = 0

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        frame = {"op": DISPATCH, "t": event, "s": self.seq, "d": data}
        self.sent.append(frame)
        if self.ws is not None and not self.ws.closed:
            await self.ws.send_str(json.dumps(frame))


class Gateway:
    """Accepts the bot's websocket connections and fans dispatches out to its sessions."""

    def __init__(self, emulator: Emulator, heartbeat_interval_ms: int = 41250) -> None:
        self.emulator = emulator
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.sessions: dict[str, Session] = {}
        self.identified = asyncio.Event()
        self.connections = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        session: Session | None = None
        await ws.send_str(
            json.dumps({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        )
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            op, data = frame.get("op"), frame.get("d")
            if op == HEARTBEAT:
                if session is not None:
                    session.heartbeats += 1
                    session.last_heartbeat = time.monotonic()
                await ws.send_str(json.dumps({"op": HEARTBEAT_ACK}))
            elif op == IDENTIFY:
                session = await self._identify(ws, data)
            elif op == RESUME:
                session = await self._resume(ws, data)
            elif op == REQUEST_MEMBERS:
                await self._members_chunk(session, data)
        if session is not None and session.ws is ws:
            session.ws = None
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> Session | None:
        if data.get("token") != self.emulator.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        shard = tuple(data.get("shard") or (0, 1))
        session = Session(f"session-{self.emulator.world.next_id()}", (shard[0], shard[1]), ws=ws)
        self.sessions[session.id] = session
        world = self.emulator.world
        guilds = [
            g for g in world.guilds.values() if (g.id >> 22) % session.shard[1] == session.shard[0]
        ]
        await session.dispatch(
            "READY",
            {
                "v": 10,
                "user": world.bot_user.payload(),
                "session_id": session.id,
                "resume_gateway_url": self.emulator.gateway_url,
                "shard": list(session.shard),
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "application": {"id": str(self.emulator.app_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
            },
        )
        for guild in guilds:
            await session.dispatch("GUILD_CREATE", guild.payload())
        self.identified.set()
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> Session | None:
        session = self.sessions.get(data.get("session_id", ""))
        if session is None or data.get("token") != self.emulator.token:
            await ws.send_str(json.dumps({"op": 9, "d": False}))  # INVALID_SESSION: identify again
            return None
        session.ws, session.resumes = ws, session.resumes + 1
        missed = [f for f in session.sent if f["s"] > (data.get("seq") or 0)]
        for frame in missed:
            await ws.send_str(json.dumps(frame))
        await session.dispatch("RESUMED", {})
        return session

    async def _members_chunk(self, session: Session | None, data: dict[str, Any]) -> None:
        guild = self.emulator.world.guilds.get(int(data["guild_id"]))
        if session is None or guild is None:
            return
        await session.dispatch(
            "GUILD_MEMBERS_CHUNK",
            {
                "guild_id": str(guild.id),
                "members": [m.payload() for m in guild.members.values()],
                "chunk_index": 0,
                "chunk_count": 1,
                "nonce": data.get("nonce"),
            },
        )

    async def dispatch(self, event: str, data: dict[str, Any], guild_id: int | None = None) -> None:
        """Send an event to every session (of the shard owning `guild_id`, when given)."""
        for session in list(self.sessions.values()):
            shard_id, count = session.shard
            if guild_id is None or (guild_id >> 22) % count == shard_id:
                await session.dispatch(event, data)

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every websocket with a resumable code, as Discord does on a restart."""
        for session in self.sessions.values():
            if session.ws is not None and not session.ws.closed:
                await session.ws.close(code=code, message=b"emulator reconnect")
