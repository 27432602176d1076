"""The native kernels (core.llm.engine.native) against plain torch arithmetic on the same
numbers, on every instruction-set variant this CPU runs (the others skip, saying why)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from core.llm.engine import native
from core.llm.engine.native import isa

GROUP = native.GROUP


@pytest.fixture(scope="module", params=list(native.ISAS))
def kernels(request, tmp_path_factory):
    reason = native.isa_missing(request.param)
    if reason is not None:
        pytest.skip(f"native {request.param} kernels cannot run here: {reason}")
    loaded = native.load(tmp_path_factory.mktemp("native"), request.param)
    assert loaded is not None, "the CPU and compiler are fit, so the build must work"
    assert loaded.isa.name == request.param
    return loaded


def _rounded(kernels, x: torch.Tensor, int16: bool = False) -> torch.Tensor:
    """x as the kernel reads it: AVX512-BF16's q4 kernel rounds rows to bf16 (as torch's int4
    kernel does); the int16 kernels (every q8 one) quantize each group of 32 against its
    largest magnitude."""
    if kernels.isa.name == "avx512bf16" and not int16:
        return x.bfloat16().float()
    m, k = x.shape
    groups = x.reshape(m, k // GROUP, GROUP)
    top = groups.abs().amax(-1, keepdim=True)
    inv = torch.where(top > 0, 32767.0 / top, torch.zeros_like(top))
    return ((groups * inv).round() * (top / 32767.0)).reshape(m, k)


def _random_q4(n: int, k: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k), generator=gen)
    d = (torch.rand(n, k // GROUP, generator=gen) * 0.02).half().float()
    lo = (-torch.rand(n, k // GROUP, generator=gen) * 0.15).half().float()
    dense = lo.repeat_interleave(GROUP, 1) + d.repeat_interleave(GROUP, 1) * q
    return q, d, lo, dense


def test_packing_round_trips_codes_scales_and_offsets():
    q, d, lo, _ = _random_q4(48, 96)
    packed = native.pack_q4(q, d, lo)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 3, native.GROUP_BYTES)
    q2, d2, lo2 = native.unpack_q4(packed, 48, 96)
    assert torch.equal(q2.long(), q) and torch.equal(d2, d) and torch.equal(lo2, lo)


@pytest.mark.parametrize("rows", [1, 3, 8, 11])
def test_q4_matmul_equals_the_dequantized_weights(kernels, rows):
    q, d, lo, dense = _random_q4(96, 160, seed=rows)
    x = torch.randn(rows, 160, generator=torch.Generator().manual_seed(1))
    x[0, :GROUP] = 0  # an all-zero group (no scale to divide by)
    got = kernels.matmul(x, native.pack_q4(q, d, lo), 96)
    want = _rounded(kernels, x) @ dense.t()
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_q4_matmul_on_model_sized_matrices(kernels):
    """Many groups and blocks (576 -> 1536, SmolLM2's gate/up width), on 1 and 8 rows."""
    q, d, lo, dense = _random_q4(1536, 576, seed=5)
    packed = native.pack_q4(q, d, lo)
    x = torch.randn(8, 576, generator=torch.Generator().manual_seed(2))
    for rows in (1, 8):
        want = _rounded(kernels, x[:rows]).double() @ dense.t().double()
        got = kernels.matmul(x[:rows], packed, 1536)
        torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-5)


def test_q4_matmul_rows_do_not_depend_on_their_batch(kernels):
    """Batched decoding must give each sequence exactly what it gets alone."""
    q, d, lo, _ = _random_q4(64, 128, seed=7)
    packed = native.pack_q4(q, d, lo)
    x = torch.randn(11, 128)
    together = kernels.matmul(x, packed, 64)
    alone = torch.cat([kernels.matmul(x[i : i + 1], packed, 64) for i in range(11)])
    assert torch.equal(together, alone)


def test_q4_matmul_refuses_mismatched_shapes(kernels):
    q, d, lo, _ = _random_q4(32, 64)
    packed = native.pack_q4(q, d, lo)
    with pytest.raises(ValueError, match="do not match"):
        kernels.matmul(torch.randn(2, 96), packed, 32)


def _random_q8(n: int, k: int, seed: int = 0, low: int = -128, high: int = 128):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(low, high, (n, k), generator=gen)
    d = (torch.rand(n, k // GROUP, generator=gen) * 0.002).half().float()
    return q, d, d.repeat_interleave(GROUP, 1) * q


def test_q8_packing_round_trips_codes_and_scales():
    q, d, dense = _random_q8(48, 96)
    packed = native.pack_q8(q, d)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 3, native.Q8_GROUP_BYTES)
    q2, d2 = native.unpack_q8(packed, 48, 96)
    assert q2.dtype == torch.int8 and torch.equal(q2.long(), q) and torch.equal(d2, d)
    assert torch.equal(native.dequantize_q8(packed, 48, 96, torch.float32), dense)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_q8_dequant_kernel_equals_torchs(kernels, dtype):
    """A prompt's weights from the 8-bit packing (dequant.c): bit for bit what torch makes,
    extreme codes and both dtypes included (bf16: round to nearest even)."""
    q, d, _ = _random_q8(96, 160, seed=3)
    q[:16, :GROUP], q[16:32, :GROUP] = -128, 127
    packed = native.pack_q8(q, d)
    got = kernels.dequantize_q8(packed, 96, 160, dtype)
    assert got.dtype == dtype and torch.equal(got, native.dequantize_q8(packed, 96, 160, dtype))
    with pytest.raises(ValueError, match="do not match"):
        kernels.dequantize_q8(packed, 96, 192)


@pytest.mark.parametrize("rows", [1, 3, 8, 11])
def test_q8_matmul_equals_the_dequantized_weights(kernels, rows):
    q, d, dense = _random_q8(96, 160, seed=rows)
    x = torch.randn(rows, 160, generator=torch.Generator().manual_seed(1))
    x[0, :GROUP] = 0  # an all-zero group (no scale to divide by)
    got = kernels.matmul_q8(x, native.pack_q8(q, d), 96)
    want = _rounded(kernels, x, int16=True).double() @ dense.t().double()
    # the int32 sums (up to 2^27 here) round to fp32 once per group: 2^-24 relative
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_q8_matmul_on_model_sized_matrices_and_extreme_codes(kernels):
    """Qwen2.5-0.5B's gate/up shape (896 -> 2 x 4864), codes at -128 and 127, 1 and 8 rows."""
    q, d, dense = _random_q8(9728, 896, seed=5)
    q[:16, :GROUP], q[16:32, :GROUP] = -128, 127
    dense = d.repeat_interleave(GROUP, 1) * q
    packed = native.pack_q8(q, d)
    x = torch.randn(8, 896, generator=torch.Generator().manual_seed(2))
    for rows in (1, 8):
        want = _rounded(kernels, x[:rows], int16=True).double() @ dense.t().double()
        got = kernels.matmul_q8(x[:rows], packed, 9728)
        torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-5)


def test_q8_matmul_refuses_mismatched_shapes(kernels):
    q, d, _ = _random_q8(32, 64)
    packed = native.pack_q8(q, d)
    with pytest.raises(ValueError):
        kernels.matmul_q8(torch.randn(2, 64), packed, 48)
    with pytest.raises(ValueError):
        kernels.matmul_q8(torch.randn(2, 64), native.pack_q4(q.clamp(0, 15), d, d), 32)


def _random_q5(n: int, k: int, seed: int = 0):
    """GGUF Q5_0 groups: codes 0..31, w = d * (q - 16); every code present, both ends in
    whole groups."""
    q, d, _ = _random_q8(n, k, seed, 0, 32)
    q[:16, :GROUP], q[16:32, :GROUP] = 0, 31
    return q, d, d.repeat_interleave(GROUP, 1) * (q - 16)


def test_q5_packing_round_trips_codes_and_scales():
    """The 4-bit plane, the 1-bit plane and the scales give back every code exactly."""
    q, d, _ = _random_q5(48, 96)
    packed = native.pack_q5(q, d)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 3, native.Q5_GROUP_BYTES)
    q2, d2 = native.unpack_q5(packed, 48, 96)
    assert torch.equal(q2.long(), q) and torch.equal(d2, d)
    # the same group's codes as llama.cpp's Q5_0 would split them: low nibble, high bit
    assert torch.equal((q2 & 15).long(), q & 15) and torch.equal((q2 >> 4).long(), q >> 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_q5_dequant_kernel_equals_torchs(kernels, dtype):
    """A prompt's weights from the 5-bit packing: bit for bit d * (q - 16) as torch makes it
    (and what the 8-bit packing of the same codes gives)."""
    q, d, dense = _random_q5(96, 160, seed=3)
    got = kernels.dequantize_q5(native.pack_q5(q, d), 96, 160, dtype)
    assert got.dtype == dtype and torch.equal(got, dense.to(dtype))
    as_q8 = kernels.dequantize_q8(native.pack_q8(q - 16, d), 96, 160, dtype)
    assert torch.equal(got, as_q8)
    with pytest.raises(ValueError, match="do not match"):
        kernels.dequantize_q5(native.pack_q5(q, d), 96, 192)


@pytest.mark.parametrize("rows", [1, 3, 8, 11])
def test_q5_matmul_equals_the_dequantized_weights(kernels, rows):
    """Against plain torch arithmetic on d * (q - 16), and bit-identical to the 8-bit kernel
    on the same codes (the int32 sums are exact either way)."""
    q, d, dense = _random_q5(96, 160, seed=rows)
    x = torch.randn(rows, 160, generator=torch.Generator().manual_seed(1))
    x[0, :GROUP] = 0  # an all-zero group (no scale to divide by)
    got = kernels.matmul_q5(x, native.pack_q5(q, d), 96)
    want = _rounded(kernels, x, int16=True).double() @ dense.t().double()
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    assert torch.equal(got, kernels.matmul_q8(x, native.pack_q8(q - 16, d), 96))


def test_q5_matmul_on_model_sized_matrices(kernels):
    """Qwen2.5-0.5B's gate/up shape (896 -> 2 x 4864), 1 and 8 rows."""
    q, d, dense = _random_q5(9728, 896, seed=5)
    packed = native.pack_q5(q, d)
    x = torch.randn(8, 896, generator=torch.Generator().manual_seed(2))
    for rows in (1, 8):
        want = _rounded(kernels, x[:rows], int16=True).double() @ dense.t().double()
        got = kernels.matmul_q5(x[:rows], packed, 9728)
        torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-5)


def test_q5_matmul_refuses_mismatched_shapes(kernels):
    q, d, _ = _random_q5(32, 64)
    with pytest.raises(ValueError):
        kernels.matmul_q5(torch.randn(2, 64), native.pack_q5(q, d), 48)
    with pytest.raises(ValueError):
        kernels.matmul_q5(torch.randn(2, 64), native.pack_q8(q - 16, d), 32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dequantize_rebuilds_the_packed_weights(kernels, dtype):
    """A prompt's dense weights come from the packing: lo + d * q (d * q is exact in fp32,
    so there is one rounding, fused or not), then bf16's round-to-nearest-even."""
    q, d, lo, dense = _random_q4(48, 96, seed=3)
    got = kernels.dequantize(native.pack_q4(q, d, lo), 48, 96, dtype)
    assert got.dtype == dtype and torch.equal(got, dense.to(dtype))
    with pytest.raises(ValueError, match="do not match"):
        kernels.dequantize(native.pack_q4(q, d, lo), 32, 96)


def _reference_attention(q, k_buf, v_buf, length, starts, scale):
    heads, kv_heads = q.shape[1], k_buf.shape[1]
    out = torch.empty_like(q)
    for b, start in enumerate(starts.tolist()):
        keys = k_buf[b, :, start:length].float().repeat_interleave(heads // kv_heads, 0)
        values = v_buf[b, :, start:length].float().repeat_interleave(heads // kv_heads, 0)
        probs = (torch.einsum("hd,htd->ht", q[b], keys) * scale).softmax(-1)
        out[b] = torch.einsum("ht,htd->hd", probs, values)
    return out


@pytest.mark.parametrize("heads,kv_heads,dim", [(9, 3, 64), (4, 4, 32), (8, 2, 128)])
def test_attention_over_fp16_cache_matches_softmax_attention(kernels, heads, kv_heads, dim):
    gen = torch.Generator().manual_seed(heads)
    batch, capacity, length = 5, 80, 53
    q = torch.randn(batch, heads, dim, generator=gen) * 3  # peaked scores test the softmax
    k_buf = torch.randn(batch, kv_heads, capacity, dim, generator=gen).half()
    v_buf = torch.randn(batch, kv_heads, capacity, dim, generator=gen).half()
    starts = torch.tensor([0, 1, 17, 52, 36])  # left padding per row; one row of one token
    got = kernels.attend(q, k_buf, v_buf, length, starts, dim**-0.5)
    want = _reference_attention(q, k_buf, v_buf, length, starts, dim**-0.5)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_attention_ignores_columns_outside_each_row(kernels):
    q = torch.randn(2, 2, 16)
    k_buf = torch.randn(2, 1, 10, 16).half()
    v_buf = torch.randn(2, 1, 10, 16).half()
    starts = torch.tensor([3, 6])
    before = kernels.attend(q, k_buf, v_buf, 8, starts, 0.25)
    k_buf[0, :, :3], v_buf[0, :, :3] = 1e4, 1e4  # padding of row 0
    k_buf[:, :, 8:], v_buf[:, :, 8:] = 1e4, 1e4  # capacity beyond the length
    assert torch.equal(kernels.attend(q, k_buf, v_buf, 8, starts, 0.25), before)


def test_attention_refuses_unsupported_head_sizes(kernels):
    q = torch.randn(1, 2, 24)
    buf = torch.zeros(1, 2, 4, 24, dtype=torch.float16)
    with pytest.raises(ValueError, match="does not support"):
        kernels.attend(q, buf, buf, 2, torch.tensor([0]), 1.0)


def test_kernels_give_the_same_numbers_on_several_threads(kernels):
    """torch's thread count splits the work (OpenMP); each output keeps its arithmetic."""
    q, d, lo, _ = _random_q4(256, 192, seed=11)
    packed = native.pack_q4(q, d, lo)
    x = torch.randn(6, 192)
    cache = torch.randn(6, 3, 40, 64).half()
    query, starts = torch.randn(6, 9, 64), torch.tensor([0, 3, 9, 20, 38, 1])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = kernels.matmul(x, packed, 256), kernels.attend(query, cache, cache, 39, starts, 0.125)
        torch.set_num_threads(2)
        two = kernels.matmul(x, packed, 256), kernels.attend(query, cache, cache, 39, starts, 0.125)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


def _flags(monkeypatch, flags: str) -> None:
    monkeypatch.setattr(isa, "cpu_flags", lambda: frozenset(flags.split()))


def test_choice_follows_the_cpu_flags(monkeypatch):
    monkeypatch.delenv(native.ENV, raising=False)
    monkeypatch.setattr(isa, "compiler", lambda: "cc")
    _flags(monkeypatch, "sse2 avx avx2 fma f16c")
    assert isa.choose().name == "avx2"
    assert native.describe().startswith("avx2+fma (no avx512f, avx512bw, avx512vl, avx512_vnni")
    _flags(monkeypatch, "avx2 fma f16c avx512f avx512bw avx512vl")  # AVX-512 without BF16
    assert isa.choose().name == "avx2"
    _flags(monkeypatch, "avx2 fma f16c avx_vnni")
    assert isa.choose().name == "avx2vnni"
    _flags(monkeypatch, "avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni")
    assert isa.choose().name == "avx512vnni" and not isa.ISAS["avx512vnni"].bf16_prompts()
    _flags(monkeypatch, "avx2 fma f16c avx512f avx512bw avx512vl avx512_bf16")
    assert isa.choose().name == "avx512bf16"
    _flags(monkeypatch, "avx2 fma f16c avx512f avx512bw avx512vl avx512_bf16 avx512_vnni")
    assert isa.choose().name == "avx512vnni" and isa.ISAS["avx512vnni"].bf16_prompts()
    _flags(monkeypatch, "avx fma")  # pre-AVX2, or not x86 at all
    choice = isa.choose()
    assert choice.name == native.PORTABLE and "no avx2, f16c" in choice.why
    monkeypatch.setattr(isa, "compiler", lambda: None)
    _flags(monkeypatch, "avx2 fma f16c avx512f avx512bw avx512vl avx512_bf16")
    assert isa.choose().why == "no C compiler (cc/gcc) on PATH"


def test_forcing_a_variant_the_cpu_lacks_is_a_clear_error(monkeypatch, tmp_path):
    _flags(monkeypatch, "avx2 fma f16c")
    monkeypatch.setenv(native.ENV, "avx512bf16")
    with pytest.raises(native.IsaUnavailable, match="lacks avx512f"):
        native.load(tmp_path)
    assert native.unsupported() is not None and "lacks" in native.describe()
    assert native.describe("auto").startswith("avx2+fma")
    monkeypatch.setenv(native.ENV, "sse9")
    with pytest.raises(native.IsaUnavailable, match="not one of"):
        isa.choose()
    monkeypatch.setenv(native.ENV, "portable")
    assert native.load(tmp_path) is None and native.describe().startswith("portable")


@pytest.mark.parametrize("name", list(native.ISAS))
def test_forcing_a_variant_loads_it(monkeypatch, tmp_path, name):
    reason = native.isa_missing(name)
    if reason is not None:
        pytest.skip(f"{name}: {reason}")
    monkeypatch.setenv(native.ENV, name)
    loaded = native.load(tmp_path)
    assert loaded is not None and loaded.isa.name == name
    assert native.describe() == f"{native.ISAS[name].label} (forced by {native.ENV})"
    assert loaded.description == native.describe()
    monkeypatch.setenv(native.ENV, "portable")  # an explicit choice wins over the variable
    assert native.load(tmp_path, name) is loaded


def test_a_variant_that_does_not_build_falls_back_to_the_next(monkeypatch, tmp_path):
    """An old compiler may lack -mavxvnni: auto then takes the next variant; forced, none."""
    if native.isa_missing("avx2") is not None:
        pytest.skip(f"avx2: {native.isa_missing('avx2')}")
    monkeypatch.setattr(isa, "cpu_flags", lambda: frozenset("avx2 fma f16c avx_vnni".split()))
    broken = dataclasses.replace(isa.ISAS["avx2vnni"], cc_flags=("-mno-such-flag",))
    monkeypatch.setitem(isa.ISAS, "avx2vnni", broken)
    monkeypatch.delenv(native.ENV, raising=False)
    loaded = native.load(tmp_path)
    assert loaded is not None and loaded.isa.name == "avx2"
    assert loaded.description == "avx2+fma (avx2vnni did not build)"
    assert native.load(tmp_path, "avx2vnni") is None
