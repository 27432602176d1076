"""A small website on 127.0.0.1 (random port) for source-sync tests: robots.txt, a sitemap,
ETag / If-None-Match, a request log, and pages a test can edit or delete between syncs."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

ROBOTS = "User-agent: *\nDisallow: /private/\n"


def page(title: str, body: str, links: tuple[str, ...] = ()) -> str:
    anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return (
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
        f"<p>{body}</p><ul>{anchors}</ul></body></html>"
    )


@dataclass
class Site:
    """`pages`: path → HTML (edit it between syncs); `log`: (path, status) of each request."""

    pages: dict[str, str] = field(default_factory=dict)
    log: list[tuple[str, int]] = field(default_factory=list)
    base: str = ""
    no_validators: set[str] = field(default_factory=set)  # paths served without an ETag
    sitemap_paths: list[str] | None = None  # None: every page; paths may be absolute URLs

    def url(self, path: str) -> str:
        return self.base + path

    def statuses(self, path: str) -> list[int]:
        return [status for p, status in self.log if p == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/slow.html":  # long enough for a test to cancel the sync meanwhile
            await asyncio.sleep(10)
        try:
            response = self._respond(request)
        except web.HTTPException as redirect:
            self.log.append((request.path, redirect.status))
            raise
        self.log.append((request.path, response.status))
        return response

    def _respond(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/robots.txt":
            return web.Response(text=ROBOTS)
        if path == "/sitemap.xml":
            paths = self.sitemap_paths if self.sitemap_paths is not None else sorted(self.pages)
            locs = "".join(
                f"<url><loc>{p if '://' in p else self.url(p)}</loc></url>" for p in paths
            )
            xml = f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locs}</urlset>'
            return web.Response(text=xml, content_type="application/xml")
        if path == "/away":
            raise web.HTTPFound("http://other.invalid/elsewhere")
        if path == "/moved":
            raise web.HTTPMovedPermanently(self.url("/a.html"))
        if path == "/big.html":
            return web.Response(text=page("Big", "x" * 200_000), content_type="text/html")
        html = self.pages.get(path)
        if html is None:
            return web.Response(status=404, text="not found")
        if path in self.no_validators:  # a server that never says what changed
            return web.Response(text=html, content_type="text/html")
        etag = '"' + hashlib.sha256(html.encode()).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(text=html, content_type="text/html", headers={"ETag": etag})


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    served = Site()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", served.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    served.base = f"http://127.0.0.1:{port}"
    yield served
    await runner.cleanup()
