"""`guru guild forget G`: erase every row Guru stores for a guild, and print the counts."""

from __future__ import annotations

import argparse
import json
from typing import Any

from core.cli._rag import guild_id, knowledge_base
from core.config import Settings

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("guild", help="per-guild data: forget a guild")
    actions = p.add_subparsers(dest="guild_action", metavar="ACTION", required=True)
    forget = actions.add_parser("forget", help="erase every row of the guild (documents, "
                                "chunks, settings, …) in one transaction")
    forget.add_argument("guild", type=guild_id, metavar="G")
    forget.add_argument("--json", action="store_true")
    forget.set_defaults(handler=forget_command)


async def forget_command(args: argparse.Namespace, settings: Settings) -> int:
    async with knowledge_base(settings) as (_, kb):
        counts = await kb.ingestor.forget_guild(args.guild)
    if args.json:
        print(json.dumps({"guild": args.guild, "deleted": counts}))
    else:
        details = ", ".join(f"{n} {table}" for table, n in counts.items() if n)
        print(f"Forgot guild {args.guild}: deleted {details}.")
    return 0
