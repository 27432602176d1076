"""`guru guild forget G`: erase every row and file Guru stores for a guild, print the counts."""

from __future__ import annotations

import argparse
import json
from typing import Any

from core.cli._rag import guild_id, knowledge_base
from core.config import Settings
from core.forget import forget_guild

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("guild", help="per-guild data: forget a guild")
    actions = p.add_subparsers(dest="guild_action", metavar="ACTION", required=True)
    forget = actions.add_parser(
        "forget",
        help="erase every row of the guild (documents, "
        "chunks, settings, jobs, …) in one transaction, then its "
        "adapter and job files",
    )
    forget.add_argument("guild", type=guild_id, metavar="G")
    forget.add_argument("--json", action="store_true")
    forget.set_defaults(handler=forget_command)


async def forget_command(args: argparse.Namespace, settings: Settings) -> int:
    async with knowledge_base(settings) as (services, kb):
        assert services.db is not None
        counts = await forget_guild(services.db.pool, kb.ingestor, settings.data_dir, args.guild)
    if args.json:
        print(json.dumps({"guild": args.guild, "deleted": counts}))
    else:
        details = ", ".join(f"{n} {table}" for table, n in counts.items() if n)
        print(f"Forgot guild {args.guild}: deleted {details}.")
    return 0
