"""Native CPU kernels for the lean forward's decode step, compiled on first use.

`q4.c` / `q4_int16.c` multiply a few rows by 4-bit weights (q4.c's header says why torch's int4
kernel is slower at a batch of 8), `q8_int16.c` by 8-bit codes (GGUF Q8_0 exactly),
`q5_int16.c` by 5-bit ones (GGUF Q5_0 exactly); `attention.c` attends one new token per
sequence over an fp16 KV cache; `layer.c` runs a whole decoder layer of a decode step on them
(with `norm.c`'s RMSNorm, RoPE and SwiGLU) in one call, instead of ~20 small torch ops. Plain C
with intrinsics, one library per instruction set (`isa.py`: AVX512 or AVX2+FMA+F16C, chosen
once from the CPU's flags), built with the system's C compiler into the caller's cache
directory (a second or two, once per source version) and called through ctypes, which releases
the GIL. Where no variant can run, `load()` says why and the caller keeps torch's ops on dense
weights. `describe()` says which variant runs and why (CLI, /status).
`matmul`, `matmul_q8`, `matmul_q5` and `attend` are also exposed on their own (the LM head,
and tests).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch

from core.llm.engine.native.isa import (
    ENV,
    ISAS,
    PORTABLE,
    Choice,
    IsaUnavailable,
    choose,
    fallbacks,
)
from core.llm.engine.native.isa import compiler as _compiler
from core.llm.engine.native.isa import missing as isa_missing
from core.llm.engine.native.layout import (
    BLOCK_ROWS,
    GROUP,
    GROUP_BYTES,
    Q5_GROUP_BYTES,
    Q8_GROUP_BYTES,
    dequantize_q8,
    pack_q4,
    pack_q5,
    pack_q8,
    unpack_q4,
    unpack_q5,
    unpack_q8,
)

__all__ = [
    "Kernels",
    "LayerShape",
    "LayerWeights",
    "IsaUnavailable",
    "load",
    "describe",
    "choose",
    "unsupported",
    "isa_missing",
    "attention_fits",
    "pack_q4",
    "unpack_q4",
    "pack_q8",
    "unpack_q8",
    "dequantize_q8",
    "pack_q5",
    "unpack_q5",
    "Q8_GROUP_BYTES",
    "Q5_GROUP_BYTES",
    "BLOCK_ROWS",
    "GROUP",
    "GROUP_BYTES",
    "ISAS",
    "ENV",
    "PORTABLE",
]

log = logging.getLogger(__name__)

HEADER = Path(__file__).with_name("native.h")
HEADERS = [HEADER, Path(__file__).with_name("int16.h")]
FLAGS = ["-O3", "-shared", "-fPIC", "-fopenmp"]
LIBS = ["-lm"]  # expf, sqrtf: the library must not rely on its host process having libm

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
        ("q8", ctypes.c_int32),  # bits: which of qkv, o, gate_up, down are 8-bit (layer.c)
        ("q5", ctypes.c_int32),  # the same bits: which are 5-bit
    ]


class Kernels:
    """The compiled library's entry points on torch tensors (CPU, contiguous)."""

    def __init__(self, lib: ctypes.CDLL, choice: Choice) -> None:
        assert choice.isa is not None
        self.isa = choice.isa
        self.description = choice.describe()  # what runs and why, for logs and /status
        self._matmul = lib.guru_q4_matmul
        self._matmul.argtypes = [_ptr, _i64, _i64, _ptr, _i64, _ptr, ctypes.c_int]
        self._matmul.restype = ctypes.c_int
        self._matmul_q8 = lib.guru_q8_matmul
        self._matmul_q8.argtypes = [_ptr, _i64, _i64, _ptr, _i64, _ptr, ctypes.c_int]
        self._matmul_q8.restype = ctypes.c_int
        self._matmul_q5 = lib.guru_q5_matmul
        self._matmul_q5.argtypes = self._matmul_q8.argtypes
        self._matmul_q5.restype = ctypes.c_int
        self._dequant = lib.guru_q4_dequant
        self._dequant.argtypes = [_ptr, _i64, _i64, _ptr, ctypes.c_int, ctypes.c_int]
        self._dequant.restype = None
        self._dequant_q8 = lib.guru_q8_dequant
        self._dequant_q8.argtypes = self._dequant.argtypes
        self._dequant_q8.restype = None
        self._dequant_q5 = lib.guru_q5_dequant
        self._dequant_q5.argtypes = self._dequant.argtypes
        self._dequant_q5.restype = None
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
        return self._run_matmul(self._matmul, "q4", "packed", GROUP_BYTES, x, packed, n)

    def matmul_q8(self, x: torch.Tensor, packed: torch.Tensor, n: int) -> torch.Tensor:
        """x [m, k] fp32 @ W.T for W [n, k] packed by `pack_q8` (q8_int16.c)."""
        return self._run_matmul(self._matmul_q8, "q8", "q8-packed", Q8_GROUP_BYTES, x, packed, n)

    def matmul_q5(self, x: torch.Tensor, packed: torch.Tensor, n: int) -> torch.Tensor:
        """x [m, k] fp32 @ W.T for W [n, k] packed by `pack_q5` (q5_int16.c)."""
        return self._run_matmul(self._matmul_q5, "q5", "q5-packed", Q5_GROUP_BYTES, x, packed, n)

    def _run_matmul(
        self,
        fn: Any,
        kind: str,
        packing: str,
        group_bytes: int,
        x: torch.Tensor,
        packed: torch.Tensor,
        n: int,
    ) -> torch.Tensor:
        """One layout's C matmul, after checking the shapes it would otherwise read past."""
        x = x.contiguous()
        m, k = x.shape
        if x.dtype != torch.float32 or k % GROUP or n % BLOCK_ROWS:
            raise ValueError(f"{kind} matmul needs fp32 rows and a packed [{n}, {k}] matrix")
        if packed.numel() != n // BLOCK_ROWS * k // GROUP * group_bytes:
            raise ValueError(f"{packing} weights do not match a [{n}, {k}] matrix")
        y = torch.empty((m, n), dtype=torch.float32)
        status = fn(x.data_ptr(), m, k, packed.data_ptr(), n, y.data_ptr(), torch.get_num_threads())
        if status != 0:
            raise MemoryError(f"{kind} matmul: out of memory for its scratch rows")
        return y

    def dequantize(
        self, packed: torch.Tensor, n: int, k: int, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """W [n, k] (fp32, or rounded to bf16) from its `pack_q4` packing."""
        return self._run_dequant(self._dequant, "packed", GROUP_BYTES, packed, n, k, dtype)

    def dequantize_q8(
        self, packed: torch.Tensor, n: int, k: int, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """W [n, k] (fp32, or rounded to bf16) from its `pack_q8` packing: what
        `layout.dequantize_q8` gives, without its fp32 temporaries (4x the output)."""
        return self._run_dequant(self._dequant_q8, "q8-packed", Q8_GROUP_BYTES, packed, n, k, dtype)

    def dequantize_q5(
        self, packed: torch.Tensor, n: int, k: int, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """W [n, k] = d * (q - 16) (fp32, or rounded to bf16) from its `pack_q5` packing."""
        return self._run_dequant(self._dequant_q5, "q5-packed", Q5_GROUP_BYTES, packed, n, k, dtype)

    def _run_dequant(
        self,
        fn: Any,
        packing: str,
        group_bytes: int,
        packed: torch.Tensor,
        n: int,
        k: int,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """One layout's C dequantization into a new fp32 or bf16 [n, k] tensor."""
        if dtype not in (torch.float32, torch.bfloat16) or k % GROUP or n % BLOCK_ROWS:
            raise ValueError(f"dequantize makes fp32 or bf16 [{n}, {k}] from a packing")
        if packed.numel() != n // BLOCK_ROWS * k // GROUP * group_bytes:
            raise ValueError(f"{packing} weights do not match a [{n}, {k}] matrix")
        out = torch.empty((n, k), dtype=dtype)
        bf16 = int(dtype == torch.bfloat16)
        fn(packed.data_ptr(), n, k, out.data_ptr(), bf16, torch.get_num_threads())
        return out

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


def unsupported(isa: str | None = None) -> str | None:
    """Why no native kernel runs here (None when one does); never raises. `isa` as `load`."""
    try:
        choice = choose(isa)
    except IsaUnavailable as exc:
        return str(exc)
    return choice.why if choice.isa is None else None


def describe(isa: str | None = None) -> str:
    """Which kernels the lean forward runs here and why, e.g. "avx2+fma (no avx512f, ...)";
    `isa` as `load`. Nothing is built: a failed build shows in `LeanLlama.kernels`."""
    try:
        return choose(isa).describe()
    except IsaUnavailable as exc:
        return f"none: {exc}"


def load(cache_dir: str | Path | None, isa: str | None = None) -> Kernels | None:
    """The compiled kernels for `isa` (auto or a key of native.ISAS; default: the
    GURU_ENGINE_ISA environment variable, else auto), built into `cache_dir` or a temporary
    directory; None, with the reason logged, when the choice is portable or nothing builds
    (an automatic choice that fails to build falls back to the next variant the CPU runs).
    A forced variant the CPU cannot run raises IsaUnavailable."""
    choice = choose(isa)
    if choice.isa is None:
        log.info("native kernels: none (%s); torch ops on dense weights", choice.why)
        return None
    for candidate in [choice, *fallbacks(choice)]:
        try:
            return _load(cache_dir, candidate)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("native kernels %s unavailable: %s", candidate.name, exc)
    return None


def _load(cache_dir: str | Path | None, choice: Choice) -> Kernels:
    spec = choice.isa
    assert spec is not None
    flags = [*FLAGS, *spec.cc_flags]
    sources = b"".join(path.read_bytes() for path in [*HEADERS, *spec.paths()])
    digest = hashlib.sha256(sources + " ".join(flags).encode()).hexdigest()[:16]
    directory = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "guru-native"
    target = directory / f"guru-native-{spec.name}-{digest}.so"
    with _lock:
        if str(target) in _loaded:
            return _loaded[str(target)]
        if not target.is_file():
            _build(target, flags, spec.paths())
        kernel = Kernels(ctypes.CDLL(str(target)), choice)
        _loaded[str(target)] = kernel
        log.info("native kernels: %s", kernel.description)
        return kernel


def _build(target: Path, flags: list[str], paths: list[Path]) -> None:
    """Compile into a temporary name, then rename: concurrent builders never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}.so")
    cmd = [_compiler() or "cc", *flags, *map(str, paths), *LIBS, "-o", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise OSError(f"compiling the native kernels failed: {done.stderr.strip()[-500:]}")
    os.replace(tmp, target)
    log.info("built the native kernels %s", target)
