"""PAL (program-aided answers): the model writes `solution()`, the sandbox runs it.

prompt.py (few-shot chat turns) -> extract.py (the program out of the reply) -> execute.py
(sandbox run, value read back) -> vote.py (self-consistency) ; solver.py ties them together
with one repair round; model.py picks which model writes the code.
"""

from __future__ import annotations

from core.pal.execute import Execution, SandboxRefused
from core.pal.extract import ExtractionError, extract_program
from core.pal.model import calc_model_spec
from core.pal.solver import Attempt, PalResult, PalSolver
from core.pal.vote import majority_vote, normalise

__all__ = [
    "PalSolver",
    "PalResult",
    "Attempt",
    "Execution",
    "ExtractionError",
    "SandboxRefused",
    "extract_program",
    "majority_vote",
    "normalise",
    "calc_model_spec",
]
