"""The web chat widget (issue 17): widgets (ORG_MANAGE), visitor sessions, and what a visitor may do.

Widgets: a name, the origins allowed to embed it (exact `https://shop.example.com`, or `https://*.example.com` for
any subdomain of example.com, not example.com itself), a greeting, a primary colour, a business-hours message,
whether the AI agent answers first (stored for the agent), and the pre-chat fields (name, email: OFF, OPTIONAL or
REQUIRED). `widget_key` is public (it is in the page's snippet) and random. Every change is audited.

Visitors: `POST /widget/<key>/session` (`visitor_session_open`) checks the request's `Origin` against the widget's
allow-list and returns a visitor token: an HS256 JWT with its own audience and `typ` ("visitor"), scoped to
(organization, widget, visitor), BANXWAY_WEBCHAT_TOKEN_TTL long. It is never an access token (`banxway.auth`
requires `typ: access` and no audience) and an access token is never a visitor token (audience and `typ` checked
here). A visitor id alone proves nothing: a returning visitor renews by sending their old token (valid, or expired
less than `RENEW_WITHIN` ago); anything else starts a new visitor.

A visitor is a contact with a WEB_CHAT identity whose address is the visitor's public id; their first message opens
a thread through the inbound use-case every channel uses (`contact_for_address`, `new_inbound_thread`,
`message_receive`). They see only the WEB_CHAT messages of their own thread, and an agent's reply only once it is
SENT (never a queued, scheduled or failed one, never an internal note).

Agents reply with `messageSend(channel: WEB_CHAT)`: QUEUED, then the `deliver_message` consequence runs the WEB_CHAT
"sender" (`WEB_CHAT_SENDER`), which has nothing to call: the message becomes SENT, and MESSAGE_STATUS_CHANGED reaches
the visitor's `visitorEvents` subscription through the organization's event channel. The visitor's client acks
(`visitor_message_ack`): DELIVERED, and READ once displayed (statuses only move forward). Files an agent sends with a
reply reach that visitor only: `banxway.resolvers.web_chat_files`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jwt
import orjson
from sqlalchemy import func, select, tuple_

from banxway import events
from banxway.auth import Permission
from banxway.broadcast import Signal
from banxway.context import SystemContext
from banxway.db.models import ChatVisitor, ChatWidget, Message, Thread
from banxway.db.session import system_session
from banxway.enums import Channel, Direction, MessageStatus, ThreadStatus
from banxway.errors import DomainError
from banxway.integrations.email import smtp
from banxway.ratelimit import hit_many
from banxway.resolvers import validation as v
from banxway.resolvers.audit import audit_change
from banxway.resolvers.common import get_or_error
from banxway.resolvers.contact_resolver import link_address
from banxway.resolvers.inbound import contact_for_address, message_receive, new_inbound_thread
from banxway.resolvers.inbox_events import to_global_id
from banxway.resolvers.receipts import apply_status
from banxway.resolvers.sending import ChannelSender, Send, Sent
from banxway.resolvers.system_mail import NoMailAccount, send_system_mail

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context
    from banxway.state import AppState

PRE_CHAT_MODES = ("OFF", "OPTIONAL", "REQUIRED")
MAX_ORIGINS = 50
RENEW_WITHIN = timedelta(days=1)
VISIBLE_OUTBOUND = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ)
_ALGORITHM = "HS256"
_ISSUER = "banxway"
_AUDIENCE = "banxway-webchat"
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


# -- visitor tokens -------------------------------------------------------------------------------------------


class InvalidVisitorToken(Exception):
    """Missing, expired, tampered, or not a visitor token."""


@dataclass(frozen=True)
class VisitorClaims:
    visitor_id: uuid.UUID
    organization_id: uuid.UUID
    widget_id: uuid.UUID
    expires_at: datetime


def issue_visitor_token(secret: str, visitor: ChatVisitor, ttl_seconds: int) -> str:
    now = datetime.now(UTC)
    claims = {
        "iss": _ISSUER,
        "aud": _AUDIENCE,
        "typ": "visitor",
        "sub": str(visitor.id),
        "org": str(visitor.organization_id),
        "wid": str(visitor.widget_id),
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def decode_visitor_token(secret: str, token: str, *, leeway: timedelta = timedelta(0)) -> VisitorClaims:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            issuer=_ISSUER,
            audience=_AUDIENCE,
            leeway=leeway,
            options={"require": ["exp", "iat", "sub", "org", "wid", "typ", "aud"]},
        )
        if claims["typ"] != "visitor":
            raise InvalidVisitorToken("not a visitor token")
        return VisitorClaims(
            visitor_id=uuid.UUID(claims["sub"]),
            organization_id=uuid.UUID(claims["org"]),
            widget_id=uuid.UUID(claims["wid"]),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidVisitorToken("visitor token expired") from exc
    except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise InvalidVisitorToken("not a valid visitor token") from exc


def visitor_claims_of(secret: str, authorization: str | None) -> VisitorClaims | None:
    """The claims of an `Authorization: Bearer <visitor token>` value; None when it is not a valid visitor token."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return decode_visitor_token(secret, token.strip())
    except InvalidVisitorToken:
        return None


# -- origins ----------------------------------------------------------------------------------------------------


def clean_origin(value: str, field: str) -> str:
    """`scheme://host[:port]` in lower case; the host may start with `*.` (any subdomain, two labels at least)."""
    raw = (value or "").strip().lower().rstrip("/")
    parts = urlsplit(raw)
    error = DomainError(
        "INVALID",
        f"'{value}' is not an origin: give https://host[:port] (e.g. https://shop.example.com), or "
        "https://*.example.com for its subdomains; no path.",
        field,
    )
    if parts.scheme not in ("https", "http") or parts.path or parts.query or parts.fragment or "@" in raw:
        raise error
    host = parts.netloc.rsplit(":", 1)[0] if not parts.netloc.endswith("]") else parts.netloc
    port = parts.netloc[len(host) + 1 :] if len(parts.netloc) > len(host) else ""
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise error
    labels = host.split(".")
    wildcard = labels[0] == "*"
    checked = labels[1:] if wildcard else labels
    if not checked or not all(_HOST_LABEL.match(label) for label in checked):
        raise error
    if wildcard and len(checked) < 2:
        raise DomainError("INVALID", f"'{value}': a wildcard needs a domain of two labels at least.", field)
    return raw


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """Whether the browser's `Origin` is one of `allowed` (exact, or a subdomain of a `*.` entry)."""
    if not origin:
        return False
    origin = origin.strip().lower()
    for entry in allowed:
        if entry == origin:
            return True
        if "://*." in entry:
            scheme, rest = entry.split("://*.", 1)
            suffix_host, _, port = rest.partition(":")
            parts = urlsplit(origin)
            if parts.scheme != scheme or parts.path:
                continue
            host, _, origin_port = parts.netloc.partition(":")
            if origin_port == port and host.endswith("." + suffix_host) and "*" not in host:
                return True
    return False


# -- widgets (ORG_MANAGE) ---------------------------------------------------------------------------------------

_AUDITED = (
    "name",
    "allowed_origins",
    "greeting",
    "primary_color",
    "business_hours_message",
    "ai_agent_first",
    "pre_chat_name",
    "pre_chat_email",
)


def _snapshot(widget: ChatWidget) -> dict[str, Any]:
    return {name: getattr(widget, name) for name in _AUDITED}


def _validated(fields: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    if "name" in fields or creating:
        cleaned["name"] = v.text(fields.get("name"), "name", max_length=200, required=True)
    if "allowed_origins" in fields or creating:
        origins = fields.get("allowed_origins") or []
        if not origins:
            raise DomainError("INVALID", "Give at least one allowed origin.", "allowedOrigins")
        if len(origins) > MAX_ORIGINS:
            raise DomainError("INVALID", f"At most {MAX_ORIGINS} allowed origins.", "allowedOrigins")
        cleaned["allowed_origins"] = list(
            dict.fromkeys(clean_origin(origin, f"allowedOrigins.{i}") for i, origin in enumerate(origins))
        )
    for name, field in (("greeting", "greeting"), ("business_hours_message", "businessHoursMessage")):
        if name in fields:
            cleaned[name] = v.text(fields[name], field, max_length=1000)
    if "primary_color" in fields and fields["primary_color"] is not None:
        color = fields["primary_color"].strip()
        if not _COLOR.match(color):
            raise DomainError("INVALID", f"'{color}' is not a colour like #1f6feb.", "primaryColor")
        cleaned["primary_color"] = color.lower()
    if "ai_agent_first" in fields and fields["ai_agent_first"] is not None:
        cleaned["ai_agent_first"] = bool(fields["ai_agent_first"])
    for name, field in (("pre_chat_name", "preChatName"), ("pre_chat_email", "preChatEmail")):
        if name in fields and fields[name] is not None:
            if fields[name] not in PRE_CHAT_MODES:
                raise DomainError("INVALID", f"{field} must be one of {', '.join(PRE_CHAT_MODES)}.", field)
            cleaned[name] = fields[name]
    return cleaned


async def chat_widgets(ctx: Context) -> list[ChatWidget]:
    ctx.require(Permission.ORG_MANAGE)
    return list(await ctx.db.scalars(select(ChatWidget).order_by(ChatWidget.created_at, ChatWidget.id)))


async def chat_widget_create(ctx: Context, fields: dict[str, Any]) -> ChatWidget:
    viewer = ctx.require(Permission.ORG_MANAGE)
    cleaned = _validated(fields, creating=True)
    async with ctx.transaction() as session:
        widget = ChatWidget(organization_id=viewer.organization_id, widget_key="wk_" + secrets.token_urlsafe(24))
        for name, value in cleaned.items():
            setattr(widget, name, value)
        session.add(widget)
        await session.flush()
        await audit_change(
            ctx,
            session,
            action="chatWidgetCreate",
            target=to_global_id("ChatWidget", widget.id),
            after=_snapshot(widget),
        )
    return widget


async def chat_widget_update(ctx: Context, widget_id: uuid.UUID, fields: dict[str, Any]) -> ChatWidget:
    ctx.require(Permission.ORG_MANAGE)
    cleaned = _validated(fields, creating=False)
    async with ctx.transaction() as session:
        widget = await get_or_error(session, ChatWidget, widget_id, "id", lock=True, label="chat widget")
        before = _snapshot(widget)
        for name, value in cleaned.items():
            setattr(widget, name, value)
        await session.flush()
        after = _snapshot(widget)
        changed = [name for name in _AUDITED if before[name] != after[name]]
        if changed:
            await audit_change(
                ctx,
                session,
                action="chatWidgetUpdate",
                target=to_global_id("ChatWidget", widget.id),
                before={name: before[name] for name in changed},
                after={name: after[name] for name in changed},
            )
    return widget


async def chat_widget_delete(ctx: Context, widget_id: uuid.UUID) -> None:
    """Delete a widget: its snippet stops working and its visitors' tokens are refused (their threads stay)."""
    ctx.require(Permission.ORG_MANAGE)
    async with ctx.transaction() as session:
        widget = await get_or_error(session, ChatWidget, widget_id, "id", lock=True, label="chat widget")
        before = _snapshot(widget)
        await session.delete(widget)
        await audit_change(
            ctx, session, action="chatWidgetDelete", target=to_global_id("ChatWidget", widget_id), before=before
        )


# -- visitor sessions -------------------------------------------------------------------------------------------


class SessionRefused(Exception):
    """POST /widget/<key>/session refused: `status` (404 unknown widget, 403 origin, 429, 400) and why."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def widget_config(widget: ChatWidget) -> dict[str, Any]:
    """What the widget's script needs to draw itself (public)."""
    return {
        "name": widget.name,
        "greeting": widget.greeting,
        "colors": {"primary": widget.primary_color},
        "businessHoursMessage": widget.business_hours_message,
        "aiAgentFirst": widget.ai_agent_first,
        "preChatFields": {"name": widget.pre_chat_name, "email": widget.pre_chat_email},
    }


async def _limited(state: AppState, limits: dict[str, int]) -> float | None:
    limited = await hit_many(state.redis, limits, 60)
    return limited.retry_after if limited is not None else None


async def visitor_session_open(
    state: AppState,
    widget_key: str,
    origin: str | None,
    body: dict[str, Any],
    address: str | None,
    *,
    check_only: bool = False,
) -> dict[str, Any]:
    """A visitor token for the widget `widget_key`, opened from `origin` (the browser's Origin header): the
    returning visitor of `body["token"]` (their old token, renewed), else a new visitor. Raises SessionRefused."""
    async with system_session(state.sessionmaker) as session:
        widget = await session.scalar(select(ChatWidget).where(ChatWidget.widget_key == widget_key[:64]))
    if widget is None:
        raise SessionRefused(404, f"No chat widget '{widget_key[:64]}'.")
    if not origin_allowed(origin, widget.allowed_origins):
        raise SessionRefused(403, f"Origin {origin or '(none)'} may not open this chat widget.")
    if check_only:  # a CORS preflight
        return {}
    name = body.get("name") if isinstance(body.get("name"), str) else None
    email = body.get("email") if isinstance(body.get("email"), str) else None
    old = body.get("token") if isinstance(body.get("token"), str) else None
    previous: VisitorClaims | None = None
    if old:
        try:
            previous = decode_visitor_token(state.secret_key, old, leeway=RENEW_WITHIN)
        except InvalidVisitorToken:
            previous = None
        if previous is not None and previous.widget_id != widget.id:
            previous = None
    if previous is None:  # a new visitor: counted per address (renewals are not)
        ip_limit = state.settings.webchat_per_ip_per_minute
        wait = await _limited(state, {f"rl:webchat:session:ip:{address}": ip_limit}) if address else None
        if wait is not None:
            raise SessionRefused(429, f"Too many new chat sessions; try again in {wait:.0f} s.", wait)
    try:
        name = v.text(name, "name", max_length=200)
        email = v.email(email, "email")
    except DomainError as exc:
        raise SessionRefused(400, exc.message) from None
    ctx = SystemContext(state, widget.organization_id)
    async with ctx.transaction() as session:
        visitor = None
        if previous is not None:
            visitor = await session.scalar(
                select(ChatVisitor).where(ChatVisitor.id == previous.visitor_id).with_for_update()
            )
        if visitor is None:
            visitor = ChatVisitor(
                organization_id=widget.organization_id, widget_id=widget.id, public_id="v_" + secrets.token_urlsafe(18)
            )
            session.add(visitor)
        visitor.name = name or visitor.name
        visitor.email = email or visitor.email
        visitor.last_seen_at = datetime.now(UTC)
        await session.flush()
    ttl = state.settings.webchat_token_ttl_seconds
    return {
        "token": issue_visitor_token(state.secret_key, visitor, ttl),
        "visitorId": visitor.public_id,
        "expiresIn": ttl,
        "widget": widget_config(widget),
    }


async def widget_allows_origin(state: AppState, widget_key: str, origin: str | None) -> bool:
    """Whether the widget `widget_key` exists and allows pages of `origin` (the visitor's cross-origin WebSocket)."""
    async with system_session(state.sessionmaker) as session:
        allowed = await session.scalar(
            select(ChatWidget.allowed_origins).where(ChatWidget.widget_key == widget_key[:64])
        )
    return allowed is not None and origin_allowed(origin, allowed)


# -- what a visitor does ----------------------------------------------------------------------------------------


async def _visitor(session: AsyncSession, claims: VisitorClaims, *, lock: bool = False) -> ChatVisitor:
    """The token's visitor, while their widget exists; else the token is refused."""
    query = select(ChatVisitor).where(ChatVisitor.id == claims.visitor_id, ChatVisitor.widget_id == claims.widget_id)
    visitor = await session.scalar(query.with_for_update() if lock else query)
    if visitor is None:
        raise InvalidVisitorToken("this chat session no longer exists; open a new one")
    return visitor


async def visitor_message_send(state: AppState, claims: VisitorClaims, body: str, address: str | None) -> Message:
    """The visitor writes: their contact (a WEB_CHAT identity), their open thread or a new one, the message."""
    text = v.text(body, "body", max_length=v.BODY_LIMITS[Channel.WEB_CHAT], required=True)
    assert text is not None
    limits = {f"rl:webchat:visitor:{claims.visitor_id}": state.settings.webchat_messages_per_minute}
    if address:
        limits[f"rl:webchat:ip:{address}"] = state.settings.webchat_per_ip_per_minute
    wait = await _limited(state, limits)
    if wait is not None:
        raise DomainError("RATE_LIMITED", f"You are sending too fast; try again in {wait:.0f} s.", "body")
    ctx = SystemContext(state, claims.organization_id)
    async with ctx.transaction() as session:
        visitor = await _visitor(session, claims, lock=True)
        contact = await contact_for_address(
            session, claims.organization_id, Channel.WEB_CHAT, visitor.public_id, visitor.name or visitor.email
        )
        if visitor.email:  # the contact resolver: their email identity, or a merge suggestion with its owner
            await link_address(session, claims.organization_id, contact.id, Channel.EMAIL, visitor.email)
        thread = None
        if visitor.thread_id is not None:
            thread = await session.get(Thread, visitor.thread_id)
            if thread is not None and thread.status not in (ThreadStatus.NEW, ThreadStatus.OPEN, ThreadStatus.PENDING):
                thread = None
        if thread is None:
            first_line = text.splitlines()[0]
            thread = await new_inbound_thread(
                session,
                claims.organization_id,
                subject=f"Web chat: {first_line[:120]}",
                channel=Channel.WEB_CHAT,
                contact=contact,
            )
        visitor.contact_id, visitor.thread_id = contact.id, thread.id
        visitor.last_seen_at = datetime.now(UTC)
        headers: dict[str, Any] = {"provider": "web_chat"}
        if visitor.name:
            headers["profile_name"] = visitor.name
        message = await message_receive(
            session,
            claims.organization_id,
            thread_id=thread.id,
            channel=Channel.WEB_CHAT,
            body=text,
            sender=visitor.public_id,
            contact_id=contact.id,
            headers=headers,
        )
    return message


_VISIBLE_STATUSES = frozenset(status.name for status in VISIBLE_OUTBOUND)


def _visible(thread_id: uuid.UUID) -> Any:
    return (
        (Message.thread_id == thread_id)
        & (Message.channel == Channel.WEB_CHAT)
        & ((Message.direction == Direction.INBOUND) | Message.status.in_(VISIBLE_OUTBOUND))
    )


@dataclass
class VisitorPage:
    messages: list[Message]
    has_next_page: bool
    end_cursor: str | None


def _cursor(message: Message) -> str:
    return base64.urlsafe_b64encode(f"{message.created_at.isoformat()}|{message.id}".encode()).decode()


async def visitor_messages(state: AppState, claims: VisitorClaims, first: int | None, after: str | None) -> VisitorPage:
    """The visitor's conversation, oldest first: their own messages and the agents' replies that were sent."""
    limit = max(1, min(first or 50, 100))
    ctx = SystemContext(state, claims.organization_id)
    async with ctx.session() as session:
        visitor = await _visitor(session, claims)
        if visitor.thread_id is None:
            return VisitorPage([], False, None)
        query = select(Message).where(_visible(visitor.thread_id))
        if after:
            try:
                at, _, message_id = base64.urlsafe_b64decode(after.encode()).decode().partition("|")
                position = (datetime.fromisoformat(at), uuid.UUID(message_id))
            except ValueError:
                raise DomainError("INVALID", "Not a cursor of visitorMessages.", "after") from None
            query = query.where(tuple_(Message.created_at, Message.id) > position)
        rows = list(await session.scalars(query.order_by(Message.created_at, Message.id).limit(limit + 1)))
    page = rows[:limit]
    return VisitorPage(page, len(rows) > limit, _cursor(page[-1]) if page else after)


async def visitor_message_ack(
    state: AppState, claims: VisitorClaims, message_ids: list[uuid.UUID], read: bool
) -> list[Message]:
    """The visitor's client got (DELIVERED) or displayed (`read`: READ) the agents' messages `message_ids` (only
    those of their own conversation count; statuses only move forward)."""
    if len(message_ids) > 100:
        raise DomainError("INVALID", "At most 100 messages at a time.", "messageIds")
    ctx = SystemContext(state, claims.organization_id)
    async with ctx.transaction() as session:
        visitor = await _visitor(session, claims)
        if visitor.thread_id is None or not message_ids:
            return []
        messages = list(
            await session.scalars(
                select(Message)
                .where(
                    Message.id.in_(message_ids),
                    _visible(visitor.thread_id),
                    Message.direction == Direction.OUTBOUND,
                )
                .with_for_update()
            )
        )
        status = MessageStatus.READ if read else MessageStatus.DELIVERED
        for message in messages:
            apply_status(session, message, status, None)
        visitor.last_seen_at = datetime.now(UTC)
    return messages


@dataclass
class VisitorEvent:
    type: str  # MESSAGE (a new message in the conversation), STATUS (one of its statuses changed), THREAD_STATUS
    message: Message | None = None
    status: str | None = None


async def visitor_events(state: AppState, claims: VisitorClaims) -> AsyncIterator[VisitorEvent]:
    """Live: what happens in the visitor's conversation, read from the organization's event channel (after commit).
    An agent's reply arrives when it is SENT; the visitor's own messages (from another tab) when added."""
    ctx = SystemContext(state, claims.organization_id)
    async with state.broadcast.subscribe(events.channel(claims.organization_id)) as subscriber:
        async with ctx.session() as session:
            thread_id = (await _visitor(session, claims)).thread_id
        async for raw in subscriber:
            if raw is Signal.RESYNC:
                continue  # the client refetches visitorMessages when it reconnects
            envelope = orjson.loads(raw)
            kind = envelope.get("type")
            if kind not in ("MESSAGE_ADDED", "MESSAGE_STATUS_CHANGED", "THREAD_UPDATED", "THREAD_CREATED"):
                continue
            async with ctx.session() as session:
                if thread_id is None or kind == "THREAD_CREATED":
                    thread_id = (await _visitor(session, claims)).thread_id
                if thread_id is None or envelope.get("thread_id") != str(thread_id):
                    continue
                await _visitor(session, claims)  # still there: a deleted widget's visitors hear nothing more
                payload = envelope.get("payload") or {}
                if kind == "THREAD_UPDATED":
                    if "status" in (payload.get("changed") or []):
                        yield VisitorEvent("THREAD_STATUS", status=payload.get("status"))
                    continue
                if kind == "THREAD_CREATED":
                    continue
                message = await session.scalar(
                    select(Message).where(Message.id == uuid.UUID(payload["message_id"]), _visible(thread_id))
                )
            if message is None:
                continue
            if kind == "MESSAGE_ADDED" and message.direction == Direction.INBOUND:
                yield VisitorEvent("MESSAGE", message=message)
            elif kind == "MESSAGE_STATUS_CHANGED" and message.direction == Direction.OUTBOUND:
                if payload.get("status") not in _VISIBLE_STATUSES:
                    continue  # QUEUED, SENDING: the event may be read after the reply went out, and says nothing to them
                first_seen = payload.get("status") == MessageStatus.SENT.name
                yield VisitorEvent("MESSAGE" if first_seen else "STATUS", message=message, status=payload.get("status"))


# -- transcripts by email -------------------------------------------------------------------------------------------

# A reply still SENT this long after it went out was never acked by the visitor's client: they left (the script acks
# every reply it receives at once). Their transcript goes to the email they gave, once per batch of unseen replies.
OFFLINE_AFTER = timedelta(minutes=5)


def _unseen_reply(visitor_thread: Any, since: Any, before: datetime) -> Any:
    return (
        select(Message.id)
        .where(
            Message.thread_id == visitor_thread,
            Message.channel == Channel.WEB_CHAT,
            Message.direction == Direction.OUTBOUND,
            Message.status == MessageStatus.SENT,
            Message.updated_at < before,
            Message.created_at > since,
        )
        .exists()
    )


async def chat_transcripts_due(ctx: SystemContext, *, limit: int = 500) -> list[uuid.UUID]:
    """Visitors (of every organization) who gave an email and left replies unseen for OFFLINE_AFTER since their
    last transcript."""
    before = datetime.now(UTC) - OFFLINE_AFTER
    since = func.coalesce(ChatVisitor.transcript_sent_at, ChatVisitor.created_at)
    async with ctx.session() as session:
        return list(
            await session.scalars(
                select(ChatVisitor.id)
                .where(
                    ChatVisitor.email.is_not(None),
                    ChatVisitor.thread_id.is_not(None),
                    _unseen_reply(ChatVisitor.thread_id, since, before),
                )
                .limit(limit)
            )
        )


async def chat_transcript_send(ctx: SystemContext, visitor_id: uuid.UUID) -> bool:
    """Mail the visitor the replies of their conversation through the organization's first email account (the
    `send_chat_transcripts` actor); True when sent. Once per batch of unseen replies: `transcript_sent_at` moves on
    in the transaction that sends. A transient SMTP failure raises (the next run tries again)."""
    before = datetime.now(UTC) - OFFLINE_AFTER
    async with ctx.session() as session, session.begin():
        visitor = await session.scalar(
            select(ChatVisitor).where(ChatVisitor.id == visitor_id).with_for_update(skip_locked=True)
        )
        if visitor is None or visitor.email is None or visitor.thread_id is None:
            return False
        since = visitor.transcript_sent_at or visitor.created_at
        if not await session.scalar(select(_unseen_reply(visitor.thread_id, since, before))):
            return False
        widget = await session.get(ChatWidget, visitor.widget_id)
        messages = list(
            await session.scalars(
                select(Message).where(_visible(visitor.thread_id)).order_by(Message.created_at, Message.id).limit(500)
            )
        )
        # Only our side's words: the visitor's email is unverified, so their own text is never mailed from the
        # organization's mailbox (it would let anyone send any text to any address under the forwarder's name).
        lines = [f"Replies from {widget.name if widget else 'us'} in your web chat:", ""]
        for message in messages:
            if message.direction == Direction.OUTBOUND:
                lines.append(f"[{message.created_at:%Y-%m-%d %H:%M} UTC] {message.body}")
        lines += ["", "Reply on the website's chat to continue the conversation."]
        try:
            await send_system_mail(
                ctx,
                session,
                visitor.organization_id,
                to=visitor.email,
                subject=f"Your chat transcript: {widget.name if widget else 'web chat'}",
                body="\n".join(lines),
            )
        except (NoMailAccount, smtp.PermanentSendError, ValueError):
            visitor.transcript_sent_at = datetime.now(UTC)  # not sendable: not tried again for these replies
            return False
        visitor.transcript_sent_at = datetime.now(UTC)
    return True


# -- the embeddable script -----------------------------------------------------------------------------------------

SCRIPT_VERSION = 2
SCRIPT_PATH = Path(__file__).resolve().parent.parent / "static" / "widget.js"
# Earlier versions, still served for `/widget.js?v=<n>`: a page embeds the script with its version's SRI hash, and a
# browser refuses a script whose hash changed, so pages not yet given the new snippet keep the old script.
OLDER_SCRIPTS = {1: SCRIPT_PATH.with_name("widget.v1.js")}


@functools.cache
def script(version: int = SCRIPT_VERSION) -> tuple[bytes, str]:
    """(banxway/static/widget.js, or an older version's file, and its SRI hash `sha384-<base64>`)."""
    content = OLDER_SCRIPTS.get(version, SCRIPT_PATH).read_bytes()
    return content, "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


def snippet(base_url: str, widget_key: str) -> str:
    """The tag a page embeds: the server's origin comes from `src`, the widget from `data-widget-key`."""
    _, integrity = script()
    return (
        f'<script src="{base_url}/widget.js?v={SCRIPT_VERSION}" data-widget-key="{widget_key}" '
        f'integrity="{integrity}" crossorigin="anonymous" async></script>'
    )


# -- delivery: the WEB_CHAT "provider" -----------------------------------------------------------------------------


async def _prepare_web_chat(session: AsyncSession, message: Message, ctx: SystemContext) -> Send:
    """Nothing to call: the visitor's subscription reads the message once it is SENT (and their client fetches
    what it missed with visitorMessages)."""

    async def send() -> Sent:
        return Sent()

    return send


WEB_CHAT_SENDER = ChannelSender(prepare=_prepare_web_chat)
