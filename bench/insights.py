"""`guru bench insights` (or `python -m bench.insights`): what /insights' clustering costs,
and how well it groups.

Speed: `--questions` distinct unanswered questions built from the test topics (tests/fixtures/
insights.py: 7 topics of paraphrases and 3 one-offs, each worded with chat-style openings,
endings and casing; so run it from the source checkout), timing the two steps /insights runs
off the event loop: embedding them with the bundled MiniLM encoder, then the agglomerative
clustering. Quality: the adjusted Rand index against the known topics (1.0 = every question in
its topic's cluster and no two topics merged) on the plain support questions, the chat-style
variants, and 40 hand-written questions about one domain (core/explain/eval_questions.jsonl,
each labelled by the concept note that answers it), at `--threshold` (default: the one
/insights uses). The load average is printed too: a busy neighbour moves the times.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from core.config import Settings

__all__ = ["add_arguments", "run", "main", "measure"]

OPENINGS = (
    "",
    "hey, ",
    "quick question: ",
    "hi all, ",
    "sorry if this was asked: ",
    "pls help ",
    "so ",
    "question: ",
)
ENDINGS = ("", " thanks", " anyone?", " (new here)", " asking for a friend", " ty!")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--questions", type=int, default=1000, help="how many (default 1000)")
    parser.add_argument("--threshold", type=float, help="the distance cut (default: /insights')")


def _questions(n: int) -> tuple[list[str], list[str]]:
    from tests.fixtures.insights import ONE_OFFS, TOPICS

    base = [(t, name) for name, texts in TOPICS.items() for t in texts]
    base += [(t, t) for t in ONE_OFFS]
    texts, labels = [], []
    for lower, opening, ending, (text, label) in itertools.product(
        (False, True), OPENINGS, ENDINGS, base
    ):
        texts.append(f"{opening}{text.lower() if lower else text}{ending}")
        labels.append(label)
    return texts[:n], labels[:n]


def _one_domain() -> tuple[list[str], list[str]]:
    from core.explain.topics import CONCEPTS_DIR

    lines = (CONCEPTS_DIR.parent / "eval_questions.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [r["question"] for r in rows], [r["notes"][0] for r in rows]


async def measure(n: int, threshold: float | None = None) -> dict[str, Any]:
    from sklearn.metrics import adjusted_rand_score

    from core.insights.clusters import DISTANCE_THRESHOLD, cluster_questions
    from core.rag.embedder import Embedder
    from tests.fixtures.insights import ONE_OFFS, TOPICS

    cut = DISTANCE_THRESHOLD if threshold is None else threshold

    def rand_index(texts: list[str], labels: list[str], vectors: Any) -> tuple[float, int]:
        groups = cluster_questions(texts, vectors, cut)
        found = [0] * len(texts)
        for g, members in enumerate(groups):
            for i in members:
                found[i] = g
        return round(float(adjusted_rand_score(labels, found)), 3), len(groups)

    texts, labels = _questions(n)
    embedder = Embedder()
    embedder.embed_sync(["warm up"])  # loading the weights is not what /insights pays each time
    load = os.getloadavg()[0]
    started = time.perf_counter()
    vectors = await embedder.embed(texts)
    embedded = time.perf_counter()
    chat_rand, clusters = await asyncio.to_thread(rand_index, texts, labels, vectors)
    clustered = time.perf_counter()
    support = [t for group in TOPICS.values() for t in group] + ONE_OFFS
    support_labels = [name for name, group in TOPICS.items() for _ in group] + ONE_OFFS
    domain, domain_labels = _one_domain()
    support_rand, _ = rand_index(support, support_labels, await embedder.embed(support))
    domain_rand, _ = rand_index(domain, domain_labels, await embedder.embed(domain))
    embedder.close()
    return {
        "threshold": cut,
        "questions": len(texts),
        "topics": len(set(labels)),
        "clusters": clusters,
        "embed_s": round(embedded - started, 2),
        "cluster_s": round(clustered - embedded, 2),
        "rand_chat_style": chat_rand,
        "rand_support": support_rand,
        "rand_one_domain": domain_rand,
        "loadavg_before": load,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    report = asyncio.run(measure(args.questions, args.threshold))
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>15}: {value}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(), Settings.from_env())


if __name__ == "__main__":
    raise SystemExit(main())
