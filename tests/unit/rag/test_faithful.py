"""What reaches the user is checked against its sources: invented numbers, options and commands
are dropped, and an answer with no prose left is never shown as an answer."""

from __future__ import annotations

import pytest

from core.answering import NO_USABLE_ANSWER, PreparedAnswer
from core.llm.types import Message, Request
from core.rag.faithful import check_answer, strip_preamble, unsupported_terms, usable
from core.rag.grounding import Grounding
from core.rag.types import Source

SOURCE = (
    "Uploads are limited to 5 files per message by default. Admins can raise the limit with "
    "`guru limits set --files 8`. Run `guru limits show` to see the current value."
)


def test_an_invented_number_is_dropped_and_the_supported_sentence_stays() -> None:
    checked = check_answer(
        "By default you can upload 5 files [1]. You can raise it to a maximum of 10.", SOURCE
    )
    assert checked.text == "By default you can upload 5 files [1]."
    assert checked.dropped == ("You can raise it to a maximum of 10.",) and checked.usable


def test_numbers_from_the_question_and_list_markers_are_not_inventions() -> None:
    answer = "1. Yes: 12 files is above the default of 5 files [1]."
    assert check_answer(answer, SOURCE, "Can I upload 12 files?").dropped == ()
    assert unsupported_terms("Yes, 12 files [2].", SOURCE.lower()) == ["12"]


def test_invented_options_and_commands_are_dropped() -> None:
    answer = (
        "Raise the limit with `guru limits set --files 8` [1].\n"
        "Or use `guru limits set --force` to skip the check.\n"
        "```\nguru limits show\nguru limits reset --all\n```"
    )
    checked = check_answer(answer, SOURCE)
    assert "--force" not in checked.text and "reset --all" not in checked.text
    assert "guru limits set --files 8" in checked.text and "guru limits show" in checked.text


def test_an_invented_code_block_goes_with_the_line_that_introduced_it() -> None:
    answer = "Use this command:\n\n```bash\nguru limits purge --all\n```\n\nThat shows 5 files."
    checked = check_answer(answer, SOURCE)
    assert checked.text == "That shows 5 files."


def test_an_option_is_matched_as_a_whole_token() -> None:
    page = "-S[<keyid>] --gpg-sign[=<keyid>] --no-gpg-sign GPG-sign commits.".lower()
    assert unsupported_terms("Sign with -S or --gpg-sign.", page) == []
    assert unsupported_terms("Sign with -g.", page) == ["-g"]  # only inside "--gpg-sign"
    assert unsupported_terms("Use --no-gpg.", page) == ["--no-gpg"]


def test_two_code_blocks_keep_their_fences_and_the_prose_after_them() -> None:
    answer = (
        "Use the limits command. For example:\n```\nguru limits show\n```\n\n"
        "It shows the 5 files. For example:\n```\nguru limits show\n```\n\nThat is all of it."
    )
    verdict, text = _prepared().check(answer)
    assert verdict == "ok" and text.endswith("That is all of it.")
    # the repeated block's line goes, its fences and the "For example:" before it with it
    assert text.count("```") == 2 and "It shows the 5 files.\n" in text


def test_a_subcommand_is_supported_by_its_manual_name() -> None:
    # git-doc names its pages "git-clean(1)"; a chunk may hold only that name line
    page = "git-clean -\n   Remove untracked files from the working tree".lower()
    assert unsupported_terms("Use `git clean` to remove them.", page) == []
    assert unsupported_terms("Use `git clear` to remove them.", page) == ["git clear"]
    assert unsupported_terms("Use `git clean -x` to remove them.", page) == ["-x", "git clean -x"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[1]",
        "Attention:\n\n",
        "Sources: [1] [2]",
        "Yes [1].",
        "Optimal Autonomous Underd",
        "the answer is the answer is the answer is the answer is the answer is",
    ],
)
def test_what_is_not_an_answer(text: str) -> None:
    assert not usable(text)


def test_an_answer_starts_with_prose() -> None:
    assert strip_preamble("[1] A: The original paper scales by sqrt(d_k) [1].").startswith(
        "The original paper"
    )
    assert strip_preamble("Answer: Paris is the capital [1].") == "Paris is the capital [1]."
    assert usable("The original paper scales the scores by the square root of d_k [1].")


def _prepared() -> PreparedAnswer:
    grounding = Grounding((Source(1, "Upload limits", "limits.md", 0.7),), (SOURCE,))
    request = Request(messages=(Message("user", "q"),), temperature=0.0)
    return PreparedAnswer("ask", "How many files can I upload?", 1, grounding, None, request)


def test_an_unusable_generation_is_retried_sampled_then_reported_plainly() -> None:
    prepared = _prepared()
    assert not prepared.usable("[1]") and not prepared.usable("Up to 10 [1].")
    retry = prepared.retry_request()
    assert retry.temperature > 0 and retry.seed is not None
    assert retry.request_id != prepared.request.request_id  # type: ignore[union-attr]
    shown = prepared.finish_text("Up to 10 [1].")
    assert shown.refused and shown.answer == NO_USABLE_ANSWER and len(shown.sources) == 1


def test_a_checked_answer_keeps_its_citations_and_sources() -> None:
    shown = _prepared().finish_text("[1] A: You can upload 5 files per message [1].")
    assert shown.answer == "You can upload 5 files per message [1]." and not shown.refused
    assert [s.uri for s in shown.sources] == ["limits.md"]
    declined = _prepared().finish_text("That is not in this server's docs.")
    assert declined.refused and "Upload limits" in declined.answer


def test_invented_headlines_and_unrelated_sentences_are_dropped() -> None:
    notes = (
        "Attention compares each query with every key; the softmax of the scores weighs the "
        "values. Multi-head attention runs several heads in parallel."
    )
    answer = (
        "Decompose Random Forests into Nodes and Layers\n"
        "Truncated Naive Bayes Classifiers vs. Generalized Linear Mixed Models\n"
        "Our bakery sells sourdough loaves every weekend morning downtown.\n"
        "Attention weighs the values by how well each query matches each key [1]."
    )
    checked = check_answer(answer, notes, "attention")
    assert (
        checked.text == "Attention weighs the values by how well each query matches each key [1]."
    )
    assert len(checked.dropped) == 3 and checked.usable


def test_the_worked_example_comes_before_the_question_and_leaks_nothing_else() -> None:
    from core.rag.answer import EXAMPLE_ANSWER, build_messages

    grounding = Grounding((Source(1, "Upload limits", "limits.md", 0.7),), (SOURCE,))
    plain = build_messages("How many files?", grounding)
    shown = build_messages("How many files?", grounding, few_shot=True)
    assert [m.role for m in plain] == ["system", "user"]
    assert [m.role for m in shown] == ["system", "user", "assistant", "user"]
    assert shown[2].content == EXAMPLE_ANSWER and shown[-1] == plain[-1]


def test_a_sentence_said_again_with_a_word_changed_is_dropped() -> None:
    from core.rag.faithful import drop_repeated_sentences

    text = (
        "Error 0x45 means the server is full [1]. Try to join a game that has already been "
        "joined by a friend.\n\nIf that fails, try to join a game that has already been joined "
        "by another player.\n```\nrestart\nrestart\n```"
    )
    assert drop_repeated_sentences(text) == (
        "Error 0x45 means the server is full [1]. Try to join a game that has already been "
        "joined by a friend.\n\n```\nrestart\nrestart\n```"
    )
