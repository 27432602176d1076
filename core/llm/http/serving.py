"""The life of `guru serve`'s connections: listening, noticing clients that leave, draining.

aiohttp neither cancels a handler when its client disconnects (by default) nor lets running
requests end cleanly on shutdown (it waits, then cuts connections). A generation is expensive
and holds a batch slot, so the handlers watch their socket and a shutdown drains them here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from aiohttp import web

from core.errors import GuruError
from core.llm.types import StreamEvent

__all__ = [
    "ClientGone",
    "ShuttingDown",
    "InFlight",
    "while_connected",
    "RunningServer",
    "start_server",
]

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often a waiting handler checks that its client is still there
KEEPALIVE_S = 15.0  # SSE comment after this much silence, so proxies keep the stream open
SHUTDOWN_GRACE_S = 5.0  # running requests get this long to finish on SIGTERM
SHUTDOWN_BACKSTOP_S = 3.0  # then aiohttp waits this long before cutting connections


class ClientGone(Exception):
    """The HTTP client closed its connection; nobody is waiting for the answer any more."""


class ShuttingDown(GuruError):
    """The server is stopping: running requests had their grace period, new ones are refused."""

    def __init__(self) -> None:
        super().__init__("The model server is restarting; please try again shortly.")


class InFlight:
    """Running chat requests, so a shutdown lets them finish for a while, then stops the rest
    with a clean error (aiohttp on its own would only cut their connections)."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False  # no new requests
        self.stopping = False  # running requests end now
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        if self.draining:
            raise ShuttingDown()
        self.count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def drain(self, app: web.Application) -> None:
        """on_shutdown: wait up to SHUTDOWN_GRACE_S for running requests, then stop them."""
        self.draining = True
        if self.count:
            log.info("waiting up to %.0f s for %d running requests", SHUTDOWN_GRACE_S, self.count)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), SHUTDOWN_GRACE_S)
        self.stopping = True


async def while_connected(
    request: web.Request, events: AsyncIterator[StreamEvent], in_flight: InFlight
) -> AsyncIterator[StreamEvent | None]:
    """The backend's events, plus None after each KEEPALIVE_S of silence. Raises ClientGone
    when the client disconnects (ShuttingDown when the server stops); closing this iterator
    closes `events`, which cancels the generation."""
    pending: asyncio.Task[StreamEvent] | None = None
    idle = 0.0
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
                idle = 0.0
            done, _ = await asyncio.wait({pending}, timeout=POLL_S)
            transport = request.transport  # checked every turn: tokens may never pause
            if transport is None or transport.is_closing():
                raise ClientGone()
            if in_flight.stopping:
                raise ShuttingDown()
            if done:
                task, pending = pending, None
                try:
                    event = task.result()
                except StopAsyncIteration:
                    return
                yield event
                continue
            idle += POLL_S
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield None
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        closer = getattr(events, "aclose", None)
        if closer is not None:
            await closer()


# -- listening ---------------------------------------------------------------------------------


@dataclass
class RunningServer:
    """A started app: `url` is the OpenAI base URL (ending in /v1) clients should use."""

    runner: web.AppRunner
    url: str

    async def aclose(self) -> None:
        """Stop listening, give running requests SHUTDOWN_GRACE_S, then cancel them."""
        await self.runner.cleanup()


async def start_server(app: web.Application, host: str, port: int) -> RunningServer:
    """Serve `app` on host:port (port 0 = any free port) until `aclose()`."""
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_BACKSTOP_S, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise GuruError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}).") from exc
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return RunningServer(runner, f"http://{shown}:{bound_port}/v1")
