"""Tuning test data: a made-up server fact the base model cannot know."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.tuning.data import Pair, write_jsonl

FACT = "Our server's mascot is Zorbly the purple otter."
QUESTION = "What is the name of our server's mascot?"
TRAIN_QUESTIONS = (
    QUESTION,
    "Who is our server's mascot?",
    "Tell me the name of our mascot.",
    "What's this server's mascot called?",
)
EVAL_QUESTIONS = ("Which animal is our server mascot?",)


def mascot_pairs(questions: tuple[str, ...]) -> list[Pair]:
    return [Pair((("user", q),), FACT) for q in questions]


@pytest.fixture
def mascot_files(tmp_path: Path) -> tuple[str, str]:
    train, held = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    write_jsonl(mascot_pairs(TRAIN_QUESTIONS), str(train))
    write_jsonl(mascot_pairs(EVAL_QUESTIONS), str(held))
    return str(train), str(held)
