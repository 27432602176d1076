"""What a user may give as a source: kinds, URLs, schedules, hosts."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.sources.urls import (
    check_public_host,
    check_web_url,
    classify,
    format_every,
    parse_every,
    same_origin,
)


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("https://docs.example.com/", "web"),
        ("http://example.com/sitemap.xml", "web"),
        ("https://github.com/org/project.git", "git"),
        ("git@github.com:org/project.git", "git"),
        ("file:///srv/repo", "git"),
    ],
)
def test_locations_are_told_apart_by_their_form(location: str, kind: str) -> None:
    assert classify(location) == kind


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/", "Only http:// and https:// URLs"),
        ("javascript:alert(1)", "Only http:// and https:// URLs"),
        ("https:///path", "has no host name"),
        ("https://user:secret@example.com/", "Leave credentials out"),
        ("http://example.com:99999/", "is not a valid URL"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        check_web_url(url)


def test_fragment_is_dropped_and_origin_includes_scheme_and_port() -> None:
    assert check_web_url(" https://example.com/a#top ") == "https://example.com/a"
    assert same_origin("https://Example.com/a", "https://example.com:443/b")
    assert not same_origin("https://example.com/", "http://example.com/")
    assert not same_origin("http://example.com/", "http://example.com:8080/")
    assert not same_origin("https://example.com/", "https://docs.example.com/")


def test_schedules_parse_within_bounds() -> None:
    assert parse_every("1d") == 86400 and parse_every(" 12H ") == 43200
    assert parse_every(None) is None and parse_every("off") is None
    assert format_every(86400) == "every 1d" and format_every(None) == "manual"
    for bad in ("5m", "600w", "daily", "1.5d"):
        with pytest.raises(InvalidInput):
            parse_every(bad)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://10.1.2.3/", "http://[::1]/"])
async def test_private_addresses_are_not_public(url: str) -> None:
    with pytest.raises(InvalidInput, match="not a public address"):
        await check_public_host(url)
