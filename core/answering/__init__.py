"""The one answering path of /ask, /explain, `guru ask`, `guru explain` and `guru chat`:
`Answers.prepare` → generate (streamed or not) → `Answers.finish` (service.py), with
`PreparedAnswer` judging and finishing the model's text (prepared.py)."""

from core.answering.prepared import (
    ANSWER_TEMPERATURE,
    ANSWER_TOKENS,
    NO_USABLE_ANSWER,
    REPETITION_PENALTY,
    Kind,
    PreparedAnswer,
)
from core.answering.service import Answers
from core.interactions import Asker

__all__ = [
    "ANSWER_TEMPERATURE",
    "ANSWER_TOKENS",
    "NO_USABLE_ANSWER",
    "REPETITION_PENALTY",
    "Answers",
    "Asker",
    "Kind",
    "PreparedAnswer",
]
