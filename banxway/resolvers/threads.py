"""Threads: creation, status, assignment, archiving, read state, and the inbox list."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, any_, bindparam, cast, delete, func, literal, select, union, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.orm import aliased

from banxway import events
from banxway.auth import Permission
from banxway.db.models import Contact, Customer, Message, Note, Shipment, Thread, ThreadCounter
from banxway.db.models import ThreadRead as ThreadReadRow
from banxway.db.session import transaction_memo
from banxway.enums import Channel, Intent, NotificationType, Priority, Sentiment, SlaStatus, ThreadStatus, ThreadType
from banxway.errors import DomainError, PermissionDenied
from banxway.events import ThreadArchived, ThreadAssigned, ThreadCreated, ThreadRead, ThreadUpdated
from banxway.resolvers import sla
from banxway.resolvers import validation as v
from banxway.resolvers.common import active_user, apply_changes, get_or_error
from banxway.resolvers.notifications import notify
from banxway.resolvers.pagination import Page, paginate

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context, SystemContext


async def next_reference(session: AsyncSession, organization_id: uuid.UUID, year: int) -> str:
    """BX-YYYY-NNNN: the next number of the year, atomically (a row lock on the counter, held to the transaction's
    end). A transaction that will open many threads (a page of ingested mail) reserves a block of numbers in one
    statement first (`reserve_references`) and gives back what it did not use (`release_references`)."""
    block = transaction_memo(session, "thread_references").get((organization_id, year))
    if block is not None and block[0] < block[1]:
        block[0] += 1
        return f"BX-{year}-{block[0]:04d}"
    number = await _advance_counter(session, organization_id, year, 1)
    return f"BX-{year}-{number:04d}"


async def _advance_counter(session: AsyncSession, organization_id: uuid.UUID, year: int, by: int) -> int:
    statement = (
        insert(ThreadCounter)
        .values(organization_id=organization_id, year=year, last_value=by)
        .on_conflict_do_update(
            index_elements=[ThreadCounter.organization_id, ThreadCounter.year],
            set_={"last_value": ThreadCounter.last_value + by},
        )
        .returning(ThreadCounter.last_value)
    )
    with session.no_autoflush:  # the counter depends on nothing pending: what is pending goes in with the next flush
        return int((await session.execute(statement)).scalar_one())


async def reserve_references(session: AsyncSession, organization_id: uuid.UUID, count: int) -> None:
    """Take up to `count` numbers of this year's counter at once for the threads this transaction may open. The
    counter's row stays locked until the transaction ends (as one number's would), so nobody else numbers a thread
    meanwhile and `release_references` can give the unused ones back without a gap."""
    if count <= 1:
        return
    year = datetime.now(UTC).year
    memo = transaction_memo(session, "thread_references")
    last = await _advance_counter(session, organization_id, year, count)
    memo[(organization_id, year)] = [last - count, last]


async def release_references(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Give back the reserved numbers this transaction did not use (call it before the transaction commits)."""
    memo = transaction_memo(session, "thread_references")
    for (organization, year), (used, last) in list(memo.items()):
        if organization != organization_id:
            continue
        del memo[(organization, year)]
        if used < last:
            await session.execute(
                update(ThreadCounter)
                .where(ThreadCounter.organization_id == organization, ThreadCounter.year == year)
                .values(last_value=used)
            )


async def _links(
    session: AsyncSession,
    customer_id: uuid.UUID | None,
    contact_id: uuid.UUID | None,
    shipment_id: uuid.UUID | None,
) -> tuple[uuid.UUID | None, uuid.UUID | None, uuid.UUID | None]:
    """Check the linked objects exist (a merged-away contact is refused); a contact or shipment brings its customer
    if none is given."""
    contact = await get_or_error(session, Contact, contact_id, "contactId") if contact_id else None
    if contact is not None and contact.merged_into_id is not None:
        kept = await session.get(Contact, contact.merged_into_id)
        raise DomainError(
            "INVALID",
            f"{contact.name} was merged into {kept.name if kept else 'another contact'}: link that one.",
            "contactId",
        )
    shipment = await get_or_error(session, Shipment, shipment_id, "shipmentId") if shipment_id else None
    if customer_id is not None:
        await get_or_error(session, Customer, customer_id, "customerId")
    else:
        customer_id = (contact.customer_id if contact else None) or (shipment.customer_id if shipment else None)
    return customer_id, contact_id, shipment_id


async def thread_create(
    ctx: Context,
    *,
    subject: str,
    type: ThreadType | None = None,
    primary_channel: Channel | None = None,
    priority: Priority | None = None,
    customer_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    shipment_id: uuid.UUID | None = None,
    tags: list[str] | None = None,
) -> Thread:
    viewer = ctx.require(Permission.THREAD_CREATE)
    clean_subject = v.text(subject, "subject", max_length=v.EMAIL_SUBJECT_LIMIT, required=True)
    clean_tags = v.tags(tags)
    async with ctx.transaction() as session:
        customer_id, contact_id, shipment_id = await _links(session, customer_id, contact_id, shipment_id)
        thread = await new_thread(
            session,
            viewer.organization_id,
            subject=clean_subject,
            type=type,
            primary_channel=primary_channel,
            priority=priority,
            customer_id=customer_id,
            contact_id=contact_id,
            shipment_id=shipment_id,
            tags=clean_tags,
        )
        ctx.record(session, ThreadCreated(thread_id=thread.id))
    return thread


async def new_thread(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    subject: str,
    type: ThreadType | None = None,
    primary_channel: Channel | None = None,
    priority: Priority | None = None,
    customer_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    shipment_id: uuid.UUID | None = None,
    tags: list[str] | None = None,
) -> Thread:
    """A NEW thread with the next reference (the caller has validated the values and records the event)."""
    now = datetime.now(UTC)
    thread = Thread(
        id=uuid.uuid4(),  # known before the INSERT, which goes with the transaction's next flush (batched)
        organization_id=organization_id,
        reference=await next_reference(session, organization_id, now.year),
        subject=subject,
        type=type or ThreadType.GENERAL,
        status=ThreadStatus.NEW,
        priority=priority or Priority.NORMAL,
        primary_channel=primary_channel or Channel.EMAIL,
        customer_id=customer_id,
        contact_id=contact_id,
        shipment_id=shipment_id,
        tags=tags or [],
        last_activity_at=now,
    )
    session.add(thread)
    transaction_memo(session, "threads_locked")[thread.id] = thread  # new in this transaction: nobody else has it
    await sla.thread_opened(session, thread, now)
    return thread


def _check_transition(ctx: Context, current: ThreadStatus, new: ThreadStatus) -> None:
    if new == current:
        return
    if ThreadStatus.ARCHIVED in (current, new) and not ctx.viewer.can(Permission.THREAD_ARCHIVE):
        verb = "reopen an archived thread" if current == ThreadStatus.ARCHIVED else "archive a thread"
        raise DomainError("INVALID_TRANSITION", f"Your role may not {verb}.", "status")
    if new == ThreadStatus.NEW:
        raise DomainError("INVALID_TRANSITION", "A thread cannot go back to NEW.", "status")


def clean_update(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate the changes of a thread update (links are checked against the database by `update_thread`)."""
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "subject":
            values[name] = v.text(value, "subject", max_length=v.EMAIL_SUBJECT_LIMIT, required=True)
        elif name == "tags":
            values[name] = v.tags(value)
        elif name in ("status", "priority", "type", "primary_channel"):
            if value is None:
                raise DomainError("INVALID", f"{name} cannot be cleared.", name)
            values[name] = value
        elif name in ("customer_id", "contact_id", "shipment_id"):
            values[name] = value
        else:  # pragma: no cover
            raise ValueError(name)
    return values


def check_update(ctx: Context, thread: Thread, values: dict[str, Any]) -> None:
    """Whether the (clean) update may apply to the thread as it is; raises before anything is written."""
    if "status" in values:
        _check_transition(ctx, thread.status, values["status"])
    if thread.status == ThreadStatus.ARCHIVED and values.get("status", thread.status) == ThreadStatus.ARCHIVED:
        raise DomainError("INVALID_TRANSITION", "An archived thread must be reopened before it is changed.", "status")


async def update_thread(
    ctx: Context | SystemContext,
    session: AsyncSession,
    thread: Thread,
    values: dict[str, Any],
    *,
    evidence: str | None = None,
) -> None:
    """The one write path of a thread update (threadUpdate, threadsBulkUpdate, workflow steps, analysis's
    auto-link): the transition rules, the THREAD_UPDATED event (with `evidence` when no person decided it) and the
    SLA. The caller holds the thread's row lock and checked THREAD_CREATE."""
    check_update(ctx, thread, values)
    values = dict(values)
    links = {name: values.pop(name) for name in ("customer_id", "contact_id", "shipment_id") if name in values}
    if links:
        customer_id, contact_id, shipment_id = await _links(
            session,
            links.get("customer_id", thread.customer_id),
            links.get("contact_id", thread.contact_id),
            links.get("shipment_id", thread.shipment_id),
        )
        values.update({"customer_id": customer_id, "contact_id": contact_id, "shipment_id": shipment_id})
    previous_status = thread.status
    changed = apply_changes(thread, values)
    if changed:
        moved = "status" in changed
        ctx.record(
            session,
            ThreadUpdated(
                thread_id=thread.id,
                changed=changed,
                evidence=evidence,
                status=thread.status.name if moved else None,
                previous_status=previous_status.name if moved else None,
            ),
        )
    if "status" in changed:
        await sla.status_changed(session, thread, previous_status)
    if {"priority", "type", "primary_channel", "customer_id"} & set(changed):
        await sla.conditions_changed(session, thread)


async def thread_update(
    ctx: Context, thread_id: uuid.UUID | None, changes: dict[str, Any], *, field: str = "threadId"
) -> Thread:
    """`field`: the input's name for the thread (`threadId`, or the deprecated `id`), for a NOT_FOUND."""
    ctx.require(Permission.THREAD_CREATE)
    values = clean_update(changes)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, field, lock=True)
        await update_thread(ctx, session, thread, values)
    return thread


def check_assign(
    ctx: Context, thread: Thread, assignee_id: uuid.UUID | None, *, status: ThreadStatus | None = None
) -> None:
    """Whether the viewer may give the thread (with `status`, as it will be by then) to `assignee_id`."""
    viewer = ctx.viewer
    only_self = assignee_id in (None, viewer.user_id) and thread.assignee_id in (None, viewer.user_id)
    needed = Permission.THREAD_ASSIGN_SELF if only_self else Permission.THREAD_ASSIGN_ANY
    if not viewer.can(needed):
        raise PermissionDenied(f"Role {viewer.role.name} may not {needed.value}")
    if (status or thread.status) == ThreadStatus.ARCHIVED:
        raise DomainError("INVALID_TRANSITION", "An archived thread cannot be assigned.", "threadId")


async def assign_thread(
    ctx: Context, session: AsyncSession, thread: Thread, assignee_id: uuid.UUID | None, *, checked_user: bool = False
) -> None:
    """The one write path of an assignment by a viewer (threadAssign, threadsBulkUpdate): the permission and
    status rules, THREAD_ASSIGNED and the assignee's notification. The caller holds the thread's row lock and
    checked THREAD_ASSIGN_SELF; `checked_user`: it checked that the assignee is an active user."""
    viewer = ctx.viewer
    check_assign(ctx, thread, assignee_id)
    if assignee_id is not None and not checked_user:
        await active_user(session, assignee_id, "assigneeId")
    previous = thread.assignee_id
    if previous != assignee_id:
        thread.assignee_id = assignee_id
        ctx.record(session, ThreadAssigned(thread_id=thread.id, assignee_id=assignee_id, previous_assignee_id=previous))
        await notify(
            session,
            thread,
            [assignee_id],
            NotificationType.ASSIGNMENT,
            f"{viewer.name} assigned {thread.reference} to you: {thread.subject}",
            actor_id=viewer.user_id,
        )


async def thread_assign(ctx: Context, thread_id: uuid.UUID | None, assignee_id: uuid.UUID | None) -> Thread:
    ctx.require(Permission.THREAD_ASSIGN_SELF)  # what any assignment needs, before the thread is read
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
        await assign_thread(ctx, session, thread, assignee_id)
    return thread


async def archive_thread(ctx: Context, session: AsyncSession, thread: Thread) -> None:
    """The one write path of archiving (threadArchive, threadsBulkUpdate); a no-op on an archived thread. The
    caller holds the thread's row lock and checked THREAD_ARCHIVE."""
    if thread.status != ThreadStatus.ARCHIVED:
        previous_status, thread.status = thread.status, ThreadStatus.ARCHIVED
        ctx.record(session, ThreadArchived(thread_id=thread.id, previous_status=previous_status.name))
        await sla.status_changed(session, thread, previous_status)


async def thread_archive(ctx: Context, thread_id: uuid.UUID | None) -> Thread:
    ctx.require(Permission.THREAD_ARCHIVE)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
        await archive_thread(ctx, session, thread)
    return thread


BULK_LIMIT = 100


@dataclass(frozen=True)
class BulkChanges:
    """What threadsBulkUpdate does to each thread; UNSET_ASSIGNEE leaves the assignee alone."""

    status: ThreadStatus | None = None
    priority: Priority | None = None
    add_tags: list[str] | None = None
    remove_tags: list[str] | None = None
    assign: bool = False
    assignee_id: uuid.UUID | None = None
    archive: bool | None = None


async def threads_bulk_update(
    ctx: Context, thread_ids: list[uuid.UUID | None], changes: BulkChanges
) -> tuple[list[Thread], list[DomainError]]:
    """Apply the same changes to up to 100 threads in one transaction, each through the single-thread write path
    (same rules, same events). Permissions are checked once for the batch (FORBIDDEN); a thread that cannot take
    the changes (not found, archived, …) is left as it was and reported with `field: ["threadIds", "<index>"]`,
    the others all change. Returns the changed threads (in the order given) and the per-thread errors."""
    viewer = ctx.require(Permission.READ)
    updating = changes.status is not None or changes.priority is not None or changes.add_tags or changes.remove_tags
    if updating:
        ctx.require(Permission.THREAD_CREATE)
    if changes.assign:
        ctx.require(Permission.THREAD_ASSIGN_SELF)
        if changes.assignee_id not in (None, viewer.user_id):
            ctx.require(Permission.THREAD_ASSIGN_ANY)
    if changes.archive:
        ctx.require(Permission.THREAD_ARCHIVE)
    if not 1 <= len(thread_ids) <= BULK_LIMIT:
        raise DomainError("INVALID", f"Give 1 to {BULK_LIMIT} threads.", "threadIds")
    if changes.archive is False:
        raise DomainError("INVALID", "archive: false does nothing; set a status to reopen a thread.", "archive")
    add_tags = v.tags(changes.add_tags, "addTags")
    remove_tags = set(v.tags(changes.remove_tags, "removeTags"))
    base = clean_update(
        {name: value for name, value in (("status", changes.status), ("priority", changes.priority)) if value}
    )
    async with ctx.transaction() as session:
        if changes.assign and changes.assignee_id is not None:
            await active_user(session, changes.assignee_id, "assigneeId")
        wanted = {thread_id for thread_id in thread_ids if thread_id is not None}
        rows = await session.scalars(select(Thread).where(Thread.id.in_(wanted)).order_by(Thread.id).with_for_update())
        by_id = {thread.id: thread for thread in rows}
        errors: list[DomainError] = []
        done: dict[uuid.UUID, Thread] = {}
        seen: set[uuid.UUID | None] = set()
        for index, thread_id in enumerate(thread_ids):
            if thread_id in seen:
                continue
            seen.add(thread_id)
            field = ["threadIds", str(index)]
            thread = by_id.get(thread_id)  # type: ignore[arg-type]
            if thread is None:
                errors.append(DomainError("NOT_FOUND", "No such thread.", field))
                continue
            values = dict(base)
            if add_tags or remove_tags:
                tags = [tag for tag in dict.fromkeys([*thread.tags, *add_tags]) if tag not in remove_tags]
                if tags != thread.tags:
                    values["tags"] = tags
            try:  # every rule first, so that a thread changes wholly or not at all
                if values:
                    check_update(ctx, thread, values)
                if changes.assign:
                    check_assign(ctx, thread, changes.assignee_id, status=values.get("status", thread.status))
            except (DomainError, PermissionDenied) as exc:
                code = exc.code if isinstance(exc, DomainError) else "FORBIDDEN"
                message = exc.message if isinstance(exc, DomainError) else str(exc)
                errors.append(DomainError(code, f"{thread.reference}: {message}", field))
                continue
            if values:
                await update_thread(ctx, session, thread, values)
            if changes.assign:
                await assign_thread(ctx, session, thread, changes.assignee_id, checked_user=True)
            if changes.archive:
                await archive_thread(ctx, session, thread)
            done[thread.id] = thread
    return list(done.values()), errors


SNOOZE_LIMIT = timedelta(days=366)


async def thread_snooze(ctx: Context, thread_id: uuid.UUID | None, until: datetime | None) -> Thread:
    """Hide a thread from the default inbox until `until` (None: show it again now); a customer's message wakes it
    earlier. The SLA clock keeps running (only PENDING stops it)."""
    ctx.require(Permission.THREAD_CREATE)
    now = datetime.now(UTC)
    if until is not None:
        if until.tzinfo is None:
            raise DomainError("INVALID", "Give a time zone (e.g. 2026-12-04T09:00:00+05:30).", "until")
        if not now < until <= now + SNOOZE_LIMIT:
            raise DomainError("INVALID", "Snooze until a time in the future, within a year.", "until")
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
        if thread.status == ThreadStatus.ARCHIVED:
            raise DomainError("INVALID_TRANSITION", "An archived thread cannot be snoozed.", "threadId")
        if thread.snoozed_until != until:
            thread.snoozed_until = until
            ctx.record(session, ThreadUpdated(thread_id=thread.id, changed=["snoozed_until"]))
    return thread


async def wake_up(session: AsyncSession, thread: Thread, *, at: datetime | None = None) -> bool:
    """End the thread's snooze if it is over at `at` (or, without `at`, at once: the customer wrote); record it."""
    if thread.snoozed_until is None or (at is not None and thread.snoozed_until > at):
        return False
    thread.snoozed_until = None
    events.record(
        session,
        ThreadUpdated(thread_id=thread.id, changed=["snoozed_until"]),
        organization_id=thread.organization_id,
        actor_id=None,
    )
    return True


async def snoozes_ending(ctx: SystemContext, within: timedelta) -> list[tuple[uuid.UUID, datetime]]:
    """(thread id, when) of the snoozes that end before now + `within`, soonest first."""
    horizon = datetime.now(UTC) + within
    async with ctx.session() as session:
        rows = await session.execute(
            select(Thread.id, Thread.snoozed_until)
            .where(Thread.snoozed_until.is_not(None), Thread.snoozed_until <= horizon)
            .order_by(Thread.snoozed_until)
            .limit(10_000)
        )
        return [(row[0], row[1]) for row in rows]


async def thread_wake(ctx: SystemContext, thread_id: uuid.UUID) -> bool:
    """The timer of a snooze: the thread shows in the inbox again (idempotent; False when nothing changed)."""
    async with ctx.session() as probe:
        organization_id = await probe.scalar(select(Thread.organization_id).where(Thread.id == thread_id))
    if organization_id is None:
        return False
    async with ctx.for_organization(organization_id).transaction() as session:
        thread = await session.scalar(select(Thread).where(Thread.id == thread_id).with_for_update())
        return thread is not None and await wake_up(session, thread, at=datetime.now(UTC))


async def thread_mark_read(ctx: Context, thread_id: uuid.UUID | None) -> Thread:
    """Everything in the thread up to now counts as read by the viewer."""
    viewer = ctx.require(Permission.READ)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", label="thread")
        read_at = max(thread.last_message_at or thread.created_at, datetime.now(UTC))
        await session.execute(
            insert(ThreadReadRow)
            .values(
                organization_id=viewer.organization_id, user_id=viewer.user_id, thread_id=thread.id, read_at=read_at
            )
            .on_conflict_do_update(
                index_elements=[ThreadReadRow.user_id, ThreadReadRow.thread_id],
                set_={"read_at": func.greatest(ThreadReadRow.read_at, read_at)},
            )
        )
        ctx.record(session, ThreadRead(thread_id=thread.id, user_id=viewer.user_id))
    return thread


async def thread_mark_unread(ctx: Context, thread_id: uuid.UUID | None) -> Thread:
    """Move the viewer's read position to just before the last message someone else wrote, so that the thread
    counts at least one unread message (without such a message, the thread counts as never read)."""
    viewer = ctx.require(Permission.READ)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", label="thread")
        last = await session.scalar(
            select(func.max(Message.created_at)).where(
                Message.thread_id == thread.id, Message.author_id.is_distinct_from(viewer.user_id)
            )
        )
        if last is None:
            await session.execute(
                delete(ThreadReadRow).where(
                    ThreadReadRow.user_id == viewer.user_id, ThreadReadRow.thread_id == thread.id
                )
            )
        else:
            read_at = last - timedelta(microseconds=1)
            await session.execute(
                insert(ThreadReadRow)
                .values(
                    organization_id=viewer.organization_id,
                    user_id=viewer.user_id,
                    thread_id=thread.id,
                    read_at=read_at,
                )
                .on_conflict_do_update(
                    index_elements=[ThreadReadRow.user_id, ThreadReadRow.thread_id], set_={"read_at": read_at}
                )
            )
        ctx.record(session, ThreadRead(thread_id=thread.id, user_id=viewer.user_id))
    return thread


# -- the inbox list ------------------------------------------------------------------


@dataclass(frozen=True)
class ThreadFilter:
    status: list[ThreadStatus] | None = None
    assignee_id: uuid.UUID | None = None
    assigned_to_me: bool | None = None
    unassigned: bool | None = None
    customer_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    shipment_id: uuid.UUID | None = None
    channel: Channel | None = None
    type: ThreadType | None = None
    priority: Priority | None = None
    tag: str | None = None
    search: str | None = None
    updated_since: datetime | None = None
    sla_status: list[SlaStatus] | None = None
    team_id: uuid.UUID | None = None
    snoozed: bool | None = None  # None: not snoozed now (the default inbox); True: only snoozed ones
    intent: list[Intent] | None = None
    sentiment: list[Sentiment] | None = None


@dataclass(frozen=True)
class ThreadOrdering:
    """Keys of a keyset order (all ascending or all descending) and how to read them off a row."""

    keys: tuple[ColumnElement[Any], ...]
    descending: bool
    attributes: tuple[str, ...]


_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
_SLA_KEY = func.coalesce(Thread.sla_due_at, literal(_FAR_FUTURE))

ORDERINGS: dict[str, ThreadOrdering] = {
    "LAST_ACTIVITY_DESC": ThreadOrdering((Thread.last_activity_at, Thread.id), True, ("last_activity_at", "id")),
    "CREATED_DESC": ThreadOrdering((Thread.created_at, Thread.id), True, ("created_at", "id")),
    "PRIORITY": ThreadOrdering(
        (Thread.priority, Thread.last_activity_at, Thread.id), True, ("priority", "last_activity_at", "id")
    ),
    "SLA_DUE": ThreadOrdering((_SLA_KEY, Thread.id), False, ("sla_due_at", "id")),
}


def ordering_key(ordering: ThreadOrdering, thread: Thread) -> list[Any]:
    values: list[Any] = []
    for attribute in ordering.attributes:
        value = getattr(thread, attribute)
        if attribute == "sla_due_at" and value is None:
            value = _FAR_FUTURE
        if attribute == "priority":
            value = value.value
        values.append(value)
    return values


def threads_query(ctx: Context, where: ThreadFilter | None) -> Select[Any]:
    viewer = ctx.require(Permission.READ)
    where = where or ThreadFilter()
    query = select(Thread)
    if where.status:
        query = query.where(Thread.status.in_(where.status))
    else:
        query = query.where(Thread.status != ThreadStatus.ARCHIVED)
    if where.assigned_to_me:
        query = query.where(Thread.assignee_id == viewer.user_id)
    if where.assignee_id is not None:
        query = query.where(Thread.assignee_id == where.assignee_id)
    if where.unassigned:
        query = query.where(Thread.assignee_id.is_(None))
    for column, value in (
        (Thread.customer_id, where.customer_id),
        (Thread.contact_id, where.contact_id),
        (Thread.shipment_id, where.shipment_id),
        (Thread.primary_channel, where.channel),
        (Thread.type, where.type),
        (Thread.priority, where.priority),
        (Thread.team_id, where.team_id),
    ):
        if value is not None:
            query = query.where(column == value)
    snoozed = Thread.snoozed_until.is_not(None) & (Thread.snoozed_until > func.now())
    query = query.where(snoozed if where.snoozed else ~snoozed)
    if where.sla_status:
        query = query.where(Thread.sla_status.in_(where.sla_status))
    if where.intent:
        query = query.where(Thread.intent.in_(where.intent))
    if where.sentiment:
        query = query.where(Thread.sentiment.in_(where.sentiment))
    if where.tag:
        query = query.where(Thread.tags.contains([where.tag.strip().lower()]))
    if where.updated_since is not None:
        query = query.where(Thread.updated_at >= where.updated_since)
    if where.search:
        found = search_condition(viewer.organization_id, where.search)
        if found is not None:
            query = query.where(found)
    return query


# -- the inbox search ------------------------------------------------------------------

_SEARCH_MAX_WORDS = 8
_SEARCH_MAX_WORD = 64  # characters of a word that count; a longer one is matched by its start
_SEARCH_MAX_TEXT = 256  # characters of the text matched as typed
_SEARCH_WORD = re.compile(r"[^\W_]+")


def search_tsquery(text: str) -> ColumnElement[Any] | None:
    """What a search box's text matches, or None when it has no word: every word as a prefix (`contain` finds
    "container", `MSCU12` the container MSCU1234567, `maeu 123` the BL MAEU-123456; a word of one character only as
    itself), or the text as written (`plainto_tsquery`: "acme.com", "BK-2026-001" as PostgreSQL's parser reads them
    in subjects and bodies).

    The prefix query is built from letter and digit runs only, so nothing the user types is read as tsquery syntax;
    the text as written goes to plainto_tsquery, which has none."""
    words = [word[:_SEARCH_MAX_WORD].lower() for word in _SEARCH_WORD.findall(text)][:_SEARCH_MAX_WORDS]
    if not words:
        return None
    prefixes = func.to_tsquery("simple", " & ".join(f"'{word}':*" if len(word) > 1 else f"'{word}'" for word in words))
    return prefixes.op("||")(func.plainto_tsquery("simple", text[:_SEARCH_MAX_TEXT]))


_UUID = UUID(as_uuid=True)  # types made once: one made per statement has its cache key worked out every time
_UUIDS = ARRAY(_UUID)


def search_condition(organization_id: uuid.UUID, text: str) -> ColumnElement[bool] | None:
    """Whether a thread of the organization matches `text` (`search_tsquery`) by its subject or reference, a
    message, a note, or its shipment, customer or contact; None when the text has no word.

    The matching thread ids are found first, one GIN index scan per document (migration 0013), each within the
    organization, and collected into an array that the thread filter compares with (`id = ANY(...)`, an index
    condition on the primary key): an uncorrelated subquery that PostgreSQL runs once, whatever the plan. (As a
    semi-join, `id IN (...)`, a generic plan that expected few threads re-ran it for every thread of the inbox.)"""
    tsquery = search_tsquery(text)
    if tsquery is None:
        return None
    thread = aliased(Thread)
    organization = bindparam("search_organization_id", organization_id, type_=_UUID)

    def linked(model: type[Shipment | Customer | Contact], key: Any) -> Select[Any]:
        return (
            select(thread.id)
            .join(model, model.id == key)
            .where(
                model.organization_id == organization,
                thread.organization_id == organization,
                model.search.op("@@")(tsquery),
            )
        )

    matches = union(
        select(thread.id).where(thread.organization_id == organization, thread.search.op("@@")(tsquery)),
        select(Message.thread_id).where(Message.organization_id == organization, Message.search.op("@@")(tsquery)),
        select(Note.thread_id).where(
            Note.organization_id == organization, Note.deleted_at.is_(None), Note.search.op("@@")(tsquery)
        ),
        linked(Shipment, thread.shipment_id),
        linked(Customer, thread.customer_id),
        linked(Contact, thread.contact_id),
    ).cte()  # one WITH query where a statement reads the inbox twice (the compiled page and its totalCount)
    found = cast(select(func.array_agg(matches.c.id)).scalar_subquery(), _UUIDS)
    return Thread.id == any_(found)  # ANY of the array; `= ANY (SELECT ...)` would compare with each row


async def thread_by_reference(ctx: Context, reference: str) -> Thread | None:
    """A thread by its reference (BX-2026-0042, any case), or None."""
    ctx.require(Permission.READ)
    return await ctx.db.scalar(select(Thread).where(Thread.reference == reference.strip().upper()))


async def shipment_threads_page(
    ctx: Context, shipment_id: uuid.UUID, *, first: int | None, after: str | None
) -> Page[Thread]:
    """The threads about a shipment, most recent activity first."""
    ctx.require(Permission.READ)
    query = select(Thread).where(Thread.shipment_id == shipment_id)
    keys = (Thread.last_activity_at, Thread.id)
    return await paginate(ctx.db, query, keys, first=first, after=after, descending=True)
