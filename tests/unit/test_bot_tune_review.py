"""The words of /tune review: one message whatever the answer, mentions and fences defused."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.tunereview import closed_text, review_message, review_text
from core.tuning.review import ReviewCounts, ReviewItem

COUNTS = ReviewCounts(approved=3, pending=5, rejected=1)


def _item(question: str, answer: str, channel_id: int | None = 77) -> ReviewItem:
    return ReviewItem(
        12, 99, channel_id, 42, "explain", question, answer, datetime(2026, 11, 27, tzinfo=UTC)
    )


def test_a_long_answer_is_cut_to_one_message_with_its_code_block_closed():
    text = review_text(_item("How?\n\nlike ```this", "```py\n" + "x = 1\n" * 900), COUNTS)
    assert len(text) <= 2000 and text.count("```") % 2 == 0
    assert "… (truncated)" in text and text.endswith("Reject keeps it out for good._")
    assert "**Question:** How? like `\u200b``this" in text  # one line; cannot open a block
    assert "3 approved, 5 pending" in text


def test_who_where_when_and_mentions_neutralised():
    text = review_text(_item("@everyone look", "ping <@123>"), COUNTS, "✅ Approved answer #11.")
    assert text.startswith(
        "✅ Approved answer #11.\n**Review for tuning** · answer #12 · "
        "/explain by <@42> in <#77> · <t:1795737600:R>"
    )
    assert "@\u200beveryone" in text and "<\u200b@123>" in text
    assert " in <#" not in review_text(_item("q", "a", channel_id=None), COUNTS)


def test_buttons_carry_the_answer_and_the_moderator():
    _, view = review_message(_item("q", "a"), COUNTS, moderator_id=7)
    assert [b.custom_id for b in view.children] == [
        f"guru:review:{a}:12:7" for a in ("approve", "reject", "skip", "done")
    ]


def test_closing_words():
    assert "Nothing left to review" in closed_text(ReviewCounts(1, 0, 0))
    assert "run `/tune review` again to go on" in closed_text(COUNTS)
    assert "again to see those" in closed_text(COUNTS, skipped=True)
