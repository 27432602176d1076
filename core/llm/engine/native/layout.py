"""The packed layouts that the native kernels read: 4-bit weights (q4.c's header) and 8-bit
ones (q8_int16.c's header)."""

from __future__ import annotations

import torch

__all__ = [
    "BLOCK_ROWS",
    "GROUP",
    "GROUP_BYTES",
    "Q8_GROUP_BYTES",
    "pack_q4",
    "unpack_q4",
    "pack_q8",
    "unpack_q8",
    "dequantize_q8",
]

BLOCK_ROWS = 16  # weight rows per block (one AVX512 register of fp32 outputs, two AVX2 ones)
GROUP = 32  # columns per scale (GGUF's block size)
GROUP_BYTES = 256 + 64  # 16 x 32 codes, 16 fp16 scales, 16 fp16 offsets
Q8_GROUP_BYTES = 512 + 32  # 16 x 32 int8 codes, 16 fp16 scales


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


def pack_q8(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Codes q [n, k] (-128..127) and scales d [n, k / 32] (w = d * q) in q8_int16.c's
    layout: uint8 [n / 16, k / 32, Q8_GROUP_BYTES]."""
    n, k = q.shape
    blocks, groups = n // BLOCK_ROWS, k // GROUP
    # column g*32 + 2c + e of row 16b + i -> chunk c, byte 2i + e
    codes = q.to(torch.int8).view(torch.uint8).view(blocks, BLOCK_ROWS, groups, GROUP // 2, 2)
    codes = codes.permute(0, 2, 3, 1, 4).reshape(blocks, groups, 512)
    scales = d.to(torch.float16).view(blocks, BLOCK_ROWS, groups).transpose(1, 2).contiguous()
    return torch.cat([codes, scales.view(torch.uint8)], dim=-1).contiguous()


def unpack_q8(packed: torch.Tensor, n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(q int8 [n, k], d [n, k / 32] as its fp16 values in fp32) back from `pack_q8`."""
    blocks, groups = n // BLOCK_ROWS, k // GROUP
    packed = packed.view(blocks, groups, Q8_GROUP_BYTES)
    codes = packed[..., :512].reshape(blocks, groups, GROUP // 2, BLOCK_ROWS, 2)
    q = codes.permute(0, 3, 1, 2, 4).reshape(n, k).view(torch.int8)
    d = packed[..., 512:].contiguous().view(torch.float16).view(blocks, groups, BLOCK_ROWS)
    return q, d.transpose(1, 2).reshape(n, groups).to(torch.float32)


def dequantize_q8(packed: torch.Tensor, n: int, k: int, dtype: torch.dtype) -> torch.Tensor:
    """W [n, k] = d * q from `pack_q8`'s layout, in `dtype` (a prompt's dense weights)."""
    q, d = unpack_q8(packed, n, k)
    w = q.view(n, k // GROUP, GROUP).to(torch.float32) * d[..., None]
    return w.view(n, k).to(dtype)
