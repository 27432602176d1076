"""The lean forward (core.llm.lean) against transformers' own forward on the same weights.

fp32 dense must match transformers within float noise (logits) and give identical greedy
text; int4 packing must be exact where it packs (it only reorders float rounding and feeds
bf16 activations), refuse weights that are not 4-bit blocks, and still answer correctly.
"""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from core.llm.engine import Engine
from core.llm.kv import BatchKV
from core.llm.lean import EXACT_TOP, LeanLlama, PackCache
from core.llm.types import Request, user
from tests.fixtures.models import make_tiny_llama
from tests.integration.test_engine import hf_greedy

PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "hi",
]


def _ids(loaded, prompt: str) -> list[int]:
    from core.llm.prompting import PromptEncoder

    return PromptEncoder(loaded.tokenizer, loaded.model).encode(user(prompt))


def _hf_batch(model, prompts_ids: list[list[int]]) -> BatchKV:
    kv = BatchKV(model.config.num_hidden_layers)
    for ids in prompts_ids:
        cache = DynamicCache()
        model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True)
        kv.add_row(cache)
    return kv


def _compare_steps(loaded, lean: LeanLlama, steps: int, atol: float) -> None:
    """Prefill and `steps` padded batch decode steps: lean logits == HF logits (within atol)."""
    model = loaded.model
    prompts = [_ids(loaded, p) for p in PROMPTS]  # different lengths: rows are padded
    with torch.inference_mode():
        for ids in prompts:
            ref = model(input_ids=torch.tensor([ids])).logits[0, -1]
            got, kv = lean.prefill(ids)
            torch.testing.assert_close(got, ref, atol=atol, rtol=0)
            assert len(kv) == model.config.num_hidden_layers
        hf_kv, lean_kv = _hf_batch(model, prompts), _hf_batch(model, prompts)
        first = [model(input_ids=torch.tensor([ids])).logits[0, -1] for ids in prompts]
        tokens = [int(logits.argmax()) for logits in first]
        for _ in range(steps):
            mask, positions = hf_kv.step_inputs()
            ref = model(
                input_ids=torch.tensor([[t] for t in tokens]),
                attention_mask=mask,
                position_ids=positions,
                cache=hf_kv.cache,
                use_cache=True,
            ).logits[:, -1]
            hf_kv.append_step()
            got = lean.decode(tokens, lean_kv)
            lean_kv.append_step()
            torch.testing.assert_close(got, ref, atol=atol, rtol=0)
            tokens = ref.argmax(-1).tolist()


def test_tiny_llama_lean_logits_match_hf(bundled_tokenizer):
    loaded = make_tiny_llama(bundled_tokenizer, seed=3)
    _compare_steps(loaded, LeanLlama(loaded.model), steps=4, atol=1e-5)


def test_lean_reads_the_hf_weights_in_place(bundled_tokenizer):
    loaded = make_tiny_llama(bundled_tokenizer, seed=4)
    before = {name: (p.data_ptr(), p.clone()) for name, p in loaded.model.named_parameters()}
    lean = LeanLlama(loaded.model)
    after = dict(loaded.model.named_parameters())
    for name, (ptr, value) in before.items():
        assert after[name].data_ptr() == ptr and torch.equal(after[name], value), name
    assert lean.layers[0].qkv.dense[0][0] is loaded.model.model.layers[0].self_attn.q_proj.weight


def test_int4_refuses_weights_that_are_not_4bit_blocks(bundled_tokenizer):
    loaded = make_tiny_llama(bundled_tokenizer, seed=5)  # random fp32 weights
    lean = LeanLlama(loaded.model, weights="int4")
    assert lean.packed.startswith("0/")
    _compare_steps(loaded, lean, steps=2, atol=1e-5)


@pytest.mark.model
def test_bundled_model_lean_logits_match_hf_fp32(bundled_model):
    _compare_steps(bundled_model, LeanLlama(bundled_model.model), steps=4, atol=2e-4)


@pytest.mark.model
async def test_bundled_model_lean_greedy_equals_hf_generate(bundled_model):
    engine = Engine(bundled_model, max_batch=4, kernel="lean", weights="dense")
    try:
        for prompt in PROMPTS:
            got = await engine.complete(Request(user(prompt), max_new_tokens=32))
            assert engine.lean is not None and engine.lean.packed.startswith("0/")
            assert got.text == hf_greedy(bundled_model, _ids(bundled_model, prompt), 32)
    finally:
        await engine.aclose()


@pytest.mark.model
async def test_bundled_model_int4_is_exact_and_answers(bundled_model, tmp_path):
    lean = LeanLlama(bundled_model.model, weights="int4", cache_dir=str(tmp_path))
    assert (tmp_path / PackCache.NAME).is_file()
    cached = LeanLlama(bundled_model.model, weights="int4", cache_dir=str(tmp_path))
    assert cached.packed == lean.packed
    a, b = cached.layers[-1].gate_up.packed, lean.layers[-1].gate_up.packed
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    n = bundled_model.model.config.num_hidden_layers
    assert lean.packed == f"{4 * n}/{4 * n} matrices, LM head"  # the whole Q4_1 + Q8_0 GGUF
    # The layers' 4-bit codes pack exactly (scales round to bf16) and prompts run in bf16:
    # the top logits (recomputed from the dense LM head) stay close and the top token is the
    # same; the rest come from the 4-bit LM head, which only picks those candidates.
    ids = _ids(bundled_model, PROMPTS[0])
    with torch.inference_mode():
        ref = bundled_model.model(input_ids=torch.tensor([ids])).logits[0, -1]
        got, _ = lean.prefill(ids)
    assert got.argmax() == ref.argmax()
    top = ref.topk(EXACT_TOP).indices
    assert (got - ref)[top].abs().max() < 1.0 < ref.abs().max()
    assert (got - ref).abs().max() < 4.0
    engine = Engine(bundled_model, max_batch=4, kernel="lean", weights="int4")
    try:
        completion = await engine.complete(
            Request(user("What is the capital of France?"), max_new_tokens=24)
        )
        assert "Paris" in completion.text
        assert engine.stats().device == "cpu/float32 (int4)"
    finally:
        await engine.aclose()
