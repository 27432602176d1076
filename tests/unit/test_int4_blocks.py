"""The int4 packing of each GGUF block type, on blocks generated here: Q4_1 packs losslessly;
the others (Q4_K, Q5_0, Q6_K, Q8_0) are re-quantized to the nearest 4-bit groups of 32, within
half a step of each group; Q8_0 and Q5_0 pack exactly as 8-bit codes; and the source GGUF's
block types are read per module."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf", reason="the gguf package reads GGUF blocks")
from gguf import GGMLQuantizationType as T  # noqa: E402
from gguf import quants  # noqa: E402

from core.llm.engine import native  # noqa: E402
from core.llm.engine.blocks import hf_name, q4k_groups, q8_groups, source_types  # noqa: E402
from core.llm.engine.int4 import Error, packed, packed_q8  # noqa: E402

ROWS, COLS = 32, 512  # two 256-wide K-quant super-blocks per row


def _blocks(kind: T, seed: int = 0) -> np.ndarray:
    """Random rows of `kind` blocks (uint8 [ROWS, bytes]): quantized by gguf-py where it can,
    else random codes and sub-scales with sane fp16 super-block scales (K-quants)."""
    rng = np.random.default_rng(seed)
    if kind in (T.Q4_1, T.Q5_0, T.Q8_0):
        return quants.quantize((rng.standard_normal((ROWS, COLS)) * 0.05).astype(np.float32), kind)
    block, type_size = gguf.GGML_QUANT_SIZES[kind]
    raw = rng.integers(0, 256, (ROWS, COLS // block, type_size), dtype=np.uint8)
    scale = np.array([0.002], dtype=np.float16).view(np.uint8)
    if kind == T.Q4_K:  # d, dmin (fp16), 12 bytes of 6-bit scales and mins, 128 of codes
        raw[..., 0:2], raw[..., 2:4] = scale, np.array([0.001], dtype=np.float16).view(np.uint8)
    else:  # Q6_K: 128 bytes low bits, 64 high bits, 16 int8 scales, then d (fp16)
        raw[..., 208:210] = scale
    return raw.reshape(ROWS, -1)


def _weights(kind: T) -> torch.Tensor:
    return torch.from_numpy(quants.dequantize(_blocks(kind), kind).astype(np.float32))


def _rebuilt(pack: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q, d, lo = native.unpack_q4(pack, ROWS, COLS)
    groups = q.float().view(ROWS, -1, native.GROUP)
    return (lo[..., None] + d[..., None] * groups).view(ROWS, COLS), d


def test_q4_1_blocks_pack_losslessly():
    w = _weights(T.Q4_1)
    pack = packed(w, exact=True)
    assert pack is not None
    rebuilt, _ = _rebuilt(pack)
    torch.testing.assert_close(rebuilt, w, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("kind", [T.Q4_K, T.Q5_0, T.Q6_K, T.Q8_0], ids=lambda k: k.name)
def test_other_block_types_requantize_within_half_a_step(kind):
    w = _weights(kind)
    if kind != T.Q4_K:  # more than 16 levels per group of 32: not 4-bit blocks
        assert packed(w, exact=True) is None
    error = Error()
    pack = packed(w, exact=False, error=error)
    assert pack is not None
    rebuilt, d = _rebuilt(pack)
    err = (rebuilt - w).abs().view(ROWS, -1, native.GROUP).amax(-1)
    # half a step, plus the fp16 rounding of the group's offset and scale
    bound = 0.5 * d + 2**-10 * w.abs().view(ROWS, -1, native.GROUP).amax(-1) + 1e-7
    assert bool((err <= bound).all())
    assert error.max_err == pytest.approx(float(err.max()), rel=1e-6)
    assert error.count == w.numel() and "of max |w|" in error.describe()


def test_q4_k_blocks_unpack_to_their_own_codes_and_scales():
    """Q4_K sub-blocks are 4-bit codes with an fp32 scale and offset: exact in fp32; the
    layout's fp16 rounds them (by at most 2^-11 relative, far below a step)."""
    blocks = _blocks(T.Q4_K)
    w = torch.from_numpy(quants.dequantize(blocks, T.Q4_K).astype(np.float32))
    q, d, lo = q4k_groups(blocks)
    assert q.shape == w.shape and int(q.min()) >= 0 and int(q.max()) <= 15
    groups = q.float().view(ROWS, -1, native.GROUP)
    assert torch.equal((lo[..., None] + d[..., None] * groups).view_as(w), w)
    rebuilt, _ = _rebuilt(native.pack_q4(q, d, lo))
    # fp16 keeps 11 significant bits: d * q and lo each move by at most 2^-11 of themselves
    bound = 2**-11 * (15 * d + lo.abs()) * 1.001
    assert bool(((rebuilt - w).abs() <= bound.repeat_interleave(native.GROUP, 1)).all())


@pytest.mark.parametrize("kind", [T.Q8_0, T.Q5_0], ids=lambda k: k.name)
def test_q8_0_and_q5_0_blocks_pack_exactly_as_8bit_codes(kind):
    blocks = _blocks(kind)
    w = torch.from_numpy(quants.dequantize(blocks, kind).astype(np.float32))
    q, d = q8_groups(blocks, kind.name)
    low, high = (-128, 127) if kind == T.Q8_0 else (-16, 15)
    assert q.dtype == torch.int8 and q.shape == w.shape
    assert low <= int(q.min()) < 0 < int(q.max()) <= high
    pack = native.pack_q8(q, d)
    assert torch.equal(native.dequantize_q8(pack, ROWS, COLS, torch.float32), w)


@pytest.mark.parametrize("kind", [T.Q6_K, T.Q4_K], ids=lambda k: k.name)
def test_k_blocks_requantize_to_8bit_groups_within_half_their_step(kind):
    """Q6_K (64 levels per 16 columns), and Q4_K where it shares a fused group with Q6_K, to
    the nearest 8-bit groups of 32: within half a step of each group (its max |w| / 127,
    fp16), ~1/8 of Q6_K's own step."""
    w = _weights(kind)
    error = Error()
    pack = packed_q8(w, error)
    assert pack is not None
    q, d = native.unpack_q8(pack, ROWS, COLS)
    assert int(q.abs().max()) <= 127
    rebuilt = native.dequantize_q8(pack, ROWS, COLS, torch.float32)
    err = (rebuilt - w).abs().view(ROWS, -1, native.GROUP).amax(-1)
    assert bool((err <= 0.5 * d * 1.001 + 1e-9).all())
    assert error.max_err == pytest.approx(float(err.max()), rel=1e-6) and error.count == w.numel()


def test_q5_0_codes_use_all_32_levels():
    """Every 5-bit code, its fifth bit from qh included, round-trips (-16..15)."""
    codes = np.tile(np.arange(32), (ROWS, COLS // 32)).astype(np.float32)
    w = (codes - 16) * np.float32(0.01)  # each group's max |w| is at code 0: d = -0.01
    blocks = quants.quantize(w, T.Q5_0)
    q, d = q8_groups(blocks, "Q5_0")
    rebuilt = d.repeat_interleave(native.GROUP, 1) * q.float()
    want = torch.from_numpy(quants.dequantize(blocks, T.Q5_0).astype(np.float32))
    assert torch.equal(rebuilt, want)
    assert sorted(set(q[0, :32].tolist())) == list(range(-16, 16))


def test_gguf_names_map_to_transformers_modules():
    assert hf_name("blk.3.attn_q.weight") == "model.layers.3.self_attn.q_proj"
    assert hf_name("blk.11.ffn_down.weight") == "model.layers.11.mlp.down_proj"
    assert hf_name("output.weight") == "lm_head"
    assert hf_name("token_embd.weight") == "model.embed_tokens"
    assert hf_name("blk.0.attn_norm.weight") is None


def test_source_types_read_the_converted_models_gguf(tmp_path):
    source = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(source), "qwen2")
    q5 = _blocks(T.Q5_0)
    writer.add_tensor("blk.0.attn_q.weight", q5, raw_shape=q5.shape, raw_dtype=T.Q5_0)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(COLS, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    converted = tmp_path / "m"
    converted.mkdir()
    assert source_types(converted) == {}  # no marker: not converted from a GGUF
    (converted / "guru-source.json").write_text(json.dumps({"source": str(source)}))
    assert source_types(converted) == {"model.layers.0.self_attn.q_proj": "Q5_0"}
    source.unlink()
    assert source_types(converted) == {}  # the GGUF is gone: nothing is re-quantized
