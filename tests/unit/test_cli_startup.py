"""`guru --help` and light commands must not import torch/transformers (seconds of start-up)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import core.cli
core.cli.build_parser()
names = ("torch", "transformers", "peft", "sentence_transformers")
heavy = sorted(m for m in names if m in sys.modules)
print(",".join(heavy))
"""


def test_building_the_cli_parser_imports_no_ml_framework() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at start-up: {out.stdout.strip()}"
