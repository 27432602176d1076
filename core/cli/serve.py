"""`guru serve`: this machine's model behind an OpenAI-compatible HTTP API.

Other Guru processes reach it with GURU_LLM_URL (one model, many bots or workers), and so can
any OpenAI client. Runs until SIGINT/SIGTERM, then stops listening, gives running requests a
few seconds, cancels the rest and closes the engine. It refuses to listen beyond loopback
without GURU_SERVE_API_KEY: an open model server is anyone's free GPU and every guild's
adapters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
from typing import Any

from core.config import Settings
from core.errors import ConfigError

__all__ = ["register", "serve_command", "check_bind"]

log = logging.getLogger(__name__)


def check_bind(host: str, api_key: str | None) -> None:
    """ConfigError unless `host` is loopback or an API key is set."""
    if api_key:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        loopback = False
    if not loopback:
        raise ConfigError(
            f"Refusing to serve on {host} without GURU_SERVE_API_KEY: anyone who reaches it "
            "could use the model and every guild's adapters. Set GURU_SERVE_API_KEY, or bind "
            "to 127.0.0.1."
        )


def register(subparsers: Any) -> None:
    """Add the `serve` command."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the model over an OpenAI-compatible HTTP API",
        description="Serve GURU_MODEL at http://HOST:PORT/v1 (chat completions, streaming, "
        "/v1/models, /healthz). Clients send GURU_SERVE_API_KEY as a bearer token when set.",
    )
    parser.add_argument("--host", help="bind address (default: GURU_SERVE_HOST, 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, help="TCP port, 0 = any free one (default: GURU_SERVE_PORT, 8088)"
    )
    parser.set_defaults(handler=serve_command)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port (0-65535)")
    return value


async def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    """Load the model, serve it until a stop signal, shut down cleanly."""
    # Imported here, not at the top: torch and transformers take seconds to import and every
    # other `guru` command (and `guru --help`) would pay for them.
    from core.llm.engine.engine import Engine
    from core.llm.http.server import create_app, start_server
    from core.llm.models.loading import ModelCache, load_model

    host = args.host or settings.serve_host
    port = settings.serve_port if args.port is None else args.port
    if settings.llm_url:
        log.warning("GURU_LLM_URL is ignored by `guru serve`: it serves the local GURU_MODEL")
    check_bind(host, settings.serve_api_key)  # before the model loads: fail in a second
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        loaded = await asyncio.to_thread(load_model, settings.model, settings, cache=ModelCache())
        if stop.is_set():
            return 0
        engine = Engine.from_settings(loaded, settings)
        try:
            app = create_app(
                engine,
                loaded.name,
                settings.serve_api_key,
                default_temperature=settings.temperature,
            )
            server = await start_server(app, host, port)
            try:
                log.info("serving %s at %s", loaded.name, server.url)
                print(f"Serving {loaded.name} at {server.url} (Ctrl-C to stop)", flush=True)
                await stop.wait()
                log.info("stopping: finishing running requests")
            finally:
                await server.aclose()
        finally:
            await engine.aclose()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0
