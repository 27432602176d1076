"""Real attention weights of the loaded model for one sentence: a [T, T] map plus a reading.

Only the eager attention implementation returns weights (`sdpa` and flash kernels never
materialise them), but the shared model runs `sdpa` for the engine. Switching the shared
model's config to eager and back would race with the engine thread: the implementation is read
from the config several times per forward (mask construction, every attention layer), so an
engine step could build an sdpa-style mask and then run eager attention with it. Instead we
build an *eager view*: shallow copies of the module tree that share every parameter and buffer
(no extra memory) but point at a private copy of the config set to eager. The shared model is
never touched. Callers on the event loop run `attention_map` via `asyncio.to_thread`.
"""

from __future__ import annotations

import copy
import logging
import sys
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from core.errors import GuruError, InvalidInput
from core.llm.models.loading import LoadedModel

__all__ = ["AttentionMap", "attention_map", "describe", "default_layer", "MAX_TOKENS"]

log = logging.getLogger(__name__)

MAX_TOKENS = 64  # beyond this the labels are unreadable at Discord preview size (~800 px)
HeadChoice = int | Literal["mean"] | None


@dataclass(frozen=True)
class AttentionMap:
    """Attention of one layer (one head, or the mean over heads) for one sentence."""

    model: str
    sentence: str
    tokens: tuple[str, ...]  # readable labels, one per token
    token_ids: tuple[int, ...]
    layer: int  # 0-based
    head: int | None  # None = mean over heads
    num_layers: int
    num_heads: int
    weights: np.ndarray  # [T, T] float32; row i = how query token i spreads its attention

    @property
    def head_label(self) -> str:
        return f"mean of {self.num_heads} heads" if self.head is None else f"head {self.head}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (weights rounded to 4 decimals)."""
        return {
            "model": self.model,
            "sentence": self.sentence,
            "tokens": list(self.tokens),
            "token_ids": list(self.token_ids),
            "layer": self.layer,
            "head": "mean" if self.head is None else self.head,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "weights": np.round(self.weights, 4).tolist(),
            "reading": describe(self),
        }


def default_layer(num_layers: int) -> int:
    """The last layer: its output feeds the next-token prediction directly, at any depth.

    No single layer is best for every sentence. Measured on SmolLM2-135M (30 layers, mean of
    heads, 4 sentences): layers 0-1 spread attention broadly, 10-11 look mostly at nearby
    tokens, and the others park 40-90% of it on the first token (the attention sink). The telling
    links live in single heads (layer 9, head 2 ties "iph"/"one" back to "apple" with ~24%),
    so the CLI and bot let users pick --layer/--head; the default is the stable, explainable one.
    """
    return num_layers - 1


def _text_config(model: Any) -> Any:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _eager_view(model: Any) -> Any:
    """A copy of `model`'s module tree sharing all tensors, whose configs say `eager`."""
    from transformers import PretrainedConfig

    # Adapters can only have been injected if peft was imported; importing it here just to
    # check would cost seconds (it pulls in bitsandbytes).
    tuner_layer: Any = ()
    if "peft" in sys.modules:
        from peft.tuners.tuners_utils import BaseTunerLayer

        tuner_layer = BaseTunerLayer

    configs: dict[int, Any] = {}

    def eager_config(config: Any) -> Any:
        if id(config) not in configs:
            private = copy.copy(config)
            private._attn_implementation_internal = "eager"
            configs[id(config)] = private
        return configs[id(config)]

    def clone(module: Any) -> Any:
        if isinstance(module, tuner_layer):
            # A per-guild LoRA injected by the engine: explain the base model, not an adapter.
            return clone(module.get_base_layer())
        new = copy.copy(module)  # shares _parameters/_buffers dicts; we only replace below
        # transformers collects attentions through forward hooks it installs on first use
        # (flagged on the top module only). With shared hook dicts every view would add its
        # hooks to the shared model again: a leak, and duplicated entries in `attentions`.
        for name, value in module.__dict__.items():
            if "hooks" in name and isinstance(value, dict):
                new.__dict__[name] = copy.copy(value)
        new.__dict__["_modules"] = {
            name: None if child is None else clone(child) for name, child in module._modules.items()
        }
        config = module.__dict__.get("config")
        if isinstance(config, PretrainedConfig):
            new.__dict__["config"] = eager_config(config)
        return new

    return clone(model)


def _label(tokenizer: Any, token_id: int) -> str:
    text = tokenizer.decode([token_id])
    if "\ufffd" in text:  # a byte piece of a multi-byte character: show the raw token
        text = str(tokenizer.convert_ids_to_tokens(token_id))
    text = text.replace("\n", "↵").replace("\t", "⇥").strip()
    return text or "␣"


def _check(
    sentence: str,
    token_ids: list[int],
    layer: int,
    head: HeadChoice,
    num_layers: int,
    num_heads: int,
) -> None:
    if not token_ids:
        raise InvalidInput("The sentence is empty: give me a sentence to look at.")
    if len(token_ids) < 2:
        raise InvalidInput(
            f"{sentence!r} is a single token, which can only attend to itself; "
            "give me at least two words."
        )
    if len(token_ids) > MAX_TOKENS:
        raise InvalidInput(
            f"That sentence is {len(token_ids)} tokens long; the heatmap takes at most "
            f"{MAX_TOKENS} tokens so its labels stay readable. Try a shorter sentence."
        )
    if not 0 <= layer < num_layers:
        raise InvalidInput(
            f"Layer {layer} does not exist: choose a layer from 0 to {num_layers - 1}."
        )
    if isinstance(head, int) and not 0 <= head < num_heads:
        raise InvalidInput(
            f"Head {head} does not exist: choose a head from 0 to {num_heads - 1}, "
            "or the mean over heads."
        )


def attention_map(
    loaded: LoadedModel, sentence: str, layer: int | None = None, head: HeadChoice = None
) -> AttentionMap:
    """The [T, T] attention of `layer` (default: `default_layer`) for `sentence`; blocking.

    `head` is a head index, or None / "mean" for the mean over heads. Bad input raises
    InvalidInput whose message names the limit or the valid range.
    """
    import torch

    is_index = isinstance(head, int) and not isinstance(head, bool)
    if head is not None and head != "mean" and not is_index:
        raise InvalidInput(f"head must be a head number or 'mean', not {head!r}.")
    text_config = _text_config(loaded.model)
    num_layers = int(text_config.num_hidden_layers)
    num_heads = int(text_config.num_attention_heads)
    layer = default_layer(num_layers) if layer is None else layer
    sentence = sentence.strip()
    token_ids = loaded.tokenizer(sentence)["input_ids"] if sentence else []
    _check(sentence, token_ids, layer, head, num_layers, num_heads)

    device = next(loaded.model.parameters()).device
    view = _eager_view(loaded.model)
    with torch.no_grad():
        out = view(
            input_ids=torch.tensor([token_ids], device=device),
            output_attentions=True,
            use_cache=False,
        )
    attentions = getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise GuruError(f"{loaded.name} does not expose its attention weights, so no heatmap.")
    if len(attentions) != num_layers:  # a hook installed twice would shift every index
        raise GuruError(
            f"Reading the attention of {loaded.name} went wrong: got "
            f"{len(attentions)} layers of weights for {num_layers} layers."
        )
    per_head = attentions[layer][0].float()  # [heads, T, T]
    chosen = per_head.mean(dim=0) if head in (None, "mean") else per_head[head]
    log.debug(
        "attention map: %s layer %d head %s, %d tokens", loaded.name, layer, head, len(token_ids)
    )
    return AttentionMap(
        model=loaded.name,
        sentence=sentence,
        tokens=tuple(_label(loaded.tokenizer, t) for t in token_ids),
        token_ids=tuple(int(t) for t in token_ids),
        layer=layer,
        head=None if head in (None, "mean") else int(head),
        num_layers=num_layers,
        num_heads=num_heads,
        weights=chosen.cpu().numpy().astype(np.float32),
    )


def _quoted(amap: AttentionMap, index: int) -> str:
    token = amap.tokens[index]
    repeated = amap.tokens.count(token) > 1
    return f'"{token}" (token {index})' if repeated else f'"{token}"'


def describe(amap: AttentionMap) -> str:
    """One paragraph reading the map: where the last token looks, sink and self shares."""
    weights = amap.weights
    last = len(amap.tokens) - 1
    row = weights[last]
    sink, itself = float(row[0]), float(row[last])
    where = f"In layer {amap.layer} (of 0-{amap.num_layers - 1}, {amap.head_label}) of {amap.model}"
    parts = [
        f"{where}, the last token {_quoted(amap, last)} keeps {itself:.0%} of its attention "
        f"on itself and gives {sink:.0%} to the first token {_quoted(amap, 0)}."
    ]
    if sink >= 0.3:
        parts.append(
            "That first-token share is the usual attention sink: softmax must put its "
            "weight somewhere, and models learn to park unneeded attention on the "
            "first position, so it says little about meaning."
        )
    middle = [(float(row[j]), j) for j in range(1, last)]
    middle.sort(reverse=True)
    top = [(w, j) for w, j in middle[:3] if w >= 0.01]
    if top:
        listed = ", ".join(f"{_quoted(amap, j)} ({w:.0%})" for w, j in top)
        parts.append(f"Among the tokens in between it attends most to {listed}.")
    else:
        parts.append("It gives almost nothing to the tokens in between.")
    rest = weights[1:, 1:].copy()
    np.fill_diagonal(rest, 0.0)
    if rest.size and rest.max() > 0:
        i, j = np.unravel_index(int(rest.argmax()), rest.shape)
        parts.append(
            f"The strongest link between two different tokens (first token aside) is "
            f"{_quoted(amap, i + 1)} looking back at {_quoted(amap, j + 1)} "
            f"({rest[i, j]:.0%}). The model is causal: each row only sees earlier "
            "tokens, so the upper triangle is empty."
        )
    return " ".join(parts)
