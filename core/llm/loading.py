"""Resolve a model spec (preset, HF directory, .gguf file) into a loaded model + tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LoadedModel"]


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for the engine. `model` is a transformers causal LM in eval mode."""

    name: str  # preset name or path, for /status and logs
    model: Any  # transformers PreTrainedModel
    tokenizer: Any  # transformers PreTrainedTokenizerBase, with a chat template
    device: str  # "cpu" or "cuda"
    dtype: str  # "float32", "bfloat16", "float16", "nf4", "int8"
    context_tokens: int  # the model's own window (max_position_embeddings)
