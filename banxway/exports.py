"""CSV export endpoints: `GET /exports/analytics.csv`, `/exports/threads.csv`, `/exports/messages.csv`, with
`Authorization: Bearer <access token or personal API token>` (the GraphQL viewer's checks: ANALYTICS_READ).

Query parameters: `from`, `to` (local days, both included), `timezone` (default: the organization's), and for
analytics `groupBy` (comma-separated or repeated: CHANNEL, AGENT, TEAM, CUSTOMER, THREAD_TYPE, DAY, WEEK). The
body is streamed from a server-side cursor (banxway.resolvers.analytics.exports): memory stays flat whatever the
number of rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from banxway.context import Context, authenticate
from banxway.errors import DomainError, PermissionDenied
from banxway.resolvers.analytics import Dimension, export_analytics, export_rows
from banxway.state import AppState


def _day(request: Request, name: str) -> date | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise DomainError("INVALID", f"Expected a date (YYYY-MM-DD), got {raw!r}.", name) from None


def _group_by(request: Request) -> list[Dimension]:
    names = [part.strip() for value in request.query_params.getlist("groupBy") for part in value.split(",")]
    dims = []
    for name in filter(None, names):
        if name not in Dimension.__members__:
            raise DomainError("INVALID", f"Unknown dimension {name!r}.", "groupBy")
        dims.append(Dimension[name])
    return dims


async def _export(request: Request, kind: str) -> Response:
    state: AppState = request.state.app
    viewer, error = await authenticate(state, request.headers.get("authorization"))
    if viewer is None:
        return JSONResponse({"error": error or "Authentication required"}, status_code=401)
    ctx = Context(state, viewer)
    try:
        first, last = _day(request, "from"), _day(request, "to")
        timezone = request.query_params.get("timezone") or None
        if kind == "analytics":
            chunks = await export_analytics(ctx, first, last, timezone, _group_by(request))
        else:
            chunks = await export_rows(ctx, kind, first, last, timezone)
    except PermissionDenied as exc:
        await ctx.aclose()
        return JSONResponse({"error": str(exc)}, status_code=403)
    except DomainError as exc:
        await ctx.aclose()
        return JSONResponse({"error": exc.message, "code": exc.code, "field": exc.field}, status_code=400)
    await ctx.aclose()  # the rows are read on a connection of their own

    async def body() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            yield chunk

    filename = f"{kind}-{first}-{last}.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


async def analytics_csv(request: Request) -> Response:
    return await _export(request, "analytics")


async def threads_csv(request: Request) -> Response:
    return await _export(request, "threads")


async def messages_csv(request: Request) -> Response:
    return await _export(request, "messages")


ROUTES = [
    Route("/exports/analytics.csv", analytics_csv),
    Route("/exports/threads.csv", threads_csv),
    Route("/exports/messages.csv", messages_csv),
]
