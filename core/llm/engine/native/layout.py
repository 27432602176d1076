"""The packed layout of 4-bit weights that every native q4 kernel reads (q4.c's header)."""

from __future__ import annotations

import torch

__all__ = ["BLOCK_ROWS", "GROUP", "GROUP_BYTES", "pack_q4", "unpack_q4"]

BLOCK_ROWS = 16  # weight rows per block (one AVX512 register of fp32 outputs, two AVX2 ones)
GROUP = 32  # columns per scale (GGUF's block size)
GROUP_BYTES = 256 + 64  # 16 x 32 codes, 16 fp16 scales, 16 fp16 offsets


def pack_q4(q: torch.Tensor, d: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """Codes q [n, k] (0..15), scales d and offsets lo [n, k / 32] (w = lo + d * q) in the
    kernel's layout: uint8 [n / 16, k / 32, GROUP_BYTES]."""
    n, k = q.shape
    blocks, groups = n // BLOCK_ROWS, k // GROUP
    # column g*32 + 4c + 2h + e of row 16b + i -> chunk c, byte 2i + e, nibble h
    codes = q.to(torch.uint8).view(blocks, BLOCK_ROWS, groups, 8, 2, 2)
    nibbles = codes[..., 0, :] | (codes[..., 1, :] << 4)  # [b, i, g, c, e]
    nibbles = nibbles.permute(0, 2, 3, 1, 4).reshape(blocks, groups, 256)

    def halves(t: torch.Tensor) -> torch.Tensor:  # [n, groups] -> [b, g, 32] fp16 bytes
        t = t.to(torch.float16).view(blocks, BLOCK_ROWS, groups).transpose(1, 2).contiguous()
        return t.view(torch.uint8)

    return torch.cat([nibbles, halves(d), halves(lo)], dim=-1).contiguous()


def unpack_q4(packed: torch.Tensor, n: int, k: int) -> tuple[torch.Tensor, ...]:
    """(q, d, lo) back from `pack_q4`'s layout (d and lo as their fp16 values, in fp32)."""
    blocks, groups = n // BLOCK_ROWS, k // GROUP
    packed = packed.view(blocks, groups, GROUP_BYTES)
    nibbles = packed[..., :256].reshape(blocks, groups, 8, BLOCK_ROWS, 2)  # [b, g, c, i, e]
    codes = torch.stack([nibbles & 0x0F, nibbles >> 4], dim=-2)  # [b, g, c, i, h, e]
    q = codes.permute(0, 3, 1, 2, 4, 5).reshape(n, k)

    def floats(part: torch.Tensor) -> torch.Tensor:
        t = part.contiguous().view(torch.float16).view(blocks, groups, BLOCK_ROWS)
        return t.transpose(1, 2).reshape(n, groups).to(torch.float32)

    return q, floats(packed[..., 256:288]), floats(packed[..., 288:])
