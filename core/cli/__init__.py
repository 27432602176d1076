"""`guru …`: every capability of Guru, reachable without Discord.

Each submodule of `core.cli` adds its command group with `register(subparsers)` (modules are
found automatically; `_`-prefixed ones are helpers). A command's handler is
`handler(args, settings) -> int | None` (sync or async). Domain errors print their one-line
user message on stderr and exit 2; nothing prints a traceback unless GURU_LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import pkgutil
import sys
from collections.abc import Sequence

from core.config import Settings
from core.errors import GuruError
from core.logging import setup_logging

__all__ = ["main", "build_parser"]

# These come first in `guru --help`; any other command module follows alphabetically.
FIRST_COMMANDS = ("chat", "generate", "db", "models", "serve")


def command_modules() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return [n for n in FIRST_COMMANDS if n in found] + sorted(found - set(FIRST_COMMANDS))


log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guru", description="Guru: your community's own LLM.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules():
        importlib.import_module(f"core.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings: Settings | None = None
    try:
        settings = Settings.from_env()
        setup_logging(settings.log_level)
        result = args.handler(args, settings)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except GuruError as exc:
        print(f"guru: {exc.user_message}", file=sys.stderr)
        if settings is not None and settings.log_level == "DEBUG":
            log.exception("command failed")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
