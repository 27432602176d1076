"""/insights and `guru insights`: what a guild's docs are missing.

Over a period, one guild's /ask questions per week (how many, the refusal rate, the 👍 rate),
and the questions the docs did not answer (refused, declined, no usable answer, 👎, "Still need
help?") clustered by meaning into a to-do list for the docs writers; as text and a PNG chart.
stats.py holds the SQL, clusters.py the grouping, report.py the report, chart.py the PNG.
"""

from core.insights.chart import insights_png
from core.insights.clusters import Cluster, group_by_meaning
from core.insights.report import (
    DEFAULT_DAYS,
    MAX_DAYS,
    Insights,
    check_days,
    gather_insights,
    insights_text,
)
from core.insights.stats import Unanswered, Week

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "Cluster",
    "Insights",
    "Unanswered",
    "Week",
    "check_days",
    "gather_insights",
    "group_by_meaning",
    "insights_png",
    "insights_text",
]
