"""`guru docs list --guild G [--json]`, `guru docs remove DOC_ID_OR_URI --guild G` and
`guru docs scope DOC_ID_OR_URI --guild G [--channel C] [--role R]` (an uploaded document only
for the viewers of channel C and/or the members with role R; neither: guild-wide again)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from core.cli._rag import guild_id, knowledge_base
from core.config import Settings
from core.rag.types import DocumentInfo

__all__ = ["print_documents", "register"]


def register(sub: Any) -> None:
    p = sub.add_parser("docs", help="list or remove a guild's documents")
    actions = p.add_subparsers(dest="docs_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the guild's documents")
    ls.add_argument("--guild", type=guild_id, required=True, metavar="G")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=list_command)
    rm = actions.add_parser("remove", help="delete one document and its chunks")
    rm.add_argument("document", metavar="DOC_ID_OR_URI")
    rm.add_argument("--guild", type=guild_id, required=True, metavar="G")
    rm.add_argument("--json", action="store_true")
    rm.set_defaults(handler=remove_command)
    sc = actions.add_parser("scope", help="restrict an uploaded document to a channel or role")
    sc.add_argument("document", metavar="DOC_ID_OR_URI")
    sc.add_argument("--guild", type=guild_id, required=True, metavar="G")
    sc.add_argument("--channel", type=guild_id, metavar="C", help="only its viewers may read it")
    sc.add_argument("--role", type=guild_id, metavar="R", help="only members with this role")
    sc.set_defaults(handler=scope_command)


async def list_command(args: argparse.Namespace, settings: Settings) -> int:
    async with knowledge_base(settings) as (_, kb):
        await kb.require_guild(args.guild)
        docs = await kb.ingestor.list_documents(args.guild)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": d.id,
                        "title": d.title,
                        "uri": d.uri,
                        "source": d.source,
                        "status": d.status,
                        "chunks": d.chunk_count,
                        "updated_at": d.updated_at.isoformat(),
                    }
                    for d in docs
                ]
            )
        )
        return 0
    print_documents(docs)
    return 0


def print_documents(docs: list[DocumentInfo]) -> None:
    """One line per document (id, chunks, source, title — uri), then the count."""
    print(f"{'ID':>6}  {'CHUNKS':>6}  {'SOURCE':<8} TITLE — URI")
    for d in docs:
        print(f"{d.id:>6}  {d.chunk_count:>6}  {d.source:<8} {d.title} — {d.uri}")
    print(f"{len(docs)} document{'' if len(docs) == 1 else 's'}")


async def remove_command(args: argparse.Namespace, settings: Settings) -> int:
    async with knowledge_base(settings) as (_, kb):
        doc = await kb.ingestor.remove(args.guild, args.document)
    if args.json:
        print(
            json.dumps(
                {
                    "removed": {
                        "id": doc.id,
                        "title": doc.title,
                        "uri": doc.uri,
                        "chunks": doc.chunk_count,
                    }
                }
            )
        )
    else:
        print(f"Removed document {doc.id} ({doc.chunk_count} chunks): {doc.title} — {doc.uri}")
    return 0


async def scope_command(args: argparse.Namespace, settings: Settings) -> int:
    async with knowledge_base(settings) as (_, kb):
        doc = await kb.scope(args.guild, args.document, args.channel, args.role)
    who = [f"viewers of channel {args.channel}"] if args.channel else []
    who += [f"members with role {args.role}"] if args.role else []
    print(f"{doc.title} — {doc.uri}: readable by {' and '.join(who) or 'the whole server'}")
    return 0
