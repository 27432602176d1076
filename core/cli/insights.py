"""`guru insights --guild G [--days N] [--png PATH] [--json]`: what a guild's docs are missing
(the same report as /insights: weekly counts and the unanswered questions by topic)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from core.cli._rag import guild_id, knowledge_base
from core.config import Settings
from core.errors import InvalidInput
from core.insights import (
    DEFAULT_DAYS,
    MAX_DAYS,
    check_days,
    gather_insights,
    insights_png,
    insights_text,
)

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "insights",
        help="what a guild's docs are missing: questions refused, 👎-rated or still needing "
        "help, clustered by meaning; answer counts, refusal and 👍 rates per week",
    )
    p.add_argument("--guild", type=guild_id, required=True, metavar="G")
    p.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        metavar="N",
        help=f"the period, 1 to {MAX_DAYS} days (default {DEFAULT_DAYS})",
    )
    p.add_argument("--png", type=Path, metavar="PATH", help="also write the chart here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=insights_command)


async def insights_command(args: argparse.Namespace, settings: Settings) -> int:
    check_days(args.days)  # before the database starts: bad input fails fast
    if args.png is not None and args.png.is_dir():
        raise InvalidInput(f"--png wants a file name, and {args.png} is a directory.")
    async with knowledge_base(settings) as (services, _):
        assert services.db is not None
        ins = await gather_insights(services.db.pool, services.embedder, args.guild, args.days)
    wrote = None
    if args.png is not None and not ins.empty:
        png = await asyncio.to_thread(insights_png, ins)
        try:
            args.png.parent.mkdir(parents=True, exist_ok=True)
            args.png.write_bytes(png)
        except OSError as exc:
            raise InvalidInput(f"Could not write {args.png}: {exc.strerror}.") from None
        wrote = str(args.png)
    if args.png is not None and ins.empty and not args.json:
        print(f"(no chart written to {args.png}: there is nothing to draw)", file=sys.stderr)
    if args.json:
        print(json.dumps(ins.to_dict() | {"png": wrote}, ensure_ascii=False))
    else:
        print(insights_text(ins, limit=100_000))
        if wrote:
            print(f"\nChart: {wrote}")
    return 0
