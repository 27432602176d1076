"""`guru sandbox FILE|- [--timeout S] [--json]` and `guru sandbox --check [--json]`.

Runs one Python program in the sandbox exactly as PAL would, or reports which isolation
layers this host really provides (each marked required, optional, or WAIVED by
GURU_SANDBOX_ALLOW_MISSING, and which cgroup version is in use). Exit status: 0 when the
program succeeded (or, for `--check`, when every required layer is active or waived), 1
otherwise, 2 when the sandbox refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from core.config import Settings
from core.errors import InvalidInput
from core.sandbox import Sandbox

__all__ = ["register", "run_sandbox"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="Run a Python file in the sandbox, or --check its isolation layers.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", nargs="?", metavar="FILE|-", help="Python file to run; - = stdin.")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="Wall-clock limit in seconds (default: GURU_SANDBOX_TIMEOUT_S).",
    )
    parser.add_argument("--check", action="store_true", help="Report each isolation layer.")
    parser.add_argument("--json", action="store_true", help="Machine-readable output.")
    parser.set_defaults(handler=run_sandbox)


def _read_code(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        with open(name, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise InvalidInput(f"Cannot read {name}: {exc.strerror}.") from exc


async def _check(sandbox: Sandbox, as_json: bool) -> int:
    layers = await sandbox.check()
    ok = all(layer.active or layer.waived for layer in layers if layer.required)
    waived = [layer.name for layer in layers if layer.waived]
    if as_json:
        report = {"ok": ok, "cgroup": sandbox.cgroup_label, "layers": [asdict(x) for x in layers]}
        print(json.dumps(report, indent=2))
    else:
        for layer in layers:
            mark = "active " if layer.active else "MISSING"
            need = "WAIVED" if layer.waived else "required" if layer.required else "optional"
            print(f"{mark}  {layer.name:<32} {need:<8}  {layer.detail}")
        state = "ready" if ok else "refuses to run code (fail closed)"
        if waived:
            state += f", but WITHOUT {', '.join(waived)} (GURU_SANDBOX_ALLOW_MISSING: unsafe)"
        print(f"sandbox: {state}; {sandbox.cgroup_label}")
    return 0 if ok else 1


async def run_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    sandbox = Sandbox.from_settings(settings, pool_size=0)  # one run: a pool would be waste
    try:
        if args.check:
            return await _check(sandbox, args.json)
        if args.file is None:
            raise InvalidInput("Give a Python file to run (or - for stdin), or --check.")
        result = await sandbox.run(_read_code(args.file), timeout_s=args.timeout)
    finally:
        await sandbox.aclose()
    if args.json:
        print(json.dumps(result.public(), indent=2))
    else:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if not result.ok:
            print(f"guru sandbox: {result.status}: {result.error}", file=sys.stderr)
    if result.status == "refused":
        return 2
    return 0 if result.ok else 1
