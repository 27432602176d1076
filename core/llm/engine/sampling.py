"""Per-request token choice and incremental detokenization with stop strings.

Each row of a batch keeps its own settings (greedy or temperature/top-p with its own seeded
generator, repetition penalty), using transformers' logits processors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

__all__ = ["TokenChooser", "TextStream"]


class TokenChooser:
    """Picks one sequence's next token from its logits row."""

    def __init__(
        self,
        temperature: float,
        top_p: float,
        repetition_penalty: float,
        seed: int | None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.greedy = temperature <= 0
        processors = LogitsProcessorList()
        if repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
        if not self.greedy:
            processors.append(TemperatureLogitsWarper(temperature))
            if top_p < 1.0:
                processors.append(TopPLogitsWarper(top_p))
        self.processors = processors
        self.generator: torch.Generator | None = None
        if not self.greedy:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(seed if seed is not None else torch.seed())

    def choose(self, logits: torch.Tensor, history: torch.Tensor) -> int:
        """`logits`: [vocab] float; `history`: [n] token ids so far (prompt + answer)."""
        scores = logits.float().unsqueeze(0)
        if self.processors:
            scores = self.processors(history.unsqueeze(0), scores)
        if self.greedy:
            return int(scores.argmax(dim=-1))
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))


@dataclass
class TextStream:
    """Turns token ids into text deltas; stops at stop strings and never leaks their prefix."""

    tokenizer: object
    stop: tuple[str, ...] = ()
    ids: list[int] = field(default_factory=list)
    text: str = ""  # decoded answer so far (up to a stop string)
    emitted: int = 0  # characters of `text` already handed to the caller
    stopped: bool = False

    def push(self, token_id: int) -> str:
        """Add a token; return the newly safe-to-show text (may be empty)."""
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # a multi-byte character is still incomplete
            return ""
        for stop in self.stop:
            at = text.find(stop, max(0, self.emitted - len(stop)))
            if at != -1:
                text, self.stopped = text[:at], True
        self.text = text
        safe = len(text) if self.stopped else len(text) - self._held_back(text)
        delta = text[self.emitted : safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return delta

    def flush(self) -> str:
        """Whatever was held back, at the end of generation."""
        delta = self.text[self.emitted :]
        self.emitted = len(self.text)
        return delta

    def _held_back(self, text: str) -> int:
        # Hold back a tail that could still grow into a stop string.
        longest = 0
        for stop in self.stop:
            for n in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:n]):
                    longest = max(longest, n)
                    break
        return longest
