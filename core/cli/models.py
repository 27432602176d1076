"""`guru models list|install`: which model presets exist, which are installed, install one."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Any

from core.config import ENGINE_ISAS, Settings
from core.llm.models.install import install_preset
from core.llm.models.presets import PRESETS, PresetStatus, preset_status

__all__ = ["register", "list_models", "install_model", "describe_presets", "engine_kernels"]

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="List and install model presets.", description=__doc__
    )
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="Show presets, what is installed and GURU_MODEL.")
    listing.add_argument("--json", action="store_true", help="Machine-readable output.")
    listing.set_defaults(handler=list_models)

    install = actions.add_parser(
        "install",
        help="pip-install a preset's packages, assemble and verify its file, convert it.",
    )
    install.add_argument(
        "name",
        metavar="NAME",
        nargs="?",
        help=f"One of: {', '.join(PRESETS)}; default: GURU_MODEL's preset.",
    )
    install.add_argument(
        "--calc",
        action="store_true",
        help="Install the model /calc writes programs with: GURU_CALC_MODEL, else the strongest "
        "code preset when this host has the memory for it (scripts/setup runs this).",
    )
    install.add_argument(
        "--no-warm",
        action="store_true",
        help="Skip loading it once (which compiles this CPU's kernels and packs the weights).",
    )
    install.set_defaults(handler=install_model)


def _state(status: PresetStatus) -> str:
    if status.converted and status.gguf_present:
        return "ready"
    if status.gguf_present:
        return "installed (not converted)"
    if status.packages_installed:
        return "packages (not assembled)"
    return "not installed"


def describe_presets(settings: Settings) -> dict[str, Any]:
    """Every preset with its install state, plus the current GURU_MODEL (for `list --json`)."""
    rows = []
    for preset in PRESETS.values():
        status = preset_status(preset, settings.data_dir)
        rows.append(
            {
                "name": preset.name,
                "description": preset.description,
                "size_bytes": preset.size_bytes,
                "sha256": preset.sha256,
                "packages": [part.requirement for part in preset.parts],
                "packages_installed": status.packages_installed,
                "file_present": status.gguf_present,
                "file": str(status.gguf_path),
                "converted": status.converted,
                "converted_dir": str(status.converted_dir),
                "state": _state(status),
                "current": preset.name == settings.model,
                "install_command": status.install_command,
            }
        )
    return {
        "current": settings.model,
        "is_preset": settings.model in PRESETS,
        "presets": rows,
        "kernels": engine_kernels(settings),
    }


def engine_kernels(settings: Settings) -> str:
    """Which native kernels the local engine would run on this CPU, and why."""
    from core.llm.engine import native  # imports torch: only when listing, not at start-up

    return native.describe(settings.engine_isa)


def list_models(args: argparse.Namespace, settings: Settings) -> int:
    info = describe_presets(settings)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{'':2}{'NAME':<20} {'SIZE':>8}  {'STATE':<26} DESCRIPTION")
    for row in info["presets"]:
        mark = "*" if row["current"] else ""
        size = f"{row['size_bytes'] / 1e6:.0f} MB"
        print(f"{mark:2}{row['name']:<20} {size:>8}  {row['state']:<26} {row['description']}")
    if info["is_preset"]:
        print(f"\n* = GURU_MODEL ({info['current']}). Install another: guru models install NAME")
    else:
        print(f"\nGURU_MODEL={info['current']} (a path, not a preset).")
    choices = "|".join(ENGINE_ISAS)
    print(f"Engine kernels: {info['kernels']}. Override: GURU_ENGINE_ISA={choices}")
    return 0


def install_model(args: argparse.Namespace, settings: Settings) -> int:
    if args.calc:
        from core.pal.model import calc_install_choice

        if args.name:
            print("guru: give a NAME or --calc, not both", file=sys.stderr)
            return 2
        chosen, why = calc_install_choice(settings, host_memory_gib())
        print(f"/calc model: {chosen or 'nothing to install'} ({why})")
        if chosen is None:
            return 0
        args.name = chosen
    name = args.name or settings.model
    if args.name is None and name not in PRESETS:
        # GURU_MODEL is a directory or .gguf file: nothing to download; it loads as it is.
        print(f"GURU_MODEL={name} is not a preset: nothing to install.")
        return 0
    report = install_preset(name, settings.data_dir, progress=True)
    print(f"{report.name}: installed.")
    print(f"  packages : {'installed now' if report.pip_ran else 'already installed'}")
    print(f"  file     : {report.gguf_path}")
    print(f"  sha256   : {report.sha256}")
    print(f"  converted: {report.converted_dir}")
    if not args.no_warm:
        print(f"  kernels  : {asyncio.run(_warm(dataclasses.replace(settings, model=name)))}")
    if args.calc:
        print("/calc writes its programs with it (the strongest installed code preset).")
    else:
        print(f"Use it with GURU_MODEL={report.name}")
    return 0


def host_memory_gib() -> float:
    """Physical memory of this host (not what is free now: setup runs once)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


async def _warm(settings: Settings) -> str:
    """Load the model once through the engine and generate one token, so that this CPU's
    kernels are compiled and the weights packed for them now (cached beside the weights):
    otherwise the first question after install pays it (~1 min for Qwen2.5-Coder-0.5B)."""
    from core.llm.backend import open_llm
    from core.llm.models.loading import ModelCache
    from core.llm.types import Request, user

    started = time.perf_counter()
    llm = await open_llm(settings, ModelCache())
    try:
        await llm.complete(Request(user("Hi"), max_new_tokens=1))
        kernels = getattr(llm, "kernels", "ready")
        return f"{kernels} (prepared in {time.perf_counter() - started:.0f} s)"
    finally:
        await llm.aclose()
