"""Development tools: the outbox of the development sink (BANXWAY_DEV_SINK, `banxway.resolvers.dev_sink`) — the
`devOutbox` query and the `GET /dev/outbox` page, a plain table of what the sink delivered. Both show only the
viewer's organization and need a signed-in user; in production the query answers DEVELOPMENT_ONLY and the page
is a 404."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING

import strawberry
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from banxway.context import Context, authenticate
from banxway.errors import DomainError, PermissionDenied
from banxway.resolvers import dev_sink as use_cases
from banxway.schema.enums import Channel
from banxway.schema.errors import error_type, mutate
from banxway.schema.messages import Message, MessageStatus
from banxway.schema.nodes import Ctx

if TYPE_CHECKING:
    from banxway.state import AppState


@strawberry.type(description="A message the development sink delivered instead of a provider (development only).")
class DevOutboxItem:
    message: Message
    channel: Channel  # type: ignore[valid-type]
    status: MessageStatus  # type: ignore[valid-type]
    sender: str | None
    recipients: list[str]
    subject: str | None
    body: str
    thread_reference: str
    created_at: datetime = strawberry.field(description="When it was sent (messageSend, callStart).")
    updated_at: datetime = strawberry.field(description="When its status last changed.")

    @classmethod
    def of(cls, item: use_cases.OutboxItem) -> DevOutboxItem:
        message = item.message
        return cls(
            message=message,  # type: ignore[arg-type]
            channel=message.channel,
            status=message.status,
            sender=message.sender,
            recipients=list(message.recipients),
            subject=message.subject,
            body=message.body,
            thread_reference=item.thread_reference,
            created_at=message.created_at,
            updated_at=message.updated_at,
        )


@strawberry.type
class DevQuery:
    @strawberry.field(
        description="Development: the messages the development sink (BANXWAY_DEV_SINK) delivered for the viewer's "
        "organization, newest first (first: 1 to 100). In production: an error with code DEVELOPMENT_ONLY."
    )
    async def dev_outbox(self, info: Ctx, first: int = 50) -> list[DevOutboxItem]:
        return [DevOutboxItem.of(item) for item in await use_cases.dev_outbox(info.context, first)]


@strawberry.input
class DevInboundInput:
    channel: Channel  # type: ignore[valid-type]
    from_: str = strawberry.field(name="from", description="The customer's number, E.164 (+919820012345).")
    body: str
    profile_name: str | None = strawberry.field(default=None, description="The name WhatsApp shows for them.")


DevError, DevErrorCode = error_type("Dev", ["INVALID", "TOO_LONG"])


@strawberry.type
class DevInboundPayload:
    message: Message | None = None
    user_errors: list[DevError]  # type: ignore[valid-type]


@strawberry.type
class DevMutation:
    @strawberry.mutation(
        description="Development (with BANXWAY_DEV_SINK, as `serve --demo` runs): a customer's WhatsApp or SMS "
        "message arrives as if through a provider's webhook — the same inbound path, analysis and workflows "
        "included. In production: an error with code DEVELOPMENT_ONLY."
    )
    async def dev_inbound_message(self, info: Ctx, input: DevInboundInput) -> DevInboundPayload:
        async def call() -> dict:
            message = await use_cases.dev_inbound(
                info.context,
                channel=input.channel,
                sender=input.from_,
                body=input.body,
                profile_name=input.profile_name,
            )
            return {"message": message}

        return await mutate(DevInboundPayload, DevError, DevErrorCode, call)


# -- GET /dev/outbox ----------------------------------------------------------------------------------------------

_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse;width:100%}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}"
    "td.body{white-space:pre-wrap;max-width:40em}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; frame-ancestors 'none'",
}
_BODY_SHOWN = 2000
_REFRESH_SECONDS = 5


def _page(title: str, content: str, *, status: int = 200, refresh: bool = False) -> Response:
    meta = f'<meta http-equiv="refresh" content="{_REFRESH_SECONDS}">' if refresh else ""
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{content}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _row(item: use_cases.OutboxItem) -> str:
    message = item.message
    body = message.body if len(message.body) <= _BODY_SHOWN else message.body[:_BODY_SHOWN] + "…"
    cells = [
        _time(message.created_at),
        message.channel.name,
        message.status.name,
        message.sender or "",
        ", ".join(message.recipients),
        f"{item.thread_reference} {item.thread_subject}",
        message.subject or "",
    ]
    return (
        "<tr>"
        + "".join(f"<td>{escape(cell)}</td>" for cell in cells)
        + f'<td class="body">{escape(body)}</td><td>{escape(_time(message.updated_at))}</td></tr>'
    )


async def dev_outbox_page(request: Request) -> Response:
    """The development outbox as an HTML table, for a signed-in user of the organization: the access token as
    `Authorization: Bearer <token>` or, from a browser's address bar, `?token=<token>`; `?first=` (1 to 100,
    default 50). Refreshes itself every few seconds, so that statuses are seen moving. 404 in production."""
    state: AppState = request.state.app
    if state.settings.production:
        return PlainTextResponse("Not Found", status_code=404)
    header = request.headers.get("authorization")
    token = request.query_params.get("token")
    how = "<p>Open /dev/outbox?token=&lt;access token&gt; (authLogin's accessToken), or send Authorization: Bearer.</p>"
    if not header and not token:
        return _page("Sign in to see the development outbox", how, status=401)
    viewer, error = await authenticate(state, header or f"Bearer {token}")
    if viewer is None:
        return _page("Sign in to see the development outbox", f"<p>{escape(error or '')}</p>{how}", status=401)
    try:
        first = int(request.query_params.get("first") or 50)
    except ValueError:
        return _page("Bad request", "<p>first must be a number from 1 to 100.</p>", status=400)
    ctx = Context(state, viewer)
    try:
        items = await use_cases.dev_outbox(ctx, first)
    except PermissionDenied as exc:
        return _page("Forbidden", f"<p>{escape(str(exc))}</p>", status=403)
    except DomainError as exc:
        return _page("Bad request", f"<p>{escape(exc.message)}</p>", status=400)
    finally:
        await ctx.aclose()
    columns = ["sent (UTC)", "channel", "status", "from", "to", "thread", "subject", "body", "status since (UTC)"]
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    sink = "on" if state.settings.dev_sink_enabled else "off (BANXWAY_DEV_SINK): nothing new arrives here"
    intro = (
        f"<p>Messages of your organization that the development sink delivered instead of a provider; the sink is "
        f"{escape(sink)}. Newest first, at most {first}; this page refreshes every {_REFRESH_SECONDS} s.</p>"
    )
    rows = "".join(_row(item) for item in items) or f'<tr><td colspan="{len(columns)}">Nothing yet.</td></tr>'
    return _page("Development outbox", f"{intro}<table><tr>{head}</tr>{rows}</table>", refresh=True)
