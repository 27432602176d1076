"""Placement rules, spec resolution errors, the model cache and the atomic GGUF conversion."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from core.errors import ModelLoadError
from core.llm.models import convert
from core.llm.models.convert import MARKER, cache_is_current, ensure_converted
from core.llm.models.loading import LoadedModel, ModelCache, resolve_placement
from core.llm.models.sources import resolve_source

# -- placement ---------------------------------------------------------------------------------


def test_auto_is_fp32_on_cpu() -> None:
    p = resolve_placement(Settings(), cuda=False)
    assert (p.device, p.dtype, p.quantization, p.label) == ("cpu", "float32", "none", "float32")


@pytest.mark.parametrize(("bf16", "dtype"), [(True, "bfloat16"), (False, "float16")])
def test_auto_on_cuda_prefers_bf16(bf16: bool, dtype: str) -> None:
    p = resolve_placement(Settings(), cuda=True, bf16=bf16)
    assert (p.device, p.dtype) == ("cuda", dtype)


def test_explicit_dtype_on_cpu_is_kept() -> None:
    assert resolve_placement(Settings(dtype="bfloat16"), cuda=False).dtype == "bfloat16"


@pytest.mark.parametrize(
    ("quant", "label", "dtype"), [("4bit", "nf4", "bfloat16"), ("8bit", "int8", "float16")]
)
def test_quantization_on_cuda(quant: str, label: str, dtype: str) -> None:
    p = resolve_placement(Settings(quantization=quant, dtype="float32"), cuda=True, bf16=True)
    assert (p.device, p.label, p.dtype) == ("cuda", label, dtype)


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_4bit_without_cuda_is_a_clear_error(device: str) -> None:
    with pytest.raises(ModelLoadError) as info:
        resolve_placement(Settings(quantization="4bit", device=device), cuda=False)
    assert info.value.user_message.startswith("GURU_QUANTIZATION=4bit needs a CUDA GPU;")


def test_cuda_without_gpu_is_a_clear_error() -> None:
    with pytest.raises(ModelLoadError, match="GURU_DEVICE=cuda, but no CUDA GPU was found"):
        resolve_placement(Settings(device="cuda"), cuda=False)


# -- spec resolution ---------------------------------------------------------------------------


def test_unknown_preset(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="Unknown model 'nope'.*smollm2-135m"):
        resolve_source("nope", tmp_path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_source(str(tmp_path / "missing.gguf"), tmp_path)


def test_garbage_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ModelLoadError, match=f"{bad} is not a GGUF file"):
        resolve_source(str(bad), tmp_path)


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_source(str(tmp_path), tmp_path)


def test_gguf_path_gets_its_own_cache_dir(tmp_path: Path) -> None:
    f = tmp_path / "My.Model.gguf"
    f.write_bytes(b"GGUF" + b"\0" * 20)
    source = resolve_source(str(f), tmp_path / "data")
    assert source.kind == "gguf" and source.path == f.resolve()
    assert source.hf_dir.parent == tmp_path / "data" / "models"
    assert source.hf_dir.name.startswith("My.Model-")


# -- the process-level cache -------------------------------------------------------------------


def _fake_loaded(name: str) -> LoadedModel:
    return LoadedModel(name, object(), object(), "cpu", "float32", 8)


def test_cache_loads_each_key_once_under_concurrency() -> None:
    cache = ModelCache()
    calls: list[str] = []

    def loader() -> LoadedModel:
        calls.append("load")
        time.sleep(0.05)  # long enough for the other threads to pile up on the key
        return _fake_loaded("a")

    results: list[LoadedModel] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                cache.get_or_load(("a", "cpu", "float32", "none"), loader)
            )
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["load"]
    assert len(results) == 8 and all(r is results[0] for r in results)
    other = cache.get_or_load(("a", "cpu", "bfloat16", "none"), lambda: _fake_loaded("b"))
    assert other is not results[0] and len(cache.loaded()) == 2


def test_failed_load_is_not_cached() -> None:
    cache = ModelCache()
    key = ("x", "cpu", "float32", "none")

    def broken() -> LoadedModel:
        raise ModelLoadError("boom")

    with pytest.raises(ModelLoadError):
        cache.get_or_load(key, broken)
    assert cache.get_or_load(key, lambda: _fake_loaded("x")).name == "x"


# -- atomic conversion -------------------------------------------------------------------------


class _FakeTokenizer:
    def save_pretrained(self, path: Any) -> None:
        Path(path, "tokenizer.json").write_text("{}")


def _tiny_model() -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


@pytest.fixture
def fake_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "m.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


def test_conversion_writes_cache_and_marker(
    fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Path] = []
    monkeypatch.setattr(
        convert, "load_gguf", lambda p: (loads.append(p), (_tiny_model(), _FakeTokenizer()))[1]
    )
    dest = fake_gguf.parent.parent / "models" / "m"
    assert ensure_converted(fake_gguf, dest) == dest
    assert (dest / "model.safetensors").is_file() and (dest / "tokenizer.json").is_file()
    assert json.loads((dest / MARKER).read_text())["size"] == fake_gguf.stat().st_size
    assert "quantization_config" not in json.loads((dest / "config.json").read_text())
    ensure_converted(fake_gguf, dest)
    assert len(loads) == 1  # second call is a no-op

    fake_gguf.write_bytes(b"GGUF" + b"\1" * 80)  # the source changed: convert again
    assert not cache_is_current(dest, fake_gguf)
    ensure_converted(fake_gguf, dest)
    assert len(loads) == 2 and cache_is_current(dest, fake_gguf)
    assert sorted(p.name for p in dest.parent.iterdir()) == [".m.lock", "m"]


def test_killed_conversion_leaves_no_cache(
    fake_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = fake_gguf.parent.parent / "models" / "m"

    def dies_while_saving(model: Any, tokenizer: Any, tmp: Path) -> None:
        tmp.mkdir(parents=True)
        (tmp / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt  # stands in for a kill between writing and renaming

    monkeypatch.setattr(convert, "load_gguf", lambda p: (_tiny_model(), _FakeTokenizer()))
    monkeypatch.setattr(convert, "_save_dequantized", dies_while_saving)
    with pytest.raises(KeyboardInterrupt):
        ensure_converted(fake_gguf, dest)
    assert not dest.exists() and not cache_is_current(dest, fake_gguf)
    monkeypatch.undo()
    # A later run clears the leftover temp dir and converts properly.
    monkeypatch.setattr(convert, "load_gguf", lambda p: (_tiny_model(), _FakeTokenizer()))
    ensure_converted(fake_gguf, dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == [".m.lock", "m"]
