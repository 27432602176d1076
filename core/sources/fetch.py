"""HTTP for web sources: conditional GETs with caps, timeouts and same-host redirects only.

aiohttp, never urllib: nothing here blocks the event loop. A response body is read in pieces
and abandoned past the size cap (a Content-Length that says too much is refused unread), so a
huge or endless page costs at most the cap. Redirects are followed by hand, and only within
the origin (scheme + host + port) of the URL asked for: a page cannot send the bot elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp

from core.sources.types import PageState
from core.sources.urls import check_public_host, same_origin

__all__ = ["USER_AGENT", "ROBOTS_AGENT", "Fetched", "Fetcher"]

log = logging.getLogger(__name__)

ROBOTS_AGENT = "GuruBot"
USER_AGENT = f"{ROBOTS_AGENT}/1.0 (self-hosted Discord docs bot; respects robots.txt)"
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_PIECE = 64 * 1024


@dataclass(frozen=True)
class Fetched:
    """One answer: 200 with a body, 304, or `error` (status 0 when there was no response)."""

    url: str  # after same-origin redirects
    status: int
    body: bytes = b""
    content_type: str = ""
    charset: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None

    @property
    def gone(self) -> bool:
        """The server says the page does not exist (its old copy should go)."""
        return self.status in (404, 410)


class Fetcher:
    """One aiohttp session for one sync; use as `async with Fetcher(...) as fetcher`."""

    def __init__(self, *, max_bytes: int, timeout_s: float, public_only: bool = False) -> None:
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.public_only = public_only
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=self.timeout_s),
            headers={"User-Agent": USER_AGENT},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, url: str, known: PageState | None = None) -> Fetched:
        """GET `url`, conditionally when `known` has validators; failures are values."""
        headers: dict[str, str] = {}
        if known is not None and known.etag:
            headers["If-None-Match"] = known.etag
        if known is not None and known.last_modified:
            headers["If-Modified-Since"] = known.last_modified
        try:
            return await self._follow(url, headers)
        except TimeoutError:
            return Fetched(url, 0, error=f"timed out after {self.timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return Fetched(url, 0, error=f"can't connect ({type(exc).__name__})")

    async def _follow(self, url: str, headers: Mapping[str, str]) -> Fetched:
        assert self._session is not None, "use Fetcher as an async context manager"
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            if self.public_only:
                await check_public_host(current)
            async with self._session.get(
                current, headers=headers, allow_redirects=False
            ) as response:
                if response.status in _REDIRECTS:
                    target = urldefrag(urljoin(current, response.headers.get("Location", "")))[0]
                    if not same_origin(url, target):
                        host = urlsplit(target).netloc or target
                        return Fetched(
                            url, response.status, error=f"redirects to another host ({host})"
                        )
                    current = target
                    continue
                return await self._answer(current, response)
        return Fetched(url, 0, error=f"more than {MAX_REDIRECTS} redirects")

    async def _answer(self, url: str, response: aiohttp.ClientResponse) -> Fetched:
        etag = response.headers.get("ETag")
        modified = response.headers.get("Last-Modified")
        if response.status == 304:
            return Fetched(url, 304, etag=etag, last_modified=modified)
        if response.status != 200:
            return Fetched(url, response.status, error=f"HTTP {response.status}")
        if (response.content_length or 0) > self.max_bytes:
            return Fetched(url, 200, error=self._too_large())
        body = bytearray()
        async for piece in response.content.iter_chunked(_PIECE):
            body += piece
            if len(body) > self.max_bytes:
                return Fetched(url, 200, error=self._too_large())
        return Fetched(
            url,
            200,
            bytes(body),
            response.content_type,
            response.charset,
            etag,
            modified,
        )

    def _too_large(self) -> str:
        return f"page too large (over {self.max_bytes / 1e6:.1f} MB)"
