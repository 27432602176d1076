"""int4 packing of a model's 4-bit-block matrices, and its cache beside the weights.

A GGUF Q4_1 model dequantized to fp32 has matrices whose every group of 32 is `lo + d * q`
(q in 0..15, d and lo fp16). `packed` recovers q, d and lo exactly and stores them in the
native kernels' layout (`core.llm.engine.native.pack_q4`); `PackCache` keeps that packing next
to the weights so a restart skips the ~2-4 s of packing.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from core.llm.engine import native

__all__ = ["Packed", "PackCache", "packed", "GROUP"]

log = logging.getLogger(__name__)

GROUP = native.GROUP  # GGUF block size (Q4_0/Q4_1/Q8_0) and the int4 kernels' group size

Packed = torch.Tensor  # uint8 [n / 16, k / 32, 320]: `core.llm.engine.native.pack_q4`'s layout
CHUNK_ROWS = 2048  # rows quantized at a time: bounds the temporary memory of packing


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


def packed(weight: torch.Tensor, exact: bool = True) -> Packed | None:
    """`weight` as nearest-4-bit groups of 32 in the native kernel's layout; with `exact`,
    None unless every group already is `lo + d * q`, q in 0..15 (a dequantized GGUF Q4_1)."""
    n, k = weight.shape
    if k % GROUP or n % native.BLOCK_ROWS or weight.dtype != torch.float32:
        return None
    packs = []
    for start in range(0, n, CHUNK_ROWS):
        rows = weight[start : start + CHUNK_ROWS]
        groups = rows.reshape(rows.shape[0], k // GROUP, GROUP)
        q, d, lo = _q4_groups(groups)
        if exact and not _exact(groups, lo[..., None] + d[..., None] * q, d):
            return None
        packs.append(native.pack_q4(q.reshape(rows.shape[0], k), d, lo))
    return torch.cat(packs)


class PackCache:
    """The int4 packing of a model, kept next to its weights so a restart skips ~2-4 s.

    Valid only for the same weight files (names, sizes, mtimes) and the same packing format;
    anything else repacks and rewrites it.
    """

    NAME = "guru-lean-int4.safetensors"
    FORMAT = "guru-lean-q4/4"

    def __init__(self, directory: str) -> None:
        self.dir = Path(directory)
        self.path = self.dir / self.NAME

    def _stamp(self) -> str:
        files = sorted(p for p in self.dir.glob("*.safetensors") if p.name != self.NAME)
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
                tensors = {key: fh.get_tensor(key) for key in fh.keys()}
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

    def save(self, packed: dict[str, Packed | None]) -> None:
        from safetensors.torch import save_file

        tensors = {name: t.contiguous() for name, t in packed.items() if t is not None}
        dense = [name for name, t in packed.items() if t is None]
        meta = {"stamp": self._stamp(), "dense": json.dumps(dense)}
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        try:
            save_file(tensors, str(tmp), metadata=meta)
            os.replace(tmp, self.path)
        except Exception:  # noqa: BLE001 - OSError or safetensors' own: only costs a repack
            log.warning("could not write the int4 cache %s", self.path, exc_info=True)
            tmp.unlink(missing_ok=True)
