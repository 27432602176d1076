"""`open_llm`: the configured backend, a remote OpenAI-compatible server or the local engine.

It lives here, below `core.services` and `core.pal`, so both import it without a cycle.
"""

from __future__ import annotations

import asyncio
import logging

from core.config import Settings
from core.llm.models.loading import ModelCache, load_model
from core.llm.types import LLMBackend

__all__ = ["open_llm"]

log = logging.getLogger(__name__)


async def open_llm(settings: Settings, models: ModelCache) -> LLMBackend:
    """The configured backend: a remote OpenAI-compatible server, or the local engine."""
    if settings.llm_url:
        from core.llm.http.remote import RemoteBackend

        log.info("using the remote LLM at %s", settings.llm_url)
        return RemoteBackend(
            settings.llm_url, api_key=settings.llm_api_key, model=settings.llm_remote_model
        )
    from core.llm.engine.engine import Engine

    loaded = await asyncio.to_thread(load_model, settings.model, settings, models)
    log.info("loaded %s on %s/%s in %.1fs", loaded.name, loaded.device, loaded.dtype, loaded.load_s)
    return Engine.from_settings(loaded, settings)
