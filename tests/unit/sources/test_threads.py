"""Which help threads count as solved and what their documents say (core.sources.threads)."""

from __future__ import annotations

from core.sources.threads import ThreadFacts, ThreadMessage, resolve, thread_document, thread_page

ASKER, HELPER, OTHER = 1, 2, 3


def facts(*messages: ThreadMessage, tags: tuple[str, ...] = (), marked: int | None = None):
    return ThreadFacts(10, 20, "help", 30, "Login loop", messages, tags, marked)


QUESTION = ThreadMessage(30, ASKER, "ann", "I keep getting logged out. Why?")
GUESS = ThreadMessage(31, OTHER, "bob", "Try turning it off and on.")
FIX = ThreadMessage(32, HELPER, "cy", "Clear the cookie named sid, then log in again.")


def test_an_unmarked_thread_without_tags_is_not_solved():
    assert resolve(facts(QUESTION, GUESS, FIX)) is None
    assert thread_page(facts(QUESTION, GUESS, FIX)) is None


def test_a_helper_check_picks_that_message_over_later_ones():
    checked = ThreadMessage(31, OTHER, "bob", "Try turning it off and on.", helper_checked=True)
    found = resolve(facts(QUESTION, checked, FIX))
    assert found is not None and found.answer == checked and found.solved_by == "reaction"


def test_a_moderator_mark_wins_over_a_helper_check():
    checked = ThreadMessage(31, OTHER, "bob", "Try turning it off and on.", helper_checked=True)
    found = resolve(facts(QUESTION, checked, FIX, marked=32))
    assert found is not None and found.answer == FIX and found.solved_by == "marked"


def test_a_solved_tag_takes_the_last_reply_by_someone_else_than_the_asker():
    thanks = ThreadMessage(33, ASKER, "ann", "Thanks, that worked!")
    found = resolve(facts(QUESTION, GUESS, FIX, thanks, tags=("Solved",)))
    assert found is not None and found.answer == FIX and found.solved_by == "tag"
    assert resolve(facts(QUESTION, thanks, tags=("solved",))) is None  # only the asker spoke
    assert resolve(facts(QUESTION, FIX, tags=("bug",))) is None


def test_the_document_has_question_answer_links_and_the_parent_channel():
    found = resolve(facts(QUESTION, FIX, marked=32))
    assert found is not None
    doc = thread_document(found)
    assert doc.uri == "https://discord.com/channels/10/30"
    assert doc.source == "discord" and doc.title == "Login loop"
    assert [s.heading for s in doc.sections] == ["Question", "Accepted answer"]
    assert "I keep getting logged out" in doc.sections[0].text
    assert "Clear the cookie named sid" in doc.sections[1].text
    assert doc.metadata["channel_id"] == "20"  # access follows the parent channel (0007)
    assert doc.metadata["answer_url"] == "https://discord.com/channels/10/30/32"


def test_since_takes_dates_and_ages_and_refuses_the_rest():
    from datetime import UTC, datetime

    import pytest

    from core.errors import InvalidInput
    from core.sources.threads import parse_since

    now = datetime(2026, 12, 7, tzinfo=UTC)
    assert parse_since("2026-01-31", now) == "2026-01-31"
    assert parse_since("10d", now) == "2026-11-27" and parse_since("1w", now) == "2026-11-30"
    assert parse_since(None, now) is None and parse_since(" ", now) is None
    for bad in ("yesterday", "2027-01-01"):
        with pytest.raises(InvalidInput):
            parse_since(bad, now)


def test_docs_list_names_a_channel_source_and_a_running_syncs_progress():
    from datetime import UTC, datetime

    from bot.cogs.sources import source_line
    from core.sources.types import SourceInfo

    started = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
    source = SourceInfo(
        3, 10, "discord", "https://discord.com/channels/10/20", {"channel_id": "20"}, 86400,
        None, None, {"added": 1}, None, started, {"added": 4, "unchanged": 2},
    )  # fmt: skip
    line = source_line(source)
    assert line.startswith("💬 `3` <#20> — every 1d, last sync never: 1 added, 0 changed")
    assert line.endswith(
        f"🔄 syncing since <t:{int(started.timestamp())}:R>, so far 4 added, 0 changed, "
        "2 unchanged, 0 removed, 0 failed"
    )
