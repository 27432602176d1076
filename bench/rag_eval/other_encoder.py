"""Vector retrieval of another sentence-transformers encoder on the eval corpus, next to ours.

`python -m bench.rag_eval.other_encoder MODEL_DIR` reads the chunks that `guru bench rag
--parts eval --dtype float32` stored (title + text, exactly what our encoder embedded), embeds
them with MODEL_DIR (bf16 on CPUs with native bf16; cached in <data dir>/bench/), searches by
brute-force cosine, ranks pages as the bench does, and prints R@1 / R@5 / MRR@10 for our stored
vectors, the other encoder, and two ensembles (RRF of both lists, sum of both cosines).

It answers "would a bigger encoder fix recall?" without changing the schema (vector(384)).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.rag_eval.databases import bench_pool, server_url
from bench.rag_eval.evaluate import EVAL_GUILD, Question, _metrics, gold_rank, load_questions
from core.config import Settings

_CHUNKS_SQL = """
SELECT c.title, c.text, c.embedding, d.uri FROM chunks c JOIN documents d ON d.id = c.document_id
WHERE c.guild_id = %(guild)s ORDER BY c.id
"""


async def _chunks(settings: Settings) -> list[Any]:
    async with server_url(settings) as url, bench_pool(url, "guru_bench_eval") as pool:
        async with pool.connection() as conn:
            return await (await conn.execute(_CHUNKS_SQL, {"guild": EVAL_GUILD})).fetchall()


def _ranks(questions: list[Question], pages: list[str], order_of) -> list[int | None]:
    """Rank of the first gold page among the distinct pages of each question's ranked chunks."""
    out = []
    for i, q in enumerate(questions):
        seen: list[str] = []
        for j in order_of(i):
            if pages[j] not in seen:
                seen.append(pages[j])
            if len(seen) >= 10:
                break
        out.append(gold_rank(seen, q.gold))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="a sentence-transformers directory")
    args = parser.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer

    from core.rag.embedder import model_path

    settings = Settings.from_env()
    rows = asyncio.run(_chunks(settings))
    if not rows:
        raise SystemExit("No eval corpus: run `guru bench rag --parts eval --dtype float32` first.")
    texts = [f"{title}\n{text}" if title else text for title, text, _, _ in rows]
    pages = [Path(uri).name for *_, uri in rows]
    ours = np.stack([np.asarray(r[2].to_numpy(), dtype=np.float32) for r in rows])
    other = SentenceTransformer(args.model_dir, device="cpu")
    if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        other = other.to(torch.bfloat16)
    cache = Path(settings.data_dir) / "bench" / f"other_encoder_{Path(args.model_dir).name}.npy"
    if cache.is_file():
        vectors = np.load(cache)
    else:
        started = time.perf_counter()
        vectors = other.encode(texts, batch_size=32, normalize_embeddings=True,
                               show_progress_bar=True).astype(np.float32)
        print(f"embedded {len(texts)} chunks in {time.perf_counter() - started:.0f} s")
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    questions = load_questions()
    q_ours = SentenceTransformer(model_path(), device="cpu").encode(
        [q.text for q in questions], normalize_embeddings=True)
    q_other = other.encode([q.text for q in questions], normalize_embeddings=True)
    s_ours, s_other = q_ours @ ours.T, q_other.astype(np.float32) @ vectors.T

    def rrf(i: int, k: int = 60) -> list[int]:
        scores: dict[int, float] = {}
        for s in (s_ours, s_other):
            for rank, j in enumerate(np.argsort(-s[i])[:100], start=1):
                scores[j] = scores.get(j, 0.0) + 1 / (k + rank)
        return sorted(scores, key=lambda j: -scores[j])

    print("encoder              all R@1/R@5/MRR       held-out (odd) R@1/R@5/MRR")
    for name, order_of in (("ours (stored)", lambda i: np.argsort(-s_ours[i])),
                           (Path(args.model_dir).name, lambda i: np.argsort(-s_other[i])),
                           ("RRF of both", rrf),
                           ("sum of cosines", lambda i: np.argsort(-(s_ours[i] + s_other[i])))):
        ranks = _ranks(questions, pages, order_of)
        a, h = _metrics(ranks), _metrics(ranks[1::2])
        print(f"{name:20s} {a['recall@1']:.3f} {a['recall@5']:.3f} {a['mrr@10']:.3f}"
              f"     {h['recall@1']:.3f} {h['recall@5']:.3f} {h['mrr@10']:.3f}")


if __name__ == "__main__":
    main()
