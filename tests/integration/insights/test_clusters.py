"""Unanswered questions grouped by meaning with the real MiniLM encoder: paraphrases of one
question land together, different questions apart, repeats count, the medoid represents."""

from __future__ import annotations

from datetime import UTC, datetime

from core.insights.clusters import group_by_meaning
from core.insights.stats import Unanswered
from core.rag.embedder import Embedder
from tests.fixtures.insights import ONE_OFFS, TOPICS

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _q(text: str, *reasons: str) -> Unanswered:
    return Unanswered(text, reasons or ("refused",), NOW)


async def test_paraphrases_land_together_and_different_questions_apart(embedder: Embedder):
    questions = [_q(t) for topic in TOPICS.values() for t in topic] + [_q(t) for t in ONE_OFFS]
    clusters = await group_by_meaning(embedder, questions)
    topic_of = {t: name for name, texts in TOPICS.items() for t in texts}
    topic_of |= {t: t for t in ONE_OFFS}
    found = sorted(sorted({topic_of[t] for t in (c.representative, *c.examples)}) for c in clusters)
    # every cluster holds one topic, and every topic is one cluster
    assert all(len(names) == 1 for names in found), found
    assert len(clusters) == len(TOPICS) + len(ONE_OFFS), found
    sizes = {topic_of[c.representative]: c.count for c in clusters}
    assert sizes == {name: len(texts) for name, texts in TOPICS.items()} | dict.fromkeys(
        ONE_OFFS, 1
    )


async def test_repeats_count_and_the_cluster_says_why(embedder: Embedder):
    questions = [
        _q("How do I reset my password?", "refused"),
        _q("how do i reset my password", "refused"),  # a repeat: case and punctuation
        _q("  How do I reset my   password? ", "down"),
        _q("I forgot my password, how can I change it?", "declined", "needs help"),
        _q("When does the weekly raid start?", "unusable"),
    ]
    clusters = await group_by_meaning(embedder, questions)
    assert [c.count for c in clusters] == [4, 1]
    top = clusters[0]
    # the most-asked wording is the most typical one; the other wording is an example
    assert top.representative == "How do I reset my password?"
    assert top.examples == ("I forgot my password, how can I change it?",)
    assert top.reasons == {"refused": 2, "down": 1, "declined": 1, "needs help": 1}
    assert clusters[1].representative == "When does the weekly raid start?"
    assert await group_by_meaning(embedder, []) == []
