"""Messages -> prompt token ids through the model's own chat template."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from core.errors import InvalidInput
from core.llm.types import Message

__all__ = ["PromptEncoder"]


class PromptEncoder:
    """Encodes chat messages; knows which token ids end an answer."""

    def __init__(self, tokenizer: Any, generation_config: Any) -> None:
        """`generation_config`: the model's (transformers GenerationConfig) or None."""
        self.tokenizer = tokenizer
        # Fast tokenizers raise "Already borrowed" when used from two threads at once.
        self._lock = threading.Lock()
        self.eos_ids = frozenset(self._eos_ids(tokenizer, generation_config))

    def encode(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of the conversation plus the assistant's turn header."""
        if not messages or not any(m.content.strip() for m in messages if m.role == "user"):
            raise InvalidInput("The prompt is empty; say what you want to ask.")
        chat = [{"role": m.role, "content": m.content} for m in messages]
        with self._lock:
            if getattr(self.tokenizer, "chat_template", None):
                text = self.tokenizer.apply_chat_template(
                    chat, tokenize=False, add_generation_prompt=True
                )
            else:  # a base model without a template: plain concatenation
                text = "\n".join(m["content"] for m in chat) + "\n"
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @staticmethod
    def _eos_ids(tokenizer: Any, generation_config: Any) -> set[int]:
        ids: set[int] = set()
        for value in (
            getattr(tokenizer, "eos_token_id", None),
            getattr(generation_config, "eos_token_id", None),
        ):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids
