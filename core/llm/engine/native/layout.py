"""The packed layouts that the native kernels read: 4-bit weights (q4.c's header), 8-bit
ones (q8_int16.c's header) and 5-bit ones (q5_int16.c's header)."""

from __future__ import annotations

import torch

__all__ = [
    "BLOCK_ROWS",
    "GROUP",
    "GROUP_BYTES",
    "Q8_GROUP_BYTES",
    "Q5_GROUP_BYTES",
    "pack_q5",
    "unpack_q5",
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
Q5_GROUP_BYTES = 256 + 64 + 32  # 16 x 32 low nibbles, 16 x 32 high bits, 16 fp16 scales


def _nibbles(q: torch.Tensor) -> torch.Tensor:
    """Codes q [n, k] (0..15) in q4.c's nibble layout: uint8 [n / 16, k / 32, 256]."""
    n, k = q.shape
    blocks, groups = n // BLOCK_ROWS, k // GROUP
    # column g*32 + 4c + 2h + e of row 16b + i -> chunk c, byte 2i + e, nibble h
    codes = q.to(torch.uint8).view(blocks, BLOCK_ROWS, groups, 8, 2, 2)
    nibbles = codes[..., 0, :] | (codes[..., 1, :] << 4)  # [b, i, g, c, e]
    return nibbles.permute(0, 2, 3, 1, 4).reshape(blocks, groups, 256)


def _codes_of_nibbles(nibbles: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """`_nibbles` undone: uint8 [n, k] codes 0..15."""
    blocks, groups = n // BLOCK_ROWS, k // GROUP
    nibbles = nibbles.reshape(blocks, groups, 8, BLOCK_ROWS, 2)  # [b, g, c, i, e]
    codes = torch.stack([nibbles & 0x0F, nibbles >> 4], dim=-2)  # [b, g, c, i, h, e]
    return codes.permute(0, 3, 1, 2, 4, 5).reshape(n, k)


def _scales(d: torch.Tensor, blocks: int, groups: int) -> torch.Tensor:
    """d [n, groups] as the 16 rows' fp16 bytes per block and group: uint8 [b, g, 32]."""
    t = d.to(torch.float16).view(blocks, BLOCK_ROWS, groups).transpose(1, 2).contiguous()
    return t.view(torch.uint8)


def _scales_back(part: torch.Tensor, n: int, groups: int) -> torch.Tensor:
    """`_scales` undone: [n, groups], the fp16 values in fp32."""
    t = part.contiguous().view(torch.float16).view(n // BLOCK_ROWS, groups, BLOCK_ROWS)
    return t.transpose(1, 2).reshape(n, groups).to(torch.float32)


def pack_q4(q: torch.Tensor, d: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """Codes q [n, k] (0..15), scales d and offsets lo [n, k / 32] (w = lo + d * q) in the
    kernel's layout: uint8 [n / 16, k / 32, GROUP_BYTES]."""
    n, k = q.shape
    blocks, groups = n // BLOCK_ROWS, k // GROUP
    parts = [_nibbles(q), _scales(d, blocks, groups), _scales(lo, blocks, groups)]
    return torch.cat(parts, dim=-1).contiguous()


def unpack_q4(packed: torch.Tensor, n: int, k: int) -> tuple[torch.Tensor, ...]:
    """(q, d, lo) back from `pack_q4`'s layout (d and lo as their fp16 values, in fp32)."""
    blocks, groups = n // BLOCK_ROWS, k // GROUP
    packed = packed.view(blocks, groups, GROUP_BYTES)
    q = _codes_of_nibbles(packed[..., :256], n, k)
    return (
        q,
        _scales_back(packed[..., 256:288], n, groups),
        _scales_back(packed[..., 288:], n, groups),
    )


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


def pack_q5(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Codes q [n, k] (0..31) and scales d [n, k / 32] (w = d * (q - 16): GGUF Q5_0) in
    q5_int16.c's layout: uint8 [n / 16, k / 32, Q5_GROUP_BYTES]."""
    n, k = q.shape
    blocks, groups = n // BLOCK_ROWS, k // GROUP
    q = q.to(torch.uint8)
    # the high bit of column g*32 + 2j + e of row 16b + i -> word j, bit 2i + e
    bits = (q >> 4).view(blocks, BLOCK_ROWS, groups, GROUP // 2, 2).permute(0, 2, 3, 1, 4)
    weights = torch.tensor([1 << s for s in range(8)], dtype=torch.uint8)
    high = (bits.reshape(blocks, groups, 64, 8) * weights).sum(-1, dtype=torch.uint8)
    parts = [_nibbles(q & 0x0F), high, _scales(d, blocks, groups)]
    return torch.cat(parts, dim=-1).contiguous()


def unpack_q5(packed: torch.Tensor, n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(q uint8 [n, k] 0..31, d [n, k / 32] as its fp16 values in fp32) back from `pack_q5`."""
    blocks, groups = n // BLOCK_ROWS, k // GROUP
    packed = packed.view(blocks, groups, Q5_GROUP_BYTES)
    low = _codes_of_nibbles(packed[..., :256], n, k)
    shifts = torch.arange(8, dtype=torch.uint8)
    bits = (packed[..., 256:320, None] >> shifts) & 1  # [b, g, 64 bytes, 8]: word j, bit 2i + e
    bits = bits.reshape(blocks, groups, GROUP // 2, BLOCK_ROWS, 2).permute(0, 3, 1, 2, 4)
    q = low | (bits.reshape(n, k) << 4)
    return q, _scales_back(packed[..., 320:], n, groups)
