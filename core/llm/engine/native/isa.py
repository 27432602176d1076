"""Which native kernel variant this CPU runs, chosen once from its feature flags.

Each variant is its own library compiled with its own `-m` flags, so a CPU only ever runs
instructions it was checked for:
- `avx512vnni`: q4_int16.c, integer dot products against x quantized to int16 per group of
  32 (~100x closer to fp32 than bf16), 16 rows per `vpdpwssd`. First because it measured
  faster than the bf16 kernel on an AVX512-BF16 Xeon (1,536x576 matmul: 21 vs 43 us at one
  row, 81 vs 182 at eight; SmolLM2 decode 78 vs 54 tok/s, 266 vs 187 at eight: README), and
  it is more exact.
- `avx512bf16`: AVX512F/BW/VL + AVX512-BF16 (q4.c's `vdpbf16ps`, x rounded to bf16): the
  previous default, kept for comparison (CPUs with AVX512-BF16 have VNNI too).
- `avx2vnni`: the same on 8 rows with AVX-VNNI's `vpdpwssd` (Alder Lake and later desktops).
- `avx2`: the same with AVX2 + FMA + F16C only (`vpmaddwd` + `vpaddd`).
- `portable`: no native code; the lean forward keeps the dense fp32 weights (torch's int4
  kernel rounds scales and outputs to bf16 and failed the quality gate: ENGINE_FACTS.md).

`GURU_ENGINE_ISA=auto|<variant>|portable` overrides the choice (tests force
each path); forcing one the CPU or toolchain cannot run raises `IsaUnavailable`, not a crash.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Isa",
    "IsaUnavailable",
    "Choice",
    "ISAS",
    "PORTABLE",
    "ENV",
    "choose",
    "fallbacks",
    "missing",
    "cpu_flags",
    "compiler",
]

ENV = "GURU_ENGINE_ISA"
PORTABLE = "portable"
# q8_int16.c (8-bit weights, int16 activations) is in every variant: it needs only AVX2 / AVX512F
_COMMON = (
    "attention.c",
    "norm.c",
    "layer.c",
    "dequant.c",
    "quantize.c",
    "q8_int16.c",
    "q5_int16.c",
)


class IsaUnavailable(RuntimeError):
    """A forced kernel variant that this CPU or toolchain cannot run."""


@dataclass(frozen=True)
class Isa:
    name: str
    label: str  # for people: what runs
    cpu_flags: tuple[str, ...]  # /proc/cpuinfo names, all required
    cc_flags: tuple[str, ...]
    sources: tuple[str, ...]
    prompt_bf16: bool  # prompts' matmuls may run in bf16 (see `bf16_prompts`)

    def paths(self) -> list[Path]:
        return [Path(__file__).with_name(name) for name in self.sources]

    def bf16_prompts(self) -> bool:
        """Prompts' matmuls in bf16: only with native bf16 dot products (torch's oneDNN),
        ~2.5x fp32 there; elsewhere no faster, and less exact."""
        return self.prompt_bf16 and "avx512_bf16" in cpu_flags()


ISAS = {
    "avx512vnni": Isa(
        "avx512vnni",
        "avx512-vnni",
        ("avx512f", "avx512bw", "avx512vl", "avx512_vnni", "fma", "f16c"),
        ("-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mfma", "-mf16c"),
        ("q4_int16.c", *_COMMON),
        prompt_bf16=True,  # where the CPU has avx512_bf16 (see `Isa.bf16_prompts`)
    ),
    "avx512bf16": Isa(
        "avx512bf16",
        "avx512-bf16",
        ("avx512f", "avx512bw", "avx512vl", "avx512_bf16", "fma", "f16c"),
        ("-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512bf16", "-mfma", "-mf16c"),
        ("q4.c", *_COMMON),
        prompt_bf16=True,
    ),
    "avx2vnni": Isa(
        "avx2vnni",
        "avx2+fma+avx-vnni",
        ("avx2", "fma", "f16c", "avx_vnni"),
        ("-mavx2", "-mfma", "-mf16c", "-mavxvnni"),
        ("q4_int16.c", *_COMMON),
        prompt_bf16=False,
    ),
    "avx2": Isa(
        "avx2",
        "avx2+fma",
        ("avx2", "fma", "f16c"),
        ("-mavx2", "-mfma", "-mf16c"),
        ("q4_int16.c", *_COMMON),
        prompt_bf16=False,
    ),
}


@dataclass(frozen=True)
class Choice:
    name: str  # a key of ISAS, or PORTABLE
    why: str

    @property
    def isa(self) -> Isa | None:
        return ISAS.get(self.name)

    def describe(self) -> str:
        label = self.isa.label if self.isa else "portable (torch, dense fp32)"
        return f"{label} ({self.why})"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (x86 /proc/cpuinfo `flags`); empty when unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def missing(name: str) -> str | None:
    """Why variant `name` cannot run here (None when it can)."""
    lacks = [flag for flag in ISAS[name].cpu_flags if flag not in cpu_flags()]
    if lacks:
        return f"the CPU lacks {', '.join(lacks)}"
    if compiler() is None:
        return "no C compiler (cc/gcc) on PATH"
    return None


def choose(forced: str | None = None) -> Choice:
    """The variant to run: `forced` (default: the GURU_ENGINE_ISA environment variable) unless
    "auto", else the first of ISAS this machine runs."""
    if forced is None:
        forced = os.environ.get(ENV, "")
    forced = forced.strip().lower() or "auto"
    if forced == PORTABLE:
        return Choice(PORTABLE, f"forced by {ENV}")
    if forced in ISAS:
        reason = missing(forced)
        if reason is not None:
            raise IsaUnavailable(f"{ENV}={forced}, but {reason}")
        return Choice(forced, f"forced by {ENV}")
    if forced != "auto":
        names = ", ".join(["auto", *ISAS, PORTABLE])
        raise IsaUnavailable(f"{ENV}={forced!r} is not one of {names}")
    if compiler() is None:
        return Choice(PORTABLE, "no C compiler (cc/gcc) on PATH")
    return _first_runnable(list(ISAS))


def fallbacks(choice: Choice) -> list[Choice]:
    """The variants to try after `choice` fails to build (an old compiler may lack -mavxvnni):
    the next runnable ones when it was chosen automatically; none when it was forced."""
    if choice.isa is None or choice.why.startswith("forced"):
        return []
    names = list(ISAS)
    rest = _first_runnable(names[names.index(choice.name) + 1 :])
    why = f"{choice.name} did not build"
    return [] if rest.isa is None else [Choice(rest.name, why), *fallbacks(Choice(rest.name, why))]


def _first_runnable(names: list[str]) -> Choice:
    skipped: list[str] = []
    for name in names:
        reason = missing(name)
        if reason is None:
            why = skipped[0] if skipped else "the best this CPU has"
            return Choice(name, why)
        skipped.append(reason.replace("the CPU lacks ", "no "))
    # what the last (least demanding) variant lacks
    return Choice(PORTABLE, skipped[-1] if skipped else "no variant left")
