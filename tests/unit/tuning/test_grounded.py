"""The grounded dataset builder's filters (bench/grounded/filters.py) on crafted rows, and which
GURU_GROUNDED_ADAPTER folders may serve (core/answering/grounded.py)."""

from __future__ import annotations

import json
import random

from bench.grounded.filters import (
    REFUSAL_TARGET,
    Written,
    keep_answer,
    parse_written,
    span_in_chunk,
    with_gold,
    without_gold,
)
from core.answering.grounded import resolve
from core.rag.answer import declines
from core.rag.grounding import Grounding
from core.rag.types import Source

CHUNK = (
    "The pool keeps at most max_size connections open; the default max_size is 4. "
    "Raise it with PSYCOPG_POOL_MAX when many tasks wait."
)


def _grounding(*docs: tuple[str, str]) -> Grounding:
    sources = tuple(Source(n, uri.upper(), uri, 0.5) for n, (uri, _) in enumerate(docs, 1))
    return Grounding(sources, tuple(text for _, text in docs))


def test_a_question_and_its_span_are_parsed_from_the_writers_reply():
    written = parse_written("**Question:** How many connections?\n**Answer:** `4`.")
    assert written == Written("How many connections?", "4")
    assert parse_written("Question: How many connections does it keep?") is None
    assert parse_written("Answer: 4") is None


def test_a_span_not_in_the_chunk_is_dropped():
    assert span_in_chunk(Written("What is the default pool size?", "max_size is 4"), CHUNK)
    assert not span_in_chunk(Written("What is the default pool size?", "max_size is 8"), CHUNK)
    # given away by the question itself, or a pasted paragraph rather than a short answer
    assert not span_in_chunk(
        Written("Is PSYCOPG_POOL_MAX the variable?", "PSYCOPG_POOL_MAX"), CHUNK
    )
    assert not span_in_chunk(Written("What does it do?", CHUNK), CHUNK)


def test_an_answer_is_kept_only_when_it_states_the_span_and_cites_the_gold():
    shown = _grounding(("a.md", "About something else entirely."), ("pool.md", CHUNK))
    span = "PSYCOPG_POOL_MAX"
    cited = "Set PSYCOPG_POOL_MAX to raise it [2]."
    assert keep_answer(cited, span, 2, shown) == cited
    assert keep_answer("Raise the pool size in the settings [2].", span, 2, shown) is None
    assert (
        keep_answer("That is not in this server's docs [2] PSYCOPG_POOL_MAX", span, 2, shown)
        is None
    )
    assert keep_answer(cited + " More." * 200, span, 2, shown) is None  # an essay
    # uncited, or citing the wrong page: the [n] the product's attribution measures
    kept = keep_answer("Raise it with PSYCOPG_POOL_MAX when many tasks wait.", span, 2, shown)
    assert kept == "Raise it with PSYCOPG_POOL_MAX when many tasks wait [2]."
    assert keep_answer("Set PSYCOPG_POOL_MAX [1].", span, 2, shown) == "Set PSYCOPG_POOL_MAX [2]."
    # stated, but the gold does not support it (the fact is only in the other page)
    elsewhere = _grounding(("a.md", "Use PSYCOPG_POOL_MAX."), ("pool.md", "A page about pools."))
    assert keep_answer("Use PSYCOPG_POOL_MAX.", span, 2, elsewhere) is None


def test_a_missed_gold_is_inserted_and_the_sources_renumbered():
    retrieved = _grounding(("a.md", "about A"), ("b.md", "about B"), ("c.md", "C"), ("d.md", "D"))
    gold = Source(0, "Pool", "pool.md", 1.0)
    shown = with_gold(retrieved, gold, CHUNK, "PSYCOPG_POOL_MAX", random.Random(3))
    assert len(shown.sources) == 4 and [s.n for s in shown.sources] == [1, 2, 3, 4]
    at = [s.uri for s in shown.sources].index("pool.md")
    assert shown.passages[at] == CHUNK and "d.md" not in [s.uri for s in shown.sources]
    # nothing retrieved at all: the gold alone
    alone = with_gold(None, gold, CHUNK, "PSYCOPG_POOL_MAX", random.Random(0))
    assert [(s.n, s.uri) for s in alone.sources] == [(1, "pool.md")]


def test_a_gold_document_shown_without_the_span_gets_the_gold_chunk():
    retrieved = _grounding(("a.md", "about A"), ("pool.md", "another part of the pool page"))
    shown = with_gold(
        retrieved, Source(0, "P", "pool.md", 1), CHUNK, "max_size is 4", random.Random()
    )
    assert shown.passages == ("about A", CHUNK) and shown.sources == retrieved.sources
    # already there: the very prompt retrieval built
    present = _grounding(("pool.md", CHUNK), ("a.md", "about A"))
    assert (
        with_gold(present, Source(0, "P", "pool.md", 1), CHUNK, "max_size is 4", random.Random())
        is present
    )


def test_removing_the_gold_leaves_a_refusal_example_only_when_no_source_states_it():
    retrieved = _grounding(("a.md", "about A"), ("pool.md", CHUNK), ("b.md", "about B"))
    left = without_gold(retrieved, "pool.md", "PSYCOPG_POOL_MAX")
    assert left is not None and [(s.n, s.uri) for s in left.sources] == [(1, "a.md"), (2, "b.md")]
    assert left.passages == ("about A", "about B")
    copied = _grounding(("pool.md", CHUNK), ("mirror.md", "mirror: " + CHUNK))
    assert without_gold(copied, "pool.md", "PSYCOPG_POOL_MAX") is None
    assert without_gold(_grounding(("pool.md", CHUNK)), "pool.md", "PSYCOPG_POOL_MAX") is None
    assert declines(REFUSAL_TARGET)  # the product reads the target as its refusal


def test_the_setting_serves_only_an_adapter_of_the_loaded_model(tmp_path):
    assert resolve("off", "qwen2.5-coder-0.5b") is None
    missing = resolve(str(tmp_path / "nothing"), "qwen2.5-coder-0.5b")
    assert (
        missing is not None and missing.adapter_dir is None and "no peft adapter" in missing.problem
    )
    version = tmp_path / "v1"
    (version / "adapter").mkdir(parents=True)
    (version / "adapter" / "adapter_config.json").write_text("{}")
    (version / "grounded.json").write_text(json.dumps({"base_model": "qwen2.5-coder-0.5b"}))
    found = resolve(str(version), "qwen2.5-coder-0.5b")
    assert found is not None and found.adapter_dir == version / "adapter"
    other = resolve(str(version), "smollm2-135m")
    assert other is not None and other.adapter_dir is None and "trained on qwen2.5" in other.problem
    # a bare peft folder (no metadata) is taken as it is
    bare = resolve(str(version / "adapter"), "smollm2-135m")
    assert bare is not None and bare.adapter_dir == version / "adapter"
