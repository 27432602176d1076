"""Which GGUF block type each matrix of a converted model came from.

A model converted from a `.gguf` (core/llm/models/convert.py) is an fp32 HF directory whose
marker file names the source. The int4 packing needs to know which matrices were quantized
there: a Q4_1 matrix packs losslessly from its fp32 values, and any other quantized block type
(Q4_K, Q5_0, Q6_K, Q8_0, ...) may be re-quantized to 4 bits at load, because the model the
GGUF ships is already quantized; a matrix that was F32/F16/BF16 in the source never is.
Only the GGUF's header is read (gguf.GGUFReader maps the file; no tensor data is touched).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "FLOAT_TYPES",
    "Q8_TYPES",
    "Source",
    "source_types",
    "hf_name",
    "q4k_groups",
    "q8_groups",
]

log = logging.getLogger(__name__)

MARKER = "guru-source.json"  # core.llm.models.convert.MARKER (not imported: no cycle)
FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})
Q8_TYPES = frozenset({"Q8_0", "Q5_0"})  # exactly `d * q`, q an int8 code: `q8_groups`

# GGUF tensor names (llama.cpp's) -> transformers' module names, for Llama and Qwen2.
_LAYER = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_TOP = {"token_embd": "model.embed_tokens", "output": "lm_head"}
_BLOCK = re.compile(r"blk\.(\d+)\.(\w+)\.weight")


def hf_name(gguf_name: str) -> str | None:
    """The transformers module name of a GGUF weight (None for what we do not map)."""
    match = _BLOCK.fullmatch(gguf_name)
    if match:
        part = _LAYER.get(match.group(2))
        return f"model.layers.{match.group(1)}.{part}" if part else None
    base = gguf_name.removesuffix(".weight")
    return _TOP.get(base) if base != gguf_name else None


class Source:
    """The source GGUF of a converted model: each module's block type, and its raw blocks."""

    def __init__(self, directory: str | Path | None) -> None:
        self.types: dict[str, str] = {}  # module name -> GGUF block type name
        self._tensors: dict[str, Any] = {}
        if not directory:
            return
        try:
            source = Path(json.loads((Path(directory) / MARKER).read_text())["source"])
            if not source.is_file():
                return
            import gguf

            for tensor in gguf.GGUFReader(str(source)).tensors:
                name = hf_name(tensor.name)
                if name is not None:
                    self.types[name] = tensor.tensor_type.name
                    self._tensors[name] = tensor
        except Exception:  # noqa: BLE001 - any failure only means: no re-quantization
            log.info("no GGUF block types for %s", directory, exc_info=True)
            self.types, self._tensors = {}, {}

    def blocks(self, name: str) -> np.ndarray:
        """Module `name`'s raw blocks, uint8 [rows, bytes per row] (mapped from the file)."""
        data = np.asarray(self._tensors[name].data)
        return data.reshape(data.shape[0], -1).view(np.uint8)


def source_types(directory: str | Path | None) -> dict[str, str]:
    """{module name: GGUF block type name} for the model converted into `directory`; empty when
    it was not converted from a GGUF, or the GGUF is gone or unreadable (then nothing is
    re-quantized)."""
    return Source(directory).types


def q4k_groups(blocks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q, d, lo) of Q4_K rows (uint8 [rows, 144 per 256 columns]): each sub-block of 32 is
    `lo + d * q`, q in 0..15, with d = d_super * sc and lo = -dmin_super * m in fp32 (6-bit sc
    and m; llama.cpp's block_q4_K, unpacked as gguf.quants.Q4_K does)."""
    rows = blocks.shape[0]
    b = blocks.reshape(-1, 144)
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
    dmin = b[:, 2:4].copy().view(np.float16).astype(np.float32)
    s = b[:, 4:16].reshape(-1, 3, 4)
    lo6, hi6, mix = s[:, 0], s[:, 1], s[:, 2]
    sc = np.concatenate([lo6 & 0x3F, (mix & 0x0F) | ((lo6 >> 2) & 0x30)], axis=-1)
    m = np.concatenate([hi6 & 0x3F, (mix >> 4) | ((hi6 >> 2) & 0x30)], axis=-1)
    qs = b[:, 16:].reshape(-1, 4, 1, 32) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1)
    q = (qs & 0x0F).reshape(rows, -1)
    scale = (d * sc.astype(np.float32)).reshape(rows, -1)
    offset = -(dmin * m.astype(np.float32)).reshape(rows, -1)
    return torch.from_numpy(q.astype(np.int64)), torch.from_numpy(scale), torch.from_numpy(offset)


def q8_groups(blocks: np.ndarray, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(q int8, d) of Q8_0 or Q5_0 rows (uint8 [rows, 34 or 22 bytes per 32 columns]): each
    group of 32 is exactly `d * q` with d fp16 (kept in fp32) and q an int8 code: Q8_0's own
    (-128..127), or Q5_0's 5-bit code minus 16 (-16..15; llama.cpp's block_q5_0, unpacked as
    gguf.quants.Q5_0 does: low nibbles are columns 0..15, high ones 16..31, bit j of qh the
    fifth bit of column j)."""
    rows = blocks.shape[0]
    size = {"Q8_0": 34, "Q5_0": 22}[kind]
    b = blocks.reshape(-1, size)
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32).reshape(rows, -1)
    if kind == "Q8_0":
        q = b[:, 2:].copy().view(np.int8)
    else:
        qh = b[:, 2:6].copy().view(np.uint32) >> np.arange(32, dtype=np.uint32)
        low = b[:, 6:22].reshape(-1, 1, 16) >> np.array([0, 4], dtype=np.uint8).reshape(1, 2, 1)
        q5 = (low & 0x0F).reshape(-1, 32) | ((qh & 1).astype(np.uint8) << 4)
        q = q5.astype(np.int8) - np.int8(16)
    return torch.from_numpy(q.reshape(rows, -1)), torch.from_numpy(d)
