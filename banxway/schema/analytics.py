"""Analytics in the schema: `analytics` (the dashboard), `analyticsThreads` (drill-down) and `userPerformance`.
Managers and admins (ANALYTICS_READ). No SQL here: banxway.resolvers.analytics."""

from __future__ import annotations

import enum
import uuid
from datetime import date
from typing import Any

import strawberry

from banxway.resolvers import analytics as analytics_use_cases
from banxway.resolvers.analytics import Dimension, Durations, Figures, Metric, SlaFigure
from banxway.schema.customers import Customer
from banxway.schema.enums import Channel, ThreadType
from banxway.schema.ids import filter_id
from banxway.schema.nodes import Ctx
from banxway.schema.pagination import Connection, connection
from banxway.schema.teams import Team
from banxway.schema.threads import Thread
from banxway.schema.users import User


@strawberry.enum(description="What the figures are grouped by; DAY and WEEK are local to the period's time zone.")
class AnalyticsDimension(enum.Enum):
    CHANNEL = "CHANNEL"
    AGENT = "AGENT"
    TEAM = "TEAM"
    CUSTOMER = "CUSTOMER"
    THREAD_TYPE = "THREAD_TYPE"
    DAY = "DAY"
    WEEK = "WEEK"


@strawberry.enum(description="The figure a drill-down lists the threads of.")
class AnalyticsMetric(enum.Enum):
    OPENED = "OPENED"
    RESOLVED = "RESOLVED"
    REOPENED = "REOPENED"
    FIRST_RESPONDED = "FIRST_RESPONDED"
    FIRST_RESPONSE_MET = "FIRST_RESPONSE_MET"
    FIRST_RESPONSE_BREACHED = "FIRST_RESPONSE_BREACHED"
    NEXT_RESPONSE_MET = "NEXT_RESPONSE_MET"
    NEXT_RESPONSE_BREACHED = "NEXT_RESPONSE_BREACHED"
    RESOLUTION_MET = "RESOLUTION_MET"
    RESOLUTION_BREACHED = "RESOLUTION_BREACHED"


@strawberry.input(description="Local days `from` to `to`, both included, in `timezone` (default: the organization's).")
class AnalyticsPeriodInput:
    from_: date = strawberry.field(name="from")
    to: date
    timezone: str | None = None


@strawberry.type(name="AnalyticsPeriod")
class AnalyticsPeriod:
    from_: date = strawberry.field(name="from")
    to: date
    timezone: str


def _period(period: Any) -> AnalyticsPeriod:
    return AnalyticsPeriod(from_=period.first, to=period.last, timezone=period.timezone)


@strawberry.type(description="Durations in seconds: p50 and p90 (percentile_cont) and the mean; null without any.")
class AnalyticsDurations:
    count: int
    p50: float | None
    p90: float | None
    mean: float | None


def _durations(value: Durations | None) -> AnalyticsDurations | None:
    return AnalyticsDurations(count=value.count, p50=value.p50, p90=value.p90, mean=value.mean) if value else None


@strawberry.type(description="SLA targets met in time and breached, by the day they were met or breached.")
class AnalyticsSla:
    target: str = strawberry.field(description="FIRST_RESPONSE, NEXT_RESPONSE or RESOLUTION.")
    met: int
    breached: int


@strawberry.type(description="The figures of one bucket.")
class AnalyticsFigures:
    threads_opened: int = strawberry.field(description="Threads created.")
    threads_resolved: int = strawberry.field(
        description="Resolutions: status changes into RESOLVED, CLOSED or ARCHIVED from another status."
    )
    threads_reopened: int = strawberry.field(description="Status changes out of RESOLVED, CLOSED or ARCHIVED.")
    messages_in: int
    messages_out: int = strawberry.field(description="Outbound messages (internal ones too), not scheduled ones.")
    first_response: AnalyticsDurations = strawberry.field(
        description="Thread creation to first reply, wall clock, for first replies in the bucket."
    )
    first_response_business_hours: AnalyticsDurations | None = strawberry.field(
        description="The same in the organization's business hours; null when it has no calendar."
    )
    resolution: AnalyticsDurations = strawberry.field(
        description="Thread creation to each resolution, wall clock, for resolutions in the bucket."
    )
    resolution_business_hours: AnalyticsDurations | None
    sla: list[AnalyticsSla]
    backlog: int | None = strawberry.field(
        description="Open threads at the end of the day (DAY grouping only; null otherwise)."
    )


def _figures(value: Figures) -> AnalyticsFigures:
    return AnalyticsFigures(
        threads_opened=value.threads_opened,
        threads_resolved=value.threads_resolved,
        threads_reopened=value.threads_reopened,
        messages_in=value.messages_in,
        messages_out=value.messages_out,
        first_response=_durations(value.first_response),  # type: ignore[arg-type]
        first_response_business_hours=_durations(value.first_response_business),
        resolution=_durations(value.resolution),  # type: ignore[arg-type]
        resolution_business_hours=_durations(value.resolution_business),
        sla=[_sla(s) for s in value.sla],
        backlog=value.backlog,
    )


def _sla(value: SlaFigure) -> AnalyticsSla:
    return AnalyticsSla(target=value.target, met=value.met, breached=value.breached)


@strawberry.type(description="One bucket: its keys (those grouped by; null for 'none', e.g. unassigned) and figures.")
class AnalyticsBucket:
    channel: Channel | None
    thread_type: ThreadType | None
    day: date | None
    week: date | None = strawberry.field(description="The Monday the week starts on.")
    figures: AnalyticsFigures
    previous: AnalyticsFigures = strawberry.field(
        description="The same figures for the previous period of equal length (its days shifted onto these)."
    )
    agent_id: strawberry.Private[uuid.UUID | None]
    team_id: strawberry.Private[uuid.UUID | None]
    customer_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The assignee (AGENT grouping); null: unassigned.")
    def agent(self, info: Ctx) -> User | None:
        return info.context.loaders.user_by_id.load(self.agent_id) if self.agent_id else None  # type: ignore[return-value]

    @strawberry.field
    def team(self, info: Ctx) -> Team | None:
        return info.context.loaders.team_by_id.load(self.team_id) if self.team_id else None  # type: ignore[return-value]

    @strawberry.field
    def customer(self, info: Ctx) -> Customer | None:
        return info.context.loaders.customer_by_id.load(self.customer_id) if self.customer_id else None  # type: ignore[return-value]


@strawberry.type(description="The analytics dashboard of a period.")
class Analytics:
    period: AnalyticsPeriod
    previous_period: AnalyticsPeriod
    group_by: list[AnalyticsDimension]
    business_hours: bool = strawberry.field(description="Whether the *BusinessHours figures are filled.")
    rolled_up_days: int = strawberry.field(description="Days (of both periods) read from the nightly rollups.")
    buckets: list[AnalyticsBucket]


@strawberry.input(description="A bucket's keys: the dimensions it was grouped by, `none` for those whose key is none.")
class AnalyticsBucketInput:
    channel: Channel | None = None
    agent_id: strawberry.ID | None = None
    team_id: strawberry.ID | None = None
    customer_id: strawberry.ID | None = None
    thread_type: ThreadType | None = None
    day: date | None = None
    week: date | None = strawberry.field(default=None, description="The Monday of a WEEK bucket.")
    none: list[AnalyticsDimension] | None = None


@strawberry.type(description="One user's figures for a period (wall-clock seconds).")
class UserPerformance:
    threads_handled: int = strawberry.field(description="Threads they replied to or resolved.")
    replies: int = strawberry.field(description="Outbound messages to customers (not internal).")
    threads_resolved: int
    median_first_response: float | None = strawberry.field(
        description="Of the threads whose first reply was theirs (creation to first reply)."
    )
    median_resolution: float | None = strawberry.field(description="Of their resolutions (creation to resolution).")
    csat: float | None = strawberry.field(description="Customer satisfaction: always null, there is no survey yet.")
    user_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    def user(self, info: Ctx) -> User | None:
        return info.context.loaders.user_by_id.load(self.user_id)  # type: ignore[return-value]


def _dimension(value: AnalyticsDimension) -> Dimension:
    return Dimension[value.name]


def _bucket_filter(bucket: AnalyticsBucketInput | None) -> tuple[dict[Dimension, Any], list[Dimension]]:
    if bucket is None:
        return {}, []
    keys: dict[Dimension, Any] = {}
    if bucket.channel is not None:
        keys[Dimension.CHANNEL] = bucket.channel.name
    if bucket.thread_type is not None:
        keys[Dimension.THREAD_TYPE] = bucket.thread_type.name
    for dimension, value, type_name in (
        (Dimension.AGENT, bucket.agent_id, "User"),
        (Dimension.TEAM, bucket.team_id, "Team"),
        (Dimension.CUSTOMER, bucket.customer_id, "Customer"),
    ):
        if value is not None:
            # an id of another type or of another organization matches no fact: an empty list, like a filter
            keys[dimension] = filter_id(value, type_name) or uuid.UUID(int=0)
    if bucket.day is not None:
        keys[Dimension.DAY] = bucket.day
    if bucket.week is not None:
        keys[Dimension.WEEK] = bucket.week
    return keys, [_dimension(d) for d in bucket.none or []]


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(
        description="Threads, messages, response and resolution times, SLA compliance and the backlog of a period, "
        "by bucket, each with the previous period's figure (ANALYTICS_READ: managers and admins)."
    )
    async def analytics(
        self, info: Ctx, period: AnalyticsPeriodInput, group_by: list[AnalyticsDimension] | None = None
    ) -> Analytics:
        result = await analytics_use_cases.analytics(
            info.context, period.from_, period.to, period.timezone, [_dimension(d) for d in group_by or []]
        )
        buckets = []
        for bucket in result.buckets:
            key = bucket.key
            channel = key.get(Dimension.CHANNEL)
            thread_type = key.get(Dimension.THREAD_TYPE)
            buckets.append(
                AnalyticsBucket(
                    channel=Channel[channel] if channel else None,  # type: ignore[misc]
                    thread_type=ThreadType[thread_type] if thread_type else None,  # type: ignore[misc]
                    day=key.get(Dimension.DAY),
                    week=key.get(Dimension.WEEK),
                    figures=_figures(bucket.figures),
                    previous=_figures(bucket.previous),
                    agent_id=key.get(Dimension.AGENT),
                    team_id=key.get(Dimension.TEAM),
                    customer_id=key.get(Dimension.CUSTOMER),
                )
            )
        return Analytics(
            period=_period(result.period),
            previous_period=_period(result.previous_period),
            group_by=[AnalyticsDimension[d.name] for d in result.group_by],
            business_hours=result.business_hours,
            rolled_up_days=result.rolled_up_days,
            buckets=buckets,
        )

    @strawberry.field(
        description="The threads behind one figure of one bucket (a thread counted twice in it is listed once)."
    )
    async def analytics_threads(
        self,
        info: Ctx,
        period: AnalyticsPeriodInput,
        metric: AnalyticsMetric,
        bucket: AnalyticsBucketInput | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Thread]:
        keys, none_of = _bucket_filter(bucket)
        page = await analytics_use_cases.analytics_threads(
            info.context,
            period.from_,
            period.to,
            period.timezone,
            Metric[metric.name],
            keys,
            none_of,
            first=first,
            after=after,
        )
        return connection(page)  # type: ignore[return-value]

    @strawberry.field(description="Per user with activity in the period (ANALYTICS_READ).")
    async def user_performance(self, info: Ctx, period: AnalyticsPeriodInput) -> list[UserPerformance]:
        _, rows = await analytics_use_cases.user_performance(info.context, period.from_, period.to, period.timezone)
        return [
            UserPerformance(
                threads_handled=row.threads_handled,
                replies=row.replies,
                threads_resolved=row.threads_resolved,
                median_first_response=row.median_first_response,
                median_resolution=row.median_resolution,
                csat=row.csat,
                user_id=row.user_id,
            )
            for row in rows
        ]
