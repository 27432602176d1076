"""`guru bench llm` (or `python -m bench.llm`): our Engine against llama.cpp, plus a quality gate.

Why this shape: the host is a shared 2-core box where a busy neighbour can slow a run 50x
(../shared/ENGINE_FACTS.md, "Contention"). So every configuration runs in its own fresh
process (a real warm restart, its own peak RSS), configurations are interleaved round-robin
for several rounds, the report shows medians, and the load average is recorded throughout.
This process only orchestrates; it never imports torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.llamacpp import MISSING_NOTE, llamacpp_available
from bench.measure import loadavg
from bench.quality import QUALITY_PROMPTS
from bench.report import render, summarize
from bench.worker import RESULT_PREFIX
from core.config import Settings
from core.errors import GuruError

__all__ = ["add_arguments", "run", "main"]

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
# A path is a dtype (lean forward, dense weights), `int4` (lean forward, int4 packing: exact
# for Q4_1, other GGUF block types re-quantized), `auto` (the exact packings only: what
# GURU_ENGINE_WEIGHTS=auto runs), or a dtype with an `hf-` prefix (transformers' forward):
# see bench.ours.parse_path.
PATHS = (*DTYPES, "int4", "auto", *(f"hf-{p}" for p in DTYPES))
WORKER_TIMEOUT_S = 1800


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `guru bench llm`; shared with `python -m bench.llm`."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, few tokens")
    parser.add_argument("--model", default=None, help="model spec (default: GURU_MODEL)")
    parser.add_argument("--threads", type=int, default=None, help="default: GURU_THREADS")
    parser.add_argument(
        "--paths",
        default="float32,int4",
        help="paths to time and gate (comma-separated): float32, bfloat16, float16, int4, auto "
        "(lean forward), or hf-float32 etc. (transformers' forward)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--tokens", type=int, default=None, help="new tokens (default 128)")
    parser.add_argument("--no-llamacpp", action="store_true", help="skip the llama.cpp baseline")
    parser.add_argument(
        "--quality",
        type=int,
        default=None,
        help="quality-gate questions (default all; quick: 8; 0 skips the gate and its fp32 run)",
    )


class _Runner:
    """Starts workers, collects their JSON, and samples the load average between them."""

    def __init__(self, model: str, threads: int, tokens: int, progress: bool) -> None:
        self.base = ["--model", model, "--threads", str(threads), "--tokens", str(tokens)]
        self.progress = progress
        self.loads: list[float] = [loadavg()]
        self.errors: list[str] = []

    def __call__(self, what: str, *extra: str, round_no: int = 0) -> dict[str, Any] | None:
        cmd = [sys.executable, "-m", "bench.worker", what, *self.base, "--round", str(round_no)]
        cmd += list(extra)
        label = " ".join([what, *extra[:2]])
        if self.progress:
            print(f"[bench] round {round_no + 1}: {label} (load {loadavg():.2f})", file=sys.stderr)
        started = time.monotonic()
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
            cwd=str(Path(__file__).resolve().parent.parent),
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        self.loads.append(loadavg())
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX) :])
                self.loads += [v for v in result.get("loadavg", {}).values() if v >= 0]
                result["wall_s"] = time.monotonic() - started
                return result
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        self.errors.append(f"{label} (round {round_no + 1}) failed, exit {proc.returncode}: {tail}")
        log.error("worker %s failed:\n%s", label, proc.stderr[-4000:])
        return None


def _config(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    bad = [p for p in paths if p not in PATHS]
    if bad or not paths:
        raise GuruError(f"--paths takes paths among {', '.join(PATHS)}; got {args.paths!r}.")
    quick_quality = 8 if args.quick else len(QUALITY_PROMPTS)
    return {
        "model": args.model or settings.model,
        "threads": args.threads or settings.threads,
        "paths": paths,
        "rounds": args.rounds or (1 if args.quick else 3),
        "tokens": args.tokens or (32 if args.quick else 128),
        "levels": [1, 4, 8],
        "quality": args.quality if args.quality is not None else quick_quality,
    }


def collect(config: dict[str, Any], with_llamacpp: bool, progress: bool) -> dict[str, Any]:
    """Run every worker (prepare, then rounds of paths + llama.cpp) and build the report."""
    runner = _Runner(config["model"], config["threads"], config["tokens"], progress)
    prepared = runner("prepare")
    if prepared is None:
        raise GuruError("Preparing the model failed: " + "; ".join(runner.errors))
    llama = with_llamacpp and prepared.get("gguf") is not None and llamacpp_available()
    levels = ",".join(str(n) for n in config["levels"])
    results: list[dict[str, Any]] = []
    reference: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="guru-bench-") as tmp:
        prompts_file = Path(tmp) / "prompts.json"
        prompts_file.write_text(json.dumps(prepared), encoding="utf-8")
        if config["quality"] and "float32" not in config["paths"]:  # the gate needs fp32's
            reference = runner(
                "ours",
                "--dtype",
                "float32",
                "--quality",
                str(config["quality"]),
                "--quality-only",
                "--levels",
                levels,
            )
        for round_no in range(config["rounds"]):
            for path in config["paths"]:
                quality = str(config["quality"] if round_no == 0 else 0)
                result = runner(
                    "ours",
                    "--dtype",
                    path,
                    "--levels",
                    levels,
                    "--quality",
                    quality,
                    round_no=round_no,
                )
                if result is not None:
                    results.append(result)
                    if path == "float32" and round_no == 0:
                        reference = result
            if llama:
                result = runner(
                    "llamacpp",
                    "--prompts",
                    str(prompts_file),
                    "--levels",
                    levels,
                    round_no=round_no,
                )
                if result is not None:
                    results.append(result)
    report = summarize(results, config["paths"], reference)
    if not llama:
        reason = MISSING_NOTE if with_llamacpp else "llama.cpp baseline skipped (--no-llamacpp)."
        if prepared.get("gguf") is None:
            reason = "llama.cpp baseline skipped: the model is not a GGUF file."
        report["llamacpp"] = {"skipped": reason}
    loads = [v for v in runner.loads if v >= 0]
    report.update(
        {
            "model": prepared["model"],
            "threads": config["threads"],
            "rounds": config["rounds"],
            "tokens": config["tokens"],
            "levels": config["levels"],
            "quick": config["rounds"] == 1 and config["tokens"] < 128,
            "prompt_tokens": f"{min(map(len, prepared['prompt_ids']))}–"
            f"{max(map(len, prepared['prompt_ids']))}",
            "prepare_s": prepared["prepare_s"],
            "ttft_prompt_tokens": len(prepared["ttft_ids"]),
            "host": {
                "cpus": os.cpu_count(),
                "loadavg_start": loads[0],
                "loadavg_end": loadavg(),
                "loadavg_min": min(loads),
                "loadavg_max": max(loads),
            },
            "errors": runner.errors,
        }
    )
    return report


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of `guru bench llm`: exit 0 when it ran (targets may fail), 1 on worker errors."""
    config = _config(args, settings)
    report = collect(config, with_llamacpp=not args.no_llamacpp, progress=True)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if report["errors"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.llm", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    from core.logging import setup_logging

    settings = Settings.from_env()
    setup_logging(settings.log_level)
    try:
        return run(args, settings)
    except GuruError as exc:
        print(f"bench: {exc.user_message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
