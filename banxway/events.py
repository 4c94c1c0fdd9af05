"""THE event registry: one pydantic model per event type, and the outbox write.

A resolver calls `record(session, event, ...)` inside the transaction of its
change, so an event exists exactly when its change was committed. Publishing
(relay to Redis after commit, the sweeper, replay for subscriptions) builds on
the `events` table; nothing else invents event names.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict
from sqlalchemy import DateTime, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from banxway.auth import Permission
from banxway.broadcast import Broadcast
from banxway.db.models import Event as EventRow
from banxway.db.models import Message
from banxway.db.session import system_session
from banxway.logs import get_logger

log = get_logger("banxway.events")


class DomainEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ClassVar[str]
    # A private event is sent only to the user named by its `user_id`.
    private: ClassVar[bool] = False
    # An event with a permission is sent only to subscribers whose role has it (administration events).
    permission: ClassVar[Permission | None] = None


class ThreadEvent(DomainEvent):
    thread_id: uuid.UUID


class ThreadCreated(ThreadEvent):
    type = "THREAD_CREATED"


class ThreadUpdated(ThreadEvent):
    type = "THREAD_UPDATED"
    changed: list[str]
    # why, when no person changed it: e.g. "CONTAINER MSCU1234565 in message <id>" (a shipment linked by analysis)
    evidence: str | None = None
    # when `changed` names `status`: the status before and after (absent from events of earlier releases).
    # Analytics counts resolutions and reopenings from them; `prune` keeps these events past the retention.
    status: str | None = None
    previous_status: str | None = None


class ThreadAssigned(ThreadEvent):
    type = "THREAD_ASSIGNED"
    assignee_id: uuid.UUID | None
    previous_assignee_id: uuid.UUID | None


class ThreadArchived(ThreadEvent):
    type = "THREAD_ARCHIVED"
    # the status it left (absent from events of earlier releases): analytics counts an archiving as a resolution
    previous_status: str | None = None


class ThreadRead(ThreadEvent):
    type = "THREAD_READ"
    private = True
    user_id: uuid.UUID


class SlaWarning(ThreadEvent):
    """A target of the thread's SLA entered its policy's warn-before window (`target`: FIRST_RESPONSE,
    NEXT_RESPONSE or RESOLUTION)."""

    type = "SLA_WARNING"
    target: str


class SlaBreached(ThreadEvent):
    """A target of the thread's SLA passed its due time unmet; the policy's breach actions ran with it."""

    type = "SLA_BREACHED"
    target: str


class WorkflowStepCompleted(ThreadEvent):
    """A step of a workflow instance on the thread finished (`outcome`: what it did, e.g. WAITING, SKIPPED, DONE)."""

    type = "WORKFLOW_STEP_COMPLETED"
    instance_id: uuid.UUID
    workflow_id: uuid.UUID
    step_index: int
    step_type: str
    outcome: str


class WorkflowFailed(ThreadEvent):
    """A workflow instance on the thread stopped on an error (after its retries), named in `error`."""

    type = "WORKFLOW_FAILED"
    instance_id: uuid.UUID
    workflow_id: uuid.UUID
    step_index: int | None
    error: str


class WorkflowCancelled(ThreadEvent):
    """Someone stopped a workflow instance on the thread (workflowInstanceCancel)."""

    type = "WORKFLOW_CANCELLED"
    instance_id: uuid.UUID
    workflow_id: uuid.UUID


class AnalysisCompleted(ThreadEvent):
    """An inbound message was analysed: its intent, sentiment and the entities found (`Message.analysis`)."""

    type = "ANALYSIS_COMPLETED"
    message_id: uuid.UUID
    intent: str
    sentiment: str
    entities: int = 0


class ComposeStarted(ThreadEvent):
    """Someone asked for AI drafts of a reply (composeStart); private: only they see it. Starts `stream_compose`."""

    type = "COMPOSE_STARTED"
    private = True
    user_id: uuid.UUID
    session_id: uuid.UUID


class MessageAdded(ThreadEvent):
    type = "MESSAGE_ADDED"
    message_id: uuid.UUID
    # what the consequences need to know without reading the row (absent from events of the first releases)
    channel: str | None = None
    direction: str | None = None
    status: str | None = None
    media: int = 0  # media items waiting to be downloaded

    @classmethod
    def of(cls, message: Message, *, media: int = 0) -> MessageAdded:
        return cls(
            thread_id=message.thread_id,
            message_id=message.id,
            channel=message.channel.name,
            direction=message.direction.name,
            status=message.status.name,
            media=media,
        )


class MessageStatusChanged(ThreadEvent):
    type = "MESSAGE_STATUS_CHANGED"
    message_id: uuid.UUID
    status: str
    # a scheduled message whose time came (SCHEDULED -> QUEUED): its delivery follows
    released: bool = False


class MessageUpdated(ThreadEvent):
    """A message's content changed after it was added: a call's duration, recording or transcript, media
    downloaded."""

    type = "MESSAGE_UPDATED"
    message_id: uuid.UUID
    changed: list[str]


class NoteAdded(ThreadEvent):
    type = "NOTE_ADDED"
    note_id: uuid.UUID
    mentioned_user_ids: list[uuid.UUID]


class NoteUpdated(ThreadEvent):
    """The author edited a note; `changed` names what changed (`body`, `mentioned_user_ids`)."""

    type = "NOTE_UPDATED"
    note_id: uuid.UUID
    changed: list[str]


class NoteDeleted(ThreadEvent):
    """A note was deleted (soft: its row stays, its body is cleared); the event's `node` is null, `nodeId`
    names it."""

    type = "NOTE_DELETED"
    note_id: uuid.UUID


class ActionCreated(ThreadEvent):
    type = "ACTION_CREATED"
    action_id: uuid.UUID


class ActionUpdated(ThreadEvent):
    type = "ACTION_UPDATED"
    action_id: uuid.UUID
    changed: list[str]


class CustomerCreated(DomainEvent):
    type = "CUSTOMER_CREATED"
    customer_id: uuid.UUID


class CustomerUpdated(DomainEvent):
    type = "CUSTOMER_UPDATED"
    customer_id: uuid.UUID
    changed: list[str]


class ContactCreated(DomainEvent):
    type = "CONTACT_CREATED"
    contact_id: uuid.UUID


class ContactUpdated(DomainEvent):
    type = "CONTACT_UPDATED"
    contact_id: uuid.UUID
    changed: list[str]


class ContactMerged(DomainEvent):
    type = "CONTACT_MERGED"
    merge_id: uuid.UUID
    kept_contact_id: uuid.UUID
    merged_contact_id: uuid.UUID
    thread_ids: list[uuid.UUID]
    message_ids: list[uuid.UUID] = []


class ContactUnmerged(DomainEvent):
    type = "CONTACT_UNMERGED"
    merge_id: uuid.UUID
    kept_contact_id: uuid.UUID
    merged_contact_id: uuid.UUID
    thread_ids: list[uuid.UUID]
    message_ids: list[uuid.UUID] = []


class ContactMergeSuggested(DomainEvent):
    """The contact resolver found `contact_id` and `other_contact_id` sharing `address`: a merge is suggested
    (contactMergeSuggestions), not done."""

    type = "CONTACT_MERGE_SUGGESTED"
    suggestion_id: uuid.UUID
    contact_id: uuid.UUID
    other_contact_id: uuid.UUID
    address: str


class ContactMergeSuggestionResolved(DomainEvent):
    """A merge suggestion was ACCEPTED (the merge's own CONTACT_MERGED follows) or DISMISSED."""

    type = "CONTACT_MERGE_SUGGESTION_RESOLVED"
    suggestion_id: uuid.UUID
    contact_id: uuid.UUID
    other_contact_id: uuid.UUID
    status: str


class ShipmentCreated(DomainEvent):
    type = "SHIPMENT_CREATED"
    shipment_id: uuid.UUID


class ShipmentUpdated(DomainEvent):
    type = "SHIPMENT_UPDATED"
    shipment_id: uuid.UUID
    changed: list[str]


class ShipmentMilestoneAdded(DomainEvent):
    type = "SHIPMENT_MILESTONE_ADDED"
    shipment_id: uuid.UUID
    milestone_id: uuid.UUID


class DocumentAdded(DomainEvent):
    """A document was filed on a shipment (documentUpload, documentFileFromMessage); thread-scoped (`thread_id`)
    when it came with a thread. Starts `extract_document_text`."""

    type = "DOCUMENT_ADDED"
    document_id: uuid.UUID
    shipment_id: uuid.UUID
    thread_id: uuid.UUID | None = None
    document_type: str


class DocumentUpdated(DomainEvent):
    """A document changed; `changed` names what: `type` (documentClassify), `status`/`reviewer_id` (documentApprove,
    documentReject), `superseded_by_id` (a newer version was filed), `text_state`/`text`/`entities` (the text was
    read by `extract_document_text`)."""

    type = "DOCUMENT_UPDATED"
    document_id: uuid.UUID
    shipment_id: uuid.UUID
    thread_id: uuid.UUID | None = None
    changed: list[str]


class NotificationCreated(DomainEvent):
    type = "NOTIFICATION_CREATED"
    private = True
    user_id: uuid.UUID
    notification_id: uuid.UUID
    # the user asked for this type by email (their notification preferences): `send_notification_email` follows
    email: bool = False


class NotificationsRead(DomainEvent):
    type = "NOTIFICATIONS_READ"
    private = True
    user_id: uuid.UUID
    notification_ids: list[uuid.UUID]


class UserCreated(DomainEvent):
    """A user was added to the organization (userCreate). Sent to everyone of the organization: users are
    readable by every role. Users created outside the API (the CLI, the demo seed, an organization's first
    admin) record none: those helpers run without the relay, before anyone can be subscribed."""

    type = "USER_CREATED"
    user_id: uuid.UUID


class UserUpdated(DomainEvent):
    """A user's name, role or active flag changed (userUpdate); `changed` names them. Sent to everyone of the
    organization, like USER_CREATED. A password change alone records nothing: no one's view of the user changes,
    and the event never says anything about secrets."""

    type = "USER_UPDATED"
    user_id: uuid.UUID
    changed: list[str]


class InvitationCreated(DomainEvent):
    """An admin invited someone to join (userInvite); the `send_invitation` actor emails the token. Administration:
    sent only to subscribers whose role has USER_MANAGE. Carries the id, never the token."""

    type = "INVITATION_CREATED"
    permission = Permission.USER_MANAGE
    invitation_id: uuid.UUID


class InvitationUpdated(DomainEvent):
    """An invitation changed; `changed` names the fields: `status` when it was revoked (invitationRevoke, by the
    admin) or accepted (invitationAccept, by the new user, with USER_CREATED). Administration: USER_MANAGE only."""

    type = "INVITATION_UPDATED"
    permission = Permission.USER_MANAGE
    invitation_id: uuid.UUID
    changed: list[str]


class IntegrationConfigured(DomainEvent):
    """An Exotel/Twilio integration was created (integrationConfigure of a type not configured yet).
    Administration: sent only to subscribers whose role has ORG_MANAGE. Carries ids, never credentials."""

    type = "INTEGRATION_CONFIGURED"
    permission = Permission.ORG_MANAGE
    integration_id: uuid.UUID


class IntegrationUpdated(DomainEvent):
    """An integration changed; `changed` names the fields (never their values): what integrationConfigure
    changed (`api_token` when a different token was stored, `phone_numbers` when its numbers were replaced),
    `webhook_urls` and `previous_webhook_token_expires_at` for integrationRotateWebhookToken,
    `phone_numbers` for phoneNumberAssign (a number's assignee lives in its integration), and `last_error`
    (with `last_tested_at`) when integrationTest found a different result than the last one.
    Administration: sent only to subscribers whose role has ORG_MANAGE."""

    type = "INTEGRATION_UPDATED"
    permission = Permission.ORG_MANAGE
    integration_id: uuid.UUID
    changed: list[str]


class EmailAccountCreated(DomainEvent):
    """An email account was added (emailAccountCreate). Administration: sent only to subscribers whose role
    has ORG_MANAGE. Carries the id, never a password."""

    type = "EMAIL_ACCOUNT_CREATED"
    permission = Permission.ORG_MANAGE
    email_account_id: uuid.UUID


class EmailAccountUpdated(DomainEvent):
    """An admin changed an email account (emailAccountUpdate); `changed` names the fields (a password's name
    when a different one was stored, never its value). What the mail poller records on the account (its
    cursor, `last_error`, `last_polled_at`: banxway.resolvers.email_ingest) is machine bookkeeping and records
    none. Administration: sent only to subscribers whose role has ORG_MANAGE."""

    type = "EMAIL_ACCOUNT_UPDATED"
    permission = Permission.ORG_MANAGE
    email_account_id: uuid.UUID
    changed: list[str]


class EmailAccountDeleted(DomainEvent):
    """An email account was deleted (emailAccountDelete); the event's `node` is null, `nodeId` names it.
    Administration: sent only to subscribers whose role has ORG_MANAGE."""

    type = "EMAIL_ACCOUNT_DELETED"
    permission = Permission.ORG_MANAGE
    email_account_id: uuid.UUID


class WebhookDeliveriesQueued(DomainEvent):
    """An admin asked an outbound webhook endpoint's deliveries to be sent now (webhookDeliveryRetry: one;
    webhookEndpointReplay: every subscribed event after a cursor); the `send_webhook_deliveries` actor follows.
    Administration: sent only to subscribers whose role has ORG_MANAGE; never delivered to webhooks itself."""

    type = "WEBHOOK_DELIVERIES_QUEUED"
    permission = Permission.ORG_MANAGE
    webhook_endpoint_id: uuid.UUID
    count: int


class AgentTaskCreated(ThreadEvent):
    """Someone asked an external agent (a tool of an MCP agent connection) to work on the thread
    (agentTaskCreate); the `run_agent_task` actor follows."""

    type = "AGENT_TASK_CREATED"
    task_id: uuid.UUID


class AgentTaskCompleted(ThreadEvent):
    """An agent task's tool answered; its result was posted on the thread as the internal note `note_id`."""

    type = "AGENT_TASK_COMPLETED"
    task_id: uuid.UUID
    note_id: uuid.UUID


class AgentTaskFailed(ThreadEvent):
    """An agent task stopped: the tool refused or errored, or it could not be reached after the retries, or it
    was cancelled (agentTaskCancel: `cancelled` true); `error` says why."""

    type = "AGENT_TASK_FAILED"
    task_id: uuid.UUID
    error: str
    cancelled: bool = False


def _registry() -> dict[str, type[DomainEvent]]:
    found: dict[str, type[DomainEvent]] = {}
    pending = list(DomainEvent.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "type" in cls.__dict__:
            assert cls.type not in found, f"duplicate event type {cls.type}"
            found[cls.type] = cls
    return found


EVENT_TYPES: dict[str, type[DomainEvent]] = _registry()


def record(
    session: AsyncSession, event: DomainEvent, *, organization_id: uuid.UUID, actor_id: uuid.UUID | None
) -> None:
    """Append `event` to the outbox in the session's current transaction.

    The row is also remembered on the session, so that whoever commits can relay it at once
    (`take_recorded` + `relay`); the sweeper relays what a crash left behind.
    """
    workflow = session.info.get(WORKFLOW_RUN)
    row = EventRow(
        organization_id=organization_id,
        type=event.type,
        thread_id=getattr(event, "thread_id", None),
        actor_id=actor_id,
        payload=event.model_dump(mode="json"),
        workflow_id=workflow[0] if workflow else None,
        workflow_depth=workflow[1] if workflow else None,
    )
    session.add(row)
    session.info.setdefault(_RECORDED, []).append(row)


_RECORDED = "banxway_recorded_events"
# (workflow id, depth) on the session of a workflow step's transaction: its events carry them
WORKFLOW_RUN = "banxway_workflow_run"


def recorded_mark(session: AsyncSession) -> int:
    """How many events the session recorded so far (before a savepoint)."""
    return len(session.info.get(_RECORDED, []))


def drop_recorded_since(session: AsyncSession, mark: int) -> None:
    """Forget the events recorded after `mark`: their savepoint was rolled back."""
    del session.info.get(_RECORDED, [])[mark:]


def take_recorded(session: AsyncSession) -> list[EventRow]:
    """The events recorded in the session since the last call (after a commit: to relay; after a rollback: to drop)."""
    return session.info.pop(_RECORDED, [])


# -- relay: the outbox to Redis ------------------------------------------------------


def channel(organization_id: uuid.UUID) -> str:
    return f"banxway:events:{organization_id}"


def envelope_fields(row: EventRow) -> dict[str, Any]:
    """An event as subscribers get it: published on the organization's channel, or replayed from the log."""
    return {
        "id": row.id,
        "seq": row.seq,
        "type": row.type,
        "thread_id": row.thread_id,
        "actor_id": row.actor_id,
        "payload": row.payload,
        "created_at": row.created_at,
    }


def envelope(row: EventRow) -> str:
    """What subscribers receive on the organization's channel."""
    return orjson.dumps(envelope_fields(row), default=str).decode()


_LOCK_NAMESPACE = 0x42585645  # "BXVE": the first key of our per-organization advisory locks


def _lock_key(organization_id: uuid.UUID) -> int:
    return int.from_bytes(organization_id.bytes[:4], "big", signed=True)


async def lock_delivery_order(session: AsyncSession, organization_id: uuid.UUID, *, shared: bool = False) -> None:
    """Serialise publishing per organization (exclusive), or wait for publishing in flight (shared).

    A publisher holds the lock from assigning `seq` until its transaction commits, publishing in between;
    a reader that takes the lock shared therefore sees every event that was published before it asked."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await session.execute(
        select(getattr(func, function)(_LOCK_NAMESPACE, _lock_key(organization_id)))  # two int4 keys
    )


# Called with the events being dispatched, before their transaction commits (banxway.tasks.consequences enqueues
# the background work they call for); if it raises, the dispatch rolls back and the sweeper tries again.
Consequences = Callable[[AsyncSession, Sequence[EventRow]], Awaitable[None]]


async def _dispatch(
    broadcast: Broadcast,
    sessionmaker: async_sessionmaker[AsyncSession],
    organization_id: uuid.UUID,
    ids: list[int],
    consequences: Consequences | None = None,
) -> int:
    """Give the undispatched events among `ids` their `seq`, publish them in that order, start their consequences,
    mark them dispatched. If publishing or enqueueing fails the transaction rolls back and the sweeper tries again
    (subscribers dedupe by id; actors are idempotent)."""
    async with system_session(sessionmaker) as session, session.begin():
        await lock_delivery_order(session, organization_id)
        rows = sorted(
            await session.scalars(
                _number_statement(),
                {"ids": ids, "now": datetime.now(UTC)},
                execution_options={"synchronize_session": False},
            ),
            key=lambda row: row.seq,
        )
        if not rows:
            return 0
        await broadcast.publish_all(channel(organization_id), [envelope(row) for row in rows])
        if consequences is not None:
            await consequences(session, rows)
    return len(rows)


@functools.cache
def _number_statement() -> Any:
    """One statement: lock the undispatched events among `:ids` (skipping those another relay holds), give them the
    next `seq` values in the order of their ids, mark them dispatched at `:now`, and return them. Built once (with
    its cache key): building it took ~0.7 ms, at every relay."""
    locked = (
        select(EventRow.id)
        .where(EventRow.id.in_(bindparam("ids", expanding=True)), EventRow.dispatched_at.is_(None))
        .with_for_update(skip_locked=True)
        .cte("locked")
    )
    picked = select(locked.c.id, func.row_number().over(order_by=locked.c.id).label("n")).subquery("picked")
    drawn = (
        select(func.nextval("events_seq").label("seq"))
        .select_from(func.generate_series(1, select(func.count()).select_from(locked).scalar_subquery()))
        .subquery("drawn")
    )
    seqs = select(drawn.c.seq, func.row_number().over(order_by=drawn.c.seq).label("n")).subquery("seqs")
    numbered = select(picked.c.id, seqs.c.seq).join_from(picked, seqs, picked.c.n == seqs.c.n).cte("numbered")
    return (
        update(EventRow)
        .where(EventRow.id == numbered.c.id)
        .values(seq=numbered.c.seq, dispatched_at=bindparam("now", type_=DateTime(timezone=True)))
        .returning(EventRow)
    )


async def relay(
    broadcast: Broadcast,
    sessionmaker: async_sessionmaker[AsyncSession],
    rows: list[EventRow],
    consequences: Consequences | None = None,
) -> None:
    """Publish events just committed; on failure they stay undispatched and the sweeper retries.

    Grouped: relays of one organization take its order lock one after the other, so while one dispatches, the
    events of every transaction that commits meanwhile (in this process) wait and go together in the next dispatch,
    one lock, one numbering statement, one question to the consequences (a group commit). Each caller returns once
    its own events were dispatched (or failed to be)."""
    by_organization: dict[uuid.UUID, list[int]] = {}
    for row in rows:
        by_organization.setdefault(row.organization_id, []).append(row.id)
    for organization_id, ids in by_organization.items():
        group = _relay_group(sessionmaker, organization_id)
        group.ticket += 1
        mine = group.ticket
        group.pending.extend(ids)
        async with group.lock:
            if group.taken >= mine:
                continue  # a relay that held the lock before this one dispatched these events with its own
            batch, group.pending, group.taken = group.pending, [], group.ticket
            try:
                await _dispatch(broadcast, sessionmaker, organization_id, batch, consequences)
            except Exception as exc:  # Redis or the database is down
                log.warning("event relay failed; the sweeper will retry", error=str(exc), events=len(batch))


@dataclass(eq=False)
class _RelayGroup:
    """One organization's relays in one event loop (asyncio locks belong to a loop)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: list[int] = field(default_factory=list)  # committed, not yet taken by a dispatch
    ticket: int = 0  # callers so far
    taken: int = 0  # the callers whose events a dispatch took


_RELAY_GROUPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, uuid.UUID], _RelayGroup]] = (
    weakref.WeakKeyDictionary()
)


def _relay_group(sessionmaker: async_sessionmaker[AsyncSession], organization_id: uuid.UUID) -> _RelayGroup:
    groups = _RELAY_GROUPS.setdefault(asyncio.get_running_loop(), {})
    key = (id(sessionmaker), organization_id)
    group = groups.get(key)
    if group is None:
        group = groups[key] = _RelayGroup()
    return group


async def sweep(
    broadcast: Broadcast,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    older_than: float = 1.0,
    consequences: Consequences | None = None,
) -> int:
    """Publish events committed more than `older_than` seconds ago and still undispatched (a crash or a
    Redis outage between commit and publish). Several processes may sweep at once: `_dispatch` locks."""
    async with system_session(sessionmaker) as session:
        pending = (
            await session.execute(
                select(EventRow.organization_id, EventRow.id)
                .where(
                    EventRow.dispatched_at.is_(None),
                    EventRow.created_at < func.now() - timedelta(seconds=older_than),
                )
                .order_by(EventRow.id)
                .limit(500)
            )
        ).all()
    by_organization: dict[uuid.UUID, list[int]] = {}
    for organization_id, event_id in pending:
        by_organization.setdefault(organization_id, []).append(event_id)
    sent = 0
    for organization_id, ids in by_organization.items():
        sent += await _dispatch(broadcast, sessionmaker, organization_id, ids, consequences)
    return sent


# Status changes (THREAD_UPDATED / THREAD_ARCHIVED with `previous_status`) are the history analytics counts
# resolutions, reopenings and the backlog from (banxway.resolvers.analytics): `prune` keeps them. The same predicate
# is the partial index ix_events_status_changes (migration 0022).
STATUS_CHANGE = (EventRow.type.in_(("THREAD_UPDATED", "THREAD_ARCHIVED"))) & (
    EventRow.payload["previous_status"].astext.is_not(None)
)


async def prune(sessionmaker: async_sessionmaker[AsyncSession], retention: timedelta) -> int:
    """Delete events older than the retention, except status changes (analytics' history); a cursor pointing
    before it gets CURSOR_EXPIRED."""
    async with system_session(sessionmaker) as session, session.begin():
        result = await session.execute(
            delete(EventRow).where(EventRow.created_at < func.now() - retention, ~STATUS_CHANGE)
        )
    return result.rowcount or 0


async def position(session: AsyncSession, organization_id: uuid.UUID) -> int:
    """The `seq` of the organization's last published event (0 if none): where a new subscriber starts."""
    await lock_delivery_order(session, organization_id, shared=True)
    latest = await session.scalar(
        select(func.max(EventRow.seq)).where(EventRow.organization_id == organization_id, EventRow.seq.is_not(None))
    )
    return latest or 0


async def replay(
    session: AsyncSession,
    organization_id: uuid.UUID,
    after_seq: int,
    *,
    thread_id: uuid.UUID | None = None,
    limit: int = 500,
) -> list[EventRow]:
    """Published events after `after_seq`, in delivery order, at most `limit` (call again from the last one).
    Waits for publishing in flight, so nothing published before the call is missed."""
    await lock_delivery_order(session, organization_id, shared=True)
    query = (
        select(EventRow)
        .where(EventRow.organization_id == organization_id, EventRow.seq > after_seq)
        .order_by(EventRow.seq)
        .limit(limit)
    )
    if thread_id is not None:
        query = query.where(EventRow.thread_id == thread_id)
    return list(await session.scalars(query))


def encode_cursor(seq: int, event_id: int, created_at: datetime) -> str:
    """An event's resume point: its delivery order, its id (to skip it) and its age (to expire it)."""
    return base64.urlsafe_b64encode(orjson.dumps([seq, event_id, created_at.isoformat()])).decode().rstrip("=")


class BadCursor(ValueError):
    pass


def decode_cursor(cursor: str) -> tuple[int, int, datetime]:
    """(seq, event id, created) of a cursor; cursors of the first release held [id, created] with seq == id."""
    try:
        fields = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if len(fields) == 2:
            fields = [fields[0], *fields]
        seq, event_id, created = fields
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive time")
        return int(seq), int(event_id), created_at
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise BadCursor(f"'{cursor}' is not an event cursor.") from None


def parse(type_name: str, payload: dict[str, Any]) -> DomainEvent:
    """An event read back from the log."""
    return EVENT_TYPES[type_name].model_validate(payload)
