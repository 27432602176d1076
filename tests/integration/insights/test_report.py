"""/insights' SQL on a real Postgres: weekly counts and rates per guild, what counts as
unanswered, the period; and `guru insights` (text, --json, --png, bad input)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from core.cli import main
from core.db.pool import Pool
from core.insights import gather_insights, insights_png, insights_text
from core.rag.embedder import Embedder
from tests.fixtures.insights import add_question

GUILD, OTHER = 51_000_000_000_000_001, 51_000_000_000_000_002
# a Wednesday noon: its week starts on Monday Dec 7
NOW = datetime(2026, 12, 9, 12, tzinfo=UTC)
LAST_WEEK = NOW - timedelta(days=7)


async def _seed(pool: Pool) -> None:
    q = add_question
    # this week: 4 /ask questions, 1 refused, 1 declined, 1 unusable; 2 👍 and 1 👎
    await q(pool, GUILD, "How do I reset my password?", "refused", at=NOW)
    await q(pool, GUILD, "I forgot my password, how can I change it?", "declined", at=NOW)
    await q(pool, GUILD, "How do refunds work?", "unusable", at=NOW)
    await q(pool, GUILD, "When does the raid start?", "stop", feedback=1, at=NOW)
    # last week: 3 questions; 1 👍, 1 👎 + needs help (answered, but did not help)
    await q(pool, GUILD, "what is the raid schedule", "stop", feedback=1, at=LAST_WEEK)
    await q(pool, GUILD, "Can I get my money back?", "stop", feedback=-1, at=LAST_WEEK)
    await q(pool, GUILD, "password reset mail never came", "length", needs_help=True, at=LAST_WEEK)
    # not counted: older than the period, another command, still being answered
    await q(pool, GUILD, "How do I reset my password?", "refused", at=NOW - timedelta(days=40))
    await q(pool, GUILD, "what is attention?", "refused", command="explain", at=NOW)
    await q(pool, GUILD, "2+2", "answer", command="calc", feedback=-1, at=NOW)
    await q(pool, GUILD, "Is there a dark mode?", None, at=NOW)
    # another server's questions never reach this one's report
    await q(pool, OTHER, "How do I reset my password?", "refused", at=NOW)
    await q(pool, OTHER, "Where is the secret admin panel?", "refused", feedback=-1, at=NOW)


async def test_weekly_counts_rates_and_the_docs_todo(fresh_pool: Pool, embedder: Embedder):
    await _seed(fresh_pool)
    ins = await gather_insights(fresh_pool, embedder, GUILD, days=30, now=NOW)
    # every week of the period (since Monday Nov 9), the empty ones too
    assert ins.weeks[0].start == date(2026, 11, 9) and ins.weeks[-1].start == date(2026, 12, 7)
    assert len(ins.weeks) == 5 and sum(w.asked for w in ins.weeks[:3]) == 0
    last, this = ins.weeks[-2], ins.weeks[-1]
    assert (this.asked, this.refused, this.unusable, this.up, this.down) == (4, 2, 1, 1, 0)
    assert this.refusal_rate == pytest.approx(0.5) and this.up_rate == 1.0
    assert (last.asked, last.refused, last.up, last.down, last.needs_help) == (3, 0, 1, 1, 1)
    assert last.up_rate == pytest.approx(0.5) and last.refusal_rate == 0.0
    assert ins.total.asked == 7 and ins.total.rated == 3

    # refused + declined + unusable + 👎 + needs help = 5, in 2 topics; no other server's text
    assert ins.unanswered == 5
    topics = {c.representative: c for c in ins.clusters}
    assert [c.count for c in ins.clusters] == [3, 2], topics
    password, refund = ins.clusters
    assert "password" in password.representative and all("password" in e for e in password.examples)
    assert password.reasons == {"refused": 1, "declined": 1, "needs help": 1}
    assert refund.reasons == {"unusable": 1, "down": 1}
    text = insights_text(ins)
    assert len(text) <= 2000 and "7 questions · 2 refused (29%)" in text
    assert "secret admin panel" not in text and "dark mode" not in text

    png = insights_png(ins)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000

    # the other guild sees only its own
    theirs = await gather_insights(fresh_pool, embedder, OTHER, days=30, now=NOW)
    assert theirs.total.asked == 2 and theirs.unanswered == 2
    assert "secret admin panel" in insights_text(theirs) and "refund" not in insights_text(theirs)

    # a shorter period drops last week
    week = await gather_insights(fresh_pool, embedder, GUILD, days=3, now=NOW)
    assert week.total.asked == 4 and week.unanswered == 3


async def test_a_guild_without_questions_gets_a_short_message(fresh_pool: Pool, embedder: Embedder):
    ins = await gather_insights(fresh_pool, embedder, 51_000_000_000_000_099, days=7)
    assert ins.empty and ins.clusters == []
    assert insights_text(ins) == (
        "No questions were asked here in the last 7 days: nothing to report yet."
    )


@pytest.fixture
def guru(
    fresh_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    test_data_dir: Path,
) -> Callable[..., tuple[int, str, str]]:
    """`guru ARGS…` in-process on the test's database; (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("GURU_DATA_DIR", str(test_data_dir))
    monkeypatch.setenv("GURU_LOG_LEVEL", "WARNING")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def test_cli(
    fresh_pool: Pool,
    guru: Callable[..., tuple[int, str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    now = datetime.now(UTC)
    await add_question(fresh_pool, GUILD, "How do I reset my password?", "refused", at=now)
    await add_question(fresh_pool, GUILD, "password reset mail never came", "stop", feedback=-1)
    await add_question(fresh_pool, OTHER, "Where is the secret admin panel?", "refused")
    g = str(GUILD)

    code, out, _ = await _in_thread(
        guru, "insights", "--guild", g, "--png", str(tmp_path / "c.png")
    )
    assert code == 0 and "2 questions · 1 refused (50%)" in out, out
    assert "reset my password" in out and "secret" not in out
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")

    code, out, _ = await _in_thread(guru, "insights", "--guild", g, "--days", "7", "--json")
    report = json.loads(out)
    assert code == 0 and report["asked"] == 2 and report["down"] == 1 and report["png"] is None
    assert [c["count"] for c in report["clusters"]] == [2]

    code, out, _ = await _in_thread(guru, "insights", "--guild", "123", "--json")
    assert code == 0 and json.loads(out)["asked"] == 0

    code, _, err = await _in_thread(guru, "insights", "--guild", g, "--days", "0")
    assert code == 2 and err.strip() == "guru: The period must be 1 to 365 days, not 0."
    code, _, err = await _in_thread(guru, "insights", "--guild", g, "--png", str(tmp_path))
    assert code == 2 and "is a directory" in err
    with pytest.raises(SystemExit):
        main(["insights", "--guild", "abc"])
    assert "'abc' is not a guild id" in capsys.readouterr().err


async def _in_thread(guru: Callable[..., tuple[int, str, str]], *args: str):
    """main() runs its own event loop (asyncio.run): not inside the test's loop."""
    return await asyncio.to_thread(guru, *args)
