"""The real bundled model through `load_model`: it answers, the cache is faithful and shared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from core.config import Settings
from core.errors import ModelLoadError
from core.llm.models.convert import load_gguf
from core.llm.models.loading import LoadedModel, ModelCache, load_model
from core.llm.models.presets import PRESETS, preset_status

pytestmark = pytest.mark.model

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _greedy(model: Any, tokenizer: Any, new_tokens: int) -> list[int]:
    enc = tokenizer.apply_chat_template(
        QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=new_tokens, do_sample=False)
    return out[0, enc["input_ids"].shape[1] :].tolist()


def test_bundled_model_knows_the_capital_of_france(bundled_model: LoadedModel) -> None:
    answer = bundled_model.tokenizer.decode(
        _greedy(bundled_model.model, bundled_model.tokenizer, 16), skip_special_tokens=True
    )
    assert "Paris" in answer


def test_bundled_model_is_ready_for_the_engine(bundled_model: LoadedModel) -> None:
    assert (bundled_model.name, bundled_model.device, bundled_model.dtype) == (
        "smollm2-135m",
        "cpu",
        "float32",
    )
    assert bundled_model.context_tokens == 8192
    assert not bundled_model.model.training
    assert not any(p.requires_grad for p in bundled_model.model.parameters())
    tok = bundled_model.tokenizer
    assert tok.pad_token is not None and tok.chat_template
    assert torch.get_num_threads() == 1


def test_second_load_in_process_is_the_same_object(
    bundled_model: LoadedModel, model_cache: ModelCache, model_settings: Settings
) -> None:
    assert load_model("smollm2-135m", model_settings, cache=model_cache) is bundled_model
    assert model_cache.load("smollm2-135m", model_settings) is bundled_model


def test_warm_load_reads_the_converted_cache(
    bundled_model: LoadedModel, model_settings: Settings
) -> None:
    status = preset_status(PRESETS["smollm2-135m"], model_settings.data_dir)
    assert status.converted and Path(bundled_model.path) == status.converted_dir
    fresh = load_model(bundled_model.path, model_settings)  # the HF dir itself, no cache object
    assert fresh is not bundled_model
    assert fresh.load_s < 30  # seconds, generous for a busy 2-core host; ~1-3 s when quiet
    assert torch.equal(fresh.model.lm_head.weight, bundled_model.model.lm_head.weight)


@pytest.mark.slow
def test_cache_gives_the_same_greedy_tokens_as_the_gguf(bundled_model: LoadedModel) -> None:
    gguf = preset_status(PRESETS["smollm2-135m"], "/unused").gguf_path
    direct_model, direct_tokenizer = load_gguf(gguf)  # the slow path the cache replaces
    want = _greedy(direct_model, direct_tokenizer, 24)
    assert _greedy(bundled_model.model, bundled_model.tokenizer, 24) == want
    direct = direct_model.state_dict()
    for name, tensor in bundled_model.model.state_dict().items():
        assert torch.equal(tensor, direct[name]), name


def test_tiny_llama_uses_the_real_tokenizer(
    tiny_llama: LoadedModel, bundled_model: LoadedModel
) -> None:
    tok = tiny_llama.tokenizer
    assert tok is not bundled_model.tokenizer
    assert len(tok) == len(bundled_model.tokenizer) == tiny_llama.model.config.vocab_size
    enc = tok.apply_chat_template(
        QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        logits = tiny_llama.model(**enc).logits
    assert logits.shape == (1, enc["input_ids"].shape[1], len(tok))
    assert tiny_llama.context_tokens == 512


# -- errors name what was tried ----------------------------------------------------------------


def test_unknown_preset(model_settings: Settings) -> None:
    with pytest.raises(ModelLoadError, match="Unknown model 'llama-9000'.*guru models list"):
        load_model("llama-9000", model_settings)


def test_missing_path(model_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=f"{tmp_path / 'nope'} does not exist"):
        load_model(str(tmp_path / "nope"), model_settings)


def test_garbage_gguf(model_settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "garbage.gguf"
    bad.write_bytes(b"\x00" * 4096)
    with pytest.raises(ModelLoadError, match="garbage.gguf is not a GGUF file"):
        load_model(str(bad), model_settings)


def test_truncated_gguf(model_settings: Settings, tmp_path: Path) -> None:
    gguf = preset_status(PRESETS["smollm2-135m"], "/unused").gguf_path
    cut = tmp_path / "cut.gguf"
    with open(gguf, "rb") as fh:
        cut.write_bytes(fh.read(1 << 20))  # valid header, weights missing
    settings = Settings(data_dir=str(tmp_path / "data"), device="cpu", threads=1)
    with pytest.raises(ModelLoadError, match="cut.gguf"):
        load_model(str(cut), settings)
    assert not any((tmp_path / "data" / "models").glob("cut-*"))  # no half-written cache


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_4bit_on_cpu(model_settings: Settings) -> None:
    settings = Settings(data_dir=model_settings.data_dir, quantization="4bit")
    with pytest.raises(
        ModelLoadError, match="GURU_QUANTIZATION=4bit needs a CUDA GPU; none was found"
    ):
        load_model("smollm2-135m", settings)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_on_cpu(model_settings: Settings) -> None:
    settings = Settings(data_dir=model_settings.data_dir, device="cuda")
    with pytest.raises(ModelLoadError, match="GURU_DEVICE=cuda, but no CUDA GPU was found"):
        load_model("smollm2-135m", settings)


def test_install_warms_the_engine_so_the_first_question_pays_nothing(
    bundled_model: LoadedModel, model_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from core.cli.models import install_model
    from core.llm.engine import native

    args = argparse.Namespace(name="smollm2-135m", calc=False, no_warm=False)
    assert install_model(args, model_settings) == 0
    out = capsys.readouterr().out
    (kernels,) = [line for line in out.splitlines() if line.strip().startswith("kernels")]
    assert "prepared in" in kernels
    if native.unsupported(model_settings.engine_isa) is None:
        # the packing is cached beside the weights, for the next process to read
        assert (Path(bundled_model.path) / "guru-lean-int4.safetensors").is_file()
