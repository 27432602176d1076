"""Rendering and reading an AttentionMap, without a model: labels, sizes, the paragraph."""

from __future__ import annotations

import warnings

import numpy as np

from core.explain.attention import AttentionMap, describe
from core.explain.heatmap import render_png


def make_map(tokens: tuple[str, ...], weights: np.ndarray, head: int | None = None) -> AttentionMap:
    return AttentionMap(
        model="toy",
        sentence=" ".join(tokens),
        tokens=tokens,
        token_ids=tuple(range(len(tokens))),
        layer=3,
        head=head,
        num_layers=4,
        num_heads=2,
        weights=weights.astype(np.float32),
    )


def causal_uniform(n: int) -> np.ndarray:
    weights = np.tril(np.ones((n, n)))
    return weights / weights.sum(axis=1, keepdims=True)


def test_labels_the_font_cannot_draw_do_not_warn_or_fail(tmp_path):
    amap = make_map(("I", "love", "🙂", "日本", "internationalization"), causal_uniform(5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph … missing from font(s)"
        path = render_png(amap, tmp_path / "toy.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_sixty_four_tokens_render_at_discord_width(tmp_path):
    from PIL import Image

    amap = make_map(tuple(f"tok{i}" for i in range(64)), causal_uniform(64))
    with Image.open(render_png(amap, tmp_path / "wide.png")) as image:
        assert image.size[0] == 800


def test_reading_skips_the_sink_and_names_the_strongest_middle_tokens():
    weights = np.array(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.5, 0.5, 0.0, 0.0],
            [0.3, 0.6, 0.1, 0.0],
            [0.5, 0.3, 0.1, 0.1],
        ]
    )
    text = describe(make_map(("The", "apple", "phone", "."), weights, head=1))
    assert "layer 3" in text and "head 1" in text
    assert 'last token "." keeps 10%' in text and '50% to the first token "The"' in text
    assert "attention sink" in text
    assert '"apple" (30%), "phone" (10%)' in text
    assert '"phone" looking back at "apple" (60%)' in text


def test_json_form_carries_tokens_weights_and_reading():
    amap = make_map(("a", "b"), causal_uniform(2))
    data = amap.to_dict()
    assert data["head"] == "mean" and data["tokens"] == ["a", "b"]
    assert data["weights"] == [[1.0, 0.0], [0.5, 0.5]] and data["reading"]
