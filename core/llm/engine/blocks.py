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

__all__ = ["FLOAT_TYPES", "source_types", "hf_name"]

log = logging.getLogger(__name__)

MARKER = "guru-source.json"  # core.llm.models.convert.MARKER (not imported: no cycle)
FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})

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


def source_types(directory: str | Path | None) -> dict[str, str]:
    """{module name: GGUF block type name} for the model converted into `directory`; empty when
    it was not converted from a GGUF, or the GGUF is gone or unreadable (then nothing is
    re-quantized)."""
    if not directory:
        return {}
    try:
        source = Path(json.loads((Path(directory) / MARKER).read_text())["source"])
        if not source.is_file():
            return {}
        import gguf

        reader = gguf.GGUFReader(str(source))
        types = {hf_name(t.name): t.tensor_type.name for t in reader.tensors}
    except Exception:  # noqa: BLE001 - any failure only means: no re-quantization
        log.info("no GGUF block types for %s", directory, exc_info=True)
        return {}
    return {name: kind for name, kind in types.items() if name is not None}
