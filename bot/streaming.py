"""Stream a model answer into a deferred interaction reply: the machinery /ask, /calc and
/explain share.

Why a helper: Discord allows ~5 edits per 5 s per message and rate-limits harder when pushed, so
edits are throttled (≤ 1/s per message) and slow down when Discord pushes back (429). The
reader and the editor run apart, so a slow edit never stalls the model, and a Cancel button
cancels the reader task, which closes the stream and frees the model's batch slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import discord

from bot import render
from bot.errors import user_message_for
from core.llm.types import Completion, StreamEvent

__all__ = ["CancelView", "StreamOutcome", "StreamingReply"]

log = logging.getLogger(__name__)

REPLY_WINDOW_S = 14.5 * 60  # interaction tokens die after 15 minutes; stop just before
CANCELLED = "⏹️ Cancelled."
EXPIRED = "⏹️ Stopped: Discord's 15-minute reply window ran out."
FAILED = "⚠️ Stopped: this answer could not be finished."


@dataclass(frozen=True)
class StreamOutcome:
    text: str  # what was posted last (after `finalize`)
    completion: Completion | None
    cancelled: bool
    edits: int
    raw: str = ""  # the model's text as streamed


class CancelView(discord.ui.View):
    """A Cancel button that only the asker (or someone with Manage Messages) may press."""

    def __init__(self, owner_id: int, timeout: float = REPLY_WINDOW_S) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.pressed = asyncio.Event()

    @discord.ui.button(
        label="Cancel", style=discord.ButtonStyle.secondary, emoji="⏹️", custom_id="guru:cancel"
    )  # views are keyed by message: one id suffices
    async def cancel(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        perms = interaction.permissions
        if interaction.user.id != self.owner_id and not perms.manage_messages:
            await interaction.response.send_message(
                "Only the person who asked can cancel this answer.", ephemeral=True
            )
            return
        self.pressed.set()
        await interaction.response.defer()  # the streaming loop edits the message itself
        self.stop()


class StreamingReply:
    """Edits `interaction`'s deferred response as StreamEvents arrive; see module docstring."""

    def __init__(
        self,
        interaction: discord.Interaction,
        *,
        interval_s: float = 1.0,
        max_interval_s: float = 8.0,
        window_s: float = REPLY_WINDOW_S,
    ) -> None:
        self.interaction = interaction
        self.interval_s = interval_s
        self.max_interval_s = max_interval_s
        self.window_s = window_s
        self.text = ""
        self.queue_position: int | None = None
        self.completion: Completion | None = None
        self.edits = 0
        self._changed = asyncio.Event()
        self._last_edit = float("-inf")

    async def run(
        self,
        events: AsyncIterator[StreamEvent],
        final_view: discord.ui.View | Callable[[str], discord.ui.View | None] | None = None,
        finalize: Callable[[str], str] | None = None,
    ) -> StreamOutcome:
        """Stream to the end (or Cancel, or the reply window); then post the final pages.
        A second `run` on the same reply (a retry) starts from empty text and keeps the edit
        throttle.

        `final_view` (e.g. feedback buttons, or a function of the streamed text choosing
        them) replaces Cancel on a completed answer; `finalize` turns the complete streamed
        text into what is posted (e.g. checked citations plus the sources as links)."""
        self.text, self.queue_position, self.completion = "", None, None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window_s
        view = CancelView(self.interaction.user.id, timeout=self.window_s)
        reader = asyncio.create_task(self._read(events), name=f"stream-{self.interaction.id}")
        pressed = asyncio.create_task(view.pressed.wait())
        note = ""
        try:
            await self._edit(content=render.stream_frame(""), view=view)
            note = await self._follow(reader, pressed, view, deadline)
        except discord.NotFound:
            # the reply was deleted or its token expired: nobody can see more, stop generating
            log.info("interaction %s: reply gone; generation cancelled", self.interaction.id)
            return StreamOutcome(self.text, self.completion, True, self.edits, self.text)
        finally:
            for task in (reader, pressed):
                task.cancel()
            await asyncio.gather(reader, pressed, return_exceptions=True)
            view.stop()
        raw = self.text
        error = None if reader.cancelled() else reader.exception()
        if error is not None:
            known = user_message_for(error)  # a core error (busy, too long…) is shown in place
            await self._finish_partial(f"⚠️ {known}" if known else FAILED)
            if known is None:
                raise error  # a bug: the tree's handler logs it and gives the user a ref
            log.info(
                "interaction %s: stream ended with %s", self.interaction.id, type(error).__name__
            )
            note = "error"
        elif note:
            await self._finish_partial(note)
        else:
            if callable(final_view):
                final_view = final_view(raw)
            if finalize is not None:
                self.text = finalize(self.text)
            await self._finish(final_view)
        cancelled = note in (CANCELLED, EXPIRED)
        return StreamOutcome(self.text, self.completion, cancelled, self.edits, raw)

    async def _follow(
        self,
        reader: asyncio.Task[None],
        pressed: asyncio.Task[Any],
        view: CancelView,
        deadline: float,
    ) -> str:
        """Edit while the reader runs; returns a stop note ("" when the stream ended)."""
        loop = asyncio.get_running_loop()
        while True:
            changed = asyncio.ensure_future(self._changed.wait())
            await asyncio.wait(
                {reader, pressed, changed},
                return_when=asyncio.FIRST_COMPLETED,
                timeout=max(0.0, deadline - loop.time()),
            )
            changed.cancel()
            if reader.done():
                return ""
            if pressed.done() or loop.time() >= deadline:
                return CANCELLED if pressed.done() else EXPIRED
            delay = self._last_edit + self.interval_s - loop.time()
            if delay > 0:  # throttle; but wake for the end of the stream or Cancel
                await asyncio.wait({reader, pressed}, timeout=delay)
                if reader.done() or pressed.done():
                    continue
            self._changed.clear()
            frame = render.stream_frame(self.text, queue_position=self.queue_position)
            await self._edit(content=frame, view=view)

    async def _read(self, events: AsyncIterator[StreamEvent]) -> None:
        try:
            async for event in events:
                if event.kind == "queued":
                    self.queue_position = event.queue_position
                elif event.kind == "text":
                    self.text += event.text
                    self.queue_position = None
                elif event.kind == "done":
                    self.completion = event.completion
                self._changed.set()
        finally:  # cancelling this task closes the stream, which cancels the generation
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def _edit(self, **fields: Any) -> None:
        """One throttled edit of the original response; a 429 slows later edits down."""
        loop = asyncio.get_running_loop()
        delay = self._last_edit + self.interval_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        started = loop.time()
        try:
            await self.interaction.edit_original_response(**fields)
        except discord.HTTPException as exc:
            if exc.status != 429 and not isinstance(exc, discord.RateLimited):
                raise
            self._back_off("edit refused with 429")
        else:
            self.edits += 1
            # discord.py sleeps out a 429's retry_after inside the call: a slow edit means
            # Discord pushed back, so space the next ones further apart
            if loop.time() - started >= 0.75 * self.interval_s:
                self._back_off("slow edit (rate limited)")
        self._last_edit = loop.time()

    def _back_off(self, why: str) -> None:
        self.interval_s = min(self.interval_s * 2, self.max_interval_s)
        log.info(
            "interaction %s: %s; editing every %.0f s", self.interaction.id, why, self.interval_s
        )

    async def _finish(self, view: discord.ui.View | None) -> None:
        """The complete answer: first page in the original response, the rest as follow-ups;
        `view` goes under the last page, where the reader finishes."""
        pages = render.pages(self.text)
        first, rest = pages[0], pages[1:]
        await self._edit(
            content=first.content,
            view=None if rest else view,
            attachments=[_file(first.file)] if first.file else [],
        )
        for i, page in enumerate(rest, start=1):
            kwargs: dict[str, Any] = {"file": _file(page.file)} if page.file else {}
            if i == len(rest) and view is not None:
                kwargs["view"] = view
            await self.interaction.followup.send(page.content, wait=True, **kwargs)

    async def _finish_partial(self, note: str) -> None:
        text = render.escape(render.unmask_links(self.text.strip()))  # raw model text
        body = render.truncate(text, render.MESSAGE_LIMIT - len(note) - 8) if text else ""
        if body.count("```") % 2:
            body += "\n```"
        await self._edit(content=f"{body}\n\n{note}" if body else note, view=None)


def _file(file: tuple[str, bytes] | None) -> discord.File:
    assert file is not None
    return discord.File(io.BytesIO(file[1]), filename=file[0])
