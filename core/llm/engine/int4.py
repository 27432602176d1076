"""int4 packing of a model's 4-bit-block matrices, its cache beside the weights, and the
lean forward's linear layers (`Proj`) that use it.

A GGUF Q4_1 model dequantized to fp32 has matrices whose every group of 32 is `lo + d * q`
(q in 0..15, d and lo fp16). `packed` recovers q, d and lo exactly and stores them in the
native kernels' layout (`core.llm.engine.native.pack_q4`); `PackCache` keeps that packing next
to the weights so a restart skips the ~2-4 s of packing.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.llm.engine import native
from core.llm.engine.rows import Rows

__all__ = [
    "Error",
    "Linear",
    "Packed",
    "PackCache",
    "Proj",
    "packed",
    "packed_q8",
    "GROUP",
    "INT4_MAX_ROWS",
]

log = logging.getLogger(__name__)

GROUP = native.GROUP  # GGUF block size (Q4_0/Q4_1/Q8_0) and the int4 kernels' group size
INT4_MAX_ROWS = 32  # above this many rows a matmul is compute-bound: dense fp32 is faster

# uint8 [n / 16, k / 32, 320]: `core.llm.engine.native.pack_q4`'s layout, [.., .., 544]:
# `pack_q8`'s (8-bit codes: GGUF Q8_0 matrices, exactly), or [.., .., 352]: `pack_q5`'s
# (5-bit codes: GGUF Q5_0 matrices, exactly); the last size says which
Packed = torch.Tensor
Linear = tuple[torch.Tensor, "torch.Tensor | None"]  # a Linear's (weight, bias)
CHUNK_ROWS = 2048  # rows quantized at a time: bounds the temporary memory of packing
ROWS = "rows:"  # cache key prefix of `Rows` blocks (the embedding, an untied LM head)


def _tensor_spans(path: Path) -> dict[str, tuple[int, tuple[int, ...]]]:
    """{name: (byte offset of its data, shape)} from a safetensors file's header."""
    with open(path, "rb") as fh:
        size = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(size))
    return {
        name: (8 + size + entry["data_offsets"][0], tuple(entry["shape"]))
        for name, entry in header.items()
        if name != "__metadata__"
    }


def _q4_groups(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q, d, lo): the nearest `lo + d * q` per group (last dim), q in 0..15, with d and lo
    rounded to fp16 (a GGUF Q4_1 block stores exactly such fp16 values)."""
    lo, hi = w.amin(-1), w.amax(-1)
    d = ((hi - lo) / 15).half().float()
    lo = lo.half().float()
    q = torch.where(d[..., None] > 0, (w - lo[..., None]) / d[..., None], 0)
    return q.round_().clamp_(0, 15), d, lo


def _exact(w: torch.Tensor, rebuilt: torch.Tensor, d: torch.Tensor) -> bool:
    """Rebuilt equals `w` up to float rounding (far below one quantization step)."""
    err = (rebuilt - w).abs().amax(-1)
    return bool((err <= 1e-3 * d + 1e-7 * w.abs().amax(-1) + 1e-12).all())


class Error:
    """How far a re-quantized matrix is from its source: max and RMS of |w - w4|, over the
    max and RMS of |w| (accumulated over chunks and matrices)."""

    def __init__(self) -> None:
        self.max_err = self.max_w = self.sq_err = self.sq_w = 0.0
        self.count = 0

    def add(self, w: torch.Tensor, rebuilt: torch.Tensor) -> None:
        diff = rebuilt - w
        self.max_err = max(self.max_err, float(diff.abs().max()))
        self.max_w = max(self.max_w, float(w.abs().max()))
        self.sq_err += float(diff.double().square().sum())
        self.sq_w += float(w.double().square().sum())
        self.count += w.numel()

    def describe(self) -> str:
        rms = (self.sq_err / max(self.sq_w, 1e-30)) ** 0.5
        top = self.max_err / max(self.max_w, 1e-30)
        return f"max |err| {self.max_err:.3g} ({top:.2%} of max |w|), RMS err {rms:.2%} of RMS w"


def packed(weight: torch.Tensor, exact: bool = True, error: Error | None = None) -> Packed | None:
    """`weight` as nearest-4-bit groups of 32 in the native kernel's layout; with `exact`,
    None unless every group already is `lo + d * q`, q in 0..15 (a dequantized GGUF Q4_1).
    `error` accumulates how far the packing is from `weight`."""
    n, k = weight.shape
    if k % GROUP or n % native.BLOCK_ROWS or weight.dtype != torch.float32:
        return None
    packs = []
    for start in range(0, n, CHUNK_ROWS):
        rows = weight[start : start + CHUNK_ROWS]
        groups = rows.reshape(rows.shape[0], k // GROUP, GROUP)
        q, d, lo = _q4_groups(groups)
        if exact or error is not None:
            rebuilt = lo[..., None] + d[..., None] * q
            if exact and not _exact(groups, rebuilt, d):
                return None
            if error is not None:
                error.add(groups, rebuilt)
        packs.append(native.pack_q4(q.reshape(rows.shape[0], k), d, lo))
    return torch.cat(packs)


def packed_q8(weight: torch.Tensor, error: Error | None = None) -> Packed | None:
    """`weight` as the nearest 8-bit groups of 32 (`d * q`, q in -127..127, d = the group's
    max |w| / 127 in fp16) in `native.pack_q8`'s layout: for a GGUF Q6_K matrix (6-bit codes
    times a scale per 16) its error is <= half of d, about an eighth of Q6_K's own step.
    `error` accumulates how far the packing is from `weight`."""
    n, k = weight.shape
    if k % GROUP or n % native.BLOCK_ROWS or weight.dtype != torch.float32:
        return None
    packs = []
    for start in range(0, n, CHUNK_ROWS):
        groups = weight[start : start + CHUNK_ROWS].reshape(-1, k // GROUP, GROUP)
        d = (groups.abs().amax(-1) / 127).half().float()
        q = torch.where(d[..., None] > 0, groups / d[..., None], 0).round_().clamp_(-128, 127)
        if error is not None:
            error.add(groups, d[..., None] * q)
        packs.append(native.pack_q8(q.reshape(-1, k), d))
    return torch.cat(packs)


class PackCache:
    """The int4 packing of a model, kept next to its weights so a restart skips ~2-4 s.

    Valid only for the same weight files (names, sizes, mtimes) and the same packing format;
    anything else repacks and rewrites it.
    """

    NAME = "guru-lean-int4.safetensors"
    REQUANTIZED = "guru-lean-int4-requantized.safetensors"
    # 5-7: Q4_K from its blocks, re-quantized types; 8-10: q8, Q6_K; 11: embedding rows;
    # 12: Q5_0 as 5-bit codes
    FORMAT = "guru-lean-q4/12"

    def __init__(self, directory: str, requantized: bool = False) -> None:
        self.dir = Path(directory)
        # a packing with re-quantized matrices is another file: both choices stay cached
        self.path = self.dir / (self.REQUANTIZED if requantized else self.NAME)
        self.note = ""  # what the packing re-quantized (saved with it, for the logs)
        self.inexact: list[str] = []  # the groups it re-quantized
        self.rows: dict[str, Rows] = {}  # matrices kept as GGUF blocks (`core.llm.engine.rows`)

    def _stamp(self) -> str:
        ours = (self.NAME, self.REQUANTIZED)
        files = sorted(p for p in self.dir.glob("*.safetensors") if p.name not in ours)
        stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        return json.dumps({"format": self.FORMAT, "files": stats})

    def load(self, groups: dict[str, Any]) -> dict[str, Any] | None:
        try:
            if not self.path.is_file():
                return None
            from safetensors import safe_open

            with safe_open(str(self.path), framework="pt") as fh:
                meta = fh.metadata() or {}
                if meta.get("stamp") != self._stamp():
                    return None
                dense = set(json.loads(meta["dense"]))
                self.note = meta.get("note", "")
                self.inexact = json.loads(meta.get("inexact", "[]"))
                # rows are read from the file on lookup (`Rows.at`), never mapped
                tensors = {key: fh.get_tensor(key) for key in fh.keys() if ROWS not in key}
            self.rows = self._rows(json.loads(meta.get("rows", "{}")))
            out: dict[str, Any] = {}
            for name in groups:
                if name in dense:
                    out[name] = None
                elif name in tensors:
                    out[name] = tensors[name]
                else:
                    return None
            return out
        except Exception:  # noqa: BLE001 - a bad cache only costs a repack
            log.warning("ignoring the int4 cache %s", self.path, exc_info=True)
            return None

    def _rows(self, kinds: dict[str, list[Any]]) -> dict[str, Rows]:
        """{name: Rows} read from the file; a name saved as another's alias shares its rows."""
        spans = _tensor_spans(self.path)
        rows = {
            name: Rows.at(str(self.path), *spans[ROWS + name], kind, hidden)
            for name, (kind, hidden, alias) in kinds.items()
            if alias is None
        }
        rows.update({n: rows[alias] for n, (_, _, alias) in kinds.items() if alias is not None})
        return rows

    def save(
        self,
        packed: dict[str, Packed | None],
        note: str = "",
        inexact: list[str] | None = None,
        rows: dict[str, Rows] | None = None,
    ) -> None:
        from safetensors.torch import save_file

        tensors = {name: t.contiguous() for name, t in packed.items() if t is not None}
        dense = [name for name, t in packed.items() if t is None]
        kinds: dict[str, list[Any]] = {}
        rows = rows or {}
        for name, table in rows.items():
            # a tied LM head is the embedding's table: stored once
            alias = next((n for n in kinds if rows[n] is table), None)
            kinds[name] = [table.kind, table.hidden, alias]
            if alias is None and table.blocks is not None:
                tensors[ROWS + name] = torch.from_numpy(np.ascontiguousarray(table.blocks))
        meta = {
            "stamp": self._stamp(),
            "dense": json.dumps(dense),
            "note": note,
            "inexact": json.dumps(inexact or []),
            "rows": json.dumps(kinds),
        }
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        try:
            save_file(tensors, str(tmp), metadata=meta)
            os.replace(tmp, self.path)
            self.rows = self._rows(kinds)  # from the file from now on, as a warm start would
        except Exception:  # noqa: BLE001 - OSError or safetensors' own: only costs a repack
            log.warning("could not write the int4 cache %s", self.path, exc_info=True)
            tmp.unlink(missing_ok=True)


class Proj:
    """Several Linears on the same input (q/k/v, or gate/up): a list of outputs.

    Dense: one matmul each on the HF modules' own weights (fusing them would copy ~280 MB;
    the weights are mmapped from the safetensors file, so the originals would stay resident).
    With int4: one fused packed matmul for small row counts (decode), where reading the
    weights dominates; prompts use `prompt_weights` (bf16 copies, see the module docstring).
    """

    def __init__(
        self,
        linears: list[Linear],
        packed: Packed | None,
        kernel: native.Kernels | None = None,
        exact: bool = True,
    ):
        self.exact = exact  # the packing is the weights (not a 4-bit re-quantization of them)
        self.dense = list(linears)
        self.sizes = [w.shape[0] for w, _ in self.dense]
        # without native kernels the packing is not used: dense fp32 is exact (see isa.py)
        self.packed = packed if kernel is not None else None
        self.kernel = kernel
        # 8-bit codes (`native.pack_q8`: Q8_0 blocks, or Q5_0 grouped with Q8_0), 5-bit ones
        # (`pack_q5`: Q5_0 blocks) or 4-bit ones (`pack_q4`)
        self.q8 = packed is not None and packed.shape[-1] == native.Q8_GROUP_BYTES
        self.q5 = packed is not None and packed.shape[-1] == native.Q5_GROUP_BYTES
        self.bias: torch.Tensor | None = None
        if packed is not None and self.dense[0][1] is not None:
            self.bias = torch.cat([b for _, b in self.dense])

    @staticmethod
    def pack_q8(linears: list[Linear], error: Error | None = None) -> Packed | None:
        """The linears' fused weight as the nearest 8-bit groups (`packed_q8`)."""
        weights = [w for w, _ in linears]
        return packed_q8(torch.cat(weights) if len(weights) > 1 else weights[0], error)

    @staticmethod
    def pack(
        linears: list[Linear], approx: bool = False, error: Error | None = None
    ) -> Packed | None:
        """The linears' fused weight in int4: exact 4-bit groups, else None; with `approx`,
        the nearest 4-bit groups of any fp32 weight (`error` accumulates how far)."""
        weights = [w for w, _ in linears]
        weight = torch.cat(weights) if len(weights) > 1 else weights[0]
        return packed(weight, exact=not approx, error=error)

    def prompt_weights(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Weights for the matmuls of a prompt (many rows: compute-bound), made per layer per
        prefill pass (~7 MB here, reused by every prompt of the pass): bf16 on AVX512-BF16
        (~2.5x fp32's speed there); fp32 elsewhere: bf16 is no faster without native bf16 dot
        products, and its rounding flipped the bundled model's top token on AVX2 (504 -> 60).
        From an exact packing they are made from it (native/dequant.c), never from the
        model's fp32 tensors: those are mmapped, and reading them would make them resident.
        A re-quantized matrix keeps its dense weights here: prompts on the 4-bit copies failed
        the quality gate on Qwen2.5-0.5B (26/28; 28/28 with these)."""
        if self.packed is None or self.kernel is None:
            return self.dense
        bf16 = self.kernel.isa.bf16_prompts()
        if not self.exact:
            if not bf16:
                return self.dense
            return [
                (w.to(torch.bfloat16), None if b is None else b.bfloat16()) for w, b in self.dense
            ]
        dtype = torch.bfloat16 if bf16 else torch.float32
        k = self.dense[0][0].shape[1]
        if self.q8:
            weight = self.kernel.dequantize_q8(self.packed, sum(self.sizes), k, dtype)
        elif self.q5:
            weight = self.kernel.dequantize_q5(self.packed, sum(self.sizes), k, dtype)
        else:
            weight = self.kernel.dequantize(self.packed, sum(self.sizes), k, dtype)
        return [
            (w, None if b is None else b.to(dtype))
            for w, (_, b) in zip(weight.split(self.sizes), self.dense)
        ]

    def _decodes_int4(self, x: torch.Tensor) -> bool:
        """Packed, and few enough rows that reading the weights dominates."""
        return self.packed is not None and x.numel() // x.shape[-1] <= INT4_MAX_ROWS

    def fused(self, x: torch.Tensor) -> torch.Tensor:
        """The projections of `x` side by side in one tensor."""
        if self._decodes_int4(x):
            return self._int4(x)
        outs = self(x)
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)

    def __call__(self, x: torch.Tensor, weights: list[Any] | None = None) -> list[torch.Tensor]:
        """The projections of `x`; `weights` from `prompt_weights` for a prompt."""
        if weights is None and self._decodes_int4(x):
            out = self._int4(x)
            return list(out.split(self.sizes, dim=-1)) if len(self.sizes) > 1 else [out]
        weights = self.dense if weights is None else weights
        xw = x.to(weights[0][0].dtype)
        return [F.linear(xw, w, b).to(x.dtype) for w, b in weights]

    def _int4(self, x: torch.Tensor) -> torch.Tensor:
        assert self.packed is not None
        shape, n = x.shape, sum(self.sizes)
        x2 = x.reshape(-1, shape[-1])
        assert self.kernel is not None
        kernel = self.kernel
        matmul = kernel.matmul_q8 if self.q8 else kernel.matmul_q5 if self.q5 else kernel.matmul
        out = matmul(x2.float(), self.packed, n).to(x.dtype)
        if self.bias is not None:
            out = out + self.bias
        return out.view(*shape[:-1], -1)
