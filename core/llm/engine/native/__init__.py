"""Native CPU kernels for the lean forward's decode step, compiled on first use.

`q4.c` multiplies a few rows by 4-bit weights (its header says why torch's int4 kernel is
slower at a batch of 8); `attention.c` attends one new token per sequence over an fp16 KV
cache; `layer.c` runs a whole decoder layer of a decode step on them (with `norm.c`'s
RMSNorm, RoPE and SwiGLU) in one call, instead of ~20 small torch ops. Plain C with AVX512
intrinsics, built with the system's C compiler into the caller's cache directory (a second
or two, once per source version) and called through ctypes, which releases the GIL.
Without a compiler or without AVX512-BF16, `load()` says why and the caller keeps torch's
kernels. `matmul` and `attend` are also exposed on their own (the LM head, and tests).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

__all__ = [
    "Kernels",
    "LayerShape",
    "LayerWeights",
    "load",
    "unsupported",
    "attention_fits",
    "pack_q4",
    "unpack_q4",
    "BLOCK_ROWS",
    "GROUP",
]

log = logging.getLogger(__name__)

BLOCK_ROWS = 16  # weight rows per block (one AVX512 register of fp32 outputs)
GROUP = 32  # columns per scale (GGUF's block size)
GROUP_BYTES = 256 + 64  # 16 x 32 codes, 16 fp16 scales, 16 fp16 offsets
SOURCES = [Path(__file__).with_name(name) for name in ("q4.c", "attention.c", "norm.c", "layer.c")]
HEADER = Path(__file__).with_name("native.h")
FLAGS = [
    "-O3",
    "-shared",
    "-fPIC",
    "-fopenmp",
    "-mavx512f",
    "-mavx512bw",
    "-mavx512vl",
    "-mavx512bf16",
    "-mf16c",
    "-mfma",
]
CPU_FLAGS = ("avx512f", "avx512bw", "avx512_bf16")

_lock = threading.Lock()
_loaded: dict[str, Kernels] = {}
_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


class LayerShape(ctypes.Structure):
    _fields_ = [
        ("hidden", _i64),
        ("heads", _i64),
        ("kv_heads", _i64),
        ("head_dim", _i64),
        ("intermediate", _i64),
        ("eps", ctypes.c_float),
        ("scale", ctypes.c_float),
    ]


class LayerWeights(ctypes.Structure):
    """Pointers into tensors the caller keeps alive (the model's and the packing's)."""

    _fields_ = [
        ("ln1", _ptr),
        ("ln2", _ptr),
        ("qkv_bias", _ptr),
        ("qkv", _ptr),
        ("o", _ptr),
        ("gate_up", _ptr),
        ("down", _ptr),
    ]


class Kernels:
    """The compiled library's entry points on torch tensors (CPU, contiguous)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._matmul = lib.guru_q4_matmul
        self._matmul.argtypes = [_ptr, _i64, _i64, _ptr, _i64, _ptr, ctypes.c_int]
        self._matmul.restype = ctypes.c_int
        self._attend = lib.guru_attend_f16
        self._attend.argtypes = [
            _ptr,
            _ptr,
            _ptr,
            _i64,
            _i64,
            _i64,
            _i64,
            _i64,
            _i64,
            _ptr,
            ctypes.c_float,
            _ptr,
            ctypes.c_int,
        ]
        self._attend.restype = ctypes.c_int
        self._layer = lib.guru_decode_layer
        self._layer.argtypes = [
            _ptr,
            _i64,
            ctypes.POINTER(LayerShape),
            ctypes.POINTER(LayerWeights),
            _ptr,
            _ptr,
            _ptr,
            _ptr,
            _i64,
            _i64,
            _ptr,
            ctypes.c_int,
        ]
        self._layer.restype = ctypes.c_int

    def matmul(self, x: torch.Tensor, packed: torch.Tensor, n: int) -> torch.Tensor:
        """x [m, k] fp32 @ W.T for W [n, k] packed by `pack_q4`."""
        x = x.contiguous()
        m, k = x.shape
        if x.dtype != torch.float32 or k % GROUP or n % BLOCK_ROWS:
            raise ValueError(f"q4 matmul needs fp32 rows and a packed [{n}, {k}] matrix")
        if packed.numel() != n // BLOCK_ROWS * k // GROUP * GROUP_BYTES:
            raise ValueError(f"packed weights do not match a [{n}, {k}] matrix")
        y = torch.empty((m, n), dtype=torch.float32)
        status = self._matmul(
            x.data_ptr(), m, k, packed.data_ptr(), n, y.data_ptr(), torch.get_num_threads()
        )
        if status != 0:
            raise MemoryError("q4 matmul: out of memory for its scratch rows")
        return y

    def decode_layer(
        self,
        x: torch.Tensor,
        shape: LayerShape,
        weights: LayerWeights,
        cos: torch.Tensor,
        sin: torch.Tensor,
        k_buf: torch.Tensor,
        v_buf: torch.Tensor,
        column: int,
        starts: torch.Tensor,
    ) -> None:
        """One decoder layer of a decode step, in place on the residual stream x [B, hidden]
        (contiguous fp32); writes the new K/V into column `column` of the fp16 buffers.
        cos, sin [B, head_dim] contiguous fp32; starts [B] int64 (see `attend`)."""
        tensors = (x, cos, sin, k_buf, v_buf, starts)
        if not all(t.is_contiguous() for t in tensors) or x.dtype != torch.float32:
            raise ValueError("decode_layer needs contiguous tensors and an fp32 residual stream")
        if (
            k_buf.dtype != torch.float16
            or v_buf.shape != k_buf.shape
            or starts.dtype != torch.int64
        ):
            raise ValueError("decode_layer needs fp16 K/V buffers of one shape and int64 starts")
        if not (k_buf.shape[0] == x.shape[0] == starts.numel()) or column >= k_buf.shape[2]:
            raise ValueError("decode_layer: batch or column does not match the cache")
        status = self._layer(
            x.data_ptr(),
            x.shape[0],
            ctypes.byref(shape),
            ctypes.byref(weights),
            cos.data_ptr(),
            sin.data_ptr(),
            k_buf.data_ptr(),
            v_buf.data_ptr(),
            k_buf.shape[2],
            column,
            starts.data_ptr(),
            torch.get_num_threads(),
        )
        if status == -1:
            raise ValueError("decode_layer: a head shape the attention kernel does not support")
        if status != 0:
            raise MemoryError("decode_layer: out of memory for its activations")

    def attend(
        self,
        q: torch.Tensor,
        k_buf: torch.Tensor,
        v_buf: torch.Tensor,
        length: int,
        starts: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        """Decode attention: q [B, H, D] fp32 against columns starts[b]..length-1 of the
        fp16 buffers k_buf, v_buf [B, KV, capacity, D]; returns [B, H, D]."""
        q = q.contiguous()
        b, h, d = q.shape
        if q.dtype != torch.float32 or k_buf.dtype != torch.float16 or v_buf.dtype != torch.float16:
            raise ValueError("attend needs fp32 queries and an fp16 cache")
        if not (k_buf.is_contiguous() and v_buf.is_contiguous()) or k_buf.shape != v_buf.shape:
            raise ValueError("attend needs two contiguous cache buffers of one shape")
        _, kv, capacity, _ = k_buf.shape
        starts = starts.to(torch.int64).contiguous()
        out = torch.empty_like(q)
        status = self._attend(
            q.data_ptr(),
            k_buf.data_ptr(),
            v_buf.data_ptr(),
            b,
            h,
            kv,
            d,
            capacity,
            length,
            starts.data_ptr(),
            scale,
            out.data_ptr(),
            torch.get_num_threads(),
        )
        if status == -1:
            raise ValueError(f"attend does not support {h} heads / {kv} KV heads of size {d}")
        if status != 0:
            raise MemoryError("attend: out of memory for its scores")
        return out


def attention_fits(heads: int, kv_heads: int, head_dim: int) -> bool:
    """Whether attention.c takes these heads (its MAX_CHUNKS and MAX_GROUP)."""
    return (
        head_dim % 16 == 0
        and head_dim <= 16 * 16
        and heads % kv_heads == 0
        and heads // kv_heads <= 16
    )


def unsupported() -> str | None:
    """Why the kernel cannot run here (None when it can)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = set(fh.read().split())
    except OSError:
        return "no /proc/cpuinfo to check the CPU's AVX512-BF16"
    missing = [flag for flag in CPU_FLAGS if flag not in flags]
    if missing:
        return f"the CPU lacks {', '.join(missing)}"
    if _compiler() is None:
        return "no C compiler (cc/gcc) on PATH"
    return None


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def load(cache_dir: str | Path | None) -> Kernels | None:
    """The compiled kernel (built into `cache_dir`, or a temporary directory), or None with
    the reason logged when this machine cannot build or run it."""
    reason = unsupported()
    if reason is not None:
        log.info("native kernels unavailable: %s", reason)
        return None
    sources = b"".join(path.read_bytes() for path in [HEADER, *SOURCES])
    digest = hashlib.sha256(sources + " ".join(FLAGS).encode()).hexdigest()[:16]
    directory = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "guru-native"
    target = directory / f"guru-native-{digest}.so"
    with _lock:
        if str(target) in _loaded:
            return _loaded[str(target)]
        try:
            if not target.is_file():
                _build(target)
            kernel = Kernels(ctypes.CDLL(str(target)))
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("native kernels unavailable: %s", exc)
            return None
        _loaded[str(target)] = kernel
        return kernel


def _build(target: Path) -> None:
    """Compile into a temporary name, then rename: concurrent builders never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}.so")
    cmd = [_compiler() or "cc", *FLAGS, *map(str, SOURCES), "-o", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise OSError(f"compiling the native kernels failed: {done.stderr.strip()[-500:]}")
    os.replace(tmp, target)
    log.info("built the native kernels %s", target)


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
