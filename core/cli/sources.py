"""`guru sources list|sync|remove`: websites, git folders and Discord channels kept in sync.

Sources are added with `guru ingest URL --guild G [--every 1d]` (or `/docs add url`). `guru
sources sync --due` syncs every scheduled source whose time has come, for a cron job when the
bot is not running (the bot runs the same check every minute). A Discord channel source
(`/docs add channel`) is listed and removed here like the others, but only the bot can read
Discord, so only the bot syncs it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC
from typing import Any

from core.cli._rag import guild_id, knowledge_base
from core.config import Settings
from core.errors import GuruError, InvalidInput
from core.sources.sync import SourceSync
from core.sources.types import SourceInfo, SyncSummary, summary_line
from core.sources.urls import format_every

__all__ = ["ingest_sources", "register", "looks_like_source"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^git@")


def looks_like_source(path: str) -> bool:
    """`guru ingest` arguments that are sources rather than local files (any scheme: the
    unsupported ones then get their own message, not "no such file")."""
    return bool(_URL.match(path)) or path.rstrip("/").endswith(".git")


def register(sub: Any) -> None:
    p = sub.add_parser("sources", help="websites and git folders kept in sync")
    actions = p.add_subparsers(dest="sources_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the guild's sources and their last sync")
    ls.add_argument("--guild", type=guild_id, required=True, metavar="G")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=list_command)
    sync = actions.add_parser("sync", help="sync sources now (re-embeds only changed pages)")
    sync.add_argument("source", nargs="?", metavar="ID_OR_LOCATION", help="default: all")
    sync.add_argument("--guild", type=guild_id, metavar="G")
    sync.add_argument("--due", action="store_true", help="every guild's scheduled, due sources")
    sync.add_argument("--json", action="store_true")
    sync.set_defaults(handler=sync_command)
    rm = actions.add_parser("remove", help="delete a source and its documents")
    rm.add_argument("source", metavar="ID_OR_LOCATION")
    rm.add_argument("--guild", type=guild_id, required=True, metavar="G")
    rm.set_defaults(handler=remove_command)


async def ingest_sources(args: argparse.Namespace, settings: Settings) -> int:
    """`guru ingest URL…`: store each source (with its schedule) and sync it now."""
    async with knowledge_base(settings) as (_, kb):
        syncer = SourceSync(kb.ingestor, settings)
        added = [
            await syncer.add(args.guild, p, every=args.every, git=args.git, folder=args.folder)
            for p in args.paths
        ]
        results = [(s, await _sync_one(syncer, s, new=True)) for s in added]
    return _report(results, args.json)


async def list_command(args: argparse.Namespace, settings: Settings) -> int:
    async with knowledge_base(settings) as (_, kb):
        found = await SourceSync(kb.ingestor, settings).list(args.guild)
    if args.json:
        print(json.dumps([_as_json(s) for s in found]))
        return 0
    for s in found:
        when = f"{s.last_sync_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if s.last_sync_at else "never"
        folder = f" (folder {s.options['folder']})" if s.options.get("folder") else ""
        print(f"{s.id:>4}  {s.kind:<3}  {s.location}{folder}  [{format_every(s.every_s)}]")
        status = f"error: {s.last_error}" if s.last_error else summary_line(s.last_summary)
        print(f"      last sync {when}: {status}")
    print(f"{len(found)} source{'' if len(found) == 1 else 's'}")
    return 0


async def sync_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.due == (args.guild is not None):
        raise InvalidInput("Give --guild G (and optionally a source), or --due for all guilds.")
    async with knowledge_base(settings) as (_, kb):
        syncer = SourceSync(kb.ingestor, settings)
        if args.due:
            results = await syncer.sync_due(limit=1000)
        else:
            chosen = (
                [await syncer.get(args.guild, args.source)]
                if args.source
                else [s for s in await syncer.list(args.guild) if syncer.can_sync(s)]
            )
            if args.source and not syncer.can_sync(chosen[0]):
                await syncer.sync(chosen[0])  # raises the "the bot syncs it" message
            results = [(s, await _sync_one(syncer, s)) for s in chosen]
    return _report(results, args.json)


async def remove_command(args: argparse.Namespace, settings: Settings) -> int:
    async with knowledge_base(settings) as (_, kb):
        source, removed = await SourceSync(kb.ingestor, settings).remove(args.guild, args.source)
    print(f"Removed source {source.id} ({source.location}) and {removed} of its documents.")
    return 0


async def _sync_one(
    syncer: SourceSync, source: SourceInfo, *, new: bool = False
) -> SyncSummary | str:
    """The summary, or the reason the whole source failed (the next source still syncs)."""
    if sys.stderr.isatty():
        print(f"syncing {source.location} …", file=sys.stderr, flush=True)
    try:
        return await (syncer.sync_new(source) if new else syncer.sync(source))
    except GuruError as exc:
        return exc.user_message


def _report(results: list[tuple[SourceInfo, SyncSummary | str]], as_json: bool) -> int:
    """Print each source's outcome; 1 when a source or any of its pages failed."""
    failed = any(isinstance(r, str) or r.failed for _, r in results)
    if as_json:
        print(json.dumps([
            {"id": s.id, "location": s.location,
             **({"error": r} if isinstance(r, str) else {"summary": r.to_dict()})}
            for s, r in results
        ]))  # fmt: skip
        return 1 if failed else 0
    for source, result in results:
        if isinstance(result, str):
            print(f"{source.location}: failed: {result}")
            continue
        print(f"{source.location}: {result.line()} ({result.not_modified} not modified)")
        for uri, reason in result.failures:
            print(f"  failed  {uri}: {reason}")
    return 1 if failed else 0


def _as_json(s: SourceInfo) -> dict[str, Any]:
    return {
        "id": s.id,
        "kind": s.kind,
        "location": s.location,
        "options": s.options,
        "every_s": s.every_s,
        "last_sync_at": s.last_sync_at.isoformat() if s.last_sync_at else None,
        "next_sync_at": s.next_sync_at.isoformat() if s.next_sync_at else None,
        "last_summary": s.last_summary,
        "last_error": s.last_error,
    }
