"""The /explain concept notes and their held-out questions: sizes, links, titles, coverage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.explain.topics import CONCEPTS_DIR, load_notes, topics

EVAL_FILE = CONCEPTS_DIR.parent / "eval_questions.jsonl"
NOTES = load_notes()
NAMES = {note.name for note in NOTES}
# Words that say nothing about a topic; a question "avoids the title" if it shares none of the
# other words with the titles of the notes that answer it.
STOPWORDS = {
    "a",
    "an",
    "and",
    "the",
    "of",
    "on",
    "one",
    "why",
    "what",
    "how",
    "to",
    "in",
    "for",
    "with",
    "is",
    "it",
    "model",
    "models",
    "language",
}


def load_questions() -> list[dict]:
    with EVAL_FILE.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def title_words(title: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", title.lower()) if w not in STOPWORDS}


def test_there_are_at_least_twenty_notes():
    assert len(NOTES) >= 20


@pytest.mark.parametrize("note", NOTES, ids=lambda n: n.name)
def test_note_length_is_between_300_and_800_words(note):
    assert 300 <= note.words <= 800, f"{note.name}: {note.words} words"


def test_titles_are_unique_and_first_line_is_the_title():
    titles = [note.title.lower() for note in NOTES]
    assert len(set(titles)) == len(titles)
    for note in NOTES:
        assert note.text.splitlines()[0] == f"# {note.title}"


@pytest.mark.parametrize("note", NOTES, ids=lambda n: n.name)
def test_see_also_links_resolve_to_other_notes(note):
    assert len(note.see_also) >= 2, f"{note.name} needs a 'See also' section with links"
    for link in note.see_also:
        assert link in NAMES, f"{note.name} links to missing {link}"
        assert link != note.name


def test_every_note_is_reachable_from_another_note():
    linked = {link for note in NOTES for link in note.see_also}
    assert NAMES - linked == set()


def test_topics_come_from_titles_for_autocomplete():
    rows = topics()
    assert {row["topic"] + ".md" for row in rows} == NAMES
    assert [row["title"].lower() for row in rows] == sorted(row["title"].lower() for row in rows)


def test_topics_of_a_folder_without_a_title_fail_clearly(tmp_path: Path):
    (tmp_path / "bad.md").write_text("no heading here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.md"):
        load_notes(tmp_path)


def test_eval_questions_are_well_formed_and_point_at_existing_notes():
    questions = load_questions()
    assert len(questions) >= 30
    assert len({q["id"] for q in questions}) == len(questions)
    assert len({q["question"].lower() for q in questions}) == len(questions)
    texts = {note.name: note.text.lower() for note in NOTES}
    for q in questions:
        assert set(q) == {"id", "question", "notes", "key_term"}, q
        assert q["question"].strip() and q["key_term"].strip()
        assert q["notes"] and set(q["notes"]) <= NAMES, q
        # The key term must be answerable from the notes the question points at.
        assert any(q["key_term"].lower() in texts[n] for n in q["notes"]), q


def test_eval_questions_are_held_out():
    questions = load_questions()
    corpus = " ".join(note.text.lower() for note in NOTES)
    for q in questions:
        assert q["question"].lower().rstrip("?!. ") not in corpus, f"copied: {q['question']}"
    titles = {note.name: title_words(note.title) for note in NOTES}
    avoiding = [
        q
        for q in questions
        if not set(re.findall(r"[a-z0-9]+", q["question"].lower()))
        & set().union(*(titles[n] for n in q["notes"]))
    ]
    assert len(avoiding) * 2 >= len(questions), f"only {len(avoiding)} avoid their titles' words"


def test_every_note_is_the_answer_to_some_question():
    covered = {name for q in load_questions() for name in q["notes"]}
    assert NAMES - covered == set()


def test_cli_lists_topics_as_json(capsys):
    from core.cli import main

    assert main(["explain", "--topics", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"topic": "lora", "title": "LoRA: low-rank adaptation"} in rows


def test_cli_refuses_an_empty_question_before_opening_anything(capsys):
    from core.cli import main

    assert main(["explain", "   "]) == 2
    assert "empty" in capsys.readouterr().err
