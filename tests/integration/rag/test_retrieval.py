"""Hybrid search beats both single modes where each one fails; the floor refuses the unrelated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.answering import Answers
from core.errors import InvalidInput
from core.rag.answer import REFUSAL
from core.rag.grounding import Grounder
from core.rag.ingest import Ingestor
from core.rag.retrieve import (
    EXPANDED_WEIGHTS,
    LIST_NAMES,
    Expansion,
    Retriever,
    rrf_fuse,
)
from core.rag.types import Hit
from tests.integration.rag.corpus import write_corpus


@pytest.fixture(scope="module")
async def corpus_guild(ingestor: Ingestor, tmp_path_factory: pytest.TempPathFactory) -> int:
    guild = 920_000_000_000_000_001
    root = write_corpus(tmp_path_factory.mktemp("corpus"))
    outcomes = [o async for o in ingestor.ingest_paths(guild, [str(root)])]
    assert all(o.status in ("added", "unchanged") for o in outcomes), outcomes
    return guild


def top_uri(hits: list[Hit]) -> str:
    return Path(hits[0].uri).name if hits else ""


async def test_hybrid_finds_an_exact_identifier_that_vector_search_misses(
    retriever: Retriever, corpus_guild: int
) -> None:
    query = "why do I get QX-1474"
    vector = await retriever.search(corpus_guild, query, 5, "vector")
    text = await retriever.search(corpus_guild, query, 5, "text")
    hybrid = await retriever.search(corpus_guild, query, 5, "hybrid")
    assert top_uri(vector) != "error-QX-1474.md"  # the encoder cannot tell the codes apart
    assert top_uri(text) == "error-QX-1474.md"
    assert top_uri(hybrid) == "error-QX-1474.md"


async def test_one_shared_common_word_is_no_all_terms_match(
    retriever: Retriever, corpus_guild: int
) -> None:
    # "link" is the only word of the question the guild's pages use (error-QX-1474: "the
    # invite link has expired"); that alone must not put the page in the all-terms list, which
    # fusion weighs as much as meaning (it used to rank first in hybrid search).
    query = "can i post links to my own shop here"
    embedding = await retriever.embedder.embed_one(query)
    lists = await retriever.ranked_lists(corpus_guild, query, embedding, 5)
    assert lists["all_terms"] == []
    assert "error-QX-1474.md" in [Path(h.uri).name for h in lists["bm25"]]  # still a weak hint
    assert top_uri(lists["vector"]) == "rules.md"  # no advertising
    hybrid = await retriever.search(corpus_guild, query, 5, "hybrid")
    assert "rules.md" in [Path(h.uri).name for h in hybrid[:2]]


async def test_hybrid_finds_a_paraphrase_that_text_search_misses(
    retriever: Retriever, corpus_guild: int
) -> None:
    query = "I can't remember my login secret, how do I get back in?"
    vector = await retriever.search(corpus_guild, query, 5, "vector")
    text = await retriever.search(corpus_guild, query, 5, "text")
    hybrid = await retriever.search(corpus_guild, query, 5, "hybrid")
    assert "password.md" not in [Path(h.uri).name for h in text]  # no shared word
    assert top_uri(vector) == "password.md"
    assert top_uri(hybrid) == "password.md"


async def test_an_expansion_adds_lists_that_search_with_the_passage(
    retriever: Retriever, corpus_guild: int
) -> None:
    # A vague question and a passage naming the page's identifier (what query expansion's
    # model would write; bench/rag_eval/expansion.py measures that with real models).
    query = "why does my file keep bouncing back"
    passage = "Error QX-4417 means the upload exceeded the quota: the file is too large."
    embedding = await retriever.embedder.embed_one(query)
    expansion = Expansion(passage, await retriever.embedder.embed_one(passage))
    lists = await retriever.ranked_lists(corpus_guild, query, embedding, 20, "hybrid", expansion)
    assert top_uri(lists["bm25_expanded"]) == "error-QX-4417.md"  # query2doc: the passage's terms
    assert "error-QX-4417.md" not in [Path(h.uri).name for h in lists["bm25"]]
    # HyDE: ranked by the passage's embedding, but `similarity` (the relevance floor's input)
    # stays the question's cosine, whichever list found the chunk.
    question_cosine = {h.chunk_id: h.similarity for h in lists["vector"]}
    expanded = lists["vector_expanded"]
    assert [h.score for h in expanded] == sorted((h.score for h in expanded), reverse=True)
    assert [h.chunk_id for h in expanded] != [h.chunk_id for h in lists["vector"]]
    assert all(h.similarity == pytest.approx(question_cosine[h.chunk_id]) for h in expanded)
    # Vector and text search ignore an expansion; hybrid fuses the lists with EXPANDED_WEIGHTS,
    # where the question's own vector list weighs nothing (the passage's lead).
    for mode in ("vector", "text"):
        assert await retriever.search_embedded(
            corpus_guild, query, embedding, 5, mode, expansion
        ) == await retriever.search_embedded(corpus_guild, query, embedding, 5, mode)
    fused = await retriever.search_embedded(corpus_guild, query, embedding, 5, "hybrid", expansion)
    assert top_uri(fused) == "error-QX-4417.md"
    weights = dict(zip(LIST_NAMES, EXPANDED_WEIGHTS))
    used = [n for n in LIST_NAMES if weights[n] > 0]
    assert "vector" not in used
    assert fused == rrf_fuse([lists[n] for n in used], 5, weights=[weights[n] for n in used])
    assert await retriever.search(corpus_guild, query, 5, "hybrid", expansion) == fused


async def test_unrelated_question_is_refused_without_the_model(
    answers_with: Callable[..., Answers], corpus_guild: int
) -> None:
    answers = answers_with(None)  # the floor refuses before any model is needed
    answer = await answers.answer("ask", corpus_guild, "What is the capital of Australia?")
    assert answer.refused and answer.sources == ()
    assert REFUSAL in answer.answer and len(answer.closest_titles) == 3
    assert all(t in answer.answer for t in answer.closest_titles)


async def test_related_question_passes_the_floor(retriever: Retriever, corpus_guild: int) -> None:
    grounding, _ = await Grounder(retriever).ground(corpus_guild, "when do raids start?")
    assert grounding is not None and grounding.sources[0].title == "Raid schedule"


async def test_empty_and_unknown_guild_searches(retriever: Retriever) -> None:
    assert await retriever.search(930_000_000_000_000_001, "anything", 5) == []
    with pytest.raises(InvalidInput):
        await retriever.search(1, "   ", 5)
    with pytest.raises(InvalidInput):
        await retriever.search(-5, "x", 5)


def test_rrf_rewards_agreement_between_lists() -> None:
    def hit(cid: int, sim: float = 0.5) -> Hit:
        return Hit(cid, cid, "t", "u", "x", 0.0, sim)

    fused = rrf_fuse([[hit(1), hit(2), hit(3)], [hit(3), hit(4)]], k=3)
    assert [h.chunk_id for h in fused] == [3, 1, 2]
    assert fused[0].score == pytest.approx(1 / 63 + 1 / 61)
