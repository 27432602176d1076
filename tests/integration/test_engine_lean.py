"""The lean forward (core.llm.engine.lean) against transformers' own forward on the same weights.

fp32 dense must match transformers within float noise (logits) and give identical greedy
text; int4 packing must be exact where it packs (it only reorders float rounding and feeds
bf16 activations), refuse weights that are not 4-bit blocks, and still answer correctly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import DynamicCache

from core.llm.engine import native
from core.llm.engine.engine import Engine
from core.llm.engine.int4 import PackCache
from core.llm.engine.kv import BatchKV
from core.llm.engine.lean import EXACT_TOP, LeanLlama
from core.llm.models.weights import ModelWeights
from core.llm.types import Request, user
from tests.fixtures.models import make_tiny_gguf_llama, make_tiny_llama, make_tiny_q4_llama
from tests.integration.test_engine import hf_greedy

PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "hi",
]


def _force(name: str, monkeypatch) -> str:
    reason = native.isa_missing(name) if name in native.ISAS else None
    if reason is not None:
        pytest.skip(f"native {name}: {reason}")
    monkeypatch.setenv(native.ENV, name)
    return name


@pytest.fixture(params=[*native.ISAS, native.PORTABLE])
def engine_isa(request, monkeypatch) -> str:
    """Each kernel path this CPU can take, forced through GURU_ENGINE_ISA."""
    return _force(request.param, monkeypatch)


@pytest.fixture(params=list(native.ISAS))
def native_isa(request, monkeypatch) -> str:
    """Each native kernel variant this CPU runs (not the portable path)."""
    return _force(request.param, monkeypatch)


def _ids(loaded, prompt: str) -> list[int]:
    from core.llm.engine.prompting import PromptEncoder

    return PromptEncoder(loaded.tokenizer, loaded.generation_config).encode(user(prompt))


def _hf_batch(model, prompts_ids: list[list[int]], dtype: torch.dtype | None = None) -> BatchKV:
    kv = BatchKV(model.config.num_hidden_layers, dtype=dtype)
    for ids in prompts_ids:
        cache = DynamicCache()
        model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True)
        kv.add_row(cache)
    return kv


def _compare_steps(loaded, lean: LeanLlama, steps: int, atol: float, top: int = 0) -> None:
    """Prefill and `steps` padded batch decode steps: lean logits == HF logits (within atol);
    with `top`, only each row's `top` best logits (a 4-bit LM head approximates the rest)."""
    model = loaded.model

    def assert_close(got: torch.Tensor, ref: torch.Tensor) -> None:
        if top:
            best = ref.topk(top, dim=-1).indices
            got, ref = got.gather(-1, best), ref.gather(-1, best)
        torch.testing.assert_close(got, ref, atol=atol, rtol=0)

    prompts = [_ids(loaded, p) for p in PROMPTS]  # different lengths: rows are padded
    with torch.inference_mode():
        for ids in prompts:
            ref = model(input_ids=torch.tensor([ids])).logits[0, -1]
            got, kv = lean.prefill(ids)
            assert_close(got, ref)
            assert len(kv) == model.config.num_hidden_layers
        hf_kv, lean_kv = _hf_batch(model, prompts), _hf_batch(model, prompts, lean.cache_dtype)
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
            assert_close(got, ref)
            tokens = ref.argmax(-1).tolist()


def _assert_bit_identical(loaded, got: LeanLlama, want: LeanLlama) -> None:
    """Prefill and three greedy decode steps of the batch PROMPTS give equal logits."""
    prompts = [_ids(loaded, p) for p in PROMPTS]
    with torch.inference_mode():
        for ids in prompts:
            assert torch.equal(got.prefill(ids)[0], want.prefill(ids)[0])
        kvs = [_hf_batch(loaded.model, prompts, got.cache_dtype) for _ in range(2)]
        tokens = [1, 2, 3]
        for _ in range(3):
            step = got.decode(tokens, kvs[0])
            assert torch.equal(step, want.decode(tokens, kvs[1]))
            for kv in kvs:
                kv.append_step()
            tokens = step.argmax(-1).tolist()


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
async def test_bundled_model_int4_is_exact_and_answers(bundled_model, tmp_path, engine_isa):
    """On every path: AVX2 and portable prompts run in fp32, so this exact top-token check
    is the one that failed on an AVX2-only CPU with bf16 prompts (60 instead of 504)."""
    lean = LeanLlama(bundled_model.model, weights="int4", cache_dir=str(tmp_path))
    n = bundled_model.model.config.num_hidden_layers
    if engine_isa == native.PORTABLE:  # nothing to pack for: the dense fp32 weights
        assert lean.packed == f"0/{4 * n} matrices" and not lean.int4
        assert not (tmp_path / PackCache.NAME).exists()
    else:
        assert (tmp_path / PackCache.NAME).is_file()
        cached = LeanLlama(bundled_model.model, weights="int4", cache_dir=str(tmp_path))
        assert cached.packed == lean.packed
        assert torch.equal(cached.layers[-1].gate_up.packed, lean.layers[-1].gate_up.packed)
        assert lean.packed == f"{4 * n}/{4 * n} matrices, LM head"  # the whole Q4_1 + Q8_0 GGUF
    # The layers' 4-bit codes, fp16 scales and offsets pack exactly and prompts run in bf16:
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
        int4 = "" if engine_isa == native.PORTABLE else " (int4)"
        assert engine.stats().device == f"cpu/float32{int4}"
    finally:
        await engine.aclose()


def test_native_decode_on_4bit_blocks_matches_hf(bundled_tokenizer, tmp_path, native_isa):
    """The native q4 matmul and fp16-cache attention against transformers' fp32 forward on
    the same (4-bit-exact) weights: differences are bf16 activations and the fp16 cache."""
    loaded = make_tiny_q4_llama(bundled_tokenizer, seed=6)
    lean = LeanLlama(loaded.model, weights="int4", cache_dir=str(tmp_path))
    assert lean.packed == "8/8 matrices, LM head"
    assert lean.native is not None and lean.cache_dtype == torch.float16
    # The 4-bit LM head picks EXACT_TOP candidates: this random model's flat logits (std
    # ~0.16) make its cut uncertain, so compare the best 8, which it always keeps.
    _compare_steps(loaded, lean, steps=6, atol=0.01, top=8)


def test_q8_0_and_q5_0_blocks_decode_natively_as_8bit_codes(
    bundled_tokenizer, tmp_path, native_isa
):
    """A model converted from a GGUF of Q5_0 / Q8_0 matrices (Qwen2.5's presets), here with
    Q4_1 down projections: each packs exactly, as 8-bit codes or 4-bit ones, and whole
    decoder layers run natively on the mix; the only differences from transformers' fp32
    forward are the int16 activations and the fp16 cache (and the 4-bit LM head's candidates,
    so compare each row's best 8)."""
    kinds = {"attn_v": "Q8_0", "ffn_down": "Q4_1"}
    loaded = make_tiny_gguf_llama(bundled_tokenizer, tmp_path, kinds, seed=7)
    lean = LeanLlama(loaded.model, weights="int4", cache_dir=str(tmp_path))
    assert lean.packed == "8/8 matrices (of them 4 5-bit, 2 8-bit), LM head"
    assert lean.native is not None and lean.cache_dtype == torch.float16
    layer = lean.layers[0]
    # q, k Q5_0 with v Q8_0: 8-bit codes; o, gate/up all Q5_0: 5-bit ones; down Q4_1: 4-bit
    assert layer.qkv.q8 and layer.o.q5 and layer.gate_up.q5
    assert not (layer.down.q8 or layer.down.q5 or layer.qkv.q5)
    assert all(p.exact for p in (layer.qkv, layer.o, layer.gate_up, layer.down))
    _compare_steps(loaded, lean, steps=6, atol=0.01, top=8)
    # the per-matrix path (no fused layers: torch attention on an fp32 cache) agrees too
    lean.native, lean.cache_dtype = None, None
    _compare_steps(loaded, lean, steps=3, atol=2e-3, top=8)
    # the packing is cached beside the weights, 8-bit codes and all
    again = LeanLlama(loaded.model, weights="int4", cache_dir=str(tmp_path))
    assert again.packed == lean.packed
    assert torch.equal(again.layers[1].gate_up.packed, lean.layers[1].gate_up.packed)


def test_q5_0_as_5_bit_codes_is_bit_identical_to_8_bit_codes(
    bundled_tokenizer, tmp_path, native_isa, monkeypatch
):
    """Q5_0 packed as 5-bit codes (`native.pack_q5`) is the same weights as the 8-bit codes
    it replaced: prefill and decode logits are bit-identical, on every variant."""
    kinds = {"ffn_down": "Q4_1"}  # everything else Q5_0
    loaded = make_tiny_gguf_llama(bundled_tokenizer, tmp_path, kinds, seed=11)
    five = LeanLlama(loaded.model, weights="int4", cache_dir=str(tmp_path))
    assert five.packed == "8/8 matrices (of them 6 5-bit), LM head" and five.native is not None
    (tmp_path / PackCache.NAME).unlink()  # pack again (`five` keeps the old file's data)
    monkeypatch.setattr(native, "pack_q5", lambda q, d: native.pack_q8(q - 16, d))
    eight = LeanLlama(loaded.model, weights="int4", cache_dir=str(tmp_path))
    assert eight.packed == "8/8 matrices (of them 6 8-bit), LM head"
    _assert_bit_identical(loaded, five, eight)
    _compare_steps(loaded, five, steps=3, atol=0.01, top=8)


def test_embedding_and_lm_head_rows_are_read_from_their_gguf_blocks(
    bundled_tokenizer, tmp_path, native_isa
):
    """With the packing, embedding lookups and the LM head's exact recompute read rows of the
    GGUF's own blocks (kept in the packing cache, read from the file, never mapped): the rows
    are bit-identical to the fp32 table, so the logits are exactly those of the dense rows."""
    kinds = {"attn_v": "Q8_0", "ffn_down": "Q4_1", "token_embd": "Q8_0"}
    loaded = make_tiny_gguf_llama(bundled_tokenizer, tmp_path, kinds, seed=9)
    lean = LeanLlama(loaded.model, weights="int4", cache_dir=str(tmp_path))
    rows = lean._embed_rows
    assert rows is not None and rows.kind == "Q8_0" and lean._head_rows is rows  # tied
    assert rows.blocks is None, "read from the cache file once it is written"
    table = loaded.model.model.embed_tokens.weight
    ids = torch.tensor([[0, 5, table.shape[0] - 1, 5, 1234]])
    assert torch.equal(lean._embed(ids), F.embedding(ids, table))
    dense = LeanLlama(loaded.model, weights="int4", cache_dir=str(tmp_path))
    assert dense._embed_rows is not None  # from the cache, as a warm start
    dense._embed_rows = dense._head_rows = None  # the fp32 table's rows instead
    _assert_bit_identical(loaded, lean, dense)
    _compare_steps(loaded, lean, steps=3, atol=0.01, top=8)


def test_an_embedding_its_blocks_do_not_rebuild_stays_dense(bundled_tokenizer, tmp_path):
    if native.unsupported() is not None:
        pytest.skip(f"no native kernels here: {native.unsupported()}")
    kinds = {"token_embd": "Q8_0"}
    loaded = make_tiny_gguf_llama(bundled_tokenizer, tmp_path, kinds, seed=10)
    loaded.model.model.embed_tokens.weight[7, 3] += 0.5  # no longer what the GGUF holds
    lean = LeanLlama(loaded.model, weights="int4", cache_dir=str(tmp_path))
    assert lean.int4 and lean._embed_rows is None and lean._head_rows is None
    _compare_steps(loaded, lean, steps=2, atol=0.01, top=8)


def test_requantizing_packs_q5_0_blocks_to_4_bits_instead(bundled_tokenizer, tmp_path):
    """GURU_ENGINE_WEIGHTS=int4 (`requantize`) keeps its meaning: the nearest 4-bit groups."""
    if native.unsupported() is not None:
        pytest.skip(f"no native kernels here: {native.unsupported()}")
    loaded = make_tiny_gguf_llama(bundled_tokenizer, tmp_path, {}, seed=8)
    lean = LeanLlama(loaded.model, weights="int4", cache_dir=str(tmp_path), requantize=True)
    assert lean.packed == "8/8 matrices, LM head" and lean.native is not None
    assert "Q5_0 (re-quantized)" in lean.requantized


def test_4bit_blocks_without_native_kernels_stay_exact(bundled_tokenizer, tmp_path, monkeypatch):
    """Where no native variant runs (no AVX2 or no C compiler; forced here), int4 keeps the
    dense fp32 weights and an fp32 cache: transformers' logits within float noise."""
    monkeypatch.setenv(native.ENV, native.PORTABLE)
    loaded = make_tiny_q4_llama(bundled_tokenizer, seed=6)
    lean = LeanLlama(loaded.model, weights="int4", cache_dir=str(tmp_path))
    assert lean.packed == "0/8 matrices" and not lean.int4
    assert lean.native is None and lean.cache_dtype is None
    _compare_steps(loaded, lean, steps=4, atol=1e-5)


def test_transformers_steps_read_an_fp16_cache(bundled_tokenizer, tmp_path):
    """Adapter steps run transformers' forward on the engine's cache, which the native path
    keeps in fp16: it must read it as fp32 and append to it."""
    loaded = make_tiny_q4_llama(bundled_tokenizer, seed=7)
    model = loaded.model
    prompts = [_ids(loaded, p) for p in PROMPTS]
    with torch.inference_mode():
        fp32_kv = _hf_batch(model, prompts)
        fp16_kv = _hf_batch(model, prompts, torch.float16)
        assert fp16_kv.cache.layers[0].k_buf.dtype == torch.float16
        tokens = [[1], [2], [3]]
        for kv in (fp32_kv, fp16_kv):
            mask, positions = kv.step_inputs()
            kv.logits = model(
                input_ids=torch.tensor(tokens),
                attention_mask=mask,
                position_ids=positions,
                cache=kv.cache,
                use_cache=True,
            ).logits
            kv.append_step()
    torch.testing.assert_close(fp16_kv.logits, fp32_kv.logits, atol=0.01, rtol=0)
    assert fp16_kv.length == fp32_kv.length and fp16_kv.cache.layers[0].k_buf.dtype == torch.float16


async def test_engine_batches_like_it_runs_alone(bundled_tokenizer, tmp_path, engine_isa):
    loaded = dataclasses.replace(make_tiny_q4_llama(bundled_tokenizer, seed=8), path=str(tmp_path))
    engine = Engine(loaded, max_batch=4, kernel="lean", weights="int4")
    try:
        alone = [await engine.complete(Request(user(p), max_new_tokens=12)) for p in PROMPTS]
        assert engine.lean is not None
        assert (engine.lean.native is None) == (engine_isa == native.PORTABLE)
        label = "none: portable" if engine_isa == native.PORTABLE else native.ISAS[engine_isa].label
        assert engine.kernels.startswith(label), engine.kernels
        together = await asyncio.gather(
            *(engine.complete(Request(user(p), max_new_tokens=12)) for p in PROMPTS)
        )
        assert [c.text for c in together] == [c.text for c in alone]
    finally:
        await engine.aclose()


@pytest.mark.model
@pytest.mark.parametrize("weights", ["dense", "int4"])
def test_lean_on_the_mapped_safetensors_is_lean_on_the_model(bundled_model, tmp_path, weights):
    """`ModelWeights.from_dir` (the packed path's weights: no transformers model built) gives
    bit-identical logits to the same forward on the transformers model's tensors (its RoPE
    is computed without transformers' rotary module)."""
    mapped = ModelWeights.from_dir(bundled_model.path)
    assert mapped is not None and mapped.rotary is None
    ours = LeanLlama(mapped, weights=weights, cache_dir=str(tmp_path))
    # packing gave back the mapped pages it read (MADV_DONTNEED): read again, the same values
    name = "model.layers.0.mlp.down_proj.weight"
    assert torch.equal(mapped.tensors[name], bundled_model.model.state_dict()[name])
    theirs = LeanLlama(bundled_model.model, weights=weights, cache_dir=str(tmp_path))
    assert ours.packed == theirs.packed
    prompts = [_ids(bundled_model, p) for p in PROMPTS]
    with torch.inference_mode():
        kvs = []
        for lean in (ours, theirs):
            kv = BatchKV(len(lean.layers), dtype=lean.cache_dtype)
            for ids in prompts:
                logits, rows = lean.prefill(ids)
                kv.add_rows([rows])
            kvs.append((logits, kv))
        assert torch.equal(kvs[0][0], kvs[1][0])
        tokens = [1, 2, 3]
        for _ in range(3):
            got, want = ours.decode(tokens, kvs[0][1]), theirs.decode(tokens, kvs[1][1])
            assert torch.equal(got, want)
            for _, kv in kvs:
                kv.append_step()
            tokens = got.argmax(-1).tolist()


PACKED_START = """
import asyncio, sys
from core.config import Settings
from core.llm.engine.engine import Engine
from core.llm.models.loading import load_model
from core.llm.types import Request, user

settings = Settings(data_dir=sys.argv[1], model=sys.argv[2], device="cpu", threads=1)
loaded = load_model(settings.model, settings)


async def main():
    engine = Engine(loaded, kernel="lean", weights="auto")
    try:
        ask = Request(user("What is the capital of France?"), max_new_tokens=8)
        done = await engine.complete(ask)
        print(engine.lean.packed, "|", done.text)
    finally:
        await engine.aclose()


asyncio.run(main())
print("built:", loaded.hf.built, "| modeling_utils:", "transformers.modeling_utils" in sys.modules)
"""


@pytest.mark.model
def test_a_packed_start_never_imports_transformers_model_code(bundled_model, test_data_dir):
    """The engine's packed path (GURU_ENGINE_WEIGHTS=auto with native kernels) runs without
    the transformers model: `from_pretrained`'s model code (~130 MiB, seconds) is never
    imported, in a fresh process, from load to answer."""
    if native.unsupported() is not None:
        pytest.skip(f"no native kernels here: {native.unsupported()}")
    out = subprocess.run(
        [sys.executable, "-c", PACKED_START, str(test_data_dir), "smollm2-135m"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[2],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LM head | " in out.stdout and "Paris" in out.stdout, out.stdout
    assert "built: False | modeling_utils: False" in out.stdout, out.stdout
