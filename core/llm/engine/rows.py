"""The embedding and LM-head matrices kept as their GGUF blocks, read a few rows at a time.

A model converted from a GGUF holds its [vocab, hidden] embedding (and an untied LM head) as
fp32: 545 MB each for Qwen2.5's 151,936 x 896. The lean forward reads only some rows of them:
one per prompt or generated token, and each decode step's EXACT_TOP candidates of the packed
LM head. Those reads went to the mmapped fp32 tensors, and every page they touched stayed
resident, with the kernel's fault-around mapping 64 KB per touched row (~160 MB after a few
hundred requests on Qwen2.5-0.5B, growing with use; MADV_RANDOM does not turn fault-around
off). `Rows` keeps the source GGUF's own blocks instead (Q5_0: 93 MB, Q8_0: 145 MB for that
shape), saved in the packing cache, and reads the rows it needs with `pread`: they come from
the page cache, which the kernel may drop and which is never part of the process's RSS.
Rows are dequantized with gguf-py, the code that converted them: bit-identical to the fp32
tensors, which is checked once when packing.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from core.llm.engine.blocks import FLOAT_TYPES, Source

__all__ = ["Rows", "CHECK_ROWS"]

log = logging.getLogger(__name__)

CHECK_ROWS = 8192  # rows dequantized at a time by the exactness check (bounds its memory)


class Rows:
    """A [vocab, hidden] matrix as GGUF blocks: uint8 [vocab, bytes per row], in memory
    (`blocks`, while packing) or at `offset` in a file (`at`, when read from the cache)."""

    def __init__(self, kind: str, hidden: int, blocks: np.ndarray | None = None) -> None:
        from gguf import GGMLQuantizationType

        self.kind = kind
        self.hidden = hidden
        self._type = GGMLQuantizationType[kind]
        self.blocks = blocks
        self._fd: int | None = None
        self._offset = 0
        self.shape: tuple[int, int] = (0, 0) if blocks is None else blocks.shape

    @classmethod
    def at(cls, path: str, offset: int, shape: tuple[int, int], kind: str, hidden: int) -> Rows:
        """Rows read from `path` (a packing cache), the table starting at byte `offset`."""
        rows = cls(kind, hidden)
        rows._fd = os.open(path, os.O_RDONLY)
        rows._offset, rows.shape = offset, (int(shape[0]), int(shape[1]))
        return rows

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)

    def raw(self, ids: np.ndarray) -> np.ndarray:
        """The blocks of rows `ids` (int array), uint8 [len(ids), bytes per row]."""
        if self.blocks is not None:
            return self.blocks[ids]
        assert self._fd is not None
        width = self.shape[1]
        # one pread per row: ~1 us each, 256 per decode step of 8 rows; never mapped
        data = b"".join(os.pread(self._fd, width, self._offset + int(i) * width) for i in ids)
        return np.frombuffer(data, dtype=np.uint8).reshape(len(ids), width)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """fp32 rows [*ids.shape, hidden] (a new tensor, contiguous)."""
        from gguf import quants

        rows = quants.dequantize(self.raw(ids.reshape(-1).numpy()), self._type)
        return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)).view(
            *ids.shape, self.hidden
        )

    @classmethod
    def from_source(cls, source: Source, name: str, weight: torch.Tensor) -> Rows | None:
        """Module `name`'s blocks from the source GGUF, if they rebuild `weight` exactly
        (else None: the caller keeps the dense weight)."""
        kind = source.types.get(name)
        if kind is None or kind in FLOAT_TYPES or weight.dtype != torch.float32:
            return None
        try:
            rows = cls(kind, weight.shape[1], np.array(source.blocks(name), copy=True))
            exact = rows.shape[0] == weight.shape[0] and rows.rebuilds(weight)
        except Exception:  # noqa: BLE001 - a type gguf-py cannot read: keep it dense
            log.info("lean forward: %s's %s blocks are not readable", name, kind, exc_info=True)
            return None
        if not exact:
            log.info("lean forward: %s's %s blocks do not rebuild its weights", name, kind)
            return None
        return rows

    def rebuilds(self, weight: torch.Tensor) -> bool:
        """Every row dequantizes to exactly `weight`'s (read in chunks: bounded memory)."""
        for start in range(0, weight.shape[0], CHECK_ROWS):
            ids = torch.arange(start, min(start + CHECK_ROWS, weight.shape[0]))
            if not torch.equal(self(ids), weight[start : start + CHECK_ROWS]):
                return False
        return True
