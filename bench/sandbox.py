"""`guru bench sandbox` (or `python -m bench.sandbox`): what one trivial program costs.

Three numbers, each over `--runs` calls of `Sandbox.run("print(1)")`, timed from the call to
the result (what PAL would wait for):
- cold: no pool, every call starts bwrap + setpriv + Python itself;
- warm: a pool of 2 that is full when the call arrives (the bot between questions);
- burst: back-to-back calls on the same pool, so refills race the caller.
The load average is recorded: on a shared 2-core host a busy neighbour moves these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

from core.config import Settings
from core.sandbox import Sandbox, SandboxLimits

__all__ = ["add_arguments", "run", "main", "measure"]

TRIVIAL = "print(1)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `guru bench sandbox`; shared with `python -m bench.sandbox`."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--runs", type=int, default=30, help="calls per mode (default 30)")
    parser.add_argument("--pool", type=int, default=2, help="warm pool size (default 2)")


def _stats(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(p95, 1),
        "min_ms": round(ordered[0], 1),
        "max_ms": round(ordered[-1], 1),
        "runs": len(ordered),
    }


async def _timed(box: Sandbox) -> float:
    started = time.perf_counter()
    result = await box.run(TRIVIAL)
    elapsed = (time.perf_counter() - started) * 1000
    if not result.ok or result.stdout != "1\n":
        raise RuntimeError(f"sandbox run failed: {result.status}: {result.error}")
    return elapsed


async def measure(runs: int, pool: int, limits: SandboxLimits | None = None) -> dict[str, Any]:
    """Cold, warm and burst latency of a trivial program, plus the layers that were active."""
    report: dict[str, Any] = {"program": TRIVIAL, "loadavg_before": os.getloadavg()[0]}
    cold = Sandbox(limits)
    try:
        refusal = await cold.start()
        if refusal:
            return {**report, "refused": refusal}
        report["layers"] = {layer.name: layer.active for layer in await cold.check()}
        report["cold"] = _stats([await _timed(cold) for _ in range(runs)])
    finally:
        await cold.aclose()
    warm = Sandbox(limits, pool_size=pool)
    try:
        await warm.start()
        samples = []
        for _ in range(runs):
            await warm.wait_pool()
            samples.append(await _timed(warm))
        report["warm"] = _stats(samples)
        await warm.wait_pool()
        report["burst"] = _stats([await _timed(warm) for _ in range(runs)])
    finally:
        await warm.aclose()
    report["loadavg_after"] = os.getloadavg()[0]
    report["pool_size"] = pool
    return report


def _render(report: dict[str, Any]) -> str:
    if "refused" in report:
        return f"sandbox refused: {report['refused']}"
    active = [name for name, on in report["layers"].items() if on]
    lines = [
        f"sandbox latency of {report['program']!r} (load avg "
        f"{report['loadavg_before']:.1f} -> {report['loadavg_after']:.1f})",
        f"{'mode':<8} {'p50 ms':>8} {'p95 ms':>8} {'min':>7} {'max':>7} {'runs':>5}",
    ]
    for mode in ("cold", "warm", "burst"):
        s = report[mode]
        lines.append(
            f"{mode:<8} {s['p50_ms']:>8} {s['p95_ms']:>8} {s['min_ms']:>7} "
            f"{s['max_ms']:>7} {s['runs']:>5}"
        )
    lines.append("layers active: " + ", ".join(active))
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    limits = SandboxLimits.from_settings(settings)
    report = asyncio.run(measure(max(1, args.runs), max(1, args.pool), limits))
    print(json.dumps(report, indent=2) if args.json else _render(report))
    return 2 if "refused" in report else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv), Settings.from_env())


if __name__ == "__main__":
    sys.exit(main())
