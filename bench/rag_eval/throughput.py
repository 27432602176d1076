"""Ingest throughput: our whole ingest path against a plain sentence-transformers `encode`.

The same chunks go through both in the same process, in interleaved rounds (ours, ST, ST, ours,
...), so a busy host slows both alike; the ratio reported is the median of the per-round ratios,
next to the load average. "Ours" is parse + split + embed + one transaction per document, into a
fresh guild each round; "embed only" is our encoder on the finished chunk texts; the baseline is
only fp32 `SentenceTransformer.encode(batch_size=32)` of those texts, with the same torch threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
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


async def measure_ingest(
    pool: Pool, embedder: Embedder, docs: Path, pages: int, rounds: int = 3
) -> dict[str, Any]:
    import torch

    files = sorted(str(p) for p in docs.glob("git-*.html"))[:pages]
    ingestor = Ingestor(pool, embedder)
    embedder.embed_sync(["warm up"])
    chunker = await ingestor._get_chunker()
    texts = [d.embedding_text for f in files for d in chunker.split(load_file(f))]
    st = await asyncio.to_thread(_load_sentence_transformers)
    load_before = os.getloadavg()
    ours, embed, base = [], [], []
    for r in range(rounds):
        steps = ["ours", "embed", "st"] if r % 2 == 0 else ["st", "embed", "ours"]
        for step in steps:
            started = time.perf_counter()
            if step == "ours":
                chunks = sum([o.chunks async for o in ingestor.ingest_paths(GUILD + r, files)])
                ours.append(chunks / (time.perf_counter() - started))
            elif step == "embed":
                await embedder.embed(texts)
                embed.append(len(texts) / (time.perf_counter() - started))
            else:
                await asyncio.to_thread(st.encode, texts, batch_size=32, normalize_embeddings=True)
                base.append(len(texts) / (time.perf_counter() - started))
        log.info(
            "round %d: ours %.1f, embed only %.1f, sentence-transformers %.1f chunks/s",
            r,
            ours[-1],
            embed[-1],
            base[-1],
        )
    return {
        "pages": len(files),
        "chunks": len(texts),
        "rounds": rounds,
        "encoder_dtype": embedder.resolved_dtype,
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "ours_chunks_per_s": round(statistics.median(ours), 2),
        "ours_embed_chunks_per_s": round(statistics.median(embed), 2),
        "st_chunks_per_s": round(statistics.median(base), 2),
        "ratio_end_to_end": round(statistics.median(o / b for o, b in zip(ours, base)), 3),
        "ratio_embed_only": round(statistics.median(e / b for e, b in zip(embed, base)), 3),
        "per_round": [
            {"ours": round(o, 2), "embed": round(e, 2), "st": round(b, 2)}
            for o, e, b in zip(ours, embed, base)
        ],
    }


def _load_sentence_transformers() -> Any:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path(), device="cpu")
    model.encode(["warm up"])
    return model
