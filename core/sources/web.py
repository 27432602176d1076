"""Pages of a website source: a sitemap's URLs, or a crawl from a start URL within its host.

A location ending in `.xml` is a sitemap (a sitemap index is followed one level, within the
host); anything else is a start page whose links are followed breadth-first. Either way only
URLs of the location's origin (scheme + host + port) are fetched, robots.txt is obeyed, and at
most `max_pages` pages are fetched. A page answered 304 is not parsed: its links from the last
sync carry the crawl on, and so do a failed page's, so an outage of one page never looks like
the removal of everything below it.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

from core.rag.loaders import parse_html, parse_markdown, parse_text
from core.rag.types import ParsedDocument
from core.sources.fetch import ROBOTS_AGENT, Fetched, Fetcher
from core.sources.types import (
    Failed,
    PageResult,
    PageState,
    Parsed,
    SourceUnavailable,
    Unchanged,
)
from core.sources.urls import same_origin

__all__ = ["web_pages"]

log = logging.getLogger(__name__)

MAX_LINKS_PER_PAGE = 1000
MAX_CHILD_SITEMAPS = 20
# Links to these are files, not pages: never fetched while crawling.
_NOT_PAGES = {
    ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".ico", ".css", ".js", ".json", ".zip",
    ".gz", ".tar", ".tgz", ".pdf", ".mp4", ".mp3", ".woff", ".woff2", ".ttf", ".exe", ".dmg",
}  # fmt: skip


async def web_pages(
    location: str, known: dict[str, PageState], fetcher: Fetcher, max_pages: int
) -> AsyncIterator[PageResult]:
    """One result per page fetched, in crawl order; SourceUnavailable when the start page,
    the sitemap or robots.txt cannot be read (then nothing should change)."""
    robots = await _robots(fetcher, location)
    crawl = not urlsplit(location).path.lower().endswith(".xml")
    start = [location] if crawl else await _sitemap_urls(fetcher, location, max_pages)
    queue, queued, done = deque(start), set(start), set[str]()
    fetched = 0
    while queue and fetched < max_pages:
        url = queue.popleft()
        if not same_origin(url, location):
            log.info("not syncing %s: another host than the source's", url)
            continue
        if not robots.can_fetch(ROBOTS_AGENT, url):
            continue
        fetched += 1
        result = await _page(fetcher, url, known.get(url))
        if crawl and fetched == 1 and isinstance(result, Failed):
            raise SourceUnavailable(f"The start page {url} failed: {result.reason}.")
        if result.uri in done:
            continue  # redirected to a page this sync already has
        done.add(result.uri)
        queued.add(result.uri)
        yield result
        for link in _links_of(result) if crawl else ():
            if link not in queued and same_origin(link, location):
                queued.add(link)
                queue.append(link)


def _links_of(result: PageResult) -> tuple[str, ...]:
    return result.links if isinstance(result, Failed) else result.state.links


async def _page(fetcher: Fetcher, url: str, known: PageState | None) -> PageResult:
    answer = await fetcher.get(url, known)
    old_links = known.links if known is not None else ()
    if answer.error is not None:
        return Failed(url, answer.error, keep=not answer.gone, links=old_links)
    if answer.status == 304 and known is not None:
        state = replace(
            known,
            etag=answer.etag or known.etag,
            last_modified=answer.last_modified or known.last_modified,
        )
        return Unchanged(answer.url, state)
    try:
        doc, links = await asyncio.to_thread(_parse, answer)
    except ValueError as exc:
        return Failed(answer.url, str(exc), links=old_links)
    state = PageState(answer.url, answer.etag, answer.last_modified, None, links)
    return Parsed(answer.url, doc, state)


def _parse(answer: Fetched) -> tuple[ParsedDocument, tuple[str, ...]]:
    """The page as a document and its same-page-agnostic links (blocking: run in a thread)."""
    text = answer.body.decode(answer.charset or "utf-8", errors="replace")
    kind = answer.content_type
    if kind in ("text/html", "application/xhtml+xml"):
        doc, links = parse_html(answer.url, text), _html_links(answer.url, text)
    elif kind == "text/markdown" or answer.url.lower().endswith((".md", ".markdown")):
        doc, links = parse_markdown(answer.url, text), ()
    elif kind == "text/plain":
        doc, links = parse_text(answer.url, text), ()
    else:
        raise ValueError(f"not a web page ({kind or 'no content type'})")
    if not any(s.text.strip() for s in doc.sections):
        raise ValueError("no text on the page")
    return ParsedDocument(doc.uri, doc.title, doc.sections, "web", {"url": answer.url}), links


def _html_links(base: str, text: str) -> tuple[str, ...]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    tag = soup.find("base", href=True)
    if tag is not None:
        base = urljoin(base, str(tag["href"]))
    found: dict[str, None] = {}
    for anchor in soup.find_all("a", href=True):
        link = urldefrag(urljoin(base, str(anchor["href"]).strip()))[0]
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https"):
            continue
        if posixpath.splitext(parts.path)[1].lower() in _NOT_PAGES:
            continue
        found[link] = None
        if len(found) >= MAX_LINKS_PER_PAGE:
            break
    return tuple(found)


async def _robots(fetcher: Fetcher, location: str) -> RobotFileParser:
    """The host's robots.txt rules (urllib.robotparser, fed from aiohttp: no blocking read).
    Like robotparser's own read(): 401/403 forbid everything, any other 4xx allows all."""
    parts = urlsplit(location)
    robots = RobotFileParser(f"{parts.scheme}://{parts.netloc}/robots.txt")
    answer = await fetcher.get(robots.url)
    if answer.status == 200 and answer.error is None:
        robots.parse(answer.body.decode("utf-8", errors="replace").splitlines())
    elif answer.status in (401, 403):
        robots.disallow_all = True
    elif 400 <= answer.status < 500:
        robots.allow_all = True
    else:
        raise SourceUnavailable(f"Can't read {robots.url}: {answer.error}.")
    return robots


async def _sitemap_urls(fetcher: Fetcher, location: str, max_pages: int) -> list[str]:
    """The page URLs a sitemap lists (a sitemap index: its same-host child sitemaps')."""
    root = await _sitemap(fetcher, location)
    if root.tag.endswith("sitemapindex"):
        children = [u for u in _locs(root) if same_origin(u, location)][:MAX_CHILD_SITEMAPS]
        urls = [u for child in children for u in _locs(await _sitemap(fetcher, child))]
    else:
        urls = _locs(root)
    return list(dict.fromkeys(urldefrag(u)[0] for u in urls))[: max_pages * 2]


async def _sitemap(fetcher: Fetcher, url: str) -> ET.Element:
    answer = await fetcher.get(url)
    if answer.error is not None:
        raise SourceUnavailable(f"The sitemap {url} failed: {answer.error}.")
    try:
        # expat neither fetches external entities nor expands nested ones without bound
        return ET.fromstring(answer.body)
    except ET.ParseError:
        raise SourceUnavailable(f"{url} is not a sitemap (invalid XML).") from None


def _locs(root: ET.Element) -> list[str]:
    return [(el.text or "").strip() for el in root.iter() if el.tag.endswith("loc") and el.text]
