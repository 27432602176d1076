"""`guru serve`'s HTTP side: any LLMBackend behind an OpenAI-compatible API (aiohttp.web).

Routes: `POST /v1/chat/completions` (streaming as Server-Sent Events or one JSON object),
`GET /v1/models`, `GET /healthz` (never needs the key, for load balancers and probes).
Request fields and Guru's extensions (`guild_id`, `adapter`) are documented in `wire.py`.

Guild adapters are scoped: a request may use adapter `g<guild>-v<n>` only with that
`guild_id` (another guild's adapter is 403), and `/v1/models` lists the base model alone, so
no client learns which guilds have adapters.

Domain errors become OpenAI-style JSON errors: InvalidInput 400, NotAllowed 403, NotFound 404,
Busy 429 (+ Retry-After), shutting down 503, anything else 500. An error after a stream has
started is sent as a `data: {"error": …}` event, as vLLM does. A client that disconnects stops
its generation (see `serving.py`).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from aiohttp import web

from core.errors import Busy, GuruError, InvalidInput, NotAllowed, NotFound
from core.llm.http import sse, wire
from core.llm.http.serving import (
    ClientGone,
    InFlight,
    RunningServer,
    ShuttingDown,
    start_server,
    while_connected,
)
from core.llm.types import Completion, LLMBackend, StreamEvent

__all__ = ["create_app", "start_server", "RunningServer"]

log = logging.getLogger(__name__)

RETRY_AFTER_S = 2  # what a 429 suggests; the queue moves every few tokens

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# core.tuning.registry.engine_name writes a guild's adapters as g<guild id>-v<version>.
_GUILD_ADAPTER = re.compile(r"g(\d+)-v\d+")


def check_adapter_scope(adapter: str | None, guild_id: int | None) -> None:
    """NotAllowed when a request names a guild's adapter without being that guild's request."""
    match = _GUILD_ADAPTER.fullmatch(adapter or "")
    if match and int(match[1]) != guild_id:
        raise NotAllowed(f"Adapter {adapter!r} belongs to another guild than this request's.")


def create_app(
    backend: LLMBackend,
    model_name: str,
    api_key: str | None,
    *,
    default_temperature: float = 1.0,
) -> web.Application:
    """The aiohttp application. The caller owns `backend` (and closes it after the app)."""
    app = web.Application(middlewares=[_errors_middleware, _auth_middleware(api_key)])
    in_flight = InFlight()
    app.on_shutdown.append(in_flight.drain)
    started = int(time.time())

    async def chat(request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"The request body is not valid JSON ({exc}).") from exc
        call = wire.parse_chat_request(
            body,
            request_id=wire.new_completion_id(),
            default_temperature=default_temperature,
            adapters=backend.stats().adapters,
        )
        check_adapter_scope(call.request.adapter, call.request.guild_id)
        with in_flight.track():
            events = while_connected(request, backend.stream(call.request), in_flight)
            async with aclosing(events):
                if call.stream:
                    return await _stream(request, events, call, model_name)
                completion = await _finish(events)
                return web.json_response(
                    wire.completion_body(call.request.request_id, model_name, completion)
                )

    async def models(request: web.Request) -> web.Response:
        # Guild adapters stay unlisted (a list of them is a list of Guru's guilds); an adapter
        # without a guild (loaded by the operator) is listed, as vLLM lists LoRAs.
        entries = [{"id": model_name, "object": "model", "created": started, "owned_by": "guru"}]
        entries += [
            {
                "id": name,
                "object": "model",
                "created": started,
                "owned_by": "guru",
                "parent": model_name,
            }
            for name in backend.stats().adapters
            if not _GUILD_ADAPTER.fullmatch(name)
        ]
        return web.json_response({"object": "list", "data": entries})

    async def healthz(request: web.Request) -> web.Response:
        stats = backend.stats()
        return web.json_response(
            {"status": "ok", "model": model_name, "active": stats.active, "queued": stats.queued}
        )

    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/healthz", healthz)
    return app


# -- streaming -------------------------------------------------------------------------------


async def _stream(
    request: web.Request,
    events: AsyncIterator[StreamEvent | None],
    call: wire.ChatCall,
    model: str,
) -> web.StreamResponse:
    # The first event comes after the backend accepted the request: Busy, bad input or an
    # unknown adapter still become a plain HTTP error instead of a broken stream.
    first = await anext(events)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    completion_id, created = call.request.request_id, int(time.time())

    def chunk(delta: dict[str, str] | None, **extra: Any) -> bytes:
        return sse.encode_data(wire.chunk_body(completion_id, model, created, delta, **extra))

    try:
        await response.write(chunk({"role": "assistant", "content": ""}))
        event: StreamEvent | None = first
        while True:
            if event is None:
                await response.write(sse.encode_comment("keep-alive"))
            elif event.kind == "queued":
                # A comment, so strict clients skip it; RemoteBackend reads the position.
                await response.write(sse.encode_comment(f"queue_position={event.queue_position}"))
            elif event.kind == "text":
                await response.write(chunk({"content": event.text}))
            else:
                completion = event.completion
                assert completion is not None
                await response.write(chunk({}, finish_reason=completion.finish_reason))
                if call.include_usage:
                    await response.write(chunk(None, usage=wire.usage_body(completion)))
                break
            event = await anext(events)
    except (ConnectionResetError, ClientGone):
        raise  # nobody to tell; closing `events` cancels the generation
    except Exception as exc:  # noqa: BLE001 - the status line is gone: report in the stream
        status, kind, message = _describe(exc)
        await response.write(sse.encode_data(wire.error_body(message, kind, status)))
    await response.write(sse.encode_data(sse.DONE))
    await response.write_eof()
    return response


async def _finish(events: AsyncIterator[StreamEvent | None]) -> Completion:
    async for event in events:
        if event is not None and event.kind == "done":
            assert event.completion is not None
            return event.completion
    raise GuruError("The model stopped without an answer; please try again.")


# -- errors and auth -----------------------------------------------------------------------


def _describe(exc: BaseException) -> tuple[int, str, str]:
    """(HTTP status, OpenAI error type, user-safe message) for an exception."""
    if isinstance(exc, InvalidInput):
        return 400, "invalid_request_error", exc.user_message
    if isinstance(exc, NotAllowed):
        return 403, "permission_error", exc.user_message
    if isinstance(exc, NotFound):
        return 404, "not_found_error", exc.user_message
    if isinstance(exc, Busy):
        return 429, "rate_limit_error", exc.user_message
    if isinstance(exc, ShuttingDown):
        return 503, "server_error", exc.user_message
    if isinstance(exc, GuruError):
        log.warning("request failed: %s", exc.user_message)
        return 500, "server_error", exc.user_message
    log.error("request failed", exc_info=exc)
    return 500, "server_error", "The server failed while answering; see its log."


def _error_response(status: int, kind: str, message: str) -> web.Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status in (429, 503) else None
    return web.json_response(wire.error_body(message, kind, status), status=status, headers=headers)


@web.middleware
async def _errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (ClientGone, ConnectionResetError):
        log.info("client went away; %s %s cancelled", request.method, request.path)
        return web.Response(status=499)  # never reaches anyone; keeps aiohttp quiet
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = "not_found_error" if exc.status == 404 else "invalid_request_error"
        return _error_response(exc.status, kind, f"{exc.reason}: {request.method} {request.path}")
    except Exception as exc:  # noqa: BLE001 - every failure gets an OpenAI-style body
        return _error_response(*_describe(exc))


def _auth_middleware(api_key: str | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    expected = f"Bearer {api_key}".encode() if api_key else None

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is None or request.path == "/healthz":
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            body = wire.error_body(
                "Missing or wrong API key (Authorization: Bearer …).", "authentication_error", 401
            )
            return web.json_response(body, status=401, headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return auth
