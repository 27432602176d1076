"""Pages of a git source: the supported files of one folder of a repository's default branch.

Each sync makes a shallow clone (`git clone --depth 1`) into a temporary folder under the data
dir and deletes it afterwards; a file's git blob id is its validator, so an unchanged file is
not even read. git runs as a subprocess (never on the event loop) with no terminal prompt
(a private repository fails instead of hanging) and the `ext::` transport off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

from core.errors import InvalidInput
from core.rag.loaders import SUPPORTED, load_file
from core.rag.types import ParsedDocument
from core.sources.types import Failed, PageResult, PageState, Parsed, SourceUnavailable, Unchanged
from core.sources.urls import check_public_host

__all__ = ["clone_url", "git_pages", "git_uri"]

log = logging.getLogger(__name__)

CLONE_TIMEOUT_S = 300.0
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GCM_INTERACTIVE": "never"}


def git_uri(location: str, path: str) -> str:
    """A file's document uri: stable across syncs, distinct from `guru ingest`'s paths."""
    return f"git+{location}#{path}"


def clone_url(location: str) -> str:
    """What to give `git clone`: local folders as file:// URLs (`--depth` needs a transport)."""
    if location.startswith("git+"):
        location = location[4:]
    if os.path.isdir(location):
        return Path(location).resolve().as_uri()
    return location


async def git_pages(
    location: str,
    folder: str,
    known: dict[str, PageState],
    work_dir: Path,
    *,
    max_bytes: int,
    max_pages: int,
    public_only: bool = False,
) -> AsyncIterator[PageResult]:
    """One result per supported file under `folder`; SourceUnavailable when the clone fails.
    `public_only` (added from Discord): the host must be public now, and no redirects."""
    work_dir.mkdir(parents=True, exist_ok=True)
    url = clone_url(location)
    options: tuple[str, ...] = ()
    if public_only:
        await check_public_host(url)
        options = ("-c", "http.followRedirects=false")
    with tempfile.TemporaryDirectory(prefix="clone-", dir=work_dir) as tmp:
        checkout = Path(tmp) / "repo"
        await _git(*options, "clone", "--depth", "1", "--no-tags", "--", url, str(checkout))
        listing = await _git("-C", str(checkout), "ls-tree", "-r", "-z", "HEAD")
        count = 0
        for path, blob in _files(listing, folder):
            if count >= max_pages:
                break
            count += 1
            uri = git_uri(location, path)
            state = known.get(uri)
            if state is not None and state.etag == blob:
                yield Unchanged(uri, state)
                continue
            try:
                doc = await asyncio.to_thread(load_file, str(checkout / path), max_bytes)
            except InvalidInput as exc:
                yield Failed(uri, exc.user_message)
                continue
            meta = {"repository": location, "path": path}
            doc = ParsedDocument(uri, doc.title, doc.sections, "git", meta)
            yield Parsed(uri, doc, PageState(uri, etag=blob))


def _files(listing: str, folder: str) -> list[tuple[str, str]]:
    """(path, blob id) of the supported regular files under `folder`, sorted."""
    prefix = PurePosixPath(folder.strip("/")) if folder.strip("/") else None
    found = []
    for entry in listing.split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        mode, kind, blob = meta.split()
        if kind != "blob" or mode == "120000":  # submodules and symlinks are not documents
            continue
        pure = PurePosixPath(path)
        if prefix is not None and prefix not in pure.parents:
            continue
        if any(part.startswith(".") for part in pure.parts):
            continue
        if pure.suffix.lower() in SUPPORTED:
            found.append((path, blob))
    return sorted(found)


async def _git(*args: str) -> str:
    """Run git; its stdout, or SourceUnavailable with git's last error line."""
    process = await asyncio.create_subprocess_exec(
        "git",
        "-c",
        "protocol.ext.allow=never",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **_GIT_ENV},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), CLONE_TIMEOUT_S)
    except TimeoutError:
        raise SourceUnavailable(f"git took longer than {CLONE_TIMEOUT_S:g} s; try later.") from None
    finally:  # timed out or cancelled (the bot shutting down): no git left behind
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.returncode != 0:
        lines = [ln.strip() for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        fatal = [ln for ln in lines if ln.startswith("fatal:")]  # the cause; hints follow it
        reason = (fatal or lines or ["unknown error"])[0].removeprefix("fatal:").strip()
        command = next(a for a in args if a in ("clone", "ls-tree"))
        raise SourceUnavailable(f"git {command} failed: {reason}")
    return out.decode(errors="replace")
