"""Outbound webhooks (issue 15): an organization's admins register URLs that the events they choose are POSTed to,
signed, as they are relayed.

Endpoints (ORG_MANAGE): a URL (https://, and on an internet address, unless BANXWAY_ALLOW_PRIVATE_WEBHOOKS; http://
also in development), the event types to send (any public type of the registry), a secret we generate
(`whsec_...`, stored encrypted, returned once by create and by rotate, never readable again). Every change is
audited (`audit_change`, never the secret).

Delivery: when an event is relayed in an organization with an enabled endpoint subscribed to its type, the
consequence `deliver_webhooks` calls `webhook_deliveries_create`, which writes one delivery per (endpoint, event)
(unique: a redelivered job writes nothing new) with the body to send; `send_webhook` calls `webhook_delivery_send`
for each: claim (compare-and-set on `locked_until`, so two jobs never send one attempt twice), POST, record the
answer. 2xx: SUCCEEDED. A timeout, a connection failure, 429 or 5xx: RETRYING after BANXWAY_WEBHOOK_RETRY_BASE × 2^n
(at most an hour) while the delivery's window (BANXWAY_WEBHOOK_RETRY_WINDOW, 24 h) lasts, then FAILED; a 3xx
(redirects are not followed), another 4xx or a refused address: FAILED at once. The scheduler's
`requeue_webhook_deliveries` sweep enqueues every delivery due (a retry's time came, or a worker died mid-attempt
and its claim expired), so a killed worker loses nothing. An endpoint whose deliveries failed for the whole window
without a success is disabled (`disabled_reason`), its open deliveries FAILED, and the admins notified.

`webhookDeliveryRetry` and `webhookEndpointReplay` make deliveries due now and record WEBHOOK_DELIVERIES_QUEUED,
whose consequence (`send_webhook_deliveries`) enqueues them: side effects start from committed events."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from banxway import events
from banxway.auth import Permission
from banxway.db.models import Event as EventRow
from banxway.db.models import User, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from banxway.enums import NotificationType, Role
from banxway.errors import DomainError
from banxway.events import WebhookDeliveriesQueued
from banxway.integrations import webhook_sender as sender
from banxway.resolvers import validation as v
from banxway.resolvers.audit import audit_change
from banxway.resolvers.common import get_or_error
from banxway.resolvers.inbox_events import to_global_id
from banxway.resolvers.notifications import notify
from banxway.resolvers.pagination import Page, paginate
from banxway.secrets import SecretError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context, SystemContext

REPLAY_LIMIT = 1000  # events one webhookEndpointReplay queues
MAX_BACKOFF = timedelta(hours=1)
MAX_EVENT_TYPES = 100
OPEN = (WebhookDeliveryStatus.PENDING.value, WebhookDeliveryStatus.RETRYING.value)
# bookkeeping of the webhooks themselves: never sent to one
_NOT_SENT = {WebhookDeliveriesQueued.type}


def subscribable_types() -> list[str]:
    """The event types an endpoint may subscribe to: every registered type but private ones (meant for one user)."""
    return list(_SUBSCRIBABLE)


# the registry is complete once banxway.events is imported (asked at every relay)
_SUBSCRIBABLE = tuple(
    sorted(name for name, cls in events.EVENT_TYPES.items() if not cls.private and name not in _NOT_SENT)
)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


# -- endpoints ----------------------------------------------------------------------------------------------------


async def _url(ctx: Context, value: str | None) -> str:
    url = (value or "").strip()
    if len(url) > 500:
        raise DomainError("TOO_LONG", f"url has {len(url)} characters; at most 500 are allowed.", "url")
    parts = urlsplit(url)
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        host = None
    if parts.scheme not in ("https", "http") or not host or any(c.isspace() for c in url):
        raise DomainError("INVALID", f"'{value}' is not an https:// address.", "url")
    private_ok = ctx.settings.allow_private_webhooks
    if parts.scheme == "http" and not (private_ok or not ctx.settings.production):
        raise DomainError("INVALID", f"{url} is not https://: webhooks carry your data, so they are encrypted.", "url")
    if not private_ok:
        await v.refuse_private_url(url, "url", "webhooks go to the internet")
    return url


def _event_types(values: Sequence[str] | None) -> list[str]:
    if not values:
        raise DomainError("INVALID", "Give at least one event type (see webhookEventTypes).", "eventTypes")
    if len(values) > MAX_EVENT_TYPES:
        raise DomainError("INVALID", f"At most {MAX_EVENT_TYPES} event types.", "eventTypes")
    allowed = set(subscribable_types())
    cleaned: list[str] = []
    for index, value in enumerate(values):
        name = (value or "").strip().upper()
        if name not in allowed:
            raise DomainError(
                "INVALID",
                f"'{value}' is not an event type webhooks can receive (see webhookEventTypes).",
                f"eventTypes.{index}",
            )
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


async def _values(ctx: Context, fields: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if fields.get("url") is not None:
        values["url"] = await _url(ctx, fields["url"])
    if "description" in fields:
        values["description"] = v.text(fields["description"], "description", max_length=500)
    if fields.get("event_types") is not None:
        values["event_types"] = _event_types(fields["event_types"])
    if fields.get("enabled") is not None:
        values["enabled"] = bool(fields["enabled"])
    return values


def _shown(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the audit log keeps of an endpoint (never its secret)."""
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "eventTypes": list(endpoint.event_types),
        "enabled": endpoint.enabled,
    }


def _target(endpoint: WebhookEndpoint) -> str:
    return to_global_id("WebhookEndpoint", endpoint.id)


async def webhook_endpoint_create(ctx: Context, fields: dict[str, Any]) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (shown this once)."""
    viewer = ctx.require(Permission.ORG_MANAGE)
    if fields.get("url") is None:
        raise DomainError("INVALID", "url is required.", "url")
    if fields.get("event_types") is None:
        raise DomainError("INVALID", "Give at least one event type (see webhookEventTypes).", "eventTypes")
    values = await _values(ctx, fields)
    secret = new_secret()
    async with ctx.transaction() as session:
        endpoint = WebhookEndpoint(
            organization_id=viewer.organization_id,
            secret=ctx.box.encrypt(secret),
            created_by_id=viewer.user_id,
            **values,
        )
        session.add(endpoint)
        await session.flush()
        await audit_change(
            ctx, session, action="webhookEndpointCreate", target=_target(endpoint), after=_shown(endpoint)
        )
    return endpoint, secret


async def webhook_endpoint_update(
    ctx: Context, endpoint_id: uuid.UUID | None, fields: dict[str, Any]
) -> WebhookEndpoint:
    """Change the fields given. Enabling a disabled endpoint clears why it was disabled and its failure streak."""
    viewer = ctx.require(Permission.ORG_MANAGE)
    values = await _values(ctx, fields)
    async with ctx.transaction() as session:
        endpoint = await get_or_error(session, WebhookEndpoint, endpoint_id, "id", lock=True, label="webhook endpoint")
        before = _shown(endpoint)
        if values.get("enabled") is True and not endpoint.enabled:
            endpoint.disabled_reason = endpoint.disabled_at = endpoint.failing_since = None
        elif values.get("enabled") is False and endpoint.enabled:
            endpoint.disabled_reason = f"Disabled by {viewer.name}."
            endpoint.disabled_at = datetime.now(UTC)
        for name, value in values.items():
            setattr(endpoint, name, value)
        await session.flush()
        after = _shown(endpoint)
        changed = [name for name in before if before[name] != after[name]]
        if changed:
            await audit_change(
                ctx,
                session,
                action="webhookEndpointUpdate",
                target=_target(endpoint),
                before={name: before[name] for name in changed},
                after={name: after[name] for name in changed},
            )
    return endpoint


async def webhook_endpoint_delete(ctx: Context, endpoint_id: uuid.UUID | None) -> uuid.UUID:
    """Delete an endpoint and its delivery log; nothing more is sent to it."""
    ctx.require(Permission.ORG_MANAGE)
    async with ctx.transaction() as session:
        endpoint = await get_or_error(session, WebhookEndpoint, endpoint_id, "id", lock=True, label="webhook endpoint")
        await audit_change(
            ctx, session, action="webhookEndpointDelete", target=_target(endpoint), before=_shown(endpoint)
        )
        await session.delete(endpoint)
    return endpoint.id


async def webhook_endpoint_rotate_secret(ctx: Context, endpoint_id: uuid.UUID | None) -> tuple[WebhookEndpoint, str]:
    """A new secret (shown this once); deliveries are signed with it from now on, retries included."""
    ctx.require(Permission.ORG_MANAGE)
    secret = new_secret()
    async with ctx.transaction() as session:
        endpoint = await get_or_error(session, WebhookEndpoint, endpoint_id, "id", lock=True, label="webhook endpoint")
        endpoint.secret = ctx.box.encrypt(secret)
        await audit_change(
            ctx,
            session,
            action="webhookEndpointRotateSecret",
            target=_target(endpoint),
            before={"secret": "(previous)"},
            after={"secret": "(new, not recorded)"},
        )
    return endpoint, secret


async def webhook_endpoints(ctx: Context) -> list[WebhookEndpoint]:
    ctx.require(Permission.ORG_MANAGE)
    return list(await ctx.db.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)))


async def webhook_deliveries_page(
    ctx: Context,
    endpoint_id: uuid.UUID | None,
    status: str | None,
    *,
    first: int | None,
    after: str | None,
) -> Page[WebhookDelivery]:
    """An endpoint's delivery log, newest first (another organization's endpoint: an empty log)."""
    ctx.require(Permission.ORG_MANAGE)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    keys = (WebhookDelivery.created_at, WebhookDelivery.id)
    return await paginate(ctx.db, query, keys, first=first, after=after, descending=True)


# -- retry and replay ----------------------------------------------------------------------------------------------


def _window(ctx: Context | SystemContext) -> timedelta:
    return timedelta(seconds=ctx.settings.webhook_retry_window_seconds)


async def webhook_delivery_retry(ctx: Context, delivery_id: uuid.UUID | None) -> WebhookDelivery:
    """Send a delivery again now (the same event id and body, signed anew), with a new retry window."""
    ctx.require(Permission.ORG_MANAGE)
    now = datetime.now(UTC)
    async with ctx.transaction() as session:
        delivery = await get_or_error(session, WebhookDelivery, delivery_id, "id", lock=True, label="webhook delivery")
        endpoint = await session.get_one(WebhookEndpoint, delivery.endpoint_id)
        if not endpoint.enabled:
            raise DomainError("INVALID", "Its endpoint is disabled: enable it first (webhookEndpointUpdate).", "id")
        if delivery.locked_until is not None and delivery.locked_until > now:
            raise DomainError("INVALID_TRANSITION", "The delivery is being sent right now.", "id")
        before = {"status": delivery.status}
        delivery.status = WebhookDeliveryStatus.PENDING.value
        delivery.next_attempt_at = now
        delivery.retry_until = now + _window(ctx)
        ctx.record(session, WebhookDeliveriesQueued(webhook_endpoint_id=endpoint.id, count=1))
        await audit_change(
            ctx,
            session,
            action="webhookDeliveryRetry",
            target=to_global_id("WebhookDelivery", delivery.id),
            before=before,
            after={"status": delivery.status},
        )
        await session.flush()
    return delivery


@dataclass(frozen=True)
class Replay:
    endpoint: WebhookEndpoint
    queued: int
    has_more: bool  # more events than REPLAY_LIMIT followed the cursor: replay again after the last one queued
    last_cursor: str | None


async def webhook_endpoint_replay(ctx: Context, endpoint_id: uuid.UUID | None, after: str | None) -> Replay:
    """Queue again every event of the organization the endpoint subscribes to after the cursor `after` (an
    `inboxEvents` cursor, or a delivery body's `cursor`; none: every event kept), oldest first, at most
    REPLAY_LIMIT: an event already delivered to it is sent again (its delivery row is reset), others are added."""
    ctx.require(Permission.ORG_MANAGE)
    after_seq = 0
    if after:
        try:
            after_seq = events.decode_cursor(after)[0]
        except events.BadCursor as exc:
            raise DomainError("INVALID", str(exc), "after") from None
    now = datetime.now(UTC)
    async with ctx.transaction() as session:
        endpoint = await get_or_error(
            session, WebhookEndpoint, endpoint_id, "endpointId", lock=True, label="webhook endpoint"
        )
        if not endpoint.enabled:
            raise DomainError(
                "INVALID", "The endpoint is disabled: enable it first (webhookEndpointUpdate).", "endpointId"
            )
        types = sorted(set(endpoint.event_types) & set(subscribable_types()))
        rows = list(
            await session.scalars(
                select(EventRow)
                .where(EventRow.seq > after_seq, EventRow.type.in_(types))
                .order_by(EventRow.seq)
                .limit(REPLAY_LIMIT + 1)
            )
        )
        has_more, rows = len(rows) > REPLAY_LIMIT, rows[:REPLAY_LIMIT]
        if rows:
            statement = insert(WebhookDelivery).values(
                [_new_delivery(endpoint, row, now, _window(ctx)) for row in rows]
            )
            statement = statement.on_conflict_do_update(
                index_elements=[WebhookDelivery.endpoint_id, WebhookDelivery.event_id],
                set_={
                    "status": WebhookDeliveryStatus.PENDING.value,
                    "next_attempt_at": now,
                    "retry_until": now + _window(ctx),
                    "updated_at": func.now(),
                },
            )
            await session.execute(statement)
            ctx.record(session, WebhookDeliveriesQueued(webhook_endpoint_id=endpoint.id, count=len(rows)))
        await audit_change(
            ctx,
            session,
            action="webhookEndpointReplay",
            target=_target(endpoint),
            after={"after": after, "queued": len(rows)},
        )
    last = rows[-1] if rows else None
    cursor = events.encode_cursor(last.seq, last.id, last.created_at) if last is not None and last.seq else None
    return Replay(endpoint, len(rows), has_more, cursor)


# -- delivery -------------------------------------------------------------------------------------------------------

# payload key stems whose uuid values are sent as GraphQL global ids of these types (others as they are)
_NODE_TYPES = {
    "thread": "Thread",
    "message": "Message",
    "note": "Note",
    "action": "Action",
    "customer": "Customer",
    "contact": "Contact",
    "kept_contact": "Contact",
    "merged_contact": "Contact",
    "shipment": "Shipment",
    "user": "User",
    "assignee": "User",
    "previous_assignee": "User",
    "mentioned_user": "User",
    "notification": "Notification",
    "integration": "Integration",
    "email_account": "EmailAccount",
    "task": "AgentTask",
    "instance": "WorkflowInstance",
    "workflow": "Workflow",
    "session": "ComposeSession",
    "team": "Team",
    "webhook_endpoint": "WebhookEndpoint",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _object(payload: dict[str, Any]) -> dict[str, Any]:
    """The event's payload as a webhook's `object`: camelCase keys, ids as GraphQL global ids where the type is
    plain from the key (`thread_id` → a Thread's id; `mentioned_user_ids` → Users' ids)."""
    found: dict[str, Any] = {}
    for key, value in payload.items():
        stem, plural = (
            (key[:-4], True) if key.endswith("_ids") else (key[:-3], False) if key.endswith("_id") else ("", False)
        )
        type_name = _NODE_TYPES.get(stem)
        if type_name and plural and isinstance(value, list):
            value = [to_global_id(type_name, item) for item in value]
        elif type_name and not plural and value is not None:
            value = to_global_id(type_name, value)
        found[_camel(key)] = value
    return found


def event_body(row: EventRow) -> str:
    """What a webhook receives for an event (see the README): the same bytes at every attempt."""
    body = {
        "id": str(row.id),
        "type": row.type,
        "cursor": events.encode_cursor(row.seq, row.id, row.created_at) if row.seq is not None else None,
        "createdAt": row.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "organizationId": to_global_id("Organization", row.organization_id),
        "object": _object(row.payload),
    }
    return orjson.dumps(body).decode()


def _new_delivery(endpoint: WebhookEndpoint, row: EventRow, now: datetime, window: timedelta) -> dict[str, Any]:
    return {
        "organization_id": endpoint.organization_id,
        "endpoint_id": endpoint.id,
        "event_id": row.id,
        "event_type": row.type,
        "body": event_body(row),
        "status": WebhookDeliveryStatus.PENDING.value,
        "next_attempt_at": now,
        "retry_until": now + window,
    }


def subscribed_types(organization_id: Any) -> Any:
    """The event types the organization's (a column or value) enabled endpoints subscribe to, as an array (NULL when
    none): asked by the relay for a batch of organizations in one statement (`consequences.start`)."""
    types = (
        select(func.unnest(WebhookEndpoint.event_types).label("type"))
        .where(WebhookEndpoint.organization_id == organization_id, WebhookEndpoint.enabled.is_(True))
        .subquery()
    )
    return select(func.array_agg(types.c.type)).scalar_subquery()


def webhook_event_ids(rows: Sequence[EventRow], subscribed: dict[uuid.UUID, set[str]]) -> list[int]:
    """Of events being dispatched, those an enabled endpoint of their organization subscribes to (`subscribed`: the
    types per organization, from `subscribed_types`)."""
    sendable = set(subscribable_types())
    return [row.id for row in rows if row.type in sendable and row.type in subscribed.get(row.organization_id, ())]


async def webhook_deliveries_create(ctx: SystemContext, event_id: int) -> list[uuid.UUID]:
    """The deliveries of a relayed event, one per enabled endpoint of its organization subscribed to its type,
    written once (a redelivered job adds none); the ids of those still to be sent."""
    async with ctx.session() as session, session.begin():
        # FOR SHARE: waits for the relay's transaction that enqueued this job to commit the event's `seq`
        event = await session.scalar(select(EventRow).where(EventRow.id == event_id).with_for_update(read=True))
    if event is None or event.seq is None or event.type not in subscribable_types():
        return []  # gone, or its relay rolled back (the sweeper relays it again, and this job follows)
    org = ctx.for_organization(event.organization_id)
    now = datetime.now(UTC)
    async with org.transaction() as session:
        endpoints = list(
            await session.scalars(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.enabled.is_(True), WebhookEndpoint.event_types.contains([event.type])
                )
            )
        )
        if not endpoints:
            return []
        window = _window(ctx)
        statement = insert(WebhookDelivery).values([_new_delivery(e, event, now, window) for e in endpoints])
        await session.execute(
            statement.on_conflict_do_nothing(index_elements=[WebhookDelivery.endpoint_id, WebhookDelivery.event_id])
        )
        ids = await session.scalars(
            select(WebhookDelivery.id).where(
                WebhookDelivery.event_id == event.id,
                WebhookDelivery.endpoint_id.in_([e.id for e in endpoints]),
                WebhookDelivery.status.in_(OPEN),
            )
        )
        return sorted(ids)


@dataclass(frozen=True)
class SendOutcome:
    status: WebhookDeliveryStatus
    next_attempt_at: datetime | None = None


def backoff(settings: Any, attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: the base, doubled each time, at most an hour."""
    seconds = settings.webhook_retry_base_seconds * 2 ** max(0, attempts - 1)
    return min(timedelta(seconds=seconds), MAX_BACKOFF)


async def webhook_delivery_send(ctx: SystemContext, delivery_id: uuid.UUID) -> SendOutcome | None:
    """One attempt of a delivery that is due (see the module); its outcome, None when there was nothing to do
    (not due, claimed by another job, finished, or gone)."""
    settings = ctx.settings
    now = datetime.now(UTC)
    lease = timedelta(seconds=settings.webhook_timeout_seconds * 3 + 30)
    async with ctx.transaction() as session:  # claim: compare-and-set, committed before the call
        claimed = (
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status.in_(OPEN),
                    or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now),
                    or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now),
                )
                .values(locked_until=now + lease, attempts=WebhookDelivery.attempts + 1, last_attempt_at=now)
                .returning(WebhookDelivery.organization_id, WebhookDelivery.endpoint_id)
                .execution_options(synchronize_session=False)
            )
        ).first()
        if claimed is None:
            return None
        organization_id, endpoint_id = claimed
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        delivery = await session.get(WebhookDelivery, delivery_id)
        assert endpoint is not None and delivery is not None
        target, refusal = None, "The endpoint is disabled."
        if endpoint.enabled:
            try:
                target = sender.WebhookTarget(
                    url=endpoint.url,
                    secret=ctx.box.decrypt(endpoint.secret),
                    timeout=settings.webhook_timeout_seconds,
                    public_only=not settings.allow_private_webhooks,
                    ca_file=settings.outbound_ca_file,
                )
            except SecretError as exc:  # BANXWAY_SECRET_KEY changed: rotate the endpoint's secret
                refusal = str(exc)
        event_id, body = str(delivery.event_id), delivery.body
    if target is None:
        response = sender.WebhookResponse(False, None, None, 0, refusal, False)
    else:
        response = await sender.post(target, event_id, body.encode())
    return await _record(ctx.for_organization(organization_id), delivery_id, response)


async def _record(ctx: SystemContext, delivery_id: uuid.UUID, response: sender.WebhookResponse) -> SendOutcome | None:
    settings = ctx.settings
    now = datetime.now(UTC)
    async with ctx.transaction() as session:
        delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None:  # its endpoint was deleted meanwhile
            return None
        endpoint = await session.get_one(WebhookEndpoint, delivery.endpoint_id, with_for_update=True)
        delivery.locked_until = None
        delivery.response_status = response.status
        delivery.response_body = response.body
        delivery.duration_ms = response.duration_ms
        if response.ok:
            delivery.status = WebhookDeliveryStatus.SUCCEEDED.value
            delivery.next_attempt_at = None
            delivery.last_error = None
            endpoint.failing_since = None
            return SendOutcome(WebhookDeliveryStatus.SUCCEEDED)
        retry_at = now + backoff(settings, delivery.attempts)
        if response.transient and retry_at <= delivery.retry_until:
            delivery.status = WebhookDeliveryStatus.RETRYING.value
            delivery.next_attempt_at = retry_at
            delivery.last_error = response.error
        else:
            delivery.status = WebhookDeliveryStatus.FAILED.value
            delivery.next_attempt_at = None
            suffix = f" Gave up after {delivery.attempts} attempts." if response.transient else ""
            delivery.last_error = (response.error or "Failed.") + suffix
        if endpoint.enabled:
            endpoint.failing_since = endpoint.failing_since or now
            if now - endpoint.failing_since >= _window(ctx):
                await _disable(ctx, session, endpoint, now)
        status = WebhookDeliveryStatus(delivery.status)
        return SendOutcome(status, delivery.next_attempt_at if status == WebhookDeliveryStatus.RETRYING else None)


async def _disable(ctx: SystemContext, session: AsyncSession, endpoint: WebhookEndpoint, now: datetime) -> None:
    """Disable an endpoint that failed for the whole window; its open deliveries fail; the admins are told."""
    hours = ctx.settings.webhook_retry_window_seconds / 3600
    span = f"{hours:g} hours" if hours >= 1 else f"{ctx.settings.webhook_retry_window_seconds:g} seconds"
    endpoint.enabled = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = f"Every delivery failed for {span} (since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC)."
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status.in_(OPEN))
        .values(
            status=WebhookDeliveryStatus.FAILED.value,
            next_attempt_at=None,
            last_error="The endpoint was disabled after failing for too long.",
        )
        .execution_options(synchronize_session="fetch")
    )
    admins = await session.scalars(select(User.id).where(User.role == Role.ADMIN, User.active.is_(True)))
    summary = f"Webhook {endpoint.url} was disabled: {endpoint.disabled_reason} Fix it, then enable it again."
    await notify(
        session,
        None,
        list(admins),
        NotificationType.WEBHOOK_DISABLED,
        summary,
        actor_id=None,
        organization_id=endpoint.organization_id,
    )


async def webhook_deliveries_due(
    ctx: SystemContext, lookahead: timedelta, endpoint_id: uuid.UUID | None = None, *, limit: int = 1000
) -> list[tuple[uuid.UUID, datetime]]:
    """(delivery, when) for the deliveries to send before `lookahead` from now: a retry whose time comes, one made
    due by a retry or replay (`endpoint_id`: that endpoint's), one whose attempt's worker died (its claim expired)."""
    now = datetime.now(UTC)
    query = (
        select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
        .where(
            WebhookDelivery.status.in_(OPEN),
            WebhookDelivery.next_attempt_at <= now + lookahead,
            or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    async with ctx.session() as session:
        return [(row_id, at) for row_id, at in (await session.execute(query)).all()]
