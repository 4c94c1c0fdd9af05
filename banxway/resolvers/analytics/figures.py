"""The analytics figures: facts read with SQL from threads, messages, status-change events and SLA targets,
bucketed by local day in a time zone and by the dimensions asked for.

A *fact* is one row of the `_FACTS` query: a thread opened (its creation), a resolution or a reopening (a status
change event: into RESOLVED, CLOSED or ARCHIVED from another status, or out of them), a message in or out (not a
scheduled or cancelled one), a first response (`threads.first_response_at`), an SLA target met (never breached) or
breached. Each fact carries the thread's dimensions as they are now (channel: the message's for messages, the
thread's primary channel otherwise; agent: the assignee; team; customer; type) and its local day.

Counts are SQL aggregates over the facts; first-response and resolution times are kept as exact values per bucket
(wall clock, and business time in the organization's calendar when it has one) and summed up as p50 / p90
(percentile_cont's linear interpolation) and mean, so that per-day rollups (`rollups.py`, whole arrays of values)
give the very same numbers as the on-the-fly computation.
"""

from __future__ import annotations

import enum
import math
import re
import uuid
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import column, select, text
from sqlalchemy.dialects.postgresql import UUID

from banxway.calendar import BusinessCalendar
from banxway.db.models import AnalyticsDaily, Organization
from banxway.errors import DomainError

MAX_DAYS = 731  # two years in one question
DONE = ("RESOLVED", "CLOSED", "ARCHIVED")
SLA_TARGETS = ("FIRST_RESPONSE", "NEXT_RESPONSE", "RESOLUTION")


class Dimension(enum.Enum):
    CHANNEL = "channel"
    AGENT = "agent"
    TEAM = "team"
    CUSTOMER = "customer"
    THREAD_TYPE = "thread_type"
    DAY = "day"
    WEEK = "week"


TIME_DIMENSIONS = (Dimension.DAY, Dimension.WEEK)
KEY_DIMENSIONS = tuple(d for d in Dimension if d not in TIME_DIMENSIONS)
ID_DIMENSIONS = (Dimension.AGENT, Dimension.TEAM, Dimension.CUSTOMER)


class Metric(enum.Enum):
    """What a drill-down lists: the facts behind one figure (their threads)."""

    OPENED = "OPENED"
    RESOLVED = "RESOLVED"
    REOPENED = "REOPENED"
    FIRST_RESPONDED = "FIRST_RESPONSE"
    FIRST_RESPONSE_MET = "SLA_FIRST_RESPONSE_MET"
    FIRST_RESPONSE_BREACHED = "SLA_FIRST_RESPONSE_BREACHED"
    NEXT_RESPONSE_MET = "SLA_NEXT_RESPONSE_MET"
    NEXT_RESPONSE_BREACHED = "SLA_NEXT_RESPONSE_BREACHED"
    RESOLUTION_MET = "SLA_RESOLUTION_MET"
    RESOLUTION_BREACHED = "SLA_RESOLUTION_BREACHED"


# -- the period ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Local days `first`..`last` (both included) in `timezone`."""

    first: date
    last: date
    timezone: str

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> Period:
        """The period of equal length just before."""
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1), self.timezone)

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) as instants: local midnight of the first day, and of the day after the last."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        start = datetime.combine(self.first, time(), zone)
        end = datetime.combine(self.last + timedelta(days=1), time(), zone)
        return start, end


async def organization_timezone(session: Any, organization_id: uuid.UUID) -> str:
    return await session.scalar(select(Organization.timezone).where(Organization.id == organization_id)) or "UTC"


def period_of(first: date | None, last: date | None, timezone: str | None, default_timezone: str) -> Period:
    """A checked period (DomainError naming `period.from`, `period.to` or `period.timezone`)."""
    if first is None:
        raise DomainError("INVALID", "Required.", "period.from")
    if last is None:
        raise DomainError("INVALID", "Required.", "period.to")
    if last < first:
        raise DomainError("INVALID", f"The period ends ({last}) before it starts ({first}).", "period.to")
    if (last - first).days + 1 > MAX_DAYS:
        raise DomainError("INVALID", f"A period is at most {MAX_DAYS} days.", "period.to")
    zone = timezone or default_timezone
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise DomainError("INVALID", f"Unknown time zone {zone!r}.", "period.timezone") from None
    return Period(first, last, zone)


def check_group_by(group_by: Sequence[Dimension]) -> tuple[Dimension, ...]:
    dims = tuple(dict.fromkeys(group_by))
    if Dimension.DAY in dims and Dimension.WEEK in dims:
        raise DomainError("INVALID", "Group by DAY or by WEEK, not both.", "groupBy")
    return tuple(sorted(dims, key=list(Dimension).index))


# -- the facts ----------------------------------------------------------------------------------------------------

_DONE_SQL = "('RESOLVED', 'CLOSED', 'ARCHIVED')"
_THREAD_DIMS = "t.assignee_id AS agent, t.team_id AS team, t.customer_id AS customer, t.type::text AS thread_type"
_NEW_STATUS = "CASE WHEN e.type = 'THREAD_ARCHIVED' THEN 'ARCHIVED' ELSE e.payload ->> 'status' END"
_PREVIOUS = "(e.payload ->> 'previous_status')"

# :org, :start, :end (instants); every part reads an index on (organization_id, time).
FACTS = f"""
SELECT 'OPENED' AS kind, t.id AS thread_id, t.created_at AS at, NULL::timestamptz AS since,
       t.primary_channel::text AS channel, {_THREAD_DIMS}
FROM threads t
WHERE t.organization_id = :org AND t.created_at >= :start AND t.created_at < :end
UNION ALL
SELECT CASE WHEN {_PREVIOUS} IN {_DONE_SQL} THEN 'REOPENED' ELSE 'RESOLVED' END, t.id, e.created_at, t.created_at,
       t.primary_channel::text, {_THREAD_DIMS}
FROM events e JOIN threads t ON t.id = e.thread_id
WHERE e.organization_id = :org AND e.created_at >= :start AND e.created_at < :end
  AND e.type IN ('THREAD_UPDATED', 'THREAD_ARCHIVED') AND {_PREVIOUS} IS NOT NULL
  AND ({_PREVIOUS} IN {_DONE_SQL}) <> ({_NEW_STATUS} IN {_DONE_SQL})
UNION ALL
SELECT CASE WHEN m.direction = 'INBOUND' THEN 'MESSAGE_IN' ELSE 'MESSAGE_OUT' END, t.id, m.created_at, NULL,
       m.channel::text, {_THREAD_DIMS}
FROM messages m JOIN threads t ON t.id = m.thread_id
WHERE m.organization_id = :org AND m.created_at >= :start AND m.created_at < :end
  AND m.status NOT IN ('SCHEDULED', 'CANCELLED')
UNION ALL
SELECT 'FIRST_RESPONSE', t.id, t.first_response_at, t.created_at, t.primary_channel::text, {_THREAD_DIMS}
FROM threads t
WHERE t.organization_id = :org AND t.first_response_at >= :start AND t.first_response_at < :end
UNION ALL
SELECT 'SLA_' || s.kind::text || CASE WHEN s.breached_at IS NOT NULL THEN '_BREACHED' ELSE '_MET' END, t.id,
       coalesce(s.breached_at, s.met_at), NULL, t.primary_channel::text, {_THREAD_DIMS}
FROM sla_targets s JOIN threads t ON t.id = s.thread_id
WHERE s.organization_id = :org AND s.started_at < :end
  AND coalesce(s.breached_at, s.met_at) >= :start AND coalesce(s.breached_at, s.met_at) < :end
"""

_KEY_SQL = {
    Dimension.CHANNEL: "channel",
    Dimension.AGENT: "agent",
    Dimension.TEAM: "team",
    Dimension.CUSTOMER: "customer",
    Dimension.THREAD_TYPE: "thread_type",
    Dimension.DAY: "((at AT TIME ZONE CAST(:tz AS text))::date + CAST(:shift AS integer))",
    Dimension.WEEK: "(date_trunc('week', (at AT TIME ZONE CAST(:tz AS text))::date + CAST(:shift AS integer)))::date",
}

# A bucket's key: one value per dimension grouped by (None: the thread has none: unassigned, no team, ...).
Key = tuple[Any, ...]


@dataclass
class Agg:
    """What a bucket adds up: counts by fact kind, and the durations (seconds) behind its times."""

    counts: dict[str, int] = field(default_factory=dict)
    first_response: list[float] = field(default_factory=list)
    first_response_business: list[float] | None = None
    resolution: list[float] = field(default_factory=list)
    resolution_business: list[float] | None = None

    def add(self, other: Agg) -> None:
        for kind, count in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + count
        self.first_response += other.first_response
        self.resolution += other.resolution
        if other.first_response_business is not None:
            self.first_response_business = (self.first_response_business or []) + other.first_response_business
        if other.resolution_business is not None:
            self.resolution_business = (self.resolution_business or []) + other.resolution_business


def _normalise(dimension: Dimension, value: Any) -> Any:
    if value is None:
        return None
    if dimension in ID_DIMENSIONS and not isinstance(value, uuid.UUID):
        return uuid.UUID(str(value))
    return value


async def facts_aggregate(
    session: Any,
    organization_id: uuid.UUID,
    period: Period,
    dims: Sequence[Dimension],
    calendar: BusinessCalendar | None,
    *,
    shift: int = 0,
) -> dict[Key, Agg]:
    """The facts of `period` on the fly, by bucket of `dims`; `shift` days are added to DAY/WEEK keys (the
    previous period's days land on the days they compare with)."""
    start, end = period.bounds()
    keys = [f"{_KEY_SQL[d]} AS k{i}" for i, d in enumerate(dims)]
    groups = [f"k{i}" for i in range(len(dims))]
    params = {"org": organization_id, "start": start, "end": end, "tz": period.timezone, "shift": shift}
    counts_sql = (
        f"SELECT {', '.join([*keys, 'kind', 'count(*) AS n'])} FROM ({FACTS}) f GROUP BY {', '.join([*groups, 'kind'])}"
    )
    durations_sql = (
        f"SELECT {', '.join([*keys, 'kind', 'since', 'at'])} FROM ({FACTS}) f "
        "WHERE kind IN ('FIRST_RESPONSE', 'RESOLVED') ORDER BY at, thread_id"
    )
    out: dict[Key, Agg] = {}

    def bucket(row: Sequence[Any]) -> Agg:
        key = tuple(_normalise(d, row[i]) for i, d in enumerate(dims))
        if key not in out:
            out[key] = new_agg(calendar)
        return out[key]

    for row in (await session.execute(text(counts_sql), params=params)).all():
        bucket(row).counts[row[len(dims)]] = int(row[len(dims) + 1])
    for row in (await session.execute(text(durations_sql), params=params)).all():
        agg = bucket(row)
        kind, since, at = row[len(dims) :]
        wall = (at - since).total_seconds()
        business = calendar.business_time_between(since, at).total_seconds() if calendar is not None else None
        if kind == "FIRST_RESPONSE":
            agg.first_response.append(wall)
            if agg.first_response_business is not None and business is not None:
                agg.first_response_business.append(business)
        else:
            agg.resolution.append(wall)
            if agg.resolution_business is not None and business is not None:
                agg.resolution_business.append(business)
    return out


def new_agg(calendar: BusinessCalendar | None) -> Agg:
    return Agg(
        first_response_business=[] if calendar is not None else None,
        resolution_business=[] if calendar is not None else None,
    )


# -- rollups as aggregates -----------------------------------------------------------------------------------------

ROLLUP_DIMENSION = {
    Dimension.CHANNEL: "CHANNEL",
    Dimension.AGENT: "AGENT",
    Dimension.TEAM: "TEAM",
    Dimension.CUSTOMER: "CUSTOMER",
    Dimension.THREAD_TYPE: "THREAD_TYPE",
}
ROLLUP_COUNTS = {
    "OPENED": "threads_opened",
    "RESOLVED": "threads_resolved",
    "REOPENED": "threads_reopened",
    "MESSAGE_IN": "messages_in",
    "MESSAGE_OUT": "messages_out",
}


def rollup_key(dimension: Dimension | None, value: Any) -> str:
    if dimension is None or value is None:
        return ""
    return str(value)


def _key_value(dimension: Dimension, key: str) -> Any:
    if key == "":
        return None
    return uuid.UUID(key) if dimension in ID_DIMENSIONS else key


def agg_of_rollup(row: AnalyticsDaily) -> Agg:
    counts = {kind: getattr(row, name) for kind, name in ROLLUP_COUNTS.items() if getattr(row, name)}
    counts.update({kind: n for kind, n in (row.sla or {}).items() if n})
    return Agg(
        counts=counts,
        first_response=list(row.first_response_seconds or []),
        first_response_business=list(row.first_response_business_seconds)
        if row.first_response_business_seconds is not None
        else None,
        resolution=list(row.resolution_seconds or []),
        resolution_business=list(row.resolution_business_seconds)
        if row.resolution_business_seconds is not None
        else None,
    )


def usable_with_rollups(dims: Sequence[Dimension]) -> bool:
    """Rollups hold one dimension at a time (and the day): a grouping by two key dimensions is computed on the fly."""
    return len([d for d in dims if d not in TIME_DIMENSIONS]) <= 1


async def rolled_up_days(session: Any, organization_id: uuid.UUID, period: Period) -> set[date]:
    rows = await session.execute(
        select(AnalyticsDaily.day).where(
            AnalyticsDaily.organization_id == organization_id,
            AnalyticsDaily.timezone == period.timezone,
            AnalyticsDaily.dimension == "ALL",
            AnalyticsDaily.day >= period.first,
            AnalyticsDaily.day <= period.last,
        )
    )
    return {row[0] for row in rows}


async def rollups_aggregate(
    session: Any,
    organization_id: uuid.UUID,
    period: Period,
    days: set[date],
    dims: Sequence[Dimension],
    *,
    shift: int = 0,
) -> dict[Key, Agg]:
    """The rolled-up `days` of `period`, by bucket of `dims` (at most one key dimension, and DAY or WEEK)."""
    key_dims = [d for d in dims if d not in TIME_DIMENSIONS]
    dimension = key_dims[0] if key_dims else None
    rows = await session.scalars(
        select(AnalyticsDaily).where(
            AnalyticsDaily.organization_id == organization_id,
            AnalyticsDaily.timezone == period.timezone,
            AnalyticsDaily.dimension == (ROLLUP_DIMENSION[dimension] if dimension else "ALL"),
            AnalyticsDaily.day.in_(sorted(days)),
        )
    )
    out: dict[Key, Agg] = {}
    for row in rows:
        day = row.day + timedelta(days=shift)
        parts = []
        for d in dims:
            if d == Dimension.DAY:
                parts.append(day)
            elif d == Dimension.WEEK:
                parts.append(day - timedelta(days=day.weekday()))
            else:
                parts.append(_key_value(d, row.key))
        key = tuple(parts)
        if key in out:
            out[key].add(agg_of_rollup(row))
        else:
            out[key] = agg_of_rollup(row)
    return out


def runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) runs."""
    result: list[tuple[date, date]] = []
    for day in sorted(days):
        if result and result[-1][1] + timedelta(days=1) == day:
            result[-1] = (result[-1][0], day)
        else:
            result.append((day, day))
    return result


def merge(into: dict[Key, Agg], other: dict[Key, Agg]) -> None:
    for key, agg in other.items():
        if key in into:
            into[key].add(agg)
        else:
            into[key] = agg


# -- the backlog --------------------------------------------------------------------------------------------------

_BACKLOG_BEFORE = f"""
SELECT {{keys}}, sum(delta) FROM (
  SELECT 1 AS delta, t.primary_channel::text AS channel, {_THREAD_DIMS}
  FROM threads t WHERE t.organization_id = :org AND t.created_at < :start
  UNION ALL
  SELECT CASE WHEN {_PREVIOUS} IN {_DONE_SQL} THEN 1 ELSE -1 END, t.primary_channel::text, {_THREAD_DIMS}
  FROM events e JOIN threads t ON t.id = e.thread_id
  WHERE e.organization_id = :org AND e.created_at < :start
    AND e.type IN ('THREAD_UPDATED', 'THREAD_ARCHIVED') AND {_PREVIOUS} IS NOT NULL
    AND ({_PREVIOUS} IN {_DONE_SQL}) <> ({_NEW_STATUS} IN {_DONE_SQL})
) b GROUP BY {{groups}}
"""


async def backlog(
    session: Any,
    organization_id: uuid.UUID,
    period: Period,
    dims: Sequence[Dimension],
    aggs: dict[Key, Agg],
    shift: int,
) -> dict[Key, int]:
    """Open threads at the end of each day (DAY grouping): those open before the period, plus each day's opened,
    less its resolved, plus its reopened. A thread counts as open from its creation (NEW) until a status change
    into RESOLVED, CLOSED or ARCHIVED, and again from a change out of them."""
    day_index = dims.index(Dimension.DAY)
    key_dims = [d for d in dims if d != Dimension.DAY]
    start, _ = period.bounds()
    if key_dims:
        keys = ", ".join(_KEY_SQL[d] for d in key_dims)
        groups = ", ".join(str(i + 1) for i in range(len(key_dims)))
        sql = _BACKLOG_BEFORE.format(keys=keys, groups=groups)
    else:
        sql = _BACKLOG_BEFORE.format(keys="NULL", groups="1")
    base: dict[Key, int] = {}
    for row in (await session.execute(text(sql), params={"org": organization_id, "start": start})).all():
        rest = tuple(_normalise(d, row[i]) for i, d in enumerate(key_dims)) if key_dims else ()
        base[rest] = int(row[-1] or 0)

    def rest_of(key: Key) -> Key:
        return key[:day_index] + key[day_index + 1 :]

    groups_seen = set(base) | {rest_of(key) for key in aggs}
    result: dict[Key, int] = {}
    for rest in groups_seen:
        running = base.get(rest, 0)
        for offset in range(period.days):
            day = period.first + timedelta(days=offset + shift)
            key = (*rest[:day_index], day, *rest[day_index:])
            agg = aggs.get(key)
            if agg is not None:
                c = agg.counts
                running += c.get("OPENED", 0) - c.get("RESOLVED", 0) + c.get("REOPENED", 0)
            result[key] = running
    return result


# -- summing up ---------------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """percentile_cont: linear interpolation between the closest ranks."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    low, high = math.floor(position), math.ceil(position)
    value = sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)
    return round(value, 3)


@dataclass(frozen=True)
class Durations:
    count: int
    p50: float | None
    p90: float | None
    mean: float | None


def durations(values: list[float] | None) -> Durations | None:
    if values is None:
        return None
    ordered = sorted(values)
    mean = round(math.fsum(ordered) / len(ordered), 3) if ordered else None
    return Durations(len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.9), mean)


@dataclass(frozen=True)
class SlaFigure:
    target: str
    met: int
    breached: int


@dataclass(frozen=True)
class Figures:
    threads_opened: int
    threads_resolved: int
    threads_reopened: int
    messages_in: int
    messages_out: int
    first_response: Durations
    first_response_business: Durations | None
    resolution: Durations
    resolution_business: Durations | None
    sla: list[SlaFigure]
    backlog: int | None


def figures(agg: Agg | None, calendar: BusinessCalendar | None, backlog_value: int | None) -> Figures:
    agg = agg or new_agg(calendar)
    c = agg.counts
    first_response, resolution = durations(agg.first_response), durations(agg.resolution)
    assert first_response is not None and resolution is not None
    return Figures(
        threads_opened=c.get("OPENED", 0),
        threads_resolved=c.get("RESOLVED", 0),
        threads_reopened=c.get("REOPENED", 0),
        messages_in=c.get("MESSAGE_IN", 0),
        messages_out=c.get("MESSAGE_OUT", 0),
        first_response=first_response,
        first_response_business=durations(agg.first_response_business) if calendar is not None else None,
        resolution=resolution,
        resolution_business=durations(agg.resolution_business) if calendar is not None else None,
        sla=[
            SlaFigure(target, c.get(f"SLA_{target}_MET", 0), c.get(f"SLA_{target}_BREACHED", 0))
            for target in SLA_TARGETS
        ],
        backlog=backlog_value,
    )


# for the drill-down: the facts' thread ids as a subquery
def facts_subquery(dims_filter: dict[Dimension, Any], none_of: Sequence[Dimension], params: dict[str, Any]) -> Any:
    """The distinct thread ids of the facts of `:kind` in the bucket (values bound as :v0, :v1, ...), with those of
    `params` that it uses bound."""
    conditions = ["kind = :kind"]
    for i, (dimension, _value) in enumerate(dims_filter.items()):
        conditions.append(f"{_KEY_SQL[dimension]} = :v{i}")
    for dimension in none_of:
        conditions.append(f"{_KEY_SQL[dimension]} IS NULL")
    sql = f"SELECT DISTINCT thread_id FROM ({FACTS}) f WHERE {' AND '.join(conditions)}"
    used = set(re.findall(r"(?<!:):(\w+)", sql))
    bound = {name: value for name, value in params.items() if name in used}
    return text(sql).bindparams(**bound).columns(column("thread_id", UUID(as_uuid=True)))
