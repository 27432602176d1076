"""Per-request LoRA adapters: different adapters change the output; mixing them in one batch
gives every request exactly what it gets alone."""

from __future__ import annotations

import asyncio

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaForCausalLM

from core.errors import NotFound
from core.llm.engine.engine import Engine
from core.llm.types import Request, user
from tests.fixtures.models import make_tiny_llama

PROMPT = user("tell me something about adapters")


def make_adapter(base_config, path, seed: int, alpha: int = 64) -> str:
    """A random (non-zero) LoRA adapter for the tiny model, saved as a peft directory."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(base_config)
    config = LoraConfig(
        r=8,
        lora_alpha=alpha,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
        init_lora_weights=False,  # random A and B, so the adapter really changes outputs
    )
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(str(path))
    return str(path)


@pytest.fixture
def own_tiny(bundled_tokenizer):
    """A private tiny model: peft injects LoRA layers into the model it wraps."""
    return make_tiny_llama(bundled_tokenizer, seed=5)


@pytest.fixture
async def engine_with_adapters(own_tiny, tmp_path):
    engine = Engine(own_tiny, max_batch=4)
    config = own_tiny.model.config
    await engine.load_adapter("alpha", make_adapter(config, tmp_path / "alpha", seed=1))
    await engine.load_adapter("beta", make_adapter(config, tmp_path / "beta", seed=2))
    yield engine
    for name in engine.adapters.names():
        await engine.unload_adapter(name)
    await engine.aclose()


def ask(adapter: str | None) -> Request:
    return Request(PROMPT, adapter=adapter, max_new_tokens=20)


async def test_adapters_change_the_output(engine_with_adapters):
    engine = engine_with_adapters
    base, alpha, beta = [(await engine.complete(ask(a))).text for a in (None, "alpha", "beta")]
    assert len({base, alpha, beta}) == 3


async def test_mixed_batch_gives_each_request_what_it_gets_alone(engine_with_adapters):
    engine = engine_with_adapters
    alone = {a: (await engine.complete(ask(a))).text for a in (None, "alpha", "beta")}
    order = ["alpha", None, "beta", "alpha"]
    mixed = await asyncio.gather(*(engine.complete(ask(a)) for a in order))
    assert [c.text for c in mixed] == [alone[a] for a in order]


async def test_unloading_restores_the_base_model(own_tiny, tmp_path):
    engine = Engine(own_tiny, max_batch=2)
    try:
        before = (await engine.complete(ask(None))).text
        await engine.load_adapter("gamma", make_adapter(own_tiny.model.config, tmp_path / "g", 3))
        assert (await engine.complete(ask("gamma"))).text != before
        await engine.unload_adapter("gamma")
        assert engine.adapters.names() == ()
        assert (await engine.complete(ask(None))).text == before
        with pytest.raises(NotFound):
            await engine.complete(ask("gamma"))
        with pytest.raises(NotFound, match="adapter_config.json"):
            await engine.load_adapter("missing", str(tmp_path / "nowhere"))
    finally:
        await engine.aclose()


@pytest.mark.model
async def test_an_adapter_builds_the_lazy_model_and_mixes_exactly(model_settings, tmp_path):
    """A CPU fp32 load builds no transformers model (`LazyModel`): the packed path runs
    without it. The first adapter builds it; adapter rows mixed with base rows get exactly
    what they get alone (base rows of a mixed step run transformers' fp32 forward, not the
    packed one, so their text may differ from the packed path's)."""
    from core.llm.models.loading import LazyModel, load_model

    loaded = load_model(model_settings.model, model_settings)  # its own, not the session's
    assert isinstance(loaded.hf, LazyModel) and not loaded.hf.built
    engine = Engine(loaded, max_batch=4, kernel="lean", weights="auto")
    try:
        base = (await engine.complete(ask(None))).text
        assert not loaded.hf.built  # the lean forward ran on the mapped safetensors
        await engine.load_adapter("delta", make_adapter(loaded.config, tmp_path / "d", 4, alpha=12))
        assert loaded.hf.built
        alone = (await engine.complete(ask("delta"))).text
        assert alone != base
        order = [None, "delta", None]
        mixed = await asyncio.gather(*(engine.complete(ask(a)) for a in order))
        assert mixed[1].text == alone and all(c.text for c in mixed)
    finally:
        await engine.aclose()
