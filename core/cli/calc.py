"""`guru calc PROBLEM [--samples K] [--json]`: answer a math word problem with PAL.

The /calc model (GURU_CALC_MODEL, else the strongest installed code preset) writes a
`solution()` program; the sandbox runs it; K programs vote (--samples K, default
GURU_CALC_SAMPLES). A program that returns a number written into it instead of computing it
is rejected and resampled. Exit status:
0 with an answer, 1 when no program produced one, 2 on bad input or a refusing sandbox.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from core.config import Settings
from core.errors import InvalidInput
from core.pal.solver import MAX_SAMPLES, PalResult, check_problem

__all__ = ["register", "run_calc", "show_result"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calc",
        help="Solve a math word problem with model-written code (PAL).",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("problem", nargs="+", metavar="PROBLEM", help="the problem text; - = stdin")
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="K",
        help=f"programs to sample and vote over (1-{MAX_SAMPLES}; 1 = greedy; "
        "default GURU_CALC_SAMPLES)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run_calc)


def _problem(args: argparse.Namespace) -> str:
    text = sys.stdin.read() if args.problem == ["-"] else " ".join(args.problem)
    return check_problem(text)  # fail fast, before minutes of model loading


def show_result(result: PalResult, errors: TextIO | None = None) -> None:
    """The program, what it printed, the votes and the answer (or, on `errors`, default
    stderr, why there is none)."""
    if result.code:
        print(f"```python\n{result.code.rstrip()}\n```")
    if result.stdout.strip():
        print(f"output:\n{result.stdout.rstrip()}")
    if len(result.votes) > 0 and sum(result.votes.values()) > 1:
        print("votes: " + ", ".join(f"{a!r}: {n}" for a, n in result.votes.items()))
    if result.answer is not None:
        flag = "" if result.numeric else "   (not a number: the program returned this value)"
        print(f"answer: {result.answer}{flag}")
    else:
        print(f"no answer: {result.error}", file=errors or sys.stderr)


async def run_calc(args: argparse.Namespace, settings: Settings) -> int:
    from core.services import Services

    problem = _problem(args)
    if args.samples is not None and not 1 <= args.samples <= MAX_SAMPLES:
        raise InvalidInput(f"--samples must be between 1 and {MAX_SAMPLES}.")
    services = Services(settings)
    try:
        solver = await services.pal_solver()  # fails closed before loading a model for nothing
        result = await solver.solve(problem, samples=args.samples)
    finally:
        await services.aclose()
    if args.json:
        print(json.dumps(result.public(), indent=2))
    else:
        show_result(result)
    return 0 if result.answer is not None else 1
