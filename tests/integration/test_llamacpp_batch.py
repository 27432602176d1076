"""llama.cpp's batched baseline (bench/llamacpp_batch.py) decodes each stream as it would alone.

Needs the optional `llama_cpp` (extra `guru[bench]`, compiled from source), which CI does not
install: then the module skips, saying so.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.prompts import LONG_PROMPTS
from core.config import Settings
from core.llm.engine.prompting import PromptEncoder
from core.llm.models.install import ensure_gguf
from core.llm.models.sources import resolve_source
from core.llm.types import user
from tests.fixtures.models import BUNDLED

pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python (extra `guru[bench]`) is not importable; install it to test "
    "the llama.cpp batched baseline",
)

from bench.llamacpp_batch import LlamaCppModel  # noqa: E402 - after the skip

NEW_TOKENS = 24
NEAR_TIE = 0.3  # logits; llama.cpp's batched and solo logits differed by ~0.15 here


@pytest.fixture(scope="module")
def gguf(model_settings: Settings) -> str:
    source = resolve_source(BUNDLED, model_settings.data_dir)
    return str(ensure_gguf(source.status) if source.status else source.path)


@pytest.fixture(scope="module")
def prompts(bundled_tokenizer: Any) -> list[list[int]]:
    """Three chat prompts of different lengths (190-195 tokens), so positions differ."""
    encoder = PromptEncoder(bundled_tokenizer, None)
    return [encoder.encode(user(p)) for p in LONG_PROMPTS[:3]]


def _parting(a: list[int], b: list[int]) -> int | None:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)


def test_batched_greedy_streams_follow_their_single_stream_output(
    gguf: str, prompts: list[list[int]]
) -> None:
    """Each stream decodes what it decodes alone, up to a near-tie.

    llama.cpp's batched kernels round differently from its single-stream ones (greedy logits
    moved by ~0.1 here), so a stream may part from its solo path where the top two logits
    are nearly equal; a wrong position, sequence id or logits row would part at once, by far.
    """
    # n_batch 128: the packed prefill of ~580 tokens spans 5 decode calls, with prompts
    # split across them, so each stream's positions and logits index are exercised.
    model = LlamaCppModel(gguf, threads=1, n_batch=128)
    try:
        model.context(len(prompts), max(map(len, prompts)) + NEW_TOKENS)
        batched = model.generate(prompts, NEW_TOKENS, margins=True)
        alone = [model.generate([p], NEW_TOKENS, margins=True) for p in prompts]
    finally:
        model.close()
    assert [len(t) for t in batched.tokens] == [NEW_TOKENS] * len(prompts)
    for stream, solo in enumerate(alone):
        parted = _parting(batched.tokens[stream], solo.tokens[0])
        if parted is not None:
            assert parted >= 4, f"stream {stream} parted from its solo output at token {parted}"
            near_tie = min(batched.margins[stream][parted], solo.margins[0][parted])
            assert near_tie < NEAR_TIE, f"stream {stream} parted at token {parted}, not a tie"
    assert len({tuple(a.tokens[0]) for a in alone}) == len(prompts)  # different prompts
    for timing in batched.timings:
        assert timing.tokens == NEW_TOKENS and timing.started < timing.first <= timing.ended


def test_single_stream_matches_llama_cpp_python_generate(
    gguf: str, prompts: list[list[int]]
) -> None:
    """Our low-level loop agrees with llama-cpp-python's own greedy `Llama.generate`."""
    from llama_cpp import Llama, llama_print_system_info

    if b"AMX_INT8 = 1" in llama_print_system_info():
        pytest.skip("this llama.cpp build has AMX, whose matmul crashes in Llama.generate here")
    prompt = prompts[0]
    llm = Llama(model_path=gguf, n_ctx=512, n_threads=1, seed=0, verbose=False)
    expected = []
    for token in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, repeat_penalty=1.0):
        expected.append(token)
        if len(expected) == NEW_TOKENS:
            break
    llm.close()
    model = LlamaCppModel(gguf, threads=1)
    try:
        model.context(1, len(prompt) + NEW_TOKENS)
        assert model.generate([prompt], NEW_TOKENS).tokens[0] == expected
    finally:
        model.close()
