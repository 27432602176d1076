"""The /insights chart: questions per week (answered / refused / no usable answer) with the 👍
rate, and the largest clusters of unanswered questions. A PNG about 800 px wide (Discord's
preview), drawn with matplotlib's object API on the Agg canvas: pyplot keeps global state
that is not thread-safe, and this runs in a worker thread."""

from __future__ import annotations

import functools
import io

from core.insights.report import Insights

__all__ = ["insights_png", "TOP_CLUSTERS"]

TOP_CLUSTERS = 8
LABEL_CHARS = 60


@functools.lru_cache(maxsize=1)
def _drawable() -> frozenset[int]:
    """Code points of matplotlib's default font (DejaVu Sans has no emoji or CJK)."""
    from matplotlib.font_manager import FontProperties, findfont
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(findfont(FontProperties())).get_charmap())


def _label(text: str) -> str:
    drawable = _drawable()
    # "$" would start matplotlib's mathtext; characters the font lacks would draw as boxes
    text = "".join(ch for ch in " ".join(text.split()) if ord(ch) in drawable).replace("$", r"\$")
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1].rstrip() + "…"


def insights_png(ins: Insights) -> bytes:
    """The chart as PNG bytes; blocking (call it through asyncio.to_thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    clusters = ins.clusters[:TOP_CLUSTERS]
    rows = max(len(clusters), 1)
    fig = Figure(figsize=(8, 3.6 + 0.38 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    weeks_ax, topics_ax = fig.subplots(2, 1, height_ratios=[3.2, 0.5 + 0.38 * rows])

    x = range(len(ins.weeks))
    refused = [w.refused for w in ins.weeks]
    unusable = [w.unusable for w in ins.weeks]
    answered = [w.asked - w.refused - w.unusable for w in ins.weeks]
    weeks_ax.bar(x, answered, color="#5865F2", label="answered")
    weeks_ax.bar(x, unusable, bottom=answered, color="#FEE75C", label="no usable answer")
    tops = [a + u for a, u in zip(answered, unusable)]
    weeks_ax.bar(x, refused, bottom=tops, color="#ED4245", label="refused")
    weeks_ax.set_xticks(list(x), [f"{w.start:%b %d}" for w in ins.weeks], fontsize=8)
    weeks_ax.set_ylabel("questions per week")
    weeks_ax.set_title(f"Guru's answers, the last {ins.days} days (weeks from Monday, UTC)")
    rate_ax = weeks_ax.twinx()
    rates = [w.up_rate * 100 if w.up_rate is not None else float("nan") for w in ins.weeks]
    rate_ax.plot(x, rates, color="#57F287", marker="o", label="rated up")
    rate_ax.set_ylim(0, 105)
    rate_ax.set_ylabel("rated up (% of rated)")
    handles = weeks_ax.get_legend_handles_labels()
    more = rate_ax.get_legend_handles_labels()
    weeks_ax.legend(  # under the week labels: inside, it would hide the bars
        handles[0] + more[0],
        handles[1] + more[1],
        fontsize=8,
        ncol=4,
        frameon=False,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
    )

    if clusters:
        labels = [_label(c.representative) for c in reversed(clusters)]
        bars = topics_ax.barh(labels, [c.count for c in reversed(clusters)], color="#ED4245")
        topics_ax.bar_label(bars, padding=3, fontsize=8)
        topics_ax.set_xlabel(
            "unanswered questions (refused, no usable answer, down-rated, needs help)"
        )
        topics_ax.tick_params(axis="y", labelsize=8)
        topics_ax.set_title("What the docs are missing: the largest topics")
        topics_ax.xaxis.get_major_locator().set_params(integer=True)
    else:
        topics_ax.axis("off")
        topics_ax.text(0.5, 0.5, "No unanswered questions", ha="center", va="center")

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
