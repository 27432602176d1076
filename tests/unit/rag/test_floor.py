"""The relevance floor: a hit above it passes; below it, only a document that clearly stands
out from the others does."""

from __future__ import annotations

from core.rag.grounding import MARGIN, MARGIN_FLOOR, RELEVANCE_FLOOR, Grounder
from core.rag.types import Hit


def _hit(chunk: int, doc: int, similarity: float, exact: bool = False) -> Hit:
    return Hit(chunk, doc, f"doc {doc}", f"d{doc}.md", "text", similarity, similarity, exact)


GROUNDER = Grounder(None)  # type: ignore[arg-type]  # relevant() needs no retriever


def test_hits_above_the_floor_or_with_every_term_pass() -> None:
    hits = [_hit(1, 1, RELEVANCE_FLOOR + 0.01), _hit(2, 2, 0.2, exact=True), _hit(3, 3, 0.3)]
    assert [h.chunk_id for h in GROUNDER.relevant(hits)] == [1, 2]


def test_below_the_floor_a_document_that_stands_out_passes_alone() -> None:
    top = MARGIN_FLOOR + 0.06  # e.g. 0.31: "how far does the protection reach" → claims.md
    hits = [_hit(1, 1, top), _hit(2, 2, top - MARGIN - 0.01), _hit(3, 1, MARGIN_FLOOR + 0.01)]
    assert [h.chunk_id for h in GROUNDER.relevant(hits)] == [1, 3]


def test_below_the_floor_close_runners_up_or_a_low_top_refuse() -> None:
    close = [_hit(1, 1, 0.33), _hit(2, 2, 0.33 - MARGIN + 0.02)]  # "who made this game"
    assert GROUNDER.relevant(close) == []
    low = [_hit(1, 1, MARGIN_FLOOR - 0.01)]
    assert GROUNDER.relevant(low) == []
    assert Grounder(None, margin=None).relevant([_hit(1, 1, 0.31)]) == []  # type: ignore[arg-type]
