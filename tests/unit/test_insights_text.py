"""/insights' message: within Discord's 2000 characters however many topics, the askers' words
quoted harmlessly (no pings, no markdown, no masked links)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from bot.cogs.insights import _asked
from core.insights.clusters import Cluster
from core.insights.report import Insights, insights_text
from core.insights.stats import Week

NOW = datetime(2026, 12, 9, 12, tzinfo=UTC)


def _report(clusters: list[Cluster]) -> Insights:
    weeks = [Week(date(2026, 11, 30)), Week(date(2026, 12, 7), 9, 3, 1, 4, 1, 2)]
    return Insights(1, 30, NOW, weeks, clusters, sum(c.count for c in clusters))


def test_a_long_report_fits_one_discord_message():
    clusters = [
        Cluster(50 - i, f"question number {i} " + "word " * 60, ("x " * 80,) * 3, {"refused": 1})
        for i in range(40)
    ]
    text = insights_text(_report(clusters), escape=_asked)
    assert len(text) <= 2000 and "question number 0" in text
    assert text.rstrip().splitlines()[-1].startswith("`Dec 07` 9 asked, 33% refused, 👍 80% of 5")
    assert "more topics (`guru insights --json` lists all)" in text
    assert "Nov 30" not in text  # a week without questions is only in the chart


def test_askers_words_cannot_ping_or_format():
    asked = "@everyone **urgent** <@123> see [login](https://evil.example)"
    text = insights_text(_report([Cluster(2, asked, (), {"down": 2})]), escape=_asked)
    assert "@everyone" not in text and "<@123>" not in text
    # a masked link needs its "[" unescaped to render
    assert "\\*\\*urgent\\*\\*" in text and "\\[login](https://evil.example)" in text
    assert "— **2×** (👎 2)" in text
