"""OpenAI chat-completions JSON: request validation and response bodies for `guru serve`.

Kept apart from the HTTP plumbing in `server.py` so the rules (what is accepted, what is
ignored, what each error says) read in one place. Every rejection is an `InvalidInput` whose
message names the field, because it goes back verbatim to whoever wrote the request.

Extensions beyond OpenAI's schema (other servers ignore them):
- `guild_id` (int or decimal string): the fairness lane, so one busy Discord server cannot
  starve the others when several Guru processes share one `guru serve`.
- `adapter` (str): a loaded LoRA adapter answers instead of the base model. Like vLLM,
  a `model` naming a loaded adapter selects it too.
- `repetition_penalty` (float > 0), as in vLLM.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidInput
from core.llm.types import Completion, Message, Request

__all__ = [
    "ChatCall",
    "parse_chat_request",
    "new_completion_id",
    "completion_body",
    "chunk_body",
    "usage_body",
    "error_body",
]

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOP = 16


@dataclass(frozen=True)
class ChatCall:
    """A validated chat-completions request."""

    request: Request
    stream: bool
    include_usage: bool  # stream_options.include_usage: send a final usage chunk


def parse_chat_request(
    body: Any,
    *,
    request_id: str,
    default_temperature: float = 1.0,
    adapters: Collection[str] = (),
) -> ChatCall:
    """Validate an OpenAI chat-completions body; unknown fields are ignored, like OpenAI's SDKs
    expect of compatible servers (frequency/presence penalties, logit_bias, user, …)."""
    if not isinstance(body, Mapping):
        raise InvalidInput("The request body must be a JSON object.")
    messages = _messages(body.get("messages"))
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidInput("Only n=1 is supported.")
    max_tokens = _optional_int(body, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = _optional_int(body, "max_tokens", minimum=1)
    temperature = _optional_number(body, "temperature", 0.0, 2.0)
    top_p = _optional_number(body, "top_p", 0.0, 1.0)
    if top_p == 0.0:
        raise InvalidInput("top_p must be greater than 0.")
    penalty = _optional_number(body, "repetition_penalty", 0.0, 10.0)
    if penalty == 0.0:
        raise InvalidInput("repetition_penalty must be greater than 0.")
    for ignored in ("frequency_penalty", "presence_penalty"):
        _optional_number(body, ignored, -2.0, 2.0)  # accepted, validated, not applied
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidInput("stream must be true or false.")
    options = body.get("stream_options") or {}
    if not isinstance(options, Mapping):
        raise InvalidInput("stream_options must be an object.")
    adapter = body.get("adapter")
    if adapter is not None and not isinstance(adapter, str):
        raise InvalidInput("adapter must be a string (the name of a loaded LoRA adapter).")
    if adapter is None and body.get("model") in adapters:
        adapter = body["model"]
    request = Request(
        messages=messages,
        guild_id=_guild_id(body.get("guild_id")),
        adapter=adapter or None,
        max_new_tokens=max_tokens,
        temperature=default_temperature if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        seed=_optional_int(body, "seed"),
        repetition_penalty=1.0 if penalty is None else penalty,
        stop=_stop(body.get("stop")),
        request_id=request_id,
    )
    return ChatCall(request, stream, bool(options.get("include_usage", False)))


def _messages(value: Any) -> tuple[Message, ...]:
    if value is None:
        raise InvalidInput("messages is required: a list of {role, content} objects.")
    if not isinstance(value, list) or not value:
        raise InvalidInput("messages must be a non-empty list of {role, content} objects.")
    out: list[Message] = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InvalidInput(f"messages[{i}] must be an object with role and content.")
        role = ROLES.get(item.get("role"))  # type: ignore[arg-type]
        if role is None:
            raise InvalidInput(
                f"messages[{i}].role must be one of system, developer, user, assistant."
            )
        out.append(Message(role, _content(item.get("content"), i)))  # type: ignore[arg-type]
    return tuple(out)


def _content(value: Any, i: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts: only text ones carry anything we can use
        texts = []
        for part in value:
            if not (
                isinstance(part, Mapping)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                raise InvalidInput(f"messages[{i}].content: only text parts are supported.")
            texts.append(part["text"])
        return "".join(texts)
    raise InvalidInput(f"messages[{i}].content must be a string or a list of text parts.")


def _optional_int(body: Mapping[str, Any], name: str, minimum: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an integer.")
    if minimum is not None and value < minimum:
        raise InvalidInput(f"{name} must be at least {minimum}.")
    return value


def _optional_number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{name} must be a number.")
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low:g} and {high:g}.")
    return float(value)


def _guild_id(value: Any) -> int | None:
    # Discord ids exceed JavaScript's safe integers, so a decimal string is accepted too.
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InvalidInput("guild_id must be a non-negative integer or a string of digits.")


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise InvalidInput("stop must be a non-empty string or a list of them.")
    if len(value) > MAX_STOP:
        raise InvalidInput(f"stop accepts at most {MAX_STOP} strings.")
    return tuple(value)


# -- response bodies ---------------------------------------------------------------------------


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage_body(completion: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    }


def completion_body(completion_id: str, model: str, completion: Completion) -> dict[str, Any]:
    """A non-streaming `chat.completion` object."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": usage_body(completion),
    }


def chunk_body(
    completion_id: str,
    model: str,
    created: int,
    delta: dict[str, str] | None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk`; `delta=None` makes the usage-only chunk (no choices)."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def error_body(message: str, kind: str, status: int) -> dict[str, Any]:
    """OpenAI's error shape; `code` carries the HTTP status so in-stream errors map back too."""
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}
