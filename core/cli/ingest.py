"""`guru ingest PATH... --guild G [--json]`: add files and directories to a guild's docs.

`guru ingest URL --guild G [--every 1d]` adds a website or git repository as a source that is
kept in sync instead (core.cli.sources).

Prints one status line per file (added / replaced / unchanged / error: reason); a bad file
never stops the batch. Exit status 1 when any file failed, so scripts notice.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from core.cli._rag import guild_id, knowledge_base
from core.cli.sources import ingest_sources, looks_like_source
from core.config import Settings
from core.errors import InvalidInput
from core.rag.loaders import MAX_FILE_BYTES, SUPPORTED
from core.rag.types import IngestOutcome

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ingest",
        help="add documents to a guild's knowledge base",
        description="Ingest files (" + " ".join(SUPPORTED) + "); directories "
        "recurse. Unchanged files are skipped; changed ones replace the old copy.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "--guild",
        type=guild_id,
        required=True,
        metavar="G",
        help="guild id (0 = Guru's own concept notes)",
    )
    p.add_argument(
        "--max-mb",
        type=float,
        default=MAX_FILE_BYTES / 1024 / 1024,
        help="refuse files larger than this (default %(default)g MiB)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    sources = p.add_argument_group("sources kept in sync (URLs, git repositories)")
    sources.add_argument("--every", metavar="N{m,h,d,w}", help="re-sync on a schedule, e.g. 1d")
    sources.add_argument("--git", action="store_true", help="PATH is a git repository")
    sources.add_argument("--folder", default="", help="the repository's docs folder, e.g. docs/")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.git or args.every or any(looks_like_source(p) for p in args.paths):
        if not all(looks_like_source(p) or args.git for p in args.paths):
            raise InvalidInput("Give either files or URLs / repositories to ingest, not both.")
        return await ingest_sources(args, settings)
    outcomes: list[IngestOutcome] = []
    progress = _progress(enabled=not args.json and sys.stderr.isatty())
    async with knowledge_base(settings) as (_, kb):
        async for outcome in kb.ingestor.ingest_paths(
            args.guild, args.paths, max_bytes=int(args.max_mb * 1024 * 1024)
        ):
            outcomes.append(outcome)
            if progress is not None:
                progress.update(1)
                progress.write(_line(outcome))
            elif not args.json:
                print(_line(outcome), flush=True)
    if progress is not None:
        progress.close()
    summary = {
        s: sum(o.status == s for o in outcomes) for s in ("added", "replaced", "unchanged", "error")
    }
    summary["chunks"] = sum(o.chunks for o in outcomes if o.status in ("added", "replaced"))
    if args.json:
        print(
            json.dumps(
                {"guild": args.guild, "files": [asdict(o) for o in outcomes], "summary": summary}
            )
        )
    else:
        print(", ".join(f"{v} {k}" for k, v in summary.items()))
    return 1 if summary["error"] else 0


def _line(o: IngestOutcome) -> str:
    if o.status == "error":
        return f"error      {o.uri}: {o.error}"
    return f"{o.status:<10} {o.uri} (id {o.document_id}, {o.chunks} chunks, “{o.title}”)"


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit="file", desc="ingest", file=sys.stderr, leave=False)
