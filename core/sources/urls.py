"""Checks on what a user gives as a source: its kind, its URL, its schedule, its host.

Every refusal is one sentence saying what to give instead (InvalidInput).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
from urllib.parse import urldefrag, urlsplit

from core.errors import InvalidInput
from core.sources.types import SourceKindName

__all__ = [
    "check_public_host",
    "check_web_url",
    "classify",
    "format_every",
    "origin",
    "parse_every",
    "same_origin",
]

_EVERY = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MIN_EVERY_S = 15 * 60  # a schedule tighter than this is a crawler, not a sync
MAX_EVERY_S = 366 * 86400
_GIT_PREFIXES = ("git@", "ssh://", "git://", "file://", "git+")


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def same_origin(a: str, b: str) -> bool:
    return origin(a) == origin(b)


def check_web_url(url: str) -> str:
    """The URL without its fragment; InvalidInput for anything but a plain http(s) URL."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise InvalidInput(f"{url[:100]!r} is not a valid URL.") from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "no scheme"
        raise InvalidInput(f"Only http:// and https:// URLs can be added ({scheme} given).")
    if not parts.hostname:
        raise InvalidInput(f"{url[:100]!r} has no host name; give a full URL like https://…")
    if parts.username or parts.password:
        raise InvalidInput("Leave credentials out of the URL; only public pages can be synced.")
    return urldefrag(url)[0]


def classify(location: str, *, git: bool = False) -> SourceKindName:
    """`git` for clone URLs (`*.git`, ssh, file://, a local path) or when asked; else `web`."""
    stripped = location.strip()
    if git or stripped.startswith(_GIT_PREFIXES) or stripped.rstrip("/").endswith(".git"):
        return "git"
    if stripped.lower().startswith(("http://", "https://")):
        return "web"
    if os.path.isdir(stripped):
        return "git"
    check_web_url(stripped)  # raises the scheme's message
    return "web"


def parse_every(text: str | None) -> int | None:
    """ "30m", "12h", "1d", "1w" → seconds; "" / "off" / None → no schedule."""
    if text is None or text.strip().lower() in ("", "off", "never", "none"):
        return None
    match = _EVERY.match(text)
    if not match:
        raise InvalidInput(f"{text[:20]!r} is not a schedule; use e.g. 30m, 12h, 1d or 1w.")
    seconds = int(match[1]) * _UNIT_S[match[2].lower()]
    if not MIN_EVERY_S <= seconds <= MAX_EVERY_S:
        raise InvalidInput("Sync at most every 15 minutes and at least once a year (e.g. 1d).")
    return seconds


def format_every(seconds: int | None) -> str:
    if not seconds:
        return "manual"
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_S[unit] == 0:
            return f"every {seconds // _UNIT_S[unit]}{unit}"
    return f"every {seconds}s"


async def check_public_host(url: str) -> None:
    """Refuse a host that resolves to a loopback, private, link-local or reserved address:
    a Discord admin must not make the bot read services on its own network."""
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        raise InvalidInput(f"Can't resolve {host!r}; check the address.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise InvalidInput(f"{host!r} is not a public address; only public sites can be added.")
