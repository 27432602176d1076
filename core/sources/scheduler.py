"""The schedule: sync every source whose `every` has come round, checked once a minute.

The bot runs `run_schedule` as a background task (bot/cogs/sources.py); without the bot,
`guru sources sync --due` from cron does the same. Both claim a source before syncing it, so
they can run side by side and no source is synced twice at once.
"""

from __future__ import annotations

import asyncio
import logging

from core.sources.sync import SourceSync, raise_if_cancelled

__all__ = ["CHECK_EVERY_S", "run_schedule"]

log = logging.getLogger(__name__)

CHECK_EVERY_S = 60.0


async def run_schedule(syncer: SourceSync, *, check_every_s: float = CHECK_EVERY_S) -> None:
    """Forever: sync what is due, then wait; a failing tick is logged and the next one runs."""
    while True:
        try:
            for source, result in await syncer.sync_due():
                if isinstance(result, str):
                    log.warning("scheduled sync of source %s failed: %s", source.id, result)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a database hiccup must not end the schedule
            log.exception("scheduled source sync failed; retrying in %.0f s", check_every_s)
        raise_if_cancelled()
        await asyncio.sleep(check_every_s)
