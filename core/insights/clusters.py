"""Unanswered questions grouped by meaning: the docs writers' to-do list.

Agglomerative clustering (average linkage) on cosine distance of the bundled MiniLM
embeddings, cut at a distance threshold rather than a cluster count: nobody knows in advance
how many topics are missing. Every question lands in exactly one cluster (a one-off is a
cluster of one: still a gap in the docs), and the result does not depend on input order.

The cut, measured (`guru bench insights`, adjusted Rand index against the known topics):
- crafted support questions (tests/fixtures/insights.py: 7 topics of paraphrases, some with no
  word in common, "how do refunds work" / "I want my money back", and 3 one-offs), plain and
  in ~1000-2000 chat-style variants: 1.0 for cuts from 0.60 to 0.75-0.80; 0.96-0.97 at 0.55
  (the refund paraphrases split);
- 40 hand-written questions about one domain (core/explain/eval_questions.jsonl, labelled by
  the concept note that answers them), the harder case, since a server's questions all share
  its vocabulary: 0.27 at 0.55, 0.18 at 0.60, 0.16 at 0.65, 0.11 at 0.75; larger cuts merge
  different questions that share "why does the bot…".
So 0.60: the tightest cut that keeps every crafted paraphrase together. sentence-transformers'
`community_detection` (clusters around centres within a similarity) was no better: 1.0 on the
support questions for similarity 0.30-0.50, 0.24 on the one-domain set at 0.50, 0.99 on the
chat-style variants. Centering the embeddings on the set's mean helped the one-domain set a
little (0.25) but is meaningless for the small sets a quiet server has.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.insights.stats import Unanswered
from core.rag.embedder import Embedder

__all__ = ["Cluster", "DISTANCE_THRESHOLD", "cluster_questions", "group_by_meaning"]

# Merge clusters while their questions' mean cosine similarity is at least 1 - this.
DISTANCE_THRESHOLD = 0.60
EXAMPLES = 3


@dataclass(frozen=True)
class Cluster:
    """Questions asking the same thing: how often, the most typical wording, a few others."""

    count: int  # questions, repeats included
    representative: str
    examples: tuple[str, ...]  # other wordings (distinct from the representative), most asked first
    reasons: dict[str, int]  # how many were refused, declined, unusable, 👎, needed help

    def to_dict(self) -> dict[str, object]:
        return {
            "count": self.count,
            "representative": self.representative,
            "examples": list(self.examples),
            "reasons": dict(self.reasons),
        }


def _key(text: str) -> str:
    """Repeats of one question differ in case and spacing only."""
    return " ".join(text.lower().split()).rstrip("?!. ")


def cluster_questions(
    texts: Sequence[str], vectors: np.ndarray, threshold: float = DISTANCE_THRESHOLD
) -> list[list[int]]:
    """Indices of `texts` grouped by meaning (rows of `vectors`: unit embeddings); blocking."""
    if len(texts) < 2:
        return [list(range(len(texts)))] if texts else []
    from sklearn.cluster import AgglomerativeClustering

    labels = AgglomerativeClustering(
        n_clusters=None,
        metric="cosine",
        linkage="average",
        distance_threshold=threshold,
    ).fit_predict(vectors)
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    return list(groups.values())


def _summarise(
    members: list[int], texts: list[str], weights: list[int], vectors: np.ndarray
) -> tuple[str, tuple[str, ...]]:
    """The medoid (most similar to the rest, repeats weighing in) and the other wordings."""
    sub = vectors[members]
    w = np.array([weights[i] for i in members], dtype=np.float32)
    centrality = (sub @ sub.T) @ w
    best = members[int(np.argmax(centrality))]
    others = sorted((i for i in members if i != best), key=lambda i: (-weights[i], texts[i]))
    return texts[best], tuple(texts[i] for i in others[:EXAMPLES])


def _build(
    questions: Sequence[Unanswered], keys: list[str], vectors: np.ndarray, texts: list[str]
) -> list[Cluster]:
    weights = Counter(_key(q.question) for q in questions)
    w = [weights[k] for k in keys]
    by_key = {k: i for i, k in enumerate(keys)}
    clusters = []
    for members in cluster_questions(texts, vectors):
        representative, examples = _summarise(members, texts, w, vectors)
        wanted = set(members)
        reasons: Counter[str] = Counter()
        for q in questions:
            if by_key[_key(q.question)] in wanted:
                reasons.update(q.reasons)
        clusters.append(
            Cluster(sum(w[i] for i in members), representative, examples, dict(reasons))
        )
    clusters.sort(key=lambda c: (-c.count, c.representative))
    return clusters


async def group_by_meaning(embedder: Embedder, questions: Sequence[Unanswered]) -> list[Cluster]:
    """Cluster `questions` (repeats counted), largest first. The embedding runs on the
    embedder's own thread and the clustering in a worker thread: never on the event loop."""
    first: dict[str, str] = {}  # one wording per repeated question: the newest asked
    for q in questions:
        first.setdefault(_key(q.question), q.question.strip())
    if not first:
        return []
    keys, texts = list(first), list(first.values())
    vectors = await embedder.embed(texts)
    return await asyncio.to_thread(_build, questions, keys, vectors, texts)
