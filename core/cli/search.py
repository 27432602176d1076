"""`guru search QUERY --guild G [-k K] [--mode hybrid|vector|text] [--json]`.

With `-` as QUERY, reads one query per line from stdin and prints one JSON line per query:
{"query": ..., "results": [{"document_id", "title", "uri", "score", "text"}, ...]}.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.cli._rag import check_k, guild_id, knowledge_base
from core.config import Settings
from core.rag.types import Hit

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("search", help="search a guild's documents")
    p.add_argument(
        "query",
        metavar="QUERY",
        help="what to look for ('-': one query per line from stdin, JSON lines out)",
    )
    p.add_argument("--guild", type=guild_id, required=True, metavar="G")
    p.add_argument("-k", type=int, default=5, help="results per query (default 5)")
    p.add_argument("--mode", choices=("hybrid", "vector", "text"), default="hybrid")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def _result(h: Hit) -> dict[str, Any]:
    return {
        "document_id": h.document_id,
        "title": h.title,
        "uri": h.uri,
        "score": round(h.score, 6),
        "text": h.text,
    }


async def run(args: argparse.Namespace, settings: Settings) -> int:
    k = check_k(args.k)
    batch = args.query == "-"
    queries = [q.strip() for q in sys.stdin] if batch else [args.query]
    queries = [q for q in queries if q] if batch else queries
    async with knowledge_base(settings) as (services, kb):
        await kb.require_guild(args.guild)
        for query in queries:
            hits = await kb.retriever.search(args.guild, query, k, args.mode)
            if batch or args.json:
                print(
                    json.dumps({"query": query, "results": [_result(h) for h in hits]}), flush=True
                )
                continue
            for i, h in enumerate(hits, start=1):
                snippet = " ".join(h.text.split())[:160]
                print(f"{i}. [{h.score:.4f}] {h.title} — {h.uri}\n   {snippet}")
            if not hits:
                print("No results.")
    return 0
