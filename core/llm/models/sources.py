"""Turn a model spec (preset name, HF directory, .gguf path) into files on disk, cheaply.

Resolution reads no weights, so errors about names and paths come back at once, and the
process-level model cache can be keyed before anything slow happens.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import ModelLoadError
from core.llm.models.convert import check_gguf_file, ensure_converted
from core.llm.models.install import ensure_gguf
from core.llm.models.presets import PRESETS, PresetStatus, get_preset, models_dir, preset_status

__all__ = ["ModelSource", "resolve_source", "prepare_model_dir"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from and where its HF-format directory is (or will be)."""

    spec: str  # what the user asked for
    name: str  # preset name or a readable path, for logs and /status
    kind: Literal["preset", "gguf", "hf"]
    path: Path  # the .gguf file (preset or path) or the HF directory itself
    hf_dir: Path  # the directory transformers loads: `path` for "hf", else the converted cache
    status: PresetStatus | None = None  # for presets

    @property
    def key(self) -> str:
        """Stable identity of the weights, for the process-level cache."""
        return str(self.path.resolve())


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or spec.startswith((".", "~")) or spec.endswith(".gguf")


def resolve_source(spec: str, data_dir: str | Path) -> ModelSource:
    """Classify `spec` and locate its files; ModelLoadError naming what was tried if impossible."""
    spec = spec.strip()
    if spec in PRESETS:
        status = preset_status(PRESETS[spec], data_dir)
        if not status.packages_installed and not status.gguf_present:
            raise ModelLoadError(
                f"Model preset {spec!r} is not installed (missing packages: "
                f"{', '.join(status.missing_packages)}). Run `{status.install_command}`."
            )
        return ModelSource(spec, spec, "preset", status.gguf_path, status.converted_dir, status)
    path = Path(spec).expanduser()
    if not path.exists():
        if _looks_like_path(spec):
            raise ModelLoadError(f"Model path {path} does not exist (GURU_MODEL={spec!r}).")
        get_preset(spec)  # raises the "unknown preset" message listing the presets
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"Directory {path} is not a HF-format model: it has no config.json "
                "(expected config.json, weights and tokenizer files)."
            )
        return ModelSource(spec, str(path), "hf", path, path)
    check_gguf_file(path)  # a non-GGUF file fails here, before any slow work
    resolved = path.resolve()
    tag = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    cache = models_dir(data_dir) / f"{resolved.stem}-{tag}"
    return ModelSource(spec, str(path), "gguf", resolved, cache)


def prepare_model_dir(source: ModelSource, progress: bool = False) -> Path:
    """The HF directory to load: assembles and converts once when the source is a .gguf."""
    if source.kind == "hf":
        return source.hf_dir
    gguf = source.path
    if source.status is not None:  # a preset: its .gguf may still need assembling
        gguf = ensure_gguf(source.status, progress=progress)
    return ensure_converted(gguf, source.hf_dir)
