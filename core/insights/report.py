"""`gather_insights`: one guild's questions over a period, as numbers and a docs to-do list,
and `insights_text`, the same as a short message (Discord's 2000 characters; the CLI too)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from core.db.pool import Pool
from core.errors import InvalidInput
from core.insights.clusters import Cluster, group_by_meaning
from core.insights.stats import Week, unanswered, weekly
from core.rag.embedder import Embedder

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "MAX_QUESTIONS",
    "Insights",
    "check_days",
    "gather_insights",
    "insights_text",
]

DEFAULT_DAYS, MAX_DAYS = 30, 365
# The newest unanswered questions clustered: enough for any real to-do list, and embedding
# them stays a few seconds on a CPU.
MAX_QUESTIONS = 2000
REASON_NAMES = {
    "refused": "refused",
    "declined": "declined",
    "unusable": "no usable answer",
    "down": "👎",
    "needs help": "still needed help",
}


def check_days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"The period must be 1 to {MAX_DAYS} days, not {days}.")
    return days


@dataclass(frozen=True)
class Insights:
    """A guild's /ask questions since `since`: per week, and the unanswered ones clustered."""

    guild_id: int
    days: int
    since: datetime
    weeks: list[Week]  # every week of the period, oldest first (empty weeks as zeros)
    clusters: list[Cluster]  # the docs to-do list, largest first
    unanswered: int  # questions in the clusters (the newest MAX_QUESTIONS at most)

    @property
    def total(self) -> Week:
        """The whole period as one 'week'."""
        fields = ("asked", "refused", "unusable", "up", "down", "needs_help")
        sums = {f: sum(getattr(w, f) for w in self.weeks) for f in fields}
        return Week(self.since.date(), **sums)

    @property
    def empty(self) -> bool:
        return self.total.asked == 0 and not self.clusters

    def to_dict(self) -> dict[str, object]:
        total = self.total
        return {
            "guild": self.guild_id,
            "days": self.days,
            "since": self.since.isoformat(),
            "asked": total.asked,
            "refused": total.refused,
            "refusal_rate": total.refusal_rate,
            "unusable": total.unusable,
            "up": total.up,
            "down": total.down,
            "up_rate": total.up_rate,
            "needs_help": total.needs_help,
            "weeks": [
                {
                    "week": w.start.isoformat(),
                    "asked": w.asked,
                    "refused": w.refused,
                    "refusal_rate": w.refusal_rate,
                    "unusable": w.unusable,
                    "up": w.up,
                    "down": w.down,
                    "up_rate": w.up_rate,
                    "needs_help": w.needs_help,
                }
                for w in self.weeks
            ],
            "unanswered": self.unanswered,
            "clusters": [c.to_dict() for c in self.clusters],
        }


def _all_weeks(found: list[Week], since: datetime, now: datetime) -> list[Week]:
    """Every Monday-started week from `since` to `now`, with the found counts filled in."""
    by_start = {w.start: w for w in found}
    start: date = since.date() - timedelta(days=since.weekday())
    weeks = []
    while start <= now.date():
        weeks.append(by_start.get(start, Week(start)))
        start += timedelta(days=7)
    return weeks


async def gather_insights(
    pool: Pool,
    embedder: Embedder,
    guild_id: int,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
) -> Insights:
    """The report for `guild_id` over the last `days` days (SQL per guild; the embedding and
    the clustering off the event loop)."""
    check_days(days)
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    found = await weekly(pool, guild_id, since)
    questions = await unanswered(pool, guild_id, since, MAX_QUESTIONS)
    clusters = await group_by_meaning(embedder, questions)
    return Insights(guild_id, days, since, _all_weeks(found, since, now), clusters, len(questions))


def _pct(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.0%}"


def _reasons(reasons: dict[str, int]) -> str:
    ranked = sorted(reasons.items(), key=lambda rn: (-rn[1], rn[0]))
    return ", ".join(f"{REASON_NAMES.get(r, r)} {n}" for r, n in ranked)


def _quote(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return "“" + (text if len(text) <= limit else text[: limit - 1].rstrip() + "…") + "”"


def insights_text(
    ins: Insights, limit: int = 2000, escape: Callable[[str], str] = lambda s: s
) -> str:
    """The report as markdown within `limit` characters: totals, the largest clusters first
    (as many as fit), the weeks. `escape` is applied to every asker's text."""
    if ins.empty:
        return f"No questions were asked here in the last {ins.days} days: nothing to report yet."
    t = ins.total
    head = [
        f"**What the docs are missing — the last {ins.days} days**",
        f"{t.asked} question{'s' if t.asked != 1 else ''} · {t.refused} refused"
        f" ({_pct(t.refusal_rate)}) · {t.unusable} without a usable answer"
        f" · 👍 {_pct(t.up_rate)} of {t.rated} rated · {t.down} 👎"
        f" · {t.needs_help} still needed help",
    ]
    # the latest weeks that had questions (the chart shows the empty ones too)
    weeks = ["**Per week**"] + [
        f"`{w.start:%b %d}` {w.asked} asked, {_pct(w.refusal_rate)} refused,"
        f" 👍 {_pct(w.up_rate)} of {w.rated} rated"
        for w in [w for w in ins.weeks if w.asked][-6:]
    ]
    if not ins.clusters:
        todo = ["No unanswered questions: nothing was refused, 👎-rated or left needing help."]
    else:
        todo = [f"**Docs to-do** ({ins.unanswered} unanswered questions, by topic)"]
    tail = "\n\n" + "\n".join(weeks)
    used = len("\n".join(head)) + len(tail) + len("\n\n") + len(todo[0]) + 60
    shown = 0
    for n, c in enumerate(ins.clusters, 1):
        item = (
            f"{n}. {escape(_quote(c.representative, 150))} — **{c.count}×** ({_reasons(c.reasons)})"
        )
        if c.examples:
            item += "\n   also " + ", ".join(escape(_quote(e, 70)) for e in c.examples[:2])
        if used + len(item) + 1 > limit:
            break
        todo.append(item)
        used += len(item) + 1
        shown += 1
    if shown < len(ins.clusters):
        todo.append(
            f"…and {len(ins.clusters) - shown} more topics (`guru insights --json` lists all)."
        )
    text = "\n".join(head) + "\n\n" + "\n".join(todo) + tail
    return text if len(text) <= limit else text[: limit - 1] + "…"
