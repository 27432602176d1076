"""A model's config and named tensors, without transformers' model code.

The lean forward needs the config, the norms and biases, and (on its packed path, once the
packing is cached) nothing else of the weights. `from_pretrained` builds the whole transformers
model for that, and importing its model code (transformers.modeling_utils: torch._dynamo,
sympy, torch.distributed) costs ~130 MiB of RSS and 2.5-4 s of every start.
`ModelWeights.from_dir` maps the directory's safetensors files instead: private copy-on-write
mappings (a write never reaches the file), so nothing is read, and nothing becomes resident,
until touched, and names each tensor as transformers does. `ModelWeights.of_model` is the
same view of a loaded transformers model's own tensors.
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["ModelWeights", "OWN_FILES"]

OWN_FILES = "guru-"  # files we write beside the weights (packing caches): not weights
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"


@dataclass(frozen=True)
class ModelWeights:
    """`config` (a transformers PretrainedConfig) and the tensors under their transformers
    names ("model.layers.0.self_attn.q_proj.weight", ...); never modified."""

    config: Any
    tensors: Mapping[str, torch.Tensor]
    rotary: Any = None  # a loaded model's rotary module (None: computed from the config)
    # mapped tensors: name -> (the file's mapping, byte offset, bytes)
    spans: Mapping[str, tuple[mmap.mmap, int, int]] = field(default_factory=dict)

    def drop_pages(self, names: Iterable[str]) -> None:
        """Give back the resident pages of these mapped tensors (MADV_DONTNEED): the mapping
        is private and never written, so a later touch reads them again from the file. The
        first packing reads every fp32 tensor once; without this all of them stayed in the
        process's RSS (the whole fp32 file: 6.8 GB for Qwen2.5-1.5B)."""
        for name in names:
            if name not in self.spans:
                continue  # not mapped by us (a transformers model's tensor)
            mapped, start, size = self.spans[name]
            begin = start - start % mmap.PAGESIZE  # madvise wants a page-aligned start
            mapped.madvise(mmap.MADV_DONTNEED, begin, size + start - begin)

    def linear(self, module: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias or None) of a Linear module, by its name."""
        return self.tensors[f"{module}.weight"], self.tensors.get(f"{module}.bias")

    @property
    def dtype(self) -> torch.dtype:
        return self.tensors[EMBED].dtype

    @property
    def device(self) -> torch.device:
        return self.tensors[EMBED].device

    @classmethod
    def of_model(cls, model: Any) -> ModelWeights:
        """A transformers model's own parameters (the same tensor objects, tied ones under
        both names)."""
        inner = getattr(model, "model", None)
        return cls(
            model.config, model.state_dict(keep_vars=True), getattr(inner, "rotary_emb", None)
        )

    @classmethod
    def from_dir(cls, hf_dir: str | Path) -> ModelWeights | None:
        """The config and the mapped tensors of a HF directory; None when a tensor is not
        fp32 (transformers would convert it: let it) or the files are not safetensors."""
        from transformers import AutoConfig  # the config classes only, not the model code

        hf_dir = Path(hf_dir)
        files = sorted(p for p in hf_dir.glob("*.safetensors") if not p.name.startswith(OWN_FILES))
        if not files:
            return None
        tensors: dict[str, torch.Tensor] = {}
        spans: dict[str, tuple[mmap.mmap, int, int]] = {}
        for path in files:
            mapped = _map(path, spans)
            if mapped is None:
                return None
            tensors.update(mapped)
        config = AutoConfig.from_pretrained(str(hf_dir), local_files_only=True)
        if HEAD not in tensors and getattr(config, "tie_word_embeddings", False):
            tensors[HEAD] = tensors[EMBED]
        if EMBED not in tensors or HEAD not in tensors:
            return None
        return cls(config, tensors, spans=spans)


def _map(
    path: Path, spans: dict[str, tuple[mmap.mmap, int, int]]
) -> dict[str, torch.Tensor] | None:
    """The fp32 tensors of one safetensors file as views of a private mapping of it (and
    where each lies in it, into `spans`)."""
    with open(path, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
    (size,) = struct.unpack_from("<Q", mapped, 0)
    header = json.loads(mapped[8 : 8 + size])
    out: dict[str, torch.Tensor] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if _DTYPES.get(entry["dtype"]) is not torch.float32:
            return None
        start, end = entry["data_offsets"]
        count = (end - start) // 4
        shape = tuple(entry["shape"])
        if count == 0:
            out[name] = torch.empty(shape)
            continue
        # the tensor keeps the mapping alive; pages are read on first touch
        flat = torch.frombuffer(mapped, dtype=torch.float32, count=count, offset=8 + size + start)
        out[name] = flat.view(shape)
        spans[name] = (mapped, 8 + size + start, end - start)
    return out
