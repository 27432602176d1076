"""What RemoteBackend raises when HTTP goes wrong: the domain errors callers already handle.

A server's 400/404/429 keep their meaning (and the server's message, which `guru serve` writes
to be user-safe); everything about reaching the server becomes a BackendError naming its URL,
because that is what the operator has to fix.
"""

from __future__ import annotations

import json
import os

import aiohttp

from core.errors import BackendError, Busy, GuruError, InvalidInput, NotFound

__all__ = ["http_error", "transport_error", "error_message"]


def http_error(base_url: str, status: int, message: str) -> GuruError:
    """The domain error for an HTTP error status (or an in-stream error's `code`)."""
    if status in (400, 413, 422):
        return InvalidInput(message)
    if status == 404:
        return NotFound(message)
    if status == 429:
        return Busy(message)
    if status in (401, 403):
        return BackendError(
            f"The model server at {base_url} refused the API key (HTTP {status}); "
            "check GURU_LLM_API_KEY."
        )
    return BackendError(f"The model server at {base_url} answered HTTP {status}: {message}")


def transport_error(base_url: str, timeout_s: float, exc: BaseException) -> BackendError:
    """A BackendError for a connection that failed, was refused or went silent."""
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts subclass it
        return BackendError(
            f"The model server at {base_url} did not answer within {timeout_s:g} s."
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        reason = (
            os.strerror(error.errno)
            if error.errno and error.errno > 0
            else error.strerror or str(error) or type(error).__name__
        )
        return BackendError(f"Cannot reach the model server at {base_url} ({reason}).")
    return BackendError(
        f"The connection to the model server at {base_url} failed ({type(exc).__name__}: {exc})."
    )


def error_message(text: str) -> str:
    """The message of an OpenAI (`{"error": {"message"}}`) or vLLM/TGI-style error body."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:300] or "no details"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        for candidate in (error, body.get("message"), body.get("detail")):
            if isinstance(candidate, str):
                return candidate
    return text.strip()[:300]
