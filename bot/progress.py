"""Long jobs (ingesting files, syncing pins, running /calc) reporting progress in their reply.

Why: a deferred reply can be edited for 15 minutes, so a job shows where it is instead of a
spinner; edits are throttled (≤ 1/s) like streaming answers, and the final word always lands.
`BackgroundJobs` runs jobs off the command handler and answers for their failures, so a bug
in a job still ends in a reply with a log reference, never in silence.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Coroutine
from typing import Any

import discord

from bot import render
from bot.errors import internal_error, user_message_for

__all__ = ["BackgroundJobs", "ProgressReply", "post_pages"]

log = logging.getLogger(__name__)


class ProgressReply:
    """Throttled edits of an interaction's (deferred) original response."""

    def __init__(self, interaction: discord.Interaction, interval_s: float = 1.0) -> None:
        self.interaction = interaction
        self.interval_s = interval_s
        self._last = float("-inf")
        self._shown = ""

    async def update(self, text: str, *, final: bool = False, **fields: Any) -> None:
        """Show `text`; a non-final update within `interval_s` of the last edit is dropped."""
        loop = asyncio.get_running_loop()
        if not final and (loop.time() - self._last < self.interval_s or text == self._shown):
            return
        if final:  # the last edit waits its turn rather than being dropped
            await asyncio.sleep(max(0.0, self._last + self.interval_s - loop.time()))
        content = render.truncate(render.escape(text), render.MESSAGE_LIMIT)
        await self.interaction.edit_original_response(content=content, **fields)
        self._last, self._shown = loop.time(), text


async def post_pages(
    interaction: discord.Interaction,
    pages: list[render.Page],
    view: discord.ui.View | None = None,
    *,
    ephemeral: bool = False,
) -> None:
    """A finished reply: the first page replaces the original response, the rest follow
    (`ephemeral` for a private reply: follow-ups are public unless they say otherwise)."""
    first, rest = pages[0], pages[1:]
    await interaction.edit_original_response(
        content=first.content,
        attachments=[_file(first.file)] if first.file else [],
        view=view if not rest else None,
    )
    for i, page in enumerate(rest, start=1):
        extra: dict[str, Any] = {"file": _file(page.file)} if page.file else {}
        if view is not None and i == len(rest):
            extra["view"] = view
        await interaction.followup.send(page.content, wait=True, ephemeral=ephemeral, **extra)


def _file(file: tuple[str, bytes] | None) -> discord.File:
    assert file is not None
    return discord.File(io.BytesIO(file[1]), filename=file[0])


class BackgroundJobs:
    """Tasks a cog started; cancelled when the cog unloads."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(
        self, interaction: discord.Interaction, job: Coroutine[Any, Any, None], name: str
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(self._guard(interaction, job, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def spawn(self, job: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[None]:
        """A job nobody waits for (a gateway event): failures are logged, there is no reply."""
        task = asyncio.create_task(self._logged(job, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _logged(job: Coroutine[Any, Any, Any], name: str) -> None:
        try:
            await job
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - an event has nobody to answer; log it
            log.exception("background job %s failed", name)

    async def _guard(
        self, interaction: discord.Interaction, job: Coroutine[Any, Any, None], name: str
    ) -> None:
        try:
            await job
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the job's boundary: answer, then log
            known = user_message_for(exc)
            if known is None:
                log.error("job %s failed (ref %s)", name, interaction.id, exc_info=exc)
                known = internal_error(interaction.id)
            try:
                await interaction.edit_original_response(content=f"⚠️ {known}", view=None)
            except discord.HTTPException:
                log.warning("could not report job %s's failure", name, exc_info=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait(self) -> None:
        """Wait for every running job (tests, shutdown)."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
