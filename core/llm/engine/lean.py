"""A lean Llama forward for the engine's hot path, on the HF model's own weights.

transformers' forward spends about a third of a CPU decode step outside the matmuls: module
dispatch, a full attention mask rebuilt in every layer, logits for every prompt position.
This is the same computation written flat (nanoGPT-style): RMSNorm, RoPE, grouped-query
attention straight on the engine's right-aligned KV buffers (`core.llm.engine.kv`), SwiGLU, and the
LM head for the last position only. The decode mask is one additive row per sequence, built
once per step and shared by every layer (nothing at all when no row is padded).

Weights are the HF model's own tensors, read in place and never modified, so the HF path
(LoRA adapters through peft) and training keep working on the same memory. (Fusing q/k/v and
gate/up into new matrices saved under 1% of an fp32 step and cost ~260 MB: the loaded
weights are mmapped from the safetensors file and stay resident.)

`weights="int4"` is for models whose matrices are 4-bit blocks (a GGUF Q4_1 dequantized to
fp32: every group of 32 is `min + d * q`, q in 0..15, d and min fp16). Codes, scales and
offsets pack losslessly (q/k/v and gate/up fused) for our native kernels
(`core.llm.engine.native`, AVX512-BF16 or AVX2+FMA+F16C, chosen at load): a 4-bit matmul
that shares one dequantization per weight among up to 8 rows (~2x torch's int4 kernel at a
batch of 8), and, when every layer packs, a whole decoder layer per call with attention over
an fp16 KV cache (`cache_dtype`). Where no native variant runs (no C compiler, no AVX2, or
GURU_ENGINE_ISA=portable) the dense fp32 weights are used: torch's int4 kernel rounds scales
and outputs to bf16 and failed the quality gate. Matrices of other quantized GGUF block types
(the Qwen2.5 presets) pack by type (`_pack`): Q4_K from its own codes; Q8_0 and Q5_0 exactly
as 8-bit codes with their fp16 scales (`native.pack_q8`, q8_int16.c); Q6_K to the nearest
8-bit groups; or, with `requantize`, all of them to the nearest 4-bit groups. The errors are
logged per type; matrices that were float in the source stay dense.
The LM head (the Q8_0 tied embedding) gets a nearest-4-bit approximation that only picks
candidates: each row's top EXACT_TOP logits are recomputed exactly, from the rows of the
head's own GGUF blocks (`core.llm.engine.rows`, as are embedding lookups: the mmapped fp32
tables are never touched, so they never become resident). Decode
reads ~85 MB of weights per step instead of ~540 MB. Prompts are compute-bound, so on
AVX512-BF16 their matmuls run in bf16 (~2.5x fp32) on per-layer copies made once per prefill
pass (made from the packing, so the mmapped fp32 tensors are never read after packing and
never become resident); elsewhere in fp32. Residual stream, norms and attention compute in
the model's dtype.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from core.llm.engine import native
from core.llm.engine.blocks import FLOAT_TYPES, Q8_TYPES, Source, q4k_groups, q8_groups
from core.llm.engine.int4 import INT4_MAX_ROWS, Error, Linear, PackCache, Proj
from core.llm.engine.memory import release_freed_memory
from core.llm.engine.rows import Rows
from core.llm.models.weights import ModelWeights

__all__ = ["LeanLlama", "lean_unsupported"]

log = logging.getLogger(__name__)

# GGUF block types that auto re-quantizes to the nearest 8-bit groups (`int4.packed_q8`):
# Q6_K's error there is ~1/8 of its own step (Qwen2.5's presets: half the down projections).
# Q4_K alone packs from its own 4-bit codes; in a fused group with Q6_K (the 1.5B's q/k/v:
# q, k Q4_K and v Q6_K) the group goes 8-bit, else it stayed dense and its whole decoder
# layer fell back to per-matrix kernels (14 of the 1.5B's 112 matrices).
Q8_REQUANTIZED = Q8_TYPES | {"Q6_K", "Q4_K"}
EXACT_TOP = 32  # with a packed LM head, the best logits per row are recomputed in fp32
SUPPORTED = ("llama", "qwen2")


def lean_unsupported(model: Any) -> str | None:
    """Why the lean forward cannot run `model` (a transformers model or `ModelWeights`;
    None when it can)."""
    params = model if isinstance(model, ModelWeights) else ModelWeights.of_model(model)
    config = params.config
    kind = getattr(config, "model_type", None)
    if kind not in SUPPORTED:
        return f"model type {kind!r} (lean supports {', '.join(SUPPORTED)})"
    if params.device.type != "cpu":
        return "the model is not on the CPU"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r}"
    if getattr(config, "quantization_config", None) is not None:
        return "a bitsandbytes-quantized model"
    if params.rotary is None and _rope_type(config) != "default":
        return f"RoPE type {_rope_type(config)!r} (without transformers' rotary module)"
    if "model.layers.0.self_attn.o_proj.bias" in params.tensors:
        return "an o_proj bias"
    if "model.layers.0.mlp.down_proj.bias" in params.tensors:
        return "an MLP bias"
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", False):
        return "sliding-window attention"
    return None


def _rope_type(config: Any) -> str:
    rope = getattr(config, "rope_parameters", None) or {}
    return rope.get("rope_type", "default")


class _Rope:
    """cos and sin of the default RoPE, computed exactly as transformers' rotary module does
    (`Qwen2RotaryEmbedding` / `LlamaRotaryEmbedding`, attention scaling 1)."""

    def __init__(self, config: Any, head_dim: int) -> None:
        base = config.rope_parameters["rope_theta"]
        arange = torch.arange(0, head_dim, 2, dtype=torch.float)
        self.inv_freq = 1.0 / (base ** (arange / head_dim))

    def __call__(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        freqs = positions[..., None].float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


# -- linear layers -----------------------------------------------------------------------


KV = tuple[torch.Tensor, torch.Tensor]


@dataclass
class _Layer:
    ln1: torch.Tensor
    qkv: Proj
    o: Proj
    ln2: torch.Tensor
    gate_up: Proj
    down: Proj


def _pack(
    params: ModelWeights, groups: dict[str, list[str]], source: Source, requantize: bool
) -> tuple[dict[str, Any], str, list[str]]:
    """Each layer group's int4 packing: exact where its matrices are 4-bit blocks (Q4_1);
    Q4_K's own codes, with its fp32 sub-block scales and offsets rounded to the layout's fp16;
    Q8_0 / Q5_0 blocks exactly, as 8-bit codes (`native.pack_q8`), unless `requantize`;
    else, with `requantize` and when every matrix of the group was a quantized block type in
    the source GGUF (`source.types`, by module name), the nearest 4-bit groups of 32 (the model
    is a quantized one already; `guru bench llm`'s quality gate measures what that costs);
    else None (dense).
    Also says what was not packed exactly, per source block type, with the error measured,
    and which groups were re-quantized to 4 bits (their prompts keep the dense weights)."""
    packed: dict[str, Any] = {}
    errors: dict[str, Error] = {}
    requantized: list[str] = []
    for name, modules in groups.items():
        if name == "lm_head":
            continue
        try:
            mods = [params.linear(m) for m in modules]
            packed[name] = Proj.pack(mods)
            kinds = sorted({source.types.get(m, "F32") for m in modules})
            if packed[name] is not None or FLOAT_TYPES.intersection(kinds):
                continue
            if kinds == ["Q4_K"]:
                error = errors.setdefault("Q4_K (its codes; scales rounded to fp16)", Error())
                packed[name] = _pack_q4k(modules, mods, source, error)
            if packed[name] is None and not requantize and Q8_TYPES.issuperset(kinds):
                packed[name] = _pack_q8(modules, mods, source)
                if packed[name] is None:
                    log.info("lean forward: %s's %s blocks do not rebuild its weights", name, kinds)
            if packed[name] is None and not requantize and Q8_REQUANTIZED.issuperset(kinds):
                error = errors.setdefault("+".join(kinds) + " (8-bit, re-quantized)", Error())
                # Not listed as re-quantized: its prompts use the packing too, like exact ones
                # (its error, ~0.5% RMS, is that of bf16 prompts); the mmapped fp32 stays unread.
                packed[name] = Proj.pack_q8(mods, error)
            if packed[name] is None and requantize:
                error = errors.setdefault("+".join(kinds) + " (re-quantized)", Error())
                packed[name] = Proj.pack(mods, approx=True, error=error)
                requantized.append(name)
        finally:  # packed: this process needs its fp32 pages no more (`drop_pages`)
            params.drop_pages(f"{m}.weight" for m in modules)
    note = "; ".join(f"{kind}: {err.describe()}" for kind, err in sorted(errors.items()))
    return packed, note, requantized


def _rows(params: ModelWeights, source: Source) -> dict[str, Rows]:
    """The embedding and the LM head as their GGUF blocks, where those rebuild them exactly
    (`core.llm.engine.rows`); a tied LM head shares the embedding's."""
    embed, head = params.tensors["model.embed_tokens.weight"], params.tensors["lm_head.weight"]
    rows = {"embed": Rows.from_source(source, "model.embed_tokens", embed)}
    if head.data_ptr() == embed.data_ptr() and head.shape == embed.shape:
        rows["lm_head"] = rows["embed"]
    else:
        rows["lm_head"] = Rows.from_source(source, "lm_head", head)
    return {name: table for name, table in rows.items() if table is not None}


def _pack_q4k(names: list[str], mods: list[Linear], source: Source, error: Error) -> Any:
    """Q4_K matrices packed from their GGUF blocks: each sub-block of 32 is already 4-bit
    codes with a scale and an offset; None unless the blocks rebuild the loaded weights."""
    parts = [q4k_groups(source.blocks(name)) for name in names]
    q, d, lo = (torch.cat([p[i] for p in parts]) for i in range(3))
    weight = torch.cat([w for w, _ in mods])
    if q.shape != weight.shape or weight.shape[0] % native.BLOCK_ROWS:
        return None
    group = (q.shape[0], -1, native.GROUP)
    exact = lo[..., None] + d[..., None] * q.view(group).float()
    if not torch.allclose(exact.view_as(weight), weight, rtol=1e-6, atol=0):
        return None  # not the tensor we loaded (a permuted layout): re-quantize instead
    d, lo = d.half().float(), lo.half().float()  # what the layout keeps
    error.add(weight.view(group), lo[..., None] + d[..., None] * q.view(group).float())
    return native.pack_q4(q, d, lo)


def _pack_q8(names: list[str], mods: list[Linear], source: Source) -> Any:
    """Q8_0 / Q5_0 matrices packed from their GGUF blocks with their fp16 scales: as 5-bit
    codes (`native.pack_q5`) when all are Q5_0, else as 8-bit codes (a Q5_0 code `q5 - 16` is
    an 8-bit one); exactly the loaded weights (checked), else None."""
    parts = [q8_groups(source.blocks(name), source.types[name]) for name in names]
    q, d = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    weight = torch.cat([w for w, _ in mods])
    if q.shape != weight.shape or weight.shape[0] % native.BLOCK_ROWS:
        return None
    exact = d[..., None] * q.view(q.shape[0], -1, native.GROUP).float()
    if not torch.equal(exact.view_as(weight), weight):
        return None  # not the tensor we loaded (a permuted layout): keep it dense
    if all(source.types[name] == "Q5_0" for name in names):
        return native.pack_q5(q + 16, d)
    return native.pack_q8(q, d)


class _PromptWeights:
    """A layer's prompt weights (`Proj.prompt_weights`) by matrix name, made on first use and
    dropped when asked: a long prompt's peak is its MLP, where the attention's and the other
    MLP matrix's weights need not be alive (~12 MiB of bf16 on Qwen2.5-0.5B)."""

    def __init__(self, layer: _Layer) -> None:
        self._layer = layer
        self._made: dict[str, list[Any]] = {}

    def __getitem__(self, name: str) -> list[Any]:
        if name not in self._made:
            self._made[name] = getattr(self._layer, name).prompt_weights()
        return self._made[name]

    def drop(self, *names: str) -> None:
        for name in names:
            self._made.pop(name, None)


# -- the model ---------------------------------------------------------------------------


class LeanLlama:
    """Prefill one prompt / decode one token per row, on `BatchKV` buffers."""

    def __init__(
        self,
        model: Any,
        weights: str = "dense",
        cache_dir: str | None = None,
        isa: str | None = None,
        requantize: bool = False,
    ) -> None:
        """`model`: a transformers model, or its `ModelWeights` (no transformers model code:
        what the engine's packed path runs on); `cache_dir`: where to keep the int4 packing
        between runs (the weights' directory);
        `isa`: the native kernel variant, as `native.load` takes it; `requantize`: int4 also
        re-quantizes matrices of other GGUF block types to 4 bits (`_pack`: on Qwen2.5-0.5B
        5x faster decode, but it did not pass the quality gate reliably)."""
        with torch.no_grad():
            self._build(model, weights, cache_dir, isa, requantize)
        release_freed_memory()  # what packing (or reading its cache) freed

    def _build(
        self, model: Any, weights: str, cache_dir: str | None, isa: str | None, requantize: bool
    ) -> None:
        params = model if isinstance(model, ModelWeights) else ModelWeights.of_model(model)
        reason = lean_unsupported(params)
        if reason is not None:
            raise ValueError(f"The lean forward does not support {reason}.")
        self.kernels = "none: dense weights"  # which native kernels run, and why
        self.requantized = ""  # which matrices int4 re-quantized from other GGUF blocks
        config = params.config
        tensors = params.tensors
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.scale = self.head_dim**-0.5
        self.embed = tensors["model.embed_tokens.weight"]
        self.norm = tensors["model.norm.weight"]
        self.rotary = params.rotary or _Rope(config, self.head_dim)
        self.dtype = self.embed.dtype
        blocks = [f"model.layers.{i}" for i in range(config.num_hidden_layers)]
        groups: dict[str, list[str]] = {"lm_head": ["lm_head"]}
        for block in blocks:
            name, attn, mlp = block.removeprefix("model."), f"{block}.self_attn", f"{block}.mlp"
            groups[f"{name}.qkv"] = [f"{attn}.q_proj", f"{attn}.k_proj", f"{attn}.v_proj"]
            groups[f"{name}.o"] = [f"{attn}.o_proj"]
            groups[f"{name}.gate_up"] = [f"{mlp}.gate_proj", f"{mlp}.up_proj"]
            groups[f"{name}.down"] = [f"{mlp}.down_proj"]
        packed: dict[str, Any] = {}
        inexact: list[str] = []  # re-quantized groups: prompts keep their dense weights
        rows: dict[str, Rows] = {}  # embedding / LM head rows read from GGUF blocks
        if weights == "int4":  # the packing only serves native kernels (see native/isa.py)
            choice = native.choose(isa)  # a forced variant this CPU cannot run raises here
            self.kernels = f"none: {choice.describe()}"
            if choice.isa is None:
                log.info("lean forward: no native kernels (%s): dense fp32", choice.why)
                weights = "dense"
        if weights == "int4":
            store = PackCache(cache_dir, requantize) if cache_dir else None
            loaded = store.load(groups) if store else None
            if loaded is None:
                source = Source(cache_dir)
                packed, self.requantized, inexact = _pack(params, groups, source, requantize)
                # The LM head only picks candidates (the top logits are recomputed exactly),
                # so a 4-bit approximation is enough, but only for an already-quantized model.
                quantized = any(pair is not None for pair in packed.values())
                if quantized:
                    packed["lm_head"] = Proj.pack([params.linear("lm_head")], approx=True)
                    rows = _rows(params, source)
                    params.drop_pages(["lm_head.weight", "model.embed_tokens.weight"])
                if store and quantized:
                    store.save(packed, self.requantized, inexact, rows)
                    rows = store.rows or rows  # read from the cache file once it is written
                    # and the packing too, mapped, as a warm start reads it (not a second
                    # copy in this process's heap: ~1 GB for Qwen2.5-1.5B)
                    packed = store.load(groups) or packed
            else:
                packed, self.requantized = loaded, store.note if store else ""
                inexact = store.inexact if store else []
                rows = store.rows if store else {}
        kernel = None
        if any(p is not None for p in packed.values()):
            kernel = native.load(cache_dir, isa)
            if kernel is None:
                self.kernels = "none: the native kernels did not build (see the log)"
        projs = {
            name: Proj(
                [params.linear(m) for m in modules], packed.get(name), kernel, name not in inexact
            )
            for name, modules in groups.items()
        }
        self.layers = [
            _Layer(
                ln1=tensors[f"{block}.input_layernorm.weight"],
                qkv=projs[f"{name}.qkv"],
                o=projs[f"{name}.o"],
                ln2=tensors[f"{block}.post_attention_layernorm.weight"],
                gate_up=projs[f"{name}.gate_up"],
                down=projs[f"{name}.down"],
            )
            for block in blocks
            for name in [block.removeprefix("model.")]
        ]
        self.lm_head = projs["lm_head"]
        # only with the native kernels: the rows serve the packed path (`rows.py`)
        self._embed_rows = rows.get("embed") if kernel is not None else None
        self._head_rows = rows.get("lm_head") if self.lm_head.packed is not None else None
        self.native = self._native_layers(kernel, config)
        count = sum(projs[name].packed is not None for name in groups if name != "lm_head")
        q8 = sum(projs[name].q8 for name in groups if name != "lm_head")
        q5 = sum(projs[name].q5 for name in groups if name != "lm_head")
        head = ", LM head" if self.lm_head.packed is not None else ""
        bits = [f"{q5} 5-bit" if q5 else "", f"{q8} 8-bit" if q8 else ""]
        wide = f" (of them {', '.join(b for b in bits if b)})" if q5 or q8 else ""
        self.packed = f"{count}/{len(groups) - 1} matrices{wide}{head}"
        self.int4 = count > 0  # decodes from packed weights
        # The native decode layers read an fp16 cache: what the engine's BatchKV stores.
        self.cache_dtype = torch.float16 if self.native is not None else None
        if weights == "int4":
            how = (
                "decode layers" if self.native else "per-matrix matmuls" if self.int4 else "unused"
            )
            if kernel is not None:
                self.kernels = kernel.description
            log.info("lean forward: int4-packed %s; native %s: %s", self.packed, how, self.kernels)
            if self.requantized:
                log.info("lean forward: int4 not exact for %s", self.requantized)

    def _native_layers(self, kernel: native.Kernels | None, config: Any) -> native.Kernels | None:
        """Set up whole-layer native decode steps when every layer matrix is packed and the
        attention kernel takes these heads; returns the kernels, or None for torch's ops."""
        fits = native.attention_fits(self.heads, self.kv_heads, self.head_dim)
        projs = [p for lay in self.layers for p in (lay.qkv, lay.o, lay.gate_up, lay.down)]
        norms = [w for layer in self.layers for w in (layer.ln1, layer.ln2)]
        if kernel is None or not fits or any(p.packed is None for p in projs):
            return None
        if any(w.dtype != torch.float32 or not w.is_contiguous() for w in norms):
            return None
        self._shape = native.LayerShape(
            hidden=config.hidden_size,
            heads=self.heads,
            kv_heads=self.kv_heads,
            head_dim=self.head_dim,
            intermediate=config.intermediate_size,
            eps=self.eps,
            scale=self.scale,
        )
        self._layer_pointers = [
            native.LayerWeights(
                ln1=layer.ln1.data_ptr(),
                ln2=layer.ln2.data_ptr(),
                qkv_bias=None if layer.qkv.bias is None else layer.qkv.bias.data_ptr(),
                qkv=layer.qkv.packed.data_ptr(),
                o=layer.o.packed.data_ptr(),
                gate_up=layer.gate_up.packed.data_ptr(),
                down=layer.down.packed.data_ptr(),
                # layer.c's Q8_QKV, Q8_O, Q8_GATE_UP, Q8_DOWN (also the bits of q5)
                q8=sum(bit for bit, p in zip((1, 2, 4, 8), self._projs(layer)) if p.q8),
                q5=sum(bit for bit, p in zip((1, 2, 4, 8), self._projs(layer)) if p.q5),
            )
            for layer in self.layers
        ]
        return kernel

    @staticmethod
    def _projs(layer: _Layer) -> tuple[Proj, ...]:
        return (layer.qkv, layer.o, layer.gate_up, layer.down)

    # -- pieces --

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:  # same math as LlamaRMSNorm in fp32
            return F.rms_norm(x, weight.shape, weight, self.eps)
        # As LlamaRMSNorm: in fp32, then back to the input dtype before the weight.
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * h.to(x.dtype)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def _mlp(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        gate, up = layer.gate_up(x)
        # in place: the same arithmetic without two more [T, intermediate] fp32 temporaries
        return layer.down(F.silu(gate, inplace=True).mul_(up))[0]

    def _split(self, qkv: list[torch.Tensor], batch: int, length: int):
        """q [B, H, T, D], k and v [B, KV, T, D] from the projections [B, T, ...]."""
        h, kv, d = self.heads, self.kv_heads, self.head_dim
        q, k, v = qkv
        q = q.view(batch, length, h, d).transpose(1, 2)
        k = k.view(batch, length, kv, d).transpose(1, 2)
        v = v.view(batch, length, kv, d).transpose(1, 2)
        return q, k, v

    # -- entry points --

    def prefill(self, ids: list[int]) -> tuple[torch.Tensor, list[KV]]:
        """Logits of the last position [V] and each layer's (k, v) [1, KV, T, D]."""
        return self.prefill_many([ids])[0]

    def prefill_many(self, prompts: list[list[int]]) -> list[tuple[torch.Tensor, list[KV]]]:
        """`prefill` for several prompts in one pass over the layers: each layer's weights
        are read (and in int4 mode converted to bf16) once for all the prompts, which are
        then run one at a time, so their activations stay in cache."""
        hidden = [self._embed(torch.tensor([ids])) for ids in prompts]  # [1, T, H]
        ropes = []
        for x in hidden:
            cos, sin = self.rotary(x, torch.arange(x.shape[1]).unsqueeze(0))
            ropes.append((cos.unsqueeze(1), sin.unsqueeze(1)))
        kv: list[list[KV]] = [[] for _ in prompts]
        for layer in self.layers:
            weights = _PromptWeights(layer)  # one layer's at a time, each made when first used
            for i, x in enumerate(hidden):
                n, final = x.shape[1], i == len(hidden) - 1
                q, k, v = self._split(layer.qkv(self._rms(x, layer.ln1), weights["qkv"]), 1, n)
                cos, sin = ropes[i]
                q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
                # kept as the batch cache stores them (fp16 for the native layers): half the
                # memory while a group of prompts waits to join, same values once copied in
                dt = self.cache_dtype or k.dtype
                kv[i].append((k.to(dt), v.to(dt)))
                a = F.scaled_dot_product_attention(
                    q,
                    k,
                    v,
                    is_causal=n > 1,
                    scale=self.scale,
                    enable_gqa=self.kv_heads != self.heads,
                )
                # nothing of the attention stays alive through the MLP, whose [T, 4864]
                # activations are a long prompt's peak
                del q, k, v
                x = x + layer.o(a.transpose(1, 2).reshape(1, n, -1), weights["o"])[0]
                del a
                if final:  # each weight is dropped after its last use
                    weights.drop("qkv", "o")
                gate, up = layer.gate_up(self._rms(x, layer.ln2), weights["gate_up"])
                if final:
                    weights.drop("gate_up")
                # in place: the same arithmetic without two more [T, 4864] fp32 temporaries
                # (40 MB for a 1,000-token prompt on Qwen2.5-0.5B)
                act = F.silu(gate, inplace=True).mul_(up)
                del gate, up
                hidden[i] = x + layer.down(act, weights["down"])[0]
                del act
        last = torch.cat([self._rms(x[:, -1], self.norm) for x in hidden])  # [P, H]
        logits = self._logits(last)
        release_freed_memory()  # the pass's weights and activations, kept by malloc otherwise
        return [(logits[i], rows) for i, rows in enumerate(kv)]

    def decode(self, tokens: list[int], kv: Any) -> torch.Tensor:
        """One step for every row of `kv` (a BatchKV): logits [B, V]; writes each row's K/V.
        With the native layers and an fp16 `kv` (`cache_dtype`), each layer is one call."""
        if self.native is not None and kv.dtype == torch.float16:
            return self._decode_native(tokens, kv)
        b = len(tokens)
        x = self._embed(torch.tensor(tokens)).unsqueeze(1)  # [B, 1, hidden]
        positions = torch.tensor(kv.real_lengths).unsqueeze(1)
        cos, sin = self.rotary(x, positions)  # [B, 1, D]
        # RoPE on the q and k heads at once, with rotate_half(x) * sin written as the two
        # halves of x swapped times [-sin, sin]: 4 ops per layer instead of 14.
        half = self.head_dim // 2
        signed_sin = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)
        bias = kv.decode_bias(x.dtype)  # [B, 1, 1, T+1] or None
        h, kvh, d = self.heads, self.kv_heads, self.head_dim
        g = h // kvh
        for layer, cache in zip(self.layers, kv.cache.layers):
            qkv = layer.qkv.fused(self._rms(x, layer.ln1))[:, 0]  # [B, (H + 2 KV) * D]
            qk = qkv[:, : (h + kvh) * d].view(b, h + kvh, d)
            swapped = qk.view(b, h + kvh, 2, half).flip(-2).view(b, h + kvh, d)
            qk = qk * cos + swapped * signed_sin
            # Grouped-query attention without repeating K/V: the G consecutive query heads
            # that share a KV head become G query rows against it.
            q = qk[:, :h].reshape(b, kvh, g, d)
            k = qk[:, h:].unsqueeze(2)  # [B, KV, 1, D]
            v = qkv[:, (h + kvh) * d :].view(b, kvh, 1, d)
            keys, values = cache.update(k, v)  # [B, KV, T+1, D] views of the buffers
            scores = torch.matmul(q, keys.transpose(-1, -2)) * self.scale
            if bias is not None:
                scores = scores + bias
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            a = torch.matmul(probs, values)  # [B, KV, G, D]
            x = x + layer.o(a.reshape(b, 1, -1))[0]
            x = x + self._mlp(layer, self._rms(x, layer.ln2))
        return self._logits(self._rms(x[:, -1], self.norm))

    def _decode_native(self, tokens: list[int], kv: Any) -> torch.Tensor:
        assert self.native is not None
        x = self._embed(torch.tensor(tokens))  # [B, hidden], updated in place
        positions = torch.tensor(kv.real_lengths).unsqueeze(1)
        cos, sin = self.rotary(x.unsqueeze(1), positions)  # [B, 1, D]
        cos, sin = cos[:, 0].contiguous(), sin[:, 0].contiguous()
        # each row's first real column once this step's token is in (rows are right-aligned)
        starts = torch.tensor([kv.length - n for n in kv.real_lengths])
        for weights, cache in zip(self._layer_pointers, kv.cache.layers):
            column = cache.add_column()
            self.native.decode_layer(
                x, self._shape, weights, cos, sin, cache.k_buf, cache.v_buf, column, starts
            )
        return self._logits(self._rms(x, self.norm))

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Embedding rows [*ids.shape, hidden], from GGUF blocks where the packing kept them
        (bit-identical; the fp32 table's pages are never touched)."""
        if self._embed_rows is not None:
            return self._embed_rows(ids)
        return F.embedding(ids, self.embed)

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        """LM head [B, V]. A packed head is a 4-bit approximation (logits off by up to ~3
        here): it only picks each row's top EXACT_TOP candidates, whose logits are then
        recomputed from the dense weights in the model's dtype, so the choice among them
        (greedy, and nearly all of the sampled mass) is as exact as a dense head's."""
        logits = self.lm_head(h)[0]
        if self.lm_head.packed is None or h.shape[0] > INT4_MAX_ROWS:
            return logits
        weight, bias = self.lm_head.dense[0]
        top = logits.topk(EXACT_TOP, dim=-1).indices  # [B, k]
        rows = weight[top] if self._head_rows is None else self._head_rows(top)
        exact = torch.einsum("bd,bkd->bk", h, rows)
        if bias is not None:
            exact = exact + bias[top]
        return logits.scatter_(-1, top, exact)
