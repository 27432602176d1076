"""`guru serve` ↔ RemoteBackend over real HTTP on 127.0.0.1: the wire must not change answers,
errors must keep their type and message, and a client that leaves must free the engine."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from core.errors import BackendError, Busy, InvalidInput, NotFound
from core.llm.engine.engine import Engine
from core.llm.http import serving as serving_module
from core.llm.http.remote import RemoteBackend
from core.llm.http.server import RunningServer, create_app, start_server
from core.llm.types import Request, user
from tests.fixtures.models import BUNDLED
from tests.fixtures.paths import REPO

PROMPTS = ["hello there", "what is 2+2? explain in detail please", "a"]


@asynccontextmanager
async def serving(
    loaded: Any, api_key: str | None = None, **engine_kwargs: Any
) -> AsyncIterator[tuple[Engine, RunningServer, RemoteBackend]]:
    """An engine behind `create_app` on an ephemeral port, and a RemoteBackend pointed at it."""
    engine = Engine(loaded, **engine_kwargs)
    server = await start_server(create_app(engine, loaded.name, api_key), "127.0.0.1", 0)
    remote = RemoteBackend(server.url, api_key=api_key)
    try:
        yield engine, server, remote
    finally:
        await remote.aclose()
        await server.aclose()
        await engine.aclose()


@pytest.fixture(scope="module")
async def tiny_served(tiny_llama):
    async with serving(tiny_llama, max_batch=4) as served:
        yield served


@pytest.fixture
def long_llama(tiny_llama):
    """The tiny model with room for thousands of tokens: requests that run for seconds."""
    return dataclasses.replace(tiny_llama, context_tokens=8192)


LONG = {"max_batch": 1, "max_new_tokens": 4000, "context_tokens": 8192}


async def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def raw(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, Any]:
    """(status, headers, parsed JSON) of one plain HTTP request; `body` bytes are sent as is."""
    kwargs: dict[str, Any] = {"headers": headers}
    kwargs["data" if isinstance(body, bytes) else "json"] = body
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, **kwargs) as response:
            return response.status, response.headers, await response.json(content_type=None)


async def first_text(stream: AsyncIterator[Any]) -> None:
    async for event in stream:
        if event.kind == "text":
            return


async def drain(stream: AsyncIterator[Any]) -> None:
    """Read a stream to its end; a server going away is expected here."""
    try:
        async for _ in stream:
            pass
    except BackendError:
        pass


# -- the same answers over the wire ---------------------------------------------------------


async def test_remote_complete_and_stream_equal_the_local_engine(tiny_served):
    engine, _, remote = tiny_served
    for prompt in PROMPTS:
        request = Request(user(prompt), max_new_tokens=24)
        local = await engine.complete(request)
        over_http = await remote.complete(request)
        assert over_http.text == local.text
        assert over_http.finish_reason == local.finish_reason
        assert (over_http.prompt_tokens, over_http.completion_tokens) == (
            local.prompt_tokens,
            local.completion_tokens,
        )

        events = [event async for event in remote.stream(request)]
        assert events[0].kind == "queued" and events[0].queue_position == 1
        deltas = "".join(e.text for e in events if e.kind == "text")
        done = events[-1].completion
        assert events[-1].kind == "done" and done is not None
        assert deltas == done.text == local.text
        assert (done.prompt_tokens, done.completion_tokens) == (
            local.prompt_tokens,
            local.completion_tokens,
        )
        assert done.first_token_s is not None and 0 < done.first_token_s <= done.elapsed_s


async def test_sampling_and_stop_strings_survive_the_wire(tiny_served):
    engine, _, remote = tiny_served
    sampled = Request(user(PROMPTS[1]), max_new_tokens=20, temperature=1.0, top_p=0.9, seed=7)
    assert (await remote.complete(sampled)).text == (await engine.complete(sampled)).text
    full = await engine.complete(Request(user(PROMPTS[1]), max_new_tokens=30))
    stop = full.text[len(full.text) // 2 :][:3]
    cut = Request(user(PROMPTS[1]), max_new_tokens=30, stop=(stop, "\u2603never"))
    local = await engine.complete(cut)
    assert local.finish_reason == "stop"
    assert (await remote.complete(cut)).text == local.text
    streamed = "".join([e.text async for e in remote.stream(cut)])
    assert streamed == local.text


async def test_models_lists_the_served_model_and_is_discovered(tiny_served):
    _, server, remote = tiny_served
    status, _, body = await raw("GET", f"{server.url}/models")
    assert status == 200 and body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["tiny-llama"]
    fresh = RemoteBackend(server.url.removesuffix("/v1"))  # /v1 is added when missing
    try:
        await fresh.complete(Request(user("hi"), max_new_tokens=2))
        assert fresh.stats().model == "tiny-llama"
        assert fresh.stats().backend == "remote" and fresh.stats().tokens_generated == 2
    finally:
        await fresh.aclose()
    status, _, health = await raw("GET", server.url.removesuffix("/v1") + "/healthz")
    assert status == 200 and health["status"] == "ok" and health["model"] == "tiny-llama"


async def test_openai_shapes_of_plain_http_answers(tiny_served):
    _, server, _ = tiny_served
    body = {
        "model": "whatever",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 3,
        "temperature": 0,
        "frequency_penalty": 0.5,
    }
    status, _, answer = await raw("POST", f"{server.url}/chat/completions", body)
    assert status == 200 and answer["object"] == "chat.completion"
    assert answer["model"] == "tiny-llama" and answer["id"].startswith("chatcmpl-")
    assert answer["choices"][0]["message"]["role"] == "assistant"
    usage = answer["usage"]
    assert usage["completion_tokens"] == 3
    assert usage["total_tokens"] == usage["prompt_tokens"] + 3
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{server.url}/chat/completions", json={**body, "stream": True}
        ) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            lines = [line async for line in response.content]
    data = [line.decode().strip()[6:] for line in lines if line.startswith(b"data: ")]
    assert data[-1] == "[DONE]"
    assert '"role":"assistant"' in data[0] and '"finish_reason":"length"' in data[-2]


# -- errors keep their type and message -----------------------------------------------------


async def test_bad_requests_are_invalid_input_with_the_servers_message(tiny_served):
    _, server, remote = tiny_served
    with pytest.raises(InvalidInput, match="max_tokens must be at least 1"):
        await remote.complete(Request(user("hi"), max_new_tokens=0))
    with pytest.raises(InvalidInput, match="empty"):
        await remote.complete(Request(user("   ")))
    with pytest.raises(InvalidInput, match="tokens"):
        [e async for e in remote.stream(Request(user("word " * 3000)))]
    with pytest.raises(NotFound, match="adapter"):
        await remote.complete(Request(user("hi"), adapter="nope"))

    url = f"{server.url}/chat/completions"
    cases = [
        (b"{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
        ({"model": "m"}, "messages is required"),
        ({"messages": "hi"}, "non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role must be one of"),
        ({"messages": [{"role": "user", "content": 5}]}, "content must be"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n=1"),
    ]
    for body, message in cases:
        status, _, answer = await raw("POST", url, body)
        assert status == 400, body
        assert answer["error"]["type"] == "invalid_request_error"
        assert message in answer["error"]["message"], (body, answer)
    status, _, answer = await raw("GET", f"{server.url}/nowhere")
    assert status == 404 and "error" in answer


async def test_full_queue_is_busy_through_the_wire_per_guild_and_overall(long_llama):
    async with serving(long_llama, max_queue=2, max_queue_per_guild=1, **LONG) as (
        engine,
        server,
        remote,
    ):
        running = remote.stream(Request(user("go"), guild_id=1))
        waiting = remote.stream(Request(user("wait"), guild_id=2))
        await first_text(running)
        assert (await anext(waiting)).kind == "queued"
        await wait_until(lambda: engine.stats().active == 1 and engine.stats().queued == 1)
        # guild_id crosses the wire: guild 2 has used its share, guild 3 still gets in.
        with pytest.raises(Busy, match="This server already has 1 requests waiting"):
            await remote.complete(Request(user("more"), guild_id=2, max_new_tokens=5))
        other = remote.stream(Request(user("other"), guild_id=3))
        assert (await anext(other)).queue_position == 2
        with pytest.raises(Busy, match="try again"):
            await remote.complete(Request(user("one more"), guild_id=4, max_new_tokens=5))
        body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
        status, headers, answer = await raw("POST", f"{server.url}/chat/completions", body)
        assert status == 429 and int(headers["Retry-After"]) > 0
        assert answer["error"]["type"] == "rate_limit_error"
        await other.aclose()  # leaving while queued frees the queue slot
        await waiting.aclose()
        await wait_until(lambda: engine.stats().queued == 0, timeout=2)
        assert engine.stats().active == 1
        await running.aclose()
        await wait_until(lambda: engine.stats().active == 0, timeout=2)


async def test_a_waiting_stream_gets_keep_alives(long_llama, monkeypatch):
    monkeypatch.setattr(serving_module, "KEEPALIVE_S", 0.2)
    async with serving(long_llama, **LONG) as (engine, server, remote):
        running = remote.stream(Request(user("go")))
        await first_text(running)
        body = {"messages": [{"role": "user", "content": "x"}], "stream": True}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/chat/completions", json=body) as response:
                seen = b""
                while b": keep-alive" not in seen:
                    seen += await asyncio.wait_for(response.content.readline(), 2)
        assert b": queue_position=1" in seen  # still waiting: no tokens yet, only comments
        await running.aclose()
        await wait_until(lambda: engine.stats().active + engine.stats().queued == 0, timeout=2)


# -- leaving cancels --------------------------------------------------------------------------


async def test_closing_a_remote_stream_cancels_the_servers_generation(long_llama):
    async with serving(long_llama, **LONG) as (engine, _, remote):
        stream = remote.stream(Request(user("never stop talking"), max_new_tokens=4000))
        await first_text(stream)
        assert engine.stats().active == 1
        closed_at = time.perf_counter()
        await stream.aclose()
        await wait_until(lambda: engine.stats().active == 0, timeout=2)
        assert time.perf_counter() - closed_at < 1.0
        assert engine.stats().tokens_generated < 1000  # nowhere near the 4000 asked for
        assert remote.stats().active == 0

        # A cancelled non-streaming call hangs up too.
        task = asyncio.create_task(remote.complete(Request(user("again"), max_new_tokens=4000)))
        await wait_until(lambda: engine.stats().active == 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await wait_until(lambda: engine.stats().active == 0, timeout=2)
        assert engine.stats().tokens_generated < 2000


async def test_shutdown_ends_running_streams_with_a_clean_error(long_llama, monkeypatch):
    monkeypatch.setattr(serving_module, "SHUTDOWN_GRACE_S", 0.3)
    async with serving(long_llama, **LONG) as (engine, server, remote):
        stream = remote.stream(Request(user("go on"), max_new_tokens=4000))
        await first_text(stream)
        closing = asyncio.create_task(server.aclose())
        with pytest.raises(BackendError, match="restarting"):
            async for _ in stream:
                pass
        await asyncio.wait_for(closing, 5)
        await wait_until(lambda: engine.stats().active == 0, timeout=2)


# -- auth and unreachable servers --------------------------------------------------------------


async def test_api_key_is_required_when_configured(tiny_llama):
    async with serving(tiny_llama, api_key="s3cret") as (_, server, remote):
        assert (await remote.complete(Request(user("hi"), max_new_tokens=2))).completion_tokens
        for key in (None, "wrong"):
            intruder = RemoteBackend(server.url, api_key=key, model="tiny-llama")
            try:
                with pytest.raises(BackendError, match="API key") as excinfo:
                    await intruder.complete(Request(user("hi"), max_new_tokens=2))
                assert server.url in excinfo.value.user_message
            finally:
                await intruder.aclose()
        status, headers, _ = await raw("GET", f"{server.url}/models")
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
        status, _, _ = await raw("GET", server.url.removesuffix("/v1") + "/healthz")
        assert status == 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_server_is_a_backend_error_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    remote = RemoteBackend(url, model="m")
    try:
        with pytest.raises(BackendError, match="refused") as excinfo:
            await remote.complete(Request(user("hi")))
        assert url in excinfo.value.user_message
        with pytest.raises(BackendError, match="127.0.0.1"):
            [e async for e in remote.stream(Request(user("hi")))]
        assert remote.stats().active == 0
    finally:
        await remote.aclose()


# -- the real model ---------------------------------------------------------------------------


@pytest.mark.model
async def test_bundled_model_answers_through_the_wire(bundled_model):
    async with serving(bundled_model) as (_, _, remote):
        question = Request(user("What is the capital of France?"), max_new_tokens=24)
        assert "Paris" in (await remote.complete(question)).text
        assert "Paris" in "".join([e.text async for e in remote.stream(question)])


@pytest.mark.model
@pytest.mark.slow
async def test_guru_serve_subprocess_answers_and_stops_on_sigterm(test_data_dir, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GURU_")}
    env.update(
        GURU_DATA_DIR=str(test_data_dir), GURU_THREADS="1", GURU_DEVICE="cpu", GURU_MODEL=BUNDLED
    )
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "core.cli",
            "serve",
            "--port",
            str(port),
            cwd=str(tmp_path),
            env={**env, "PYTHONPATH": str(REPO)},
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    remote = RemoteBackend(f"http://127.0.0.1:{port}", connect_timeout_s=2)
    companions: list[asyncio.Task[None]] = []
    try:
        deadline = time.perf_counter() + 180
        while True:
            assert proc.returncode is None, log_path.read_text()
            assert time.perf_counter() < deadline, log_path.read_text()
            try:
                await remote.complete(Request(user("hi"), max_new_tokens=1))
                break
            except BackendError:
                await asyncio.sleep(0.5)
        answer = await remote.complete(
            Request(user("What is the capital of France?"), max_new_tokens=24)
        )
        assert "Paris" in answer.text
        assert remote.stats().model == BUNDLED
        # Eight long answers decoded together take longer than the server's shutdown grace
        # (one alone now finishes inside it on this CPU).
        companions = [
            asyncio.create_task(
                drain(
                    remote.stream(
                        Request(user(f"Tell a long story about {t}."), max_new_tokens=500)
                    )
                )
            )
            for t in ("a ship", "a city", "a dragon", "a garden", "a robot", "a river", "a king")
        ]
        story = remote.stream(Request(user("Tell me a very long story."), max_new_tokens=500))
        await first_text(story)
        proc.send_signal(signal.SIGTERM)  # the running answers get their grace, then a clean end
        with pytest.raises(BackendError, match="restarting"):
            async for _ in story:
                pass
    finally:
        for task in companions:
            task.cancel()
        await remote.aclose()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    output = log_path.read_text()
    assert code == 0, output
    assert f"127.0.0.1:{port}/v1" in output and "stopped" in output


# -- who may use what ---------------------------------------------------------------------


async def test_serve_refuses_a_public_address_without_an_api_key():
    import argparse

    from core.cli.serve import check_bind, serve_command
    from core.config import Settings
    from core.errors import ConfigError

    args = argparse.Namespace(host="0.0.0.0", port=0)
    with pytest.raises(ConfigError, match="GURU_SERVE_API_KEY"):  # before any model loads
        await asyncio.wait_for(serve_command(args, Settings(serve_api_key=None)), 5)
    for host in ("::", "192.168.1.5", "example.org"):
        with pytest.raises(ConfigError):
            check_bind(host, None)
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(host, None)
    check_bind("0.0.0.0", "s3cret")


async def test_a_guild_adapter_is_unlisted_and_refused_to_other_guilds(bundled_tokenizer, tmp_path):
    from core.tuning.registry import engine_name
    from tests.fixtures.models import make_tiny_llama
    from tests.integration.test_engine_adapters import make_adapter

    own = make_tiny_llama(bundled_tokenizer, seed=5)  # peft wraps it: a private copy
    name = engine_name(42, 1)
    async with serving(own) as (engine, server, _):
        await engine.load_adapter(name, make_adapter(own.model.config, tmp_path / "a", seed=1))
        status, _, body = await raw("GET", f"{server.url}/models")
        assert status == 200 and [m["id"] for m in body["data"]] == [own.name]
        ask = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        for selects in ({"adapter": name}, {"model": name}):
            status, _, body = await raw(
                "POST", f"{server.url}/chat/completions", {**ask, **selects, "guild_id": 7}
            )
            assert status == 403 and "another guild" in body["error"]["message"]
            status, _, body = await raw(
                "POST", f"{server.url}/chat/completions", {**ask, **selects}
            )
            assert status == 403
            status, _, _ = await raw(
                "POST", f"{server.url}/chat/completions", {**ask, **selects, "guild_id": 42}
            )
            assert status == 200
        await engine.unload_adapter(name)
