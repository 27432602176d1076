"""Fixtures of the source-sync tests: the local test site and a `SourceSync` on the RAG pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
from core.rag.ingest import Ingestor
from core.sources.sync import SourceSync
from tests.integration.sources.site import site  # noqa: F401 - the fixture


@pytest.fixture
def sources(ingestor: Ingestor, tmp_path: Path) -> SourceSync:
    settings = Settings(
        data_dir=str(tmp_path / "data"), sources_page_max_mb=0.1, sources_timeout_s=5
    )
    return SourceSync(ingestor, settings)
