"""Shared test setup. Fixtures live in tests/fixtures/*, one module per subsystem."""

from __future__ import annotations

import os

# Nothing in the suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = [
    "tests.fixtures.paths",
    "tests.fixtures.db",
    "tests.fixtures.models",
    "tests.fixtures.rag",
    "tests.fixtures.pal",
]
