"""`RemoteBackend`: the LLMBackend interface over any OpenAI-compatible chat-completions server.

This is how Guru scales past one machine: point GURU_LLM_URL at vLLM, TGI, a llama.cpp server
or another Guru's `guru serve`, and RAG, PAL and the bot work unchanged. HTTP failures come
back as the same domain errors the local engine raises (429 → Busy, 400 → InvalidInput,
404 → NotFound); an unreachable, failing or silent server is a BackendError naming its URL.
Closing a stream early closes its HTTP connection, which `guru serve` takes as a cancel.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any

import aiohttp

from core.errors import BackendError
from core.llm.http.remote_errors import error_message, http_error, transport_error
from core.llm.http.sse import DONE, SSEItem, SSEParser
from core.llm.types import BackendStats, Completion, FinishReason, Request, StreamEvent

if TYPE_CHECKING:
    from core.config import Settings

__all__ = ["RemoteBackend"]

log = logging.getLogger(__name__)

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",  # TGI spells stops its way
    "length": "length",
    "cancelled": "cancelled",
    "abort": "cancelled",  # vLLM: abort
}


class RemoteBackend:
    """Chat completions over HTTP; one aiohttp session, opened on first use in the running loop.

    `timeout_s` bounds each wait for the server (connecting is bounded by `connect_timeout_s`):
    while a stream keeps sending tokens or keep-alives it may run for as long as it needs.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        timeout_s: float = 300.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else f"{base}/v1"
        self.model = model
        self.timeout_s = timeout_s
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None
        self._model_lock = asyncio.Lock()
        self._in_flight = 0
        self._tokens_total = 0
        self._recent: deque[tuple[float, int]] = deque(maxlen=256)

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteBackend:
        """The backend GURU_LLM_URL / GURU_LLM_API_KEY / GURU_LLM_REMOTE_MODEL describe."""
        return cls(settings.llm_url, settings.llm_api_key, settings.llm_remote_model)

    # -- LLMBackend ------------------------------------------------------------------------------

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        """Yield queue positions (from `guru serve`), text deltas and one final `done`."""
        payload = await self._payload(request, stream=True)
        started = time.perf_counter()
        first_at: float | None = None
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        finish: str | None = None
        ended = False
        self._in_flight += 1
        try:
            async with self._post(payload) as response, aclosing(self._items(response)) as items:
                async for item in items:
                    if item.comment is not None:
                        position = _queue_position(item.comment)
                        if position is not None:
                            yield StreamEvent("queued", queue_position=position)
                        continue
                    if item.data == DONE:
                        ended = True
                        break
                    chunk = self._decode(item.data or "")
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or ():
                        finish = choice.get("finish_reason") or finish
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            first_at = first_at or time.perf_counter()
                            parts.append(text)
                            self._count(1)
                            yield StreamEvent("text", text=text)
            if not ended and finish is None:
                raise BackendError(
                    f"The model server at {self.base_url} ended the stream before the answer "
                    "was complete."
                )
            completion = self._completion(
                "".join(parts), usage, len(parts), finish, started, first_at
            )
            self._count(completion.completion_tokens - len(parts))
            yield StreamEvent("done", completion=completion)
        finally:
            self._in_flight -= 1

    async def complete(self, request: Request) -> Completion:
        """One non-streaming request: the whole answer in one JSON object."""
        payload = await self._payload(request, stream=False)
        started = time.perf_counter()
        self._in_flight += 1
        try:
            async with self._post(payload) as response:
                try:
                    body = await response.json(content_type=None)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise transport_error(self.base_url, self.timeout_s, exc) from exc
                except ValueError as exc:
                    raise self._malformed("a chat completion that is not JSON") from exc
        finally:
            self._in_flight -= 1
        try:
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._malformed("a chat completion without choices[0].message") from exc
        completion = self._completion(text, body.get("usage"), 0, finish, started, None)
        self._count(completion.completion_tokens)
        return completion

    def stats(self) -> BackendStats:
        now = time.monotonic()
        recent = [(t, n) for t, n in list(self._recent) if now - t <= 10.0]
        span = (now - recent[0][0]) if len(recent) > 1 else 0.0
        return BackendStats(
            backend="remote",
            model=self.model or "(not yet known)",
            device=self.base_url,
            active=self._in_flight,
            queued=0,  # the server's queue is not visible from here
            tokens_generated=self._tokens_total,
            recent_tokens_per_s=sum(n for _, n in recent[1:]) / span if span > 0 else 0.0,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- HTTP --------------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=headers)
        return self._session

    @asynccontextmanager
    async def _post(self, payload: dict[str, Any]) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST to /chat/completions; non-2xx answers raise. An exit by error or by an early
        close drops the connection (the server cancels); a clean exit returns it to the pool."""
        response = await self._request("POST", "/chat/completions", json=payload)
        clean = False
        try:
            yield response
            clean = True
        finally:
            if clean:
                response.release()
            else:
                response.close()

    async def _items(self, response: aiohttp.ClientResponse) -> AsyncIterator[SSEItem]:
        """The SSE items of a streaming response, as its bytes arrive."""
        parser = SSEParser()
        try:
            async for raw in response.content.iter_any():
                for item in parser.feed(raw):
                    yield item
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(self.base_url, self.timeout_s, exc) from exc
        for item in parser.close():
            yield item

    async def _request(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        try:
            response = await self._client().request(method, self.base_url + path, **kwargs)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(self.base_url, self.timeout_s, exc) from exc
        if response.status >= 400:
            try:
                text = await response.text(errors="replace")
            except (aiohttp.ClientError, TimeoutError):
                text = ""
            finally:
                response.close()
            raise http_error(self.base_url, response.status, error_message(text))
        return response

    async def _model_name(self) -> str:
        """The configured model, else the first id of GET /v1/models (asked once)."""
        async with self._model_lock:
            if self.model is None:
                response = await self._request("GET", "/models")
                try:
                    body = await response.json(content_type=None)
                    ids = [m["id"] for m in body["data"] if isinstance(m.get("id"), str)]
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise transport_error(self.base_url, self.timeout_s, exc) from exc
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise self._malformed("a model list that is not OpenAI's format") from exc
                finally:
                    response.release()
                if not ids:
                    raise BackendError(f"The model server at {self.base_url} lists no models.")
                self.model = ids[0]
                log.info("%s serves %s", self.base_url, self.model)
            return self.model

    async def _payload(self, request: Request, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            # vLLM selects a LoRA by model name; `guru serve` reads the `adapter` extension.
            "model": request.adapter or await self._model_name(),
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": stream,
        }
        optional = {
            "max_tokens": request.max_new_tokens,
            "seed": request.seed,
            "stop": list(request.stop) or None,
            "repetition_penalty": (
                request.repetition_penalty if request.repetition_penalty != 1.0 else None
            ),
            "guild_id": request.guild_id,
            "adapter": request.adapter,
            "stream_options": {"include_usage": True} if stream else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body

    # -- results and errors ------------------------------------------------------------------

    def _completion(
        self,
        text: str,
        usage: Any,
        chunks: int,
        finish: str | None,
        started: float,
        first_at: float | None,
    ) -> Completion:
        usage = usage if isinstance(usage, dict) else {}
        now = time.perf_counter()
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or chunks),
            finish_reason=FINISH_REASONS.get(finish or "stop", "stop"),
            elapsed_s=now - started,
            first_token_s=None if first_at is None else first_at - started,
        )

    def _count(self, tokens: int) -> None:
        self._tokens_total += tokens
        if tokens > 0:
            self._recent.append((time.monotonic(), tokens))

    def _decode(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise self._malformed(f"a stream event that is not JSON ({data[:80]!r})") from exc
        if not isinstance(chunk, dict):
            raise self._malformed("a stream event that is not a JSON object")
        error = chunk.get("error")
        if error is not None:  # vLLM and `guru serve` report failures mid-stream like this
            message = error_message(json.dumps(chunk))
            code = error.get("code") if isinstance(error, dict) else None
            raise http_error(self.base_url, code if isinstance(code, int) else 500, message)
        return chunk

    def _malformed(self, what: str) -> BackendError:
        return BackendError(f"The model server at {self.base_url} sent {what}.")


def _queue_position(comment: str) -> int | None:
    name, _, value = comment.partition("=")
    return int(value) if name == "queue_position" and value.isdigit() else None
