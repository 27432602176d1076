"""REST: the routes discord.py 2.7.1 calls, every call recorded, rate limits and injected 429s.

Two wire details discord.py depends on (../shared/DISCORD_EMULATOR.md §5): JSON responses must
have Content-Type exactly `application/json`, and a 429 is only retried when it carries a `Via`
header and a JSON body with `retry_after`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.e2e.emulator.server import Emulator

__all__ = ["Call", "Limits", "RestApi", "json_response", "read_body"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request, dict[str, str], "Body"], Awaitable[web.Response]]


@dataclass
class Body:
    json: Any = None
    files: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class Call:
    """One REST request the bot made, with when it arrived and what we answered."""

    at: float
    method: str
    path: str  # without the /api/v10 prefix and without the query string
    query: dict[str, str]
    body: Any
    status: int = 0

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(obj).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def error(status: int, code: int, message: str) -> web.Response:
    return json_response({"message": message, "code": code}, status)


async def read_body(request: web.Request) -> Body:
    """JSON bodies, or multipart ones (`payload_json` + `files[n]`) as discord.py sends files."""
    if request.content_type == "multipart/form-data":
        form = await request.post()
        body = Body(json.loads(str(form.get("payload_json", "{}"))))
        for key, value in form.items():
            if key.startswith("files[") and hasattr(value, "file"):
                body.files.append((value.filename, value.file.read()))
        return body
    raw = await request.read()
    return Body(json.loads(raw) if raw else None)


@dataclass
class _Injected:
    pattern: re.Pattern[str]
    times: int
    retry_after: float
    is_global: bool


@dataclass
class _Bucket:
    pattern: re.Pattern[str]
    limit: int
    per_s: float
    hits: dict[str, list[float]] = field(default_factory=dict)


class Limits:
    """Rate limiting: injected one-off 429s and real per-route buckets with Discord's headers."""

    def __init__(self) -> None:
        self.injected: list[_Injected] = []
        self.buckets: list[_Bucket] = []

    def inject_429(
        self, pattern: str, times: int = 1, retry_after: float = 0.3, is_global: bool = False
    ) -> None:
        """The next `times` calls whose "METHOD /path" matches `pattern` (regex) get a 429."""
        self.injected.append(_Injected(re.compile(pattern), times, retry_after, is_global))

    def limit(self, pattern: str, limit: int, per_s: float) -> None:
        """Allow `limit` calls per `per_s` seconds on each path matching `pattern`."""
        self.buckets.append(_Bucket(re.compile(pattern), limit, per_s))

    def check(self, key: str, path: str) -> tuple[web.Response | None, dict[str, str]]:
        """A 429 response to send instead of handling the call (or None), plus headers to add."""
        for inj in self.injected:
            if inj.times > 0 and inj.pattern.search(key):
                inj.times -= 1
                return self._too_many(inj.retry_after, inj.is_global), {}
        for bucket in self.buckets:
            if not bucket.pattern.search(key):
                continue
            now = time.monotonic()
            hits = [t for t in bucket.hits.get(path, []) if now - t < bucket.per_s]
            bucket.hits[path] = hits
            if len(hits) >= bucket.limit:
                return self._too_many(bucket.per_s - (now - hits[0]), False), {}
            hits.append(now)
            reset = bucket.per_s - (now - hits[0])
            return None, {
                "X-RateLimit-Limit": str(bucket.limit),
                "X-RateLimit-Remaining": str(bucket.limit - len(hits)),
                "X-RateLimit-Reset-After": f"{reset:.3f}",
                "X-RateLimit-Reset": f"{time.time() + reset:.3f}",
                "X-RateLimit-Bucket": f"bucket-{bucket.pattern.pattern}",
            }
        return None, {}

    @staticmethod
    def _too_many(retry_after: float, is_global: bool) -> web.Response:
        body = {
            "message": "You are being rate limited.",
            "retry_after": round(retry_after, 3),
            "global": is_global,
            "code": 0,
        }
        return json_response(body, 429, {"Via": "1.1 emulator", "Retry-After": str(retry_after)})


class RestApi:
    """Dispatches /api/v10/* to handlers registered by regex; records every call."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.calls: list[Call] = []
        self.limits = Limits()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    async def handle(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body = await read_body(request)
        call = Call(time.monotonic(), request.method, path, dict(request.query), body.json)
        self.calls.append(call)
        response = await self._respond(request, path, body)
        call.status = response.status
        log.info("%s %s -> %d", request.method, path, response.status)
        self.emulator.notify()
        return response

    async def _respond(self, request: web.Request, path: str, body: Body) -> web.Response:
        tokenless = path.startswith(("/interactions/", "/webhooks/"))  # the URL token authorises
        if not tokenless and request.headers.get("Authorization") != f"Bot {self.emulator.token}":
            return error(401, 0, "401: Unauthorized")
        limited, headers = self.limits.check(f"{request.method} {path}", path)
        if limited is not None:
            return limited
        for method, regex, handler in self._routes:
            match = regex.match(path)
            if match and method == request.method:
                response = await handler(request, match.groupdict(), body)
                response.headers.update(headers)
                return response
        return error(404, 0, f"404: Not Found ({request.method} {path})")

    def find(self, method: str | None = None, pattern: str = "") -> list[Call]:
        """Recorded calls filtered by method and a regex on the path."""
        regex = re.compile(pattern)
        return [
            c for c in self.calls if (method is None or c.method == method) and regex.search(c.path)
        ]
