"""The analytics use-cases: the dashboard (`analytics`), its drill-down (`analytics_threads`) and
`user_performance`. Reads only; ANALYTICS_READ (managers and admins): analytics of the whole organization."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text

from banxway.auth import Permission
from banxway.calendar import BusinessCalendar
from banxway.db.models import Thread
from banxway.errors import DomainError
from banxway.resolvers.analytics.figures import (
    Agg,
    Dimension,
    Figures,
    Key,
    Metric,
    Period,
    backlog,
    check_group_by,
    facts_aggregate,
    facts_subquery,
    figures,
    merge,
    organization_timezone,
    period_of,
    rolled_up_days,
    rollups_aggregate,
    runs,
    usable_with_rollups,
)
from banxway.resolvers.pagination import Page, paginate
from banxway.resolvers.sla import organization_calendar

if TYPE_CHECKING:
    from banxway.context import Context


@dataclass(frozen=True)
class Bucket:
    key: dict[Dimension, Any]
    figures: Figures
    previous: Figures


@dataclass(frozen=True)
class Analytics:
    period: Period
    previous_period: Period
    group_by: tuple[Dimension, ...]
    buckets: list[Bucket]
    business_hours: bool  # the organization has a calendar: the *_business figures are filled
    rolled_up_days: int  # how many days of both periods were read from rollups


async def period_for(ctx: Context, first: date | None, last: date | None, timezone: str | None) -> Period:
    viewer = ctx.viewer
    default = await organization_timezone(ctx.db, viewer.organization_id)
    return period_of(first, last, timezone, default)


async def aggregate(
    session: Any,
    organization_id: uuid.UUID,
    period: Period,
    dims: Sequence[Dimension],
    calendar: BusinessCalendar | None,
    *,
    shift: int = 0,
    use_rollups: bool = True,
) -> tuple[dict[Key, Agg], int]:
    """The period's aggregates by bucket: rolled-up whole days from `analytics_daily`, the other days on the fly;
    and how many days came from rollups."""
    days: set[date] = set()
    if use_rollups and usable_with_rollups(dims):
        days = await rolled_up_days(session, organization_id, period)
    result: dict[Key, Agg] = {}
    if days:
        result = await rollups_aggregate(session, organization_id, period, days, dims, shift=shift)
    every_day = {period.first + timedelta(days=i) for i in range(period.days)}
    for first, last in runs(every_day - days):
        part = await facts_aggregate(
            session, organization_id, Period(first, last, period.timezone), dims, calendar, shift=shift
        )
        merge(result, part)
    return result, len(days)


def _sort_key(key: Key) -> tuple:
    return tuple((value is None, str(value) if value is not None else "") for value in key)


async def analytics(
    ctx: Context,
    first: date | None,
    last: date | None,
    timezone: str | None,
    group_by: Sequence[Dimension],
    *,
    use_rollups: bool = True,
) -> Analytics:
    """Every figure of the period by bucket of `group_by`, each with the same figure for the previous period of
    equal length (its days shifted onto the days they compare with)."""
    viewer = ctx.require(Permission.ANALYTICS_READ)
    period = await period_for(ctx, first, last, timezone)
    dims = check_group_by(group_by)
    organization_id = viewer.organization_id
    session = ctx.db
    calendar = await organization_calendar(session, organization_id)  # type: ignore[arg-type]
    previous = period.previous()
    current, from_rollups = await aggregate(session, organization_id, period, dims, calendar, use_rollups=use_rollups)
    before, from_rollups_before = await aggregate(
        session, organization_id, previous, dims, calendar, shift=period.days, use_rollups=use_rollups
    )
    backlog_now: dict[Key, int] = {}
    backlog_before: dict[Key, int] = {}
    if Dimension.DAY in dims:
        backlog_now = await backlog(session, organization_id, period, dims, current, 0)
        backlog_before = await backlog(session, organization_id, previous, dims, before, period.days)
    keys = set(current) | set(before) | set(backlog_now)
    if not dims:
        keys = {()}
    in_period = _time_filter(period, dims)
    buckets = [
        Bucket(
            key=dict(zip(dims, key, strict=True)),
            figures=figures(current.get(key), calendar, backlog_now.get(key) if backlog_now else None),
            previous=figures(before.get(key), calendar, backlog_before.get(key) if backlog_before else None),
        )
        for key in sorted(keys, key=_sort_key)
        if in_period(key)
    ]
    return Analytics(period, previous, dims, buckets, calendar is not None, from_rollups + from_rollups_before)


def _time_filter(period: Period, dims: Sequence[Dimension]) -> Any:
    """Previous-period days shifted past the period's ends (a week bucket's edges) are left out."""
    if Dimension.DAY in dims:
        index = dims.index(Dimension.DAY)
        return lambda key: period.first <= key[index] <= period.last
    if Dimension.WEEK in dims:
        index = dims.index(Dimension.WEEK)
        first_week = period.first - timedelta(days=period.first.weekday())
        return lambda key: first_week <= key[index] <= period.last
    return lambda key: True


# -- drill-down ---------------------------------------------------------------------------------------------------


async def analytics_threads(
    ctx: Context,
    first_day: date | None,
    last_day: date | None,
    timezone: str | None,
    metric: Metric,
    bucket: dict[Dimension, Any],
    none_of: Sequence[Dimension] = (),
    *,
    first: int | None = None,
    after: str | None = None,
) -> Page[Thread]:
    """The threads behind one figure of one bucket: those with a fact of `metric` in the period whose keys are
    `bucket` (`none_of`: dimensions whose key is none, e.g. unassigned). A thread with two facts of the metric in
    the bucket (resolved twice) is listed once."""
    viewer = ctx.require(Permission.ANALYTICS_READ)
    period = await period_for(ctx, first_day, last_day, timezone)
    for dimension in bucket:
        if dimension in none_of:
            raise DomainError("INVALID", f"{dimension.name} is both given and none.", "bucket")
    start, end = period.bounds()
    params = {"org": viewer.organization_id, "start": start, "end": end, "tz": period.timezone, "shift": 0}
    params.update({"kind": metric.value, **{f"v{i}": value for i, value in enumerate(bucket.values())}})
    facts = facts_subquery(bucket, none_of, params)
    ids = facts.subquery("facts")
    query = select(Thread).where(Thread.id.in_(select(ids.c.thread_id)))
    return await paginate(ctx.db, query, [Thread.created_at, Thread.id], first=first, after=after)


# -- per agent ----------------------------------------------------------------------------------------------------

_USER_PERFORMANCE = """
WITH replies AS (
  SELECT m.author_id AS user_id, m.thread_id FROM messages m
  WHERE m.organization_id = :org AND m.created_at >= :start AND m.created_at < :end
    AND m.direction = 'OUTBOUND' AND m.channel <> 'INTERNAL' AND m.author_id IS NOT NULL
    AND m.status NOT IN ('SCHEDULED', 'CANCELLED')
), resolutions AS (
  SELECT e.actor_id AS user_id, e.thread_id, extract(epoch FROM e.created_at - t.created_at)::float8 AS seconds
  FROM events e JOIN threads t ON t.id = e.thread_id
  WHERE e.organization_id = :org AND e.created_at >= :start AND e.created_at < :end AND e.actor_id IS NOT NULL
    AND e.type IN ('THREAD_UPDATED', 'THREAD_ARCHIVED') AND (e.payload ->> 'previous_status') IS NOT NULL
    AND (e.payload ->> 'previous_status') NOT IN ('RESOLVED', 'CLOSED', 'ARCHIVED')
    AND (CASE WHEN e.type = 'THREAD_ARCHIVED' THEN 'ARCHIVED' ELSE e.payload ->> 'status' END)
        IN ('RESOLVED', 'CLOSED', 'ARCHIVED')
), first_responses AS (
  SELECT DISTINCT ON (t.id) m.author_id AS user_id,
         extract(epoch FROM t.first_response_at - t.created_at)::float8 AS seconds
  FROM threads t JOIN messages m ON m.thread_id = t.id
  WHERE t.organization_id = :org AND t.first_response_at >= :start AND t.first_response_at < :end
    AND m.direction = 'OUTBOUND' AND m.channel <> 'INTERNAL' AND m.status NOT IN ('SCHEDULED', 'CANCELLED')
  ORDER BY t.id, m.created_at, m.id
)
SELECT u.id, u.name, u.email,
  (SELECT count(DISTINCT x.thread_id) FROM (
     SELECT thread_id FROM replies r WHERE r.user_id = u.id
     UNION SELECT thread_id FROM resolutions s WHERE s.user_id = u.id) x) AS handled,
  (SELECT count(*) FROM replies r WHERE r.user_id = u.id) AS replies,
  (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY f.seconds) FROM first_responses f WHERE f.user_id = u.id),
  (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s.seconds) FROM resolutions s WHERE s.user_id = u.id),
  (SELECT count(*) FROM resolutions s WHERE s.user_id = u.id) AS resolved
FROM users u
WHERE u.organization_id = :org
ORDER BY u.name, u.id
"""


@dataclass(frozen=True)
class UserPerformance:
    user_id: uuid.UUID
    threads_handled: int
    replies: int
    threads_resolved: int
    median_first_response: float | None
    median_resolution: float | None
    csat: float | None = None  # no CSAT survey exists yet


async def user_performance(
    ctx: Context, first: date | None, last: date | None, timezone: str | None
) -> tuple[Period, list[UserPerformance]]:
    """Per user with any activity in the period: threads handled (replied to or resolved by them), replies sent
    (outbound, not internal), threads resolved, median first response (of the threads whose first reply was
    theirs) and median resolution time (of their resolutions), in wall-clock seconds. CSAT: null, no survey yet."""
    viewer = ctx.require(Permission.ANALYTICS_READ)
    period = await period_for(ctx, first, last, timezone)
    start, end = period.bounds()
    rows = await ctx.db.execute(
        text(_USER_PERFORMANCE), params={"org": viewer.organization_id, "start": start, "end": end}
    )
    result = []
    for user_id, _name, _email, handled, replies, median_first, median_resolution, resolved in rows.all():
        if not (handled or replies or resolved or median_first is not None):
            continue
        result.append(
            UserPerformance(
                user_id=user_id,
                threads_handled=int(handled),
                replies=int(replies),
                threads_resolved=int(resolved),
                median_first_response=round(median_first, 3) if median_first is not None else None,
                median_resolution=round(median_resolution, 3) if median_resolution is not None else None,
            )
        )
    return period, result
