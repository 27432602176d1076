"""PAL (program-aided answers): the model writes `solution()`, the sandbox runs it.

prompt.py (few-shot chat turns) -> extract.py (the program out of the reply) -> literal.py
(does it compute, or return a number written into it?) -> execute.py (sandbox run, value read
back) -> vote.py (self-consistency); solver.py ties them together with resampling of literal
returns and one repair round (result.py: what came of it); model.py picks the code model.
"""

from __future__ import annotations

from core.pal.execute import Execution, SandboxRefused
from core.pal.extract import ExtractionError, extract_program
from core.pal.literal import LiteralReturn, literal_returns
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
    "LiteralReturn",
    "literal_returns",
    "majority_vote",
    "normalise",
    "calc_model_spec",
]
