"""The tokenizer read straight from tokenizer.json (core.llm.models.loading) is the one
transformers' AutoTokenizer builds: same ids, text, special tokens and chat prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from core.config import Settings
from core.llm.models.loading import _added_tokens, load_tokenizer
from core.llm.models.sources import prepare_model_dir, resolve_source

TEXTS = [
    "Hello world!",
    "def f(x):\n    return x**2  # ünïcödé 日本語 🙂",
    "  multiple   spaces\n\n\ttabs and trailing  ",
    "<|im_start|>user\nhi<|im_end|><|endoftext|>",
    "What is 17 * 23 + 5? Answer: 396.",
]


def _presets(settings) -> list[Path]:
    """The bundled model, and Qwen2.5's 151k-token vocabulary where it is installed (the
    test data directory, else the user's)."""
    dirs = [prepare_model_dir(resolve_source("smollm2-135m", settings.data_dir))]
    for data_dir in (settings.data_dir, Settings.from_env().data_dir):
        hf_dir = Path(data_dir) / "models" / "qwen2.5-coder-0.5b"
        if (hf_dir / "tokenizer.json").is_file():
            return [*dirs, hf_dir]
    return dirs


@pytest.mark.model
def test_tokenizer_json_loads_like_autotokenizer(model_settings):
    dirs = _presets(model_settings)
    assert dirs, "the bundled model is always installed"
    readme = (Path(__file__).parents[2] / "README.md").read_text()[:20000]
    for hf_dir in dirs:
        ours, auto = load_tokenizer(hf_dir), AutoTokenizer.from_pretrained(str(hf_dir))
        assert _added_tokens(hf_dir / "tokenizer.json"), "read from the file, not by fallback"
        for text in [*TEXTS, readme]:
            ids = auto(text)["input_ids"]
            assert ours(text)["input_ids"] == ids, (hf_dir.name, text[:40])
            assert ours.decode(ids) == auto.decode(ids)
            assert ours.decode(ids, skip_special_tokens=True) == auto.decode(
                ids, skip_special_tokens=True
            )
        chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
        prompt = auto.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        assert ours.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) == prompt
        for attr in ("eos_token_id", "bos_token_id", "unk_token_id", "all_special_ids"):
            assert getattr(ours, attr) == getattr(auto, attr), (hf_dir.name, attr)
        assert ours.pad_token_id == (auto.pad_token_id if auto.pad_token else auto.eos_token_id)
        assert len(ours) == len(auto)


def test_added_tokens_need_the_list_where_tokenizers_writes_it(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"model": {"vocab": {}}, "added_tokens": 3}')
    assert _added_tokens(path) is None
    path.write_text('{"version": "1.0", "added_tokens": [{"id": 7, "content": "<x>"}]}')
    assert {k: str(v) for k, v in _added_tokens(path).items()} == {7: "<x>"}
