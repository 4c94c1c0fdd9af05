"""CSV exports, streamed: a server-side cursor read in chunks of `CHUNK_ROWS` rows, each chunk written by the csv
module to a small buffer and handed on, so that memory stays flat whatever the number of rows."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from banxway.auth import Permission
from banxway.resolvers.analytics.dashboard import analytics, period_for
from banxway.resolvers.analytics.figures import Dimension, Figures

if TYPE_CHECKING:
    from banxway.context import Context

CHUNK_ROWS = 1000

THREAD_COLUMNS = (
    "id",
    "reference",
    "subject",
    "type",
    "status",
    "priority",
    "channel",
    "customer_id",
    "assignee_id",
    "team_id",
    "created_at",
    "first_response_at",
    "last_message_at",
)
_THREADS = """
SELECT t.id, t.reference, t.subject, t.type::text, t.status::text, t.priority::text, t.primary_channel::text,
       t.customer_id, t.assignee_id, t.team_id, t.created_at, t.first_response_at, t.last_message_at
FROM threads t
WHERE t.organization_id = :org AND t.created_at >= :start AND t.created_at < :end
ORDER BY t.created_at, t.id
"""
MESSAGE_COLUMNS = (
    "id",
    "thread_id",
    "thread_reference",
    "channel",
    "direction",
    "status",
    "author_id",
    "sender",
    "subject",
    "body",
    "created_at",
)
_MESSAGES = """
SELECT m.id, m.thread_id, t.reference, m.channel::text, m.direction::text, m.status::text, m.author_id, m.sender,
       m.subject, m.body, m.created_at
FROM messages m JOIN threads t ON t.id = m.thread_id
WHERE m.organization_id = :org AND m.created_at >= :start AND m.created_at < :end
ORDER BY m.created_at, m.id
"""


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _csv(rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return buffer.getvalue().encode()


async def _stream(ctx: Context, sql: str, params: dict[str, Any], header: Sequence[str]) -> AsyncIterator[bytes]:
    yield _csv([header])
    async with ctx.state.engine.connect() as connection:
        result = await connection.stream(text(sql).execution_options(yield_per=CHUNK_ROWS), params)
        async for partition in result.partitions(CHUNK_ROWS):
            yield _csv(partition)


async def export_rows(
    ctx: Context, kind: str, first: date | None, last: date | None, timezone: str | None
) -> AsyncIterator[bytes]:
    """The threads (created) or messages of the period as CSV chunks; checks are done before the first chunk
    (call it, then iterate)."""
    viewer = ctx.require(Permission.ANALYTICS_READ)
    period = await period_for(ctx, first, last, timezone)
    start, end = period.bounds()
    params = {"org": viewer.organization_id, "start": start, "end": end}
    if kind == "threads":
        return _stream(ctx, _THREADS, params, THREAD_COLUMNS)
    return _stream(ctx, _MESSAGES, params, MESSAGE_COLUMNS)


FIGURE_COLUMNS = (
    "threads_opened",
    "threads_resolved",
    "threads_reopened",
    "messages_in",
    "messages_out",
    "first_response_p50",
    "first_response_p90",
    "first_response_mean",
    "first_response_business_p50",
    "first_response_business_p90",
    "first_response_business_mean",
    "resolution_p50",
    "resolution_p90",
    "resolution_mean",
    "resolution_business_p50",
    "resolution_business_p90",
    "resolution_business_mean",
    "sla_first_response_met",
    "sla_first_response_breached",
    "sla_next_response_met",
    "sla_next_response_breached",
    "sla_resolution_met",
    "sla_resolution_breached",
    "backlog",
)


def _figure_cells(figures: Figures) -> list[Any]:
    cells: list[Any] = [
        figures.threads_opened,
        figures.threads_resolved,
        figures.threads_reopened,
        figures.messages_in,
        figures.messages_out,
    ]
    for d in (figures.first_response, figures.first_response_business, figures.resolution, figures.resolution_business):
        cells += [d.p50, d.p90, d.mean] if d is not None else [None, None, None]
    for sla in figures.sla:
        cells += [sla.met, sla.breached]
    cells.append(figures.backlog)
    return cells


async def export_analytics(
    ctx: Context, first: date | None, last: date | None, timezone: str | None, group_by: Sequence[Dimension]
) -> AsyncIterator[bytes]:
    """The dashboard as CSV: a row per bucket, its keys, its figures, then `previous_`-prefixed the same figures of
    the previous period. Its rows are few (buckets), so it is computed whole, then written in chunks."""
    result = await analytics(ctx, first, last, timezone, group_by)
    header = [d.name.lower() for d in result.group_by] + list(FIGURE_COLUMNS)
    header += [f"previous_{name}" for name in FIGURE_COLUMNS]

    async def chunks() -> AsyncIterator[bytes]:
        yield _csv([header])
        rows = [
            [_key_cell(bucket.key[d]) for d in result.group_by]
            + _figure_cells(bucket.figures)
            + _figure_cells(bucket.previous)
            for bucket in result.buckets
        ]
        for start in range(0, len(rows), CHUNK_ROWS):
            yield _csv(rows[start : start + CHUNK_ROWS])

    return chunks()


def _key_cell(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    return value
