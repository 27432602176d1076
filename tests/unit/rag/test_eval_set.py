"""The RAG eval set keeps the issue's rules: >= 40 questions, at least half avoid the gold pages'
names (stemmed, so a plural does not sneak a title word in), every question has gold pages."""

from __future__ import annotations

from bench.rag_eval.evaluate import Question, load_questions


def test_a_plural_of_the_page_name_counts_as_using_the_title() -> None:
    assert not Question(
        "how do i sign my commits", frozenset({"git-commit.html"})
    ).avoids_title_words
    assert not Question("list every file", frozenset({"git-ls-files.html"})).avoids_title_words
    assert Question("shelve my uncommitted work", frozenset({"git-stash.html"})).avoids_title_words


def test_eval_set_has_enough_questions_and_most_avoid_titles() -> None:
    questions = load_questions()
    assert len(questions) >= 40 and all(q.gold for q in questions)
    assert sum(q.avoids_title_words for q in questions) * 2 >= len(questions)
    assert len({q.text for q in questions}) == len(questions)


def test_expansion_prompts_leak_nothing_of_the_eval_set() -> None:
    # Query expansion must be judged as a product would run it on any server's docs: the
    # prompts and few-shot examples name no eval question, gold page or git at all.
    from bench.rag_eval.expansion import PROMPTS, messages

    questions = load_questions()
    pages = {g.removesuffix(".html").lower() for q in questions for g in q.gold}
    for prompt in PROMPTS:
        text = " ".join(m.content for m in messages("QUESTION", prompt)).lower()
        assert "git" not in text and not any(p in text for p in pages)
        assert not any(q.text.lower() in text for q in questions)
