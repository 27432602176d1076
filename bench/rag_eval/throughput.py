"""Ingest throughput: our whole ingest path against a plain sentence-transformers `encode`.

The same chunks go through both in the same process, one after the other, so a busy host
slows both alike. "Ours" is parse + split + embed + one transaction per document; the
baseline is only fp32 `SentenceTransformer.encode(batch_size=32)` of the finished chunk texts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from core.db.pool import Pool
from core.rag.embedder import Embedder, model_path
from core.rag.ingest import Ingestor
from core.rag.loaders import load_file

__all__ = ["measure_ingest"]

log = logging.getLogger(__name__)

GUILD = 2


async def measure_ingest(pool: Pool, embedder: Embedder, docs: Path, pages: int) -> dict[str, Any]:
    files = sorted(str(p) for p in docs.glob("git-*.html"))[:pages]
    ingestor = Ingestor(pool, embedder)
    embedder.embed_sync(["warm up"])
    started = time.perf_counter()
    chunks = 0
    async for outcome in ingestor.ingest_paths(GUILD, files):
        chunks += outcome.chunks
    ours_s = time.perf_counter() - started

    chunker = await ingestor._get_chunker()
    texts = [d.embedding_text for f in files for d in chunker.split(load_file(f))]
    started = time.perf_counter()
    await embedder.embed(texts)
    embed_s = time.perf_counter() - started
    st_s = await asyncio.to_thread(_sentence_transformers_encode, texts)
    return {
        "pages": len(files), "chunks": chunks,
        "ours_chunks_per_s": round(chunks / ours_s, 2),
        "ours_embed_chunks_per_s": round(len(texts) / embed_s, 2),
        "st_chunks_per_s": round(len(texts) / st_s, 2),
        "ratio_end_to_end": round((chunks / ours_s) / (len(texts) / st_s), 3),
        "ratio_embed_only": round(st_s / embed_s, 3),
    }


def _sentence_transformers_encode(texts: list[str]) -> float:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path(), device="cpu")
    model.encode(["warm up"])
    started = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    return time.perf_counter() - started
