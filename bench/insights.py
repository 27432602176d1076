"""`guru bench insights` (or `python -m bench.insights`): what /insights' clustering costs.

Builds `--questions` distinct unanswered questions from the test topics (tests/fixtures/
insights.py: 7 topics of paraphrases and 3 one-offs, each worded with chat-style openings,
endings and casing; so run it from the source checkout), then times the two steps /insights
runs off the event loop: embedding them with the bundled MiniLM encoder and the agglomerative
clustering. Prints the cluster count, the adjusted Rand index against the topics (1.0 = every
question in its topic's cluster, no two topics merged) and the load average, which a busy
neighbour on a shared host moves.
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


async def measure(n: int) -> dict[str, Any]:
    from sklearn.metrics import adjusted_rand_score

    from core.insights.clusters import cluster_questions
    from core.rag.embedder import Embedder

    texts, labels = _questions(n)
    embedder = Embedder()
    embedder.embed_sync(["warm up"])  # loading the weights is not what /insights pays each time
    load = os.getloadavg()[0]
    started = time.perf_counter()
    vectors = await embedder.embed(texts)
    embedded = time.perf_counter()
    groups = await asyncio.to_thread(cluster_questions, texts, vectors)
    clustered = time.perf_counter()
    found = [0] * len(texts)
    for g, members in enumerate(groups):
        for i in members:
            found[i] = g
    embedder.close()
    return {
        "questions": len(texts),
        "topics": len(set(labels)),
        "clusters": len(groups),
        "adjusted_rand": round(float(adjusted_rand_score(labels, found)), 3),
        "embed_s": round(embedded - started, 2),
        "cluster_s": round(clustered - embedded, 2),
        "loadavg_before": load,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    report = asyncio.run(measure(args.questions))
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
