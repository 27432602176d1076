"""One request's life inside the engine, and the thread-safe hand-off of its events."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from core.llm.engine.sampling import TextStream, TokenChooser
from core.llm.types import Completion, FinishReason, Request, StreamEvent

__all__ = ["Job"]


@dataclass(eq=False)  # identity semantics: a job is one live request
class Job:
    request: Request
    prompt_ids: list[int]
    max_new_tokens: int
    chooser: TokenChooser
    text: TextStream
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    submitted_at: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    last_token: int = -1
    generated: int = 0
    cancelled: bool = False  # set from any thread; the engine thread acts on it between steps
    finish_reason: FinishReason | None = None
    last_position: int | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def history(self) -> list[int]:
        return self.prompt_ids + self.text.ids

    # -- called on the engine thread; every event crosses to the loop thread-safely --------

    def send(self, event: StreamEvent | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the caller's loop is closed: nobody is listening any more
            self.cancelled = True

    def send_text(self, delta: str) -> None:
        if delta:
            self.send(StreamEvent("text", text=delta))

    def finish(self, reason: FinishReason) -> None:
        self.finish_reason = reason
        self.send_text(self.text.flush())
        now = time.perf_counter()
        first = None if self.first_token_at is None else self.first_token_at - self.submitted_at
        completion = Completion(
            text=self.text.text,
            prompt_tokens=len(self.prompt_ids),
            completion_tokens=self.generated,
            finish_reason=reason,
            elapsed_s=now - self.submitted_at,
            first_token_s=first,
        )
        self.send(StreamEvent("done", completion=completion))

    def fail(self, error: BaseException) -> None:
        self.finish_reason = "error"
        self.send(error)
