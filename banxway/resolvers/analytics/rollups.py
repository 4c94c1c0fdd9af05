"""Per-day rollups (`analytics_daily`): the dashboard's aggregates of one local day, by dimension, computed by the
very code of the on-the-fly figures (`figures.facts_aggregate`) and stored whole (counts, and every duration as a
sorted array), so that the dashboard reads a rolled-up day instead of its facts and gets the same numbers.

The `rollup_analytics` actor (scheduled hourly: cheap and idempotent) recomputes, for every organization, the last
`days` complete local days in the organization's time zone (default 2: yesterday, and the day before for late
arrivals). A rollup holds the thread's dimensions as they were when it was computed: a thread reassigned later
still counts for its former agent in the days already rolled up (recompute them with `days=`)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from banxway.db.models import AnalyticsDaily, Organization
from banxway.resolvers.analytics.figures import (
    KEY_DIMENSIONS,
    ROLLUP_COUNTS,
    ROLLUP_DIMENSION,
    Dimension,
    Period,
    facts_aggregate,
    organization_timezone,
    rollup_key,
)
from banxway.resolvers.sla import organization_calendar

if TYPE_CHECKING:
    from banxway.context import SystemContext


async def rollup_day(ctx: SystemContext, organization_id: uuid.UUID, day: date, timezone: str | None = None) -> int:
    """(Re)compute one organization's rollup rows of one local day; how many rows it wrote."""
    scoped = ctx.for_organization(organization_id)
    async with scoped.transaction() as session:
        zone = timezone or await organization_timezone(session, organization_id)
        calendar = await organization_calendar(session, organization_id)
        period = Period(day, day, zone)
        rows: list[dict] = []
        for dimension in (None, *KEY_DIMENSIONS):
            dims = (Dimension.DAY,) if dimension is None else (Dimension.DAY, dimension)
            aggs = await facts_aggregate(session, organization_id, period, dims, calendar)
            if dimension is None and not aggs:
                aggs = {(day,): None}  # the ALL row marks the day as rolled up, even when nothing happened
            for key, agg in aggs.items():
                row = {
                    "organization_id": organization_id,
                    "timezone": zone,
                    "day": day,
                    "dimension": "ALL" if dimension is None else ROLLUP_DIMENSION[dimension],
                    "key": rollup_key(dimension, key[1] if dimension is not None else None),
                    "sla": {},
                    "first_response_seconds": [],
                    "resolution_seconds": [],
                    "first_response_business_seconds": [] if calendar is not None else None,
                    "resolution_business_seconds": [] if calendar is not None else None,
                }
                for kind, name in ROLLUP_COUNTS.items():
                    row[name] = agg.counts.get(kind, 0) if agg else 0
                if agg is not None:
                    row["sla"] = {kind: n for kind, n in agg.counts.items() if kind.startswith("SLA_")}
                    row["first_response_seconds"] = sorted(agg.first_response)
                    row["resolution_seconds"] = sorted(agg.resolution)
                    if agg.first_response_business is not None:
                        row["first_response_business_seconds"] = sorted(agg.first_response_business)
                    if agg.resolution_business is not None:
                        row["resolution_business_seconds"] = sorted(agg.resolution_business)
                rows.append(row)
        await session.execute(
            delete(AnalyticsDaily).where(
                AnalyticsDaily.organization_id == organization_id,
                AnalyticsDaily.timezone == zone,
                AnalyticsDaily.day == day,
            )
        )
        await session.execute(insert(AnalyticsDaily), rows)
    return len(rows)


async def rollup_analytics(ctx: SystemContext, days: int = 2, now: datetime | None = None) -> int:
    """Recompute the last `days` complete local days of every organization; how many rows were written."""
    now = now or datetime.now(UTC)
    async with ctx.session() as session:
        organizations = list(await session.scalars(select(Organization.id).order_by(Organization.id)))
    written = 0
    for organization_id in organizations:
        async with ctx.for_organization(organization_id).session() as session:
            zone = await organization_timezone(session, organization_id)
        today = now.astimezone(ZoneInfo(zone)).date()
        for back in range(days, 0, -1):
            written += await rollup_day(ctx, organization_id, today - timedelta(days=back), zone)
    return written
