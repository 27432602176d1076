"""The engine over real models: a tiny random Llama for mechanics, the bundled model for answers."""

from __future__ import annotations

import asyncio
import time

import pytest
import torch

from core.errors import Busy, InvalidInput, NotFound
from core.llm.engine.engine import Engine
from core.llm.types import Request, user
from tests.fixtures.models import pace

PROMPTS = [
    "hello there",
    "what is 2+2? explain in detail please",
    "a",
    "tell me a story about a cat and a dog who became friends",
]


@pytest.fixture
async def tiny_engine(tiny_llama):
    engine = Engine(tiny_llama, max_batch=4, max_queue=32, max_queue_per_guild=16)
    yield engine
    await engine.aclose()


async def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def hf_greedy(loaded, prompt_ids: list[int], max_new_tokens: int) -> str:
    """Reference: transformers' own generate() on one unpadded prompt."""
    with torch.inference_mode():
        out = loaded.model.generate(
            torch.tensor([prompt_ids]), max_new_tokens=max_new_tokens, do_sample=False
        )
    return loaded.tokenizer.decode(out[0, len(prompt_ids) :], skip_special_tokens=True)


async def test_batched_greedy_equals_unbatched_and_hf_generate(tiny_engine, tiny_llama):
    alone = [await tiny_engine.complete(Request(user(p), max_new_tokens=24)) for p in PROMPTS]
    together = await asyncio.gather(
        *(tiny_engine.complete(Request(user(p), max_new_tokens=24)) for p in PROMPTS)
    )
    assert [c.text for c in together] == [c.text for c in alone]
    for prompt, completion in zip(PROMPTS, alone):
        ids = tiny_engine.prompts.encode(user(prompt))
        assert completion.text == hf_greedy(tiny_llama, ids, 24)
        assert completion.prompt_tokens == len(ids)


async def test_requests_join_a_running_batch_without_changing_its_output(tiny_engine):
    reference = await tiny_engine.complete(Request(user(PROMPTS[3]), max_new_tokens=60))
    first = asyncio.create_task(tiny_engine.complete(Request(user(PROMPTS[3]), max_new_tokens=60)))
    await asyncio.sleep(0.05)  # let it start decoding, then others join mid-flight
    late = [tiny_engine.complete(Request(user(p), max_new_tokens=10)) for p in PROMPTS[:3]]
    results = await asyncio.gather(first, *late)
    assert results[0].text == reference.text


async def test_cancelling_a_stream_frees_its_slot(tiny_llama):
    engine = Engine(tiny_llama, max_batch=1, max_new_tokens=2000, context_tokens=4096)
    try:
        long = engine.stream(Request(user("never stop talking"), max_new_tokens=400))
        async for event in long:
            if event.kind == "text":
                break
        await long.aclose()  # the user pressed Cancel
        started = time.perf_counter()
        second = await engine.complete(Request(user("short"), max_new_tokens=5))
        assert second.finish_reason in ("length", "stop")
        assert time.perf_counter() - started < 5  # did not wait for 400 tokens
        assert engine.stats().active == 0 and engine.stats().queued == 0
    finally:
        await engine.aclose()


async def test_cancel_by_id_reports_cancelled(tiny_llama):
    engine = Engine(tiny_llama, max_batch=1)
    try:
        request = Request(user("go on"), max_new_tokens=400)
        task = asyncio.create_task(engine.complete(request))
        await asyncio.sleep(0.1)
        assert engine.cancel(request.request_id)
        completion = await task
        assert completion.finish_reason == "cancelled"
        assert completion.completion_tokens < 400
    finally:
        await engine.aclose()


async def test_one_guild_flooding_does_not_starve_another(tiny_llama, monkeypatch):
    engine = Engine(tiny_llama, max_batch=1, max_queue=64, max_queue_per_guild=32)
    # The tiny model answers 6 tokens in a few ms: a0 could finish before a9 is even queued.
    pace(engine, monkeypatch, 0.02)
    started: list[str] = []

    async def run(tag: str, guild: int) -> int | None:
        first_position = None
        async for event in engine.stream(Request(user(tag), guild_id=guild, max_new_tokens=6)):
            if event.kind == "queued" and first_position is None:
                first_position = event.queue_position
            if event.kind == "text" and tag not in started:
                started.append(tag)
        return first_position

    try:
        flood = [asyncio.create_task(run(f"a{n}", guild=1)) for n in range(10)]
        await wait_until(lambda: engine.stats().queued + engine.stats().active == 10)
        b_position = await asyncio.create_task(run("b", guild=2))
        await asyncio.gather(*flood)
        assert b_position is not None and b_position <= 2
        # a0 was running; at most one more request of guild A goes before B.
        assert started.index("b") <= 2, started
    finally:
        await engine.aclose()


async def test_full_queue_is_a_clear_busy_error(tiny_llama, monkeypatch):
    engine = Engine(tiny_llama, max_batch=1, max_queue=2, max_queue_per_guild=2)
    pace(engine, monkeypatch, 0.005)  # the running request must outlast the queueing
    try:

        def long_request() -> asyncio.Task:
            request = Request(user("x"), guild_id=1, max_new_tokens=400)
            return asyncio.create_task(engine.complete(request))

        running = [long_request()]
        await wait_until(lambda: engine.stats().active == 1)
        running += [long_request(), long_request()]
        await wait_until(lambda: engine.stats().queued == 2)  # one runs, two wait: full
        with pytest.raises(Busy) as excinfo:
            await engine.complete(Request(user("y"), guild_id=2, max_new_tokens=5))
        assert "try again" in excinfo.value.user_message
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    finally:
        await engine.aclose()


async def test_sampling_is_reproducible_with_a_seed(tiny_engine):
    def sampled(seed: int) -> Request:
        return Request(user(PROMPTS[0]), max_new_tokens=20, temperature=1.0, top_p=0.9, seed=seed)

    a, b, c = await asyncio.gather(*(tiny_engine.complete(sampled(s)) for s in (7, 7, 8)))
    assert a.text == b.text
    assert a.text != c.text


async def test_bad_input_is_rejected_with_clear_errors(tiny_engine):
    with pytest.raises(InvalidInput, match="empty"):
        await tiny_engine.complete(Request(user("   ")))
    too_long = "word " * 5000
    with pytest.raises(InvalidInput) as excinfo:
        await tiny_engine.complete(Request(user(too_long)))
    message = excinfo.value.user_message
    assert "tokens" in message and str(tiny_engine.context_tokens) in message
    with pytest.raises(NotFound, match="adapter"):
        await tiny_engine.complete(Request(user("hi"), adapter="nope"))
    with pytest.raises(InvalidInput, match="max_new_tokens"):
        await tiny_engine.complete(Request(user("hi"), max_new_tokens=0))


async def test_length_budget_is_clamped_to_the_context(tiny_llama):
    engine = Engine(tiny_llama, max_new_tokens=1000, context_tokens=64)
    try:
        ids = engine.prompts.encode(user("hello"))
        completion = await engine.complete(Request(user("hello"), max_new_tokens=1000))
        assert completion.completion_tokens <= 64 - len(ids)
    finally:
        await engine.aclose()


# -- the bundled real model ------------------------------------------------------------------


@pytest.fixture(scope="module")
async def real_engine(bundled_model):
    engine = Engine(bundled_model, max_batch=8)
    yield engine
    await engine.aclose()


@pytest.mark.model
async def test_bundled_model_answers_a_factual_question(real_engine):
    completion = await real_engine.complete(
        Request(user("What is the capital of France?"), max_new_tokens=24)
    )
    assert "Paris" in completion.text


@pytest.mark.model
async def test_bundled_model_batched_equals_unbatched_fp32(real_engine):
    prompts = [
        "What is the capital of France?",
        "Name three primary colors.",
        "Write one sentence about the sea.",
        "How many legs does a spider have?",
    ]
    alone = [await real_engine.complete(Request(user(p), max_new_tokens=24)) for p in prompts]
    together = await asyncio.gather(
        *(real_engine.complete(Request(user(p), max_new_tokens=24)) for p in prompts)
    )
    assert [c.text for c in together] == [c.text for c in alone]


@pytest.mark.model
async def test_event_loop_keeps_ticking_during_generation(real_engine):
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.gather(
        *(
            real_engine.complete(Request(user(f"Tell me about number {n}."), max_new_tokens=32))
            for n in range(4)
        )
    )
    stop.set()
    await tick
    assert len(gaps) > 20
    assert max(gaps) < 0.5, f"event loop stalled for {max(gaps):.2f}s"


def middle_stop_string(text: str) -> str | None:
    """A 4-character piece from the middle of `text` that does not occur earlier."""
    for i in range(len(text) // 3, len(text) - 4):
        piece = text[i : i + 4]
        if piece.strip() and text.find(piece) == i:
            return piece
    return None


@pytest.mark.model
async def test_stop_strings_cut_the_answer_before_them(real_engine):
    prompt = "Write one sentence about the sea."
    full = await real_engine.complete(Request(user(prompt), max_new_tokens=30))
    stop = middle_stop_string(full.text)
    assert stop is not None, full.text
    request = Request(user(prompt), max_new_tokens=30, stop=(stop,))
    cut = await real_engine.complete(request)
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]
    streamed = ""
    async for event in real_engine.stream(request):
        streamed += event.text
    assert streamed == cut.text  # no prefix of the stop string leaked
