"""Analytics: the dashboard's figures from SQL over threads, messages, status-change events and SLA targets, a
drill-down to the threads behind each figure, per-agent figures, CSV exports, and per-day rollups."""

from __future__ import annotations

from banxway.resolvers.analytics.dashboard import (
    Analytics,
    Bucket,
    UserPerformance,
    analytics,
    analytics_threads,
    user_performance,
)
from banxway.resolvers.analytics.exports import export_analytics, export_rows
from banxway.resolvers.analytics.figures import Dimension, Durations, Figures, Metric, Period, SlaFigure
from banxway.resolvers.analytics.rollups import rollup_analytics, rollup_day

__all__ = [
    "Analytics",
    "Bucket",
    "Dimension",
    "Durations",
    "Figures",
    "Metric",
    "Period",
    "SlaFigure",
    "UserPerformance",
    "analytics",
    "analytics_threads",
    "export_analytics",
    "export_rows",
    "rollup_analytics",
    "rollup_day",
    "user_performance",
]
