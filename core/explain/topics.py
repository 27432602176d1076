"""The concept notes as data: titles (for autocomplete), "See also" links, word counts.

The notes themselves are answered through the knowledge base (core.rag); this module only
reads their structure, which the topic list and the note checks need.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CONCEPTS_DIR", "Note", "load_notes", "topics", "word_count"]

log = logging.getLogger(__name__)

CONCEPTS_DIR = Path(__file__).resolve().parent / "concepts"
_LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")
_SEE_ALSO = re.compile(r"^##+\s*See also\s*$", re.IGNORECASE | re.MULTILINE)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’_.\-/]*")


@dataclass(frozen=True)
class Note:
    """One concept note: its file name (the topic id), title, links and size."""

    name: str  # file name, e.g. "lora.md"
    title: str
    see_also: tuple[str, ...]  # file names linked from the "See also" section
    words: int
    text: str

    @property
    def topic(self) -> str:
        return self.name.removesuffix(".md")


def word_count(markdown: str) -> int:
    """Words of prose and formulas, ignoring markdown punctuation (#, |, *, backticks)."""
    return len(_WORD.findall(markdown))


def _title(text: str, path: Path) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
        if line.strip():
            break
    raise ValueError(f"{path.name} must start with a '# Title' heading")


def _see_also(text: str) -> tuple[str, ...]:
    match = _SEE_ALSO.search(text)
    if match is None:
        return ()
    section = text[match.end() :]
    nxt = re.search(r"^#", section, re.MULTILINE)
    return tuple(_LINK.findall(section[: nxt.start()] if nxt else section))


def load_notes(directory: Path = CONCEPTS_DIR) -> list[Note]:
    """Every note in `directory`, sorted by file name."""
    notes = []
    for path in sorted(directory.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        notes.append(Note(path.name, _title(text, path), _see_also(text), word_count(text), text))
    return notes


def topics(directory: Path = CONCEPTS_DIR) -> list[dict[str, str]]:
    """`[{"topic": "lora", "title": "LoRA: ..."}]`, sorted by title, for autocomplete."""
    rows = [{"topic": n.topic, "title": n.title} for n in load_notes(directory)]
    return sorted(rows, key=lambda r: r["title"].lower())
