"""`guru db migrate` and `guru db status`: the schema, without starting the bot.

Both talk to DATABASE_URL or, when unset, the embedded server under the data dir; an embedded
server started only for the command stops again when it ends.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from core.config import Settings
from core.db.embedded import start_embedded
from core.db.migrate import MigrationState, migrate, status
from core.db.pool import connect

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the `db` command group."""
    parser = subparsers.add_parser(
        "db",
        help="database: apply migrations, show their status",
        description="Manage Guru's PostgreSQL schema (DATABASE_URL, or the embedded server).",
    )
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION", required=True)
    run = actions.add_parser("migrate", help="apply the migrations this database has not seen")
    run.set_defaults(handler=migrate_command)
    show = actions.add_parser("status", help="list migrations: applied (when) or pending")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(handler=status_command)


async def migrate_command(args: argparse.Namespace, settings: Settings) -> int:
    """Apply pending migrations and name each one; say so when there was nothing to do."""
    async with _database(settings) as conn:
        applied = await migrate(conn)
        for m in applied:
            print(f"Applied {m.filename}")
        if not applied:
            total = len(await status(conn))
            print(f"Database is up to date ({total} migration{'' if total == 1 else 's'}).")
    return 0


async def status_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print every migration with its state; warn about files edited after they were applied."""
    async with _database(settings) as conn:
        states = await status(conn)
    if args.json:
        print(json.dumps([_as_dict(s) for s in states], indent=2))
    else:
        print(f"{'VERSION':<8} {'NAME':<32} APPLIED")
        for s in states:
            print(f"{s.version:04d}     {s.name:<32} {_state(s)}")
    for s in states:
        if s.changed:
            print(
                f"guru: warning: migration {s.version:04d}_{s.name} was edited after it was "
                "applied; restore it and add a new migration instead.",
                file=sys.stderr,
            )
    return 0


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    server, url = None, settings.database_url
    if not url:
        server = await start_embedded(settings.data_dir)
        url = server.url
    try:
        async with connect(url) as conn:
            yield conn
    finally:
        if server is not None:
            await server.aclose()


def _as_dict(s: MigrationState) -> dict[str, Any]:
    applied_at = s.applied_at.isoformat() if s.applied_at else None
    return {
        "version": s.version,
        "name": s.name,
        "applied_at": applied_at,
        "changed": s.changed,
        "has_file": s.has_file,
    }


def _state(s: MigrationState) -> str:
    if s.applied_at is None:
        return "pending"
    when = s.applied_at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return when + (" (edited since!)" if s.changed else "") + ("" if s.has_file else " (no file)")
