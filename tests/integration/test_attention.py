"""Attention maps of the real bundled model: true weights, readable PNG, shared model intact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.errors import InvalidInput
from core.explain.attention import MAX_TOKENS, attention_map, describe
from core.explain.heatmap import render_png
from tests.fixtures.models import make_tiny_llama

APPLE = "I love apple so I expect this fall when they release the new iphone."


def hook_count(model) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._forward_hooks_with_kwargs)
        for m in model.modules()
    )


def layer0_by_hand(loaded, token_ids: tuple[int, ...]) -> torch.Tensor:
    """Layer 0's attention recomputed from the Llama weights: softmax(QKᵀ·scale + causal)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, repeat_kv

    model = loaded.model.model
    ids = torch.tensor([token_ids])
    n = ids.shape[1]
    with torch.no_grad():
        x = model.layers[0].input_layernorm(model.embed_tokens(ids))
        attn = model.layers[0].self_attn
        q = attn.q_proj(x).view(1, n, -1, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(1, n, -1, attn.head_dim).transpose(1, 2)
        cos, sin = model.rotary_emb(x, torch.arange(n)[None])
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        scores = q @ repeat_kv(k, attn.num_key_value_groups).transpose(2, 3) * attn.scaling
        future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        return scores.masked_fill(future, float("-inf")).softmax(dim=-1)[0]


@pytest.mark.model
def test_map_is_a_causal_distribution_over_the_sentences_own_tokens(bundled_model):
    amap = attention_map(bundled_model, APPLE)
    expected_ids = bundled_model.tokenizer(APPLE)["input_ids"]
    n = len(expected_ids)
    assert amap.token_ids == tuple(expected_ids) and len(amap.tokens) == n
    assert amap.tokens[:3] == ("I", "love", "apple")
    assert amap.weights.shape == (n, n)
    np.testing.assert_allclose(amap.weights.sum(axis=1), 1.0, atol=1e-4)
    assert np.all(amap.weights >= 0) and np.all(np.triu(amap.weights, k=1) == 0)
    assert (amap.layer, amap.head, amap.num_layers, amap.num_heads) == (29, None, 30, 9)


@pytest.mark.model
def test_weights_are_the_models_own_attention(bundled_model):
    by_hand = layer0_by_hand(bundled_model, tuple(bundled_model.tokenizer(APPLE)["input_ids"]))
    head3 = attention_map(bundled_model, APPLE, layer=0, head=3)
    mean = attention_map(bundled_model, APPLE, layer=0, head="mean")
    np.testing.assert_allclose(head3.weights, by_hand[3].numpy(), atol=1e-4)
    np.testing.assert_allclose(mean.weights, by_hand.mean(dim=0).numpy(), atol=1e-4)


@pytest.mark.model
def test_each_layer_is_its_own_and_repeated_calls_agree(bundled_model):
    first = attention_map(bundled_model, APPLE, layer=0)
    again = attention_map(bundled_model, APPLE, layer=0)
    last = attention_map(bundled_model, APPLE, layer=29)
    np.testing.assert_array_equal(first.weights, again.weights)
    assert not np.allclose(first.weights, last.weights, atol=1e-3)


@pytest.mark.model
def test_shared_model_is_unchanged_afterwards(bundled_model):
    model = bundled_model.model
    config, implementation = model.config, model.config._attn_implementation
    hooks = hook_count(model)
    ids = torch.tensor([bundled_model.tokenizer("The cat sat")["input_ids"]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
    attention_map(bundled_model, APPLE, layer=5, head=1)
    attention_map(bundled_model, APPLE)
    assert model.config is config and model.config._attn_implementation == implementation
    assert all(getattr(m, "config", config) is config for m in model.modules())
    assert hook_count(model) == hooks
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, before)


@pytest.mark.model
def test_png_is_a_readable_heatmap(bundled_model, tmp_path):
    from PIL import Image

    amap = attention_map(bundled_model, APPLE, layer=9, head=2)
    path = render_png(amap, tmp_path / "maps" / "apple.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        width, height = image.size
    assert 700 <= width <= 900 and 500 <= height <= 900
    assert path.stat().st_size > 10_000  # labels, colour bar and cells, not a blank canvas


@pytest.mark.model
def test_reading_names_the_layer_and_tokens(bundled_model):
    amap = attention_map(bundled_model, APPLE, layer=9, head=2)
    text = describe(amap)
    assert "layer 9" in text and "head 2" in text and '"."' in text
    assert "attention sink" in describe(attention_map(bundled_model, APPLE))


@pytest.mark.model
@pytest.mark.parametrize(
    ("sentence", "layer", "head", "message"),
    [
        ("", None, None, "empty"),
        ("   \n ", None, None, "empty"),
        ("word " * 100, None, None, f"at most {MAX_TOKENS} tokens"),
        (APPLE, 30, None, "from 0 to 29"),
        (APPLE, -1, None, "from 0 to 29"),
        (APPLE, None, 9, "from 0 to 8"),
        (APPLE, None, "all", "'mean'"),
    ],
)
def test_bad_input_is_refused_with_the_limit(bundled_model, sentence, layer, head, message):
    with pytest.raises(InvalidInput, match=message) as caught:
        attention_map(bundled_model, sentence, layer, head)
    if sentence.startswith("word"):
        assert "100 tokens" in caught.value.user_message


def test_an_injected_lora_adapter_is_not_what_the_map_shows(bundled_tokenizer):
    from peft import LoraConfig, get_peft_model

    loaded = make_tiny_llama(bundled_tokenizer, seed=1)  # private copy: we inject into it
    base = attention_map(loaded, APPLE, layer=1, head=0)
    ids = torch.tensor([base.token_ids])
    with torch.no_grad():
        plain = loaded.model(input_ids=ids).logits
    config = LoraConfig(r=4, target_modules=["q_proj", "k_proj"], init_lora_weights=False)
    get_peft_model(loaded.model, config)  # replaces q/k projections in place, as the engine does
    with torch.no_grad():
        adapted = loaded.model(input_ids=ids).logits
    assert not torch.allclose(plain, adapted, atol=1e-4)  # the adapter is live in the model
    np.testing.assert_allclose(
        attention_map(loaded, APPLE, layer=1, head=0).weights, base.weights, atol=1e-6
    )


@pytest.mark.model
def test_cli_writes_png_and_json(bundled_model, test_data_dir, tmp_path, monkeypatch, capsys):
    from core.cli import main

    monkeypatch.setenv("GURU_DATA_DIR", str(test_data_dir))
    monkeypatch.setenv("GURU_THREADS", "1")
    out = tmp_path / "x.png"
    assert (
        main(
            [
                "explain",
                "--attention",
                APPLE,
                "--out",
                str(out),
                "--layer",
                "9",
                "--head",
                "2",
                "--json",
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["layer"] == 9 and payload["head"] == 2 and payload["png"] == str(out)
    assert len(payload["weights"]) == len(payload["tokens"]) == 17 and out.is_file()
    assert main(["explain", "--attention", APPLE, "--out", str(out), "--layer", "99"]) == 2
    assert "from 0 to 29" in capsys.readouterr().err
