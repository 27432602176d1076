"""Pairs -> token ids with labels, so the loss counts the answer only.

The prompt is encoded exactly as the engine encodes it at inference (chat template text, then
the tokenizer without special tokens), and the answer's tokens follow. Prompt positions get the
label -100, which the loss ignores: the adapter learns to answer, not to predict questions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core.tuning.data import Pair

__all__ = ["Example", "encode_pair", "encode_pairs", "collate", "IGNORE"]

log = logging.getLogger(__name__)
IGNORE = -100  # torch's CrossEntropyLoss ignore_index


@dataclass(frozen=True)
class Example:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]


def encode_pair(tokenizer: Any, pair: Pair, max_tokens: int) -> Example | None:
    """One example, or None when the prompt alone leaves no room for any answer token."""
    chat = pair.chat()
    prompt_text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(
        [*chat, {"role": "assistant", "content": pair.output}], tokenize=False
    )
    if not full_text.startswith(prompt_text):
        # A template that rewrites earlier turns once an answer exists: fall back to the
        # template's own header followed by the answer and the end-of-turn token.
        full_text = prompt_text + pair.output + (tokenizer.eos_token or "")
    answer_text = full_text[len(prompt_text) :]
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer_text, add_special_tokens=False)["input_ids"]
    ids = (list(prompt_ids) + list(answer_ids))[:max_tokens]
    labels = ([IGNORE] * len(prompt_ids) + list(answer_ids))[:max_tokens]
    if all(t == IGNORE for t in labels):
        return None
    return Example(tuple(ids), tuple(labels))


def encode_pairs(tokenizer: Any, pairs: list[Pair], max_tokens: int) -> list[Example]:
    out = [e for p in pairs if (e := encode_pair(tokenizer, p, max_tokens)) is not None]
    if len(out) < len(pairs):
        log.warning("skipped %d pair(s) whose prompt fills max_seq_tokens", len(pairs) - len(out))
    return out


def collate(examples: list[Example], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors; padding is masked out of attention and of the loss."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
