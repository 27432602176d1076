"""`guru docs list --guild G [--json]` and `guru docs remove DOC_ID_OR_URI --guild G`."""

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
