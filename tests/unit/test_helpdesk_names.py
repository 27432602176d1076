"""Thread names for answers and help posts: the question's first line, within Discord's 100."""

from __future__ import annotations

from bot.helpdesk import THREAD_NAME_MAX, thread_name


def test_a_thread_is_named_after_the_questions_first_line():
    assert thread_name("How do I reset my password?") == "How do I reset my password?"
    assert thread_name("\n  Locked   out \nIt says 401.") == "Locked out"


def test_a_long_or_empty_question_still_makes_a_valid_name():
    long = thread_name("why " * 100)
    assert 1 <= len(long) <= THREAD_NAME_MAX and long.startswith("why why")
    assert thread_name("   \n ") == "Question"
