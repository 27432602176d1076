"""A lean Llama forward for the engine's hot path, on the HF model's own weights.

transformers' forward spends about a third of a CPU decode step outside the matmuls: module
dispatch, a full attention mask rebuilt in every layer, logits for every prompt position.
This is the same computation written flat (nanoGPT-style): RMSNorm, RoPE, grouped-query
attention straight on the engine's right-aligned KV buffers (`core.llm.kv`), SwiGLU, and the
LM head for the last position only. The decode mask is one additive row per sequence, built
once per step and shared by every layer (nothing at all when no row is padded).

Weights are the HF model's: q/k/v and gate/up are fused into one matrix each at build time,
and the HF modules' parameters become views into the fused matrices, so nothing is stored
twice and the HF path (LoRA adapters through peft) keeps working on the same memory.

`weights="int4"` additionally packs matrices that are *exactly* 4-bit blocks (a GGUF Q4_1
dequantized to fp32: every group of 32 is `min + d * q`, q in 0..15) into torch's int4 CPU
kernel, and the Q8_0 tied embedding into two int4 halves; matrices that are not exactly
representable stay dense. The packed matmuls take bf16 activations (AVX512-BF16) and
accumulate in fp32; everything else (residual stream, norms, attention, KV cache) stays in
the model's dtype. Decode then reads ~80 MB of weights per step instead of ~540 MB.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["LeanLlama", "lean_unsupported", "cpu_has_bf16"]

log = logging.getLogger(__name__)

GROUP = 32  # GGUF block size (Q4_0/Q4_1/Q8_0) and the int4 kernel's group size here
SUPPORTED = ("llama", "qwen2")


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 dot products (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def lean_unsupported(model: Any) -> str | None:
    """Why the lean forward cannot run `model` (None when it can)."""
    config = getattr(model, "config", None)
    kind = getattr(config, "model_type", None)
    if kind not in SUPPORTED:
        return f"model type {kind!r} (lean supports {', '.join(SUPPORTED)})"
    if next(model.parameters()).device.type != "cpu":
        return "the model is not on the CPU"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r}"
    if getattr(config, "quantization_config", None) is not None:
        return "a bitsandbytes-quantized model"
    layer = model.model.layers[0]
    if getattr(layer.self_attn.o_proj, "bias", None) is not None:
        return "an o_proj bias"
    if getattr(layer.mlp.down_proj, "bias", None) is not None:
        return "an MLP bias"
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", False):
        return "sliding-window attention"
    return None


# -- linear layers -----------------------------------------------------------------------


class _Dense:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight, self.bias = weight, bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _Int4:
    """`x @ W.T` for W stored as int4 groups of 32 along the input (torch's CPU kernel).

    `parts` are (packed, scales_and_zeros) pairs whose results add up (one for 4-bit
    weights, two for 8-bit ones split into high and low nibbles).
    """

    def __init__(self, parts: list[tuple[torch.Tensor, torch.Tensor]], bias: torch.Tensor | None):
        self.parts, self.bias = parts, bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).to(torch.bfloat16)
        out = None
        for packed, scales in self.parts:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(x2, packed, GROUP, scales)
            out = y.to(x.dtype) if out is None else out + y.to(x.dtype)
        if self.bias is not None:
            out = out + self.bias
        return out.view(*shape[:-1], -1)


def _pack(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor):
    """(packed int4, scales_and_zeros) for w = (q - 8) * scale + zero; q [N, K] in 0..15."""
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.to(torch.int32).contiguous(), 1)
    scales = torch.stack([scale.t(), zero.t()], dim=-1).to(torch.bfloat16).contiguous()
    return packed, scales


def _as_q4(weight: torch.Tensor):
    """Int4 parts for a matrix made of `min + d * q` groups (q in 0..15), else None."""
    n, k = weight.shape
    if k % GROUP or weight.dtype != torch.float32:
        return None
    w = weight.view(n, k // GROUP, GROUP)
    lo, hi = w.amin(-1), w.amax(-1)
    d = (hi - lo) / 15
    q = torch.where(d[..., None] > 0, (w - lo[..., None]) / d[..., None], 0).round()
    if not _exact(w, lo[..., None] + d[..., None] * q, d):
        return None
    return [_pack(q.view(n, k), d, lo + 8 * d)]


def _as_q8(weight: torch.Tensor):
    """Int4 high/low parts for a matrix made of `d * q` groups (q in -128..127), else None."""
    n, k = weight.shape
    if k % GROUP or weight.dtype != torch.float32:
        return None
    w = weight.view(n, k // GROUP, GROUP)
    d = w.abs().amax(-1) / 127
    q = torch.where(d[..., None] > 0, w / d[..., None], 0).round()
    if q.min() < -128 or q.max() > 127 or not _exact(w, d[..., None] * q, d):
        return None
    u = (q + 128).to(torch.int32).view(n, k)  # 0..255 = 16 * high + low
    high, low = u // 16, u % 16
    # w = d * (16 * high + low - 128) = 16d * (high - 8) + (d * (low - 8) + 8d)
    return [_pack(high, 16 * d, torch.zeros_like(d)), _pack(low, d, 8 * d)]


def _exact(w: torch.Tensor, rebuilt: torch.Tensor, d: torch.Tensor) -> bool:
    """Rebuilt equals `w` up to float rounding (far below one quantization step)."""
    err = (rebuilt - w).abs().amax(-1)
    return bool((err <= 1e-3 * d + 1e-7 * w.abs().amax(-1) + 1e-12).all())


def _linear(weight: torch.Tensor, bias: torch.Tensor | None, int4: bool, q8: bool = False):
    if int4:
        parts = (_as_q8 if q8 else _as_q4)(weight)
        if parts is not None:
            return _Int4(parts, bias), True
    return _Dense(weight, bias), False


def _fuse(modules: list[torch.nn.Linear]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One matrix (and bias) for several Linears; their parameters become views into it."""
    base = modules[0].weight._base
    if base is not None and _views_of(base, modules):  # fused by an earlier build
        bias = modules[0].bias._base if modules[0].bias is not None else None
        return base, bias
    weight = torch.cat([m.weight.detach() for m in modules])
    biases = [m.bias for m in modules]
    bias = torch.cat([b.detach() for b in biases]) if biases[0] is not None else None
    start = 0
    for m in modules:
        rows = m.weight.shape[0]
        m.weight = torch.nn.Parameter(weight[start : start + rows], requires_grad=False)
        if bias is not None:
            m.bias = torch.nn.Parameter(bias[start : start + rows], requires_grad=False)
        start += rows
    return weight, bias


def _views_of(base: torch.Tensor, modules: list[torch.nn.Linear]) -> bool:
    start = 0
    for m in modules:
        w = m.weight
        if w._base is not base or w.data_ptr() != base[start:].data_ptr():
            return False
        start += w.shape[0]
    return start == base.shape[0]


@dataclass
class _Layer:
    ln1: torch.Tensor
    qkv: Any
    o: Any
    ln2: torch.Tensor
    gate_up: Any
    down: Any


# -- the model ---------------------------------------------------------------------------


class LeanLlama:
    """Prefill one prompt / decode one token per row, on `BatchKV` buffers."""

    def __init__(self, model: Any, weights: str = "dense") -> None:
        reason = lean_unsupported(model)
        if reason is not None:
            raise ValueError(f"The lean forward does not support {reason}.")
        config = model.config
        self.model = model
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.scale = self.head_dim**-0.5
        self.embed = model.model.embed_tokens.weight
        self.norm = model.model.norm.weight
        self.rotary = model.model.rotary_emb
        self.dtype = self.embed.dtype
        int4 = weights == "int4"
        packed = total = 0
        self.layers: list[_Layer] = []
        for block in model.model.layers:
            attn, mlp = block.self_attn, block.mlp
            qkv_w, qkv_b = _fuse([attn.q_proj, attn.k_proj, attn.v_proj])
            gu_w, _ = _fuse([mlp.gate_proj, mlp.up_proj])
            made = [
                _linear(qkv_w, qkv_b, int4),
                _linear(attn.o_proj.weight, None, int4),
                _linear(gu_w, None, int4),
                _linear(mlp.down_proj.weight, None, int4),
            ]
            packed += sum(ok for _, ok in made)
            total += len(made)
            self.layers.append(
                _Layer(
                    block.input_layernorm.weight,
                    made[0][0],
                    made[1][0],
                    block.post_attention_layernorm.weight,
                    made[2][0],
                    made[3][0],
                )
            )
        head = model.lm_head
        self.lm_head, head_packed = _linear(head.weight, getattr(head, "bias", None), int4, q8=True)
        if not head_packed and int4:
            self.lm_head, head_packed = _linear(head.weight, getattr(head, "bias", None), int4)
        self.packed = f"{packed}/{total} matrices" + (", LM head" if head_packed else "")
        if int4:
            log.info("lean forward: int4-packed %s (the rest stays dense)", self.packed)

    # -- pieces --

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # As LlamaRMSNorm: in fp32, then back to the input dtype before the weight.
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * h.to(x.dtype)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def _mlp(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        gate, up = layer.gate_up(x).chunk(2, dim=-1)
        return layer.down(F.silu(gate) * up)

    def _split(self, qkv: torch.Tensor, batch: int, length: int):
        """q [B, H, T, D], k and v [B, KV, T, D] from the fused projection [B, T, ...]."""
        h, kv, d = self.heads, self.kv_heads, self.head_dim
        q, k, v = qkv.split([h * d, kv * d, kv * d], dim=-1)
        q = q.view(batch, length, h, d).transpose(1, 2)
        k = k.view(batch, length, kv, d).transpose(1, 2)
        v = v.view(batch, length, kv, d).transpose(1, 2)
        return q, k, v

    # -- entry points --

    def prefill(self, ids: list[int]) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Logits of the last position [V] and each layer's (k, v) [1, KV, T, D]."""
        n = len(ids)
        x = self.embed[torch.tensor([ids])]
        positions = torch.arange(n).unsqueeze(0)
        cos, sin = self.rotary(x, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        for layer in self.layers:
            q, k, v = self._split(layer.qkv(self._rms(x, layer.ln1)), 1, n)
            q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
            kv.append((k, v))
            a = F.scaled_dot_product_attention(
                q, k, v, is_causal=n > 1, scale=self.scale, enable_gqa=self.kv_heads != self.heads
            )
            x = x + layer.o(a.transpose(1, 2).reshape(1, n, -1))
            x = x + self._mlp(layer, self._rms(x, layer.ln2))
        last = self._rms(x[:, -1], self.norm)
        return self.lm_head(last)[0], kv

    def decode(self, tokens: list[int], kv: Any) -> torch.Tensor:
        """One step for every row of `kv` (a BatchKV): logits [B, V]; writes each row's K/V."""
        b = len(tokens)
        x = self.embed[torch.tensor(tokens)].unsqueeze(1)  # [B, 1, hidden]
        positions = torch.tensor(kv.real_lengths).unsqueeze(1)
        cos, sin = self.rotary(x, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # [B, 1, 1, D]
        bias = kv.decode_bias(x.dtype)  # [B, 1, 1, T+1] or None
        g, kvh, d = self.heads // self.kv_heads, self.kv_heads, self.head_dim
        for layer, cache in zip(self.layers, kv.cache.layers):
            q, k, v = self._split(layer.qkv(self._rms(x, layer.ln1)), b, 1)
            q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
            keys, values = cache.update(k, v)  # [B, KV, T+1, D] views of the buffers
            # Grouped-query attention without repeating K/V: the G query heads that share
            # a KV head become G query rows against it.
            scores = torch.matmul(q.view(b, kvh, g, d), keys.transpose(-1, -2)) * self.scale
            if bias is not None:
                scores = scores + bias
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            a = torch.matmul(probs, values)  # [B, KV, G, D]
            x = x + layer.o(a.reshape(b, 1, -1))
            x = x + self._mlp(layer, self._rms(x, layer.ln2))
        return self.lm_head(self._rms(x[:, -1], self.norm))
