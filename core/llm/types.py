"""Values that cross the LLM boundary: requests, stream events, completions, the backend protocol.

Both the local `Engine` and the `RemoteBackend` implement `LLMBackend`, so callers (RAG, PAL,
the bot, `guru serve`) never care where the model runs.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "Message",
    "Request",
    "StreamEvent",
    "Completion",
    "BackendStats",
    "LLMBackend",
    "FinishReason",
    "user",
]

FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


def user(text: str, system: str | None = None) -> tuple[Message, ...]:
    """A one-turn conversation, optionally with a system prompt."""
    head = (Message("system", system),) if system else ()
    return (*head, Message("user", text))


@dataclass(frozen=True)
class Request:
    """One generation request. `messages` go through the model's chat template."""

    messages: Sequence[Message]
    guild_id: int | None = None  # fairness key; None = the "local" lane (CLI, tests)
    adapter: str | None = None  # name of a loaded LoRA adapter; None = base model
    max_new_tokens: int | None = None  # None = the configured default
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    request_id: str = field(default_factory=lambda: f"req-{time.monotonic_ns():x}")


@dataclass(frozen=True)
class StreamEvent:
    """What `stream()` yields: queue updates while waiting, then text deltas, then one `done`."""

    kind: Literal["queued", "text", "done"]
    text: str = ""
    queue_position: int | None = None  # 1 = next to be scheduled; only for kind == "queued"
    completion: Completion | None = None  # only for kind == "done"


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    elapsed_s: float  # from submit to the last token
    first_token_s: float | None  # from submit to the first token (time to first token)

    @property
    def tokens_per_s(self) -> float:
        decode_s = self.elapsed_s - (self.first_token_s or 0.0)
        if self.completion_tokens <= 1 or decode_s <= 0:
            return 0.0
        return (self.completion_tokens - 1) / decode_s


@dataclass(frozen=True)
class BackendStats:
    backend: str  # "local" or "remote"
    model: str
    device: str
    active: int  # sequences in the running batch
    queued: int
    tokens_generated: int
    recent_tokens_per_s: float
    adapters: tuple[str, ...] = ()


class LLMBackend(Protocol):
    """The interface every model backend offers."""

    def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        """Queue the request and yield its events; closing the iterator cancels it."""
        ...

    async def complete(self, request: Request) -> Completion:
        """Run the request to the end and return the whole completion."""
        ...

    def stats(self) -> BackendStats: ...

    async def aclose(self) -> None: ...
