"""/explain's pure parts: how notes become documents, and how model text becomes an Answer."""

from __future__ import annotations

from core.answering import PreparedAnswer
from core.explain.answer import OUT_OF_SCOPE, CurriculumGrounder, out_of_scope
from core.explain.kb import load_concept_documents, note_uri
from core.explain.topics import CONCEPTS_DIR, load_notes
from core.llm.types import Message, Request
from core.rag.grounding import Grounding
from core.rag.types import Hit, Source


def test_notes_become_concept_documents_with_stable_uris() -> None:
    docs = load_concept_documents()
    notes = load_notes()
    assert [d.uri for d in docs] == [note_uri(n.name) for n in notes]
    assert all(d.uri.startswith("concepts/") and "/" not in d.uri[9:] for d in docs)
    assert [d.title for d in docs] == [n.title for n in notes]
    assert {d.source for d in docs} == {"concept"}
    assert all(len(d.sections) >= 2 for d in docs)  # split at headings
    assert str(CONCEPTS_DIR) not in "".join(d.uri for d in docs)


def _prepared() -> PreparedAnswer:
    grounding = Grounding(
        (
            Source(1, "LoRA: low-rank adaptation", "concepts/lora.md", 0.6),
            Source(2, "PEFT", "concepts/peft.md", 0.5),
        ),
        ("r is the rank", "…"),
    )
    request = Request(messages=(Message("user", "q"),))
    return PreparedAnswer("explain", "what is r?", None, grounding, None, request)


def test_finish_keeps_real_citations_and_the_note_sources() -> None:
    answer = _prepared().finish_text("r is the rank of the update [1] [9].")
    assert not answer.refused and answer.answer == "r is the rank of the update [1]."
    assert [s.uri for s in answer.sources] == ["concepts/lora.md", "concepts/peft.md"]


def test_a_model_that_finds_nothing_becomes_a_refusal_naming_the_notes() -> None:
    answer = _prepared().finish_text("That is not in this server's docs.")
    assert answer.refused and answer.sources == ()
    assert "LoRA: low-rank adaptation" in answer.answer and "/ask" in answer.answer


def test_out_of_scope_is_short_and_points_to_ask() -> None:
    answer = out_of_scope(["Softmax"])
    assert answer.refused and answer.answer == OUT_OF_SCOPE
    assert answer.closest_titles == ("Softmax",)
    assert len(OUT_OF_SCOPE) < 200 and "/ask" in OUT_OF_SCOPE
    assert PreparedAnswer("explain", "q", None, None, answer, None).finish_text("x") is answer


def test_the_curriculum_floor_has_no_all_terms_bypass() -> None:
    grounder = CurriculumGrounder(retriever=None, floor=0.35)  # type: ignore[arg-type]
    hits = [Hit(1, 1, "t", "u", "x", 0.1, 0.30, exact=True), Hit(2, 1, "t", "u", "x", 0.1, 0.4)]
    assert [h.chunk_id for h in grounder.relevant(hits)] == [2]
