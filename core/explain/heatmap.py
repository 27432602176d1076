"""Render an AttentionMap as a PNG sized for Discord's preview (about 800 px wide).

Uses matplotlib's object API (`Figure` + Agg canvas), not pyplot: pyplot keeps global figure
state that is not thread-safe, and callers render from worker threads.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from core.explain.attention import AttentionMap, attention_map

__all__ = ["heatmap_png", "render_png", "WIDTH_PX"]

log = logging.getLogger(__name__)

WIDTH_PX = 800  # Discord scales attachments to about this width in the chat preview
DPI = 100
MAX_LABEL_CHARS = 12


def _font_size(n_tokens: int) -> float:
    # ~560 px of axis for n labels; a label needs about 1.4x its font size in pixels.
    return float(np.clip(560 / (n_tokens * 1.4), 5.5, 12))


@functools.lru_cache(maxsize=1)
def _drawable_codepoints() -> frozenset[int]:
    """Code points of matplotlib's default font (DejaVu Sans); it has no emoji or CJK glyphs."""
    from matplotlib.font_manager import FontProperties, findfont
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(findfont(FontProperties())).get_charmap())


def _short(token: str) -> str:
    """A label the font can draw: missing glyphs become U+XXXX rather than empty boxes."""
    drawable = _drawable_codepoints()
    token = "".join(ch if ord(ch) in drawable else f"U+{ord(ch):04X}" for ch in token)
    return token if len(token) <= MAX_LABEL_CHARS else token[: MAX_LABEL_CHARS - 1] + "…"


def render_png(amap: AttentionMap, path: str | Path) -> Path:
    """Write the heatmap to `path` (parents created) and return it; blocking, thread-safe."""
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(amap.tokens)
    labels = [_short(t) for t in amap.tokens]
    font = _font_size(n)

    fig = Figure(figsize=(WIDTH_PX / DPI, WIDTH_PX * 0.9 / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    # The future (upper triangle) is masked by the model; draw it grey rather than as zero.
    future = np.triu(np.ones((n, n), dtype=bool), k=1)
    shown = np.ma.masked_array(amap.weights, mask=future)
    cmap = mpl.colormaps["magma"].with_extremes(bad="#dddddd")
    # A square-root scale: the first-token sink often takes most of the weight and would
    # otherwise wash every other cell out to black.
    image = ax.imshow(
        shown, cmap=cmap, norm=PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0), interpolation="nearest"
    )
    ax.set_xticks(range(n), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    ax.set_xlabel("attended-to token (key)", fontsize=10)
    ax.set_ylabel("attending token (query)", fontsize=10)
    ax.set_title(
        f"{amap.model} · layer {amap.layer}/{amap.num_layers - 1} · {amap.head_label}", fontsize=12
    )
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("attention weight (square-root scale)", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=DPI)
    log.info("attention heatmap written to %s (%d tokens)", path, n)
    return path


def heatmap_png(loaded: Any, sentence: str) -> bytes:
    """The attention heatmap of `sentence` as PNG bytes (blocking: torch and matplotlib; the
    bot runs it in a worker thread)."""
    amap = attention_map(loaded, sentence)
    with tempfile.TemporaryDirectory(prefix="guru-heatmap-") as tmp:
        return render_png(amap, Path(tmp) / "attention.png").read_bytes()
