"""LLM query expansion on the eval set: HyDE (Gao et al. 2022: vector search with the embedding
of a generated passage, or of its mean with the question) and query2doc (Wang et al. 2023: BM25
over question + passage).

Why try it: Discord questions often share no word with the page that answers them ("copy one
commit onto my branch" -> git-cherry-pick); neither the encoder nor BM25 can bridge that, but a
model that knows the domain may write the feature's name into its passage. The prompts are
domain-neutral (a guild's documents can be about anything). /ask runs the `named` prompt with
the weights this grid chose for Qwen2.5-Coder-1.5B when GURU_ASK_EXPAND is on
(core/rag/expansion.py, retrieve.EXPANDED_WEIGHTS).

Passages are generated once per (model, prompt, question), greedy, and cached in a JSON file
under the data dir with the seconds each took, so reruns only re-search. Fusion weights of the
two added lists are chosen on the even questions (R@5, then MRR@10) and the odd half is
reported apart, like the rest of the eval.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.rag_eval.evaluate import (
    CANDIDATES,
    EVAL_GUILD,
    Question,
    _metrics,
    _pages,
    gold_rank,
    with_halves,
)
from core.config import Settings
from core.llm.types import Message
from core.rag.expansion import EXPANSION_PROMPT, EXPANSION_TOKENS, expansion_messages
from core.rag.retrieve import FUSION_WEIGHTS, Expansion, Retriever, rrf_fuse
from core.rag.types import Hit

__all__ = ["PROMPTS", "generate", "evaluate_expansion", "cache_path"]

log = logging.getLogger(__name__)


# Few-shot examples about nothing in the eval (no git, no version control): they only show the
# shape of an answer, a short passage that names the feature.
FEW_SHOT: tuple[tuple[str, str], ...] = (
    (
        "how do i stop the bot from pinging me every time",
        "Notifications: open Settings > Notifications and turn off Mentions, or run "
        "`/notify off`. The bot then stops mentioning you in every channel of the server.",
    ),
    (
        "where can i see how much storage my account is using",
        "Storage usage: the Account page shows the space your files use and your quota. "
        "`app usage --storage` prints the same numbers on the command line.",
    ),
)
# Instructions tried (all generic): "named" also asks for the feature's name, "plain" only for a
# passage, "few" is "named" after FEW_SHOT.
NAMED = EXPANSION_PROMPT  # what /ask uses (core/rag/expansion.py)
PLAIN = (
    "Write a short passage from the documentation that answers this question."
    "\n\nQuestion: {question}"
)
PROMPTS = {"named": NAMED, "plain": PLAIN, "few": NAMED}


def _normalised(vector: np.ndarray) -> np.ndarray:
    """HyDE's search vector is the normalised sum of the question's and the passages'
    embeddings (the question keeps the search on topic when a passage drifts)."""
    vector = np.asarray(vector, dtype=np.float32)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def messages(question: str, prompt: str) -> list[Message]:
    """The generation request's messages for one of PROMPTS."""
    zero = expansion_messages(question, PROMPTS[prompt])
    if prompt != "few":
        return zero
    shots = [
        m for q, a in FEW_SHOT for m in (expansion_messages(q, NAMED)[1], Message("assistant", a))
    ]
    return [zero[0], *shots, zero[1]]


def cache_path(settings: Settings) -> Path:
    return settings.data_path / "bench" / "rag_expansions.json"


def _key(model: str, prompt: str, question: str) -> str:
    text = json.dumps([m.__dict__ for m in messages("{q}", _base(prompt))] + [EXPANSION_TOKENS])
    samples = f"*{_samples(prompt)}" if _samples(prompt) > 1 else ""
    return f"{model}|{hashlib.sha256(text.encode()).hexdigest()[:12]}{samples}|{question}"


def _base(prompt: str) -> str:
    return prompt.split("*")[0]


def _samples(prompt: str) -> int:
    """ "named*4": 4 passages sampled at SAMPLE_TEMPERATURE (HyDE's several hypothetical
    documents, averaged); a bare name: one greedy passage."""
    return int(prompt.split("*")[1]) if "*" in prompt else 1


SAMPLE_TEMPERATURE = 0.7


async def generate(
    model: str, prompt: str, questions: list[Question], settings: Settings
) -> dict[str, dict[str, Any]]:
    """question → {"texts", "seconds", "tokens"}: cached ones as they are, the rest generated
    one question at a time (the production path: one /ask, its expansion alone; the samples of
    one question are submitted together, so the engine decodes them as one batch)."""
    path = cache_path(settings)
    cache: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.exists() else {}
    missing = [q.text for q in questions if _key(model, prompt, q.text) not in cache]
    n = _samples(prompt)
    if missing:
        from core.llm.engine.engine import Engine
        from core.llm.models.loading import load_model
        from core.llm.types import Request

        loaded = await asyncio.to_thread(load_model, model, settings)
        engine = Engine.from_settings(loaded, settings)
        try:
            for i, text in enumerate(missing):
                started = time.perf_counter()
                done = await asyncio.gather(
                    *(
                        engine.complete(
                            Request(
                                messages=messages(text, _base(prompt)),
                                max_new_tokens=EXPANSION_TOKENS,
                                temperature=SAMPLE_TEMPERATURE if n > 1 else 0.0,
                                seed=seed,
                            )
                        )
                        for seed in range(n)
                    )
                )
                cache[_key(model, prompt, text)] = {
                    "texts": [d.text for d in done],
                    "seconds": round(time.perf_counter() - started, 3),
                    "tokens": max(d.completion_tokens for d in done),
                    "load_avg": round(os.getloadavg()[0], 2),
                }
                log.info(
                    "%s/%s %d/%d %.1fs: %s",
                    model,
                    prompt,
                    i + 1,
                    len(missing),
                    time.perf_counter() - started,
                    done[0].text[:80].replace("\n", " "),
                )
                if i % 8 == 7 or i == len(missing) - 1:  # keep what we have if interrupted
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(cache, indent=1))
        finally:
            await engine.aclose()
    found = {q.text: cache[_key(model, prompt, q.text)] for q in questions}
    for entry in found.values():  # entries cached before sampling held one "text"
        entry.setdefault("texts", [entry.pop("text", "")])
    return found


def _rank(hits: list[Hit], q: Question) -> int | None:
    return gold_rank(_pages(hits), q.gold)


# "Untuned": each added list weighs as its plain counterpart (vector search, BM25).
UNTUNED_EXPANSION_WEIGHTS = (1.0, 0.05)
# Weights tried, the all-terms and BM25 lists staying at FUSION_WEIGHTS. Kept small: on 24
# tuning questions a 120-point grid found weights that were perfect there and worse than
# plain hybrid on R@1 of the held-out half.
VECTOR = (0.0, 1.0)
VECTOR_EXPANDED = (0.0, 0.5, 1.0, 2.0)
BM25_EXPANDED = (0.0, 0.05, 0.3, 1.0)


async def evaluate_expansion(
    retriever: Retriever,
    questions: list[Question],
    passages: dict[str, dict[str, Any]],
    guild: int = EVAL_GUILD,
) -> dict[str, Any]:
    """Every mode with and without the expansion; the best fusion on the even questions."""
    embedder = retriever.embedder
    query_emb = await embedder.embed([q.text for q in questions])
    lists: dict[str, list[dict[str, list[Hit]]]] = {"mean": [], "passage": []}
    search_ms: list[float] = []
    as_ask: list[int | None] = []  # the product's own fusion (EXPANDED_WEIGHTS), as /ask runs it
    for q, qe in zip(questions, query_emb):
        texts = [t for t in passages[q.text]["texts"] if t.strip()] or [q.text]
        each = await embedder.embed(texts)
        text = "\n".join(texts)
        pe = _normalised(each.sum(axis=0))
        for variant, emb in (("mean", _normalised(qe + each.sum(axis=0))), ("passage", pe)):
            started = time.perf_counter()
            lists[variant].append(
                await retriever.ranked_lists(
                    guild, q.text, qe, CANDIDATES, "hybrid", Expansion(text, emb)
                )
            )
            if variant == "mean":
                search_ms.append((time.perf_counter() - started) * 1000)
        as_ask.append(
            _rank(
                await retriever.search_embedded(
                    guild, q.text, qe, CANDIDATES, "hybrid", Expansion(text, pe)
                ),
                q,
            )
        )

    def fused(variant: str, weights: dict[str, float]) -> list[int | None]:
        out = []
        for q, named in zip(questions, lists[variant]):
            chosen = [n for n, w in weights.items() if w > 0]
            out.append(
                _rank(
                    rrf_fuse(
                        [named[n] for n in chosen], CANDIDATES, weights=[weights[n] for n in chosen]
                    ),
                    q,
                )
            )
        return out

    plain = dict(zip(("vector", "all_terms", "bm25"), FUSION_WEIGHTS))
    report: dict[str, Any] = {
        "vector": with_halves(fused("mean", {"vector": 1})),
        "vector+hyde_mean": with_halves(fused("mean", {"vector_expanded": 1})),
        "vector+hyde_passage": with_halves(fused("passage", {"vector_expanded": 1})),
        "text": with_halves(fused("mean", {"bm25": 1})),
        "text+query2doc": with_halves(fused("mean", {"bm25_expanded": 1})),
        "hybrid": with_halves(fused("mean", plain)),
        # Untuned: each added list weighs as its plain counterpart.
        "hybrid+expansion_same_weights": with_halves(
            fused(
                "mean",
                {
                    **plain,
                    **dict(zip(("vector_expanded", "bm25_expanded"), UNTUNED_EXPANSION_WEIGHTS)),
                },
            )
        ),
        "hybrid+expansion_as_ask": with_halves(as_ask),
    }
    # The grid: variant × vector weight × the two added lists' weights, chosen on the even half.
    best: tuple[tuple[float, float], dict[str, Any]] | None = None
    for variant, wv, wve, wbe in itertools.product(
        ("mean", "passage"), VECTOR[::-1], VECTOR_EXPANDED, BM25_EXPANDED
    ):
        weights = {**plain, "vector": wv, "vector_expanded": wve, "bm25_expanded": wbe}
        ranks = fused(variant, weights)
        even = _metrics(ranks[0::2])
        score = (even["recall@5"], even["mrr@10"])
        if best is None or score > best[0]:  # strict: the first (simplest) of ties wins
            best = (
                score,
                {
                    "variant": variant,
                    "weights": weights,
                    **with_halves(ranks),
                    "misses_at_5": [q.text for r, q in zip(ranks, questions) if r is None or r > 5],
                },
            )
    assert best is not None
    report["hybrid+expansion"] = best[1]
    seconds = [passages[q.text]["seconds"] for q in questions]
    report["generation"] = {
        "seconds_p50": round(statistics.median(seconds), 2),
        "seconds_p95": round(sorted(seconds)[int(0.95 * (len(seconds) - 1))], 2),
        "tokens_mean": round(statistics.mean(passages[q.text]["tokens"] for q in questions), 1),
        "load_avg_median": statistics.median(
            passages[q.text].get("load_avg", 0) for q in questions
        ),
        "search_ms_p50": round(statistics.median(search_ms), 1),
    }
    report["samples"] = {q.text: passages[q.text]["texts"] for q in questions[:3]}
    return report
