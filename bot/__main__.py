"""`python -m bot`: run the Discord bot (the Procfile's `bot` process)."""

from __future__ import annotations

import sys

from core.config import Settings
from core.errors import ConfigError
from core.logging import setup_logging


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"guru bot: {exc.user_message}", file=sys.stderr)
        return 2
    if not settings.discord_token:
        print(
            "guru bot: DISCORD_TOKEN is not set; set it (in the environment or .env) to your "
            "bot's token, or run `guru chat` to try Guru without Discord.",
            file=sys.stderr,
        )
        return 2
    setup_logging(settings.log_level)
    from bot.client import run_bot

    return run_bot(settings)


if __name__ == "__main__":
    sys.exit(main())
