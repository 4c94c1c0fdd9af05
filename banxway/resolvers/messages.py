"""Messages, notes and actions on a thread."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from banxway import events
from banxway.auth import Permission, has_permission
from banxway.db.models import Action, Attachment, ContactIdentity, EmailAccount, Message, Note, Thread, User
from banxway.db.models import Event as EventRow
from banxway.enums import (
    APPROVAL_ACTION_TYPES,
    ActionStatus,
    ActionType,
    Channel,
    Direction,
    MessageStatus,
    NotificationType,
    ThreadStatus,
)
from banxway.errors import DomainError, PermissionDenied
from banxway.events import ActionCreated, ActionUpdated, MessageAdded, NoteAdded, ThreadUpdated
from banxway.resolvers import validation as v
from banxway.resolvers.common import active_user, apply_changes, get_or_error
from banxway.resolvers.notifications import notify

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context

_MENTION = re.compile(r"(?<![\w.])@([\w.+-]+@[\w-]+(?:\.[\w-]+)+)")


async def _open_thread(session: AsyncSession, thread_id: uuid.UUID | None) -> Thread:
    thread = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
    if thread.status == ThreadStatus.ARCHIVED:
        raise DomainError("INVALID_TRANSITION", "The thread is archived; reopen it first.", "threadId")
    return thread


async def _recipients(session: AsyncSession, thread: Thread, channel: Channel, to: list[str] | None) -> list[str]:
    if channel == Channel.INTERNAL:
        return []
    if to:
        return [v.identity_address(channel, address, f"to.{i}") for i, address in enumerate(to)]
    if thread.contact_id is not None:
        address = await session.scalar(
            select(ContactIdentity.address)
            .where(ContactIdentity.contact_id == thread.contact_id, ContactIdentity.channel == channel)
            .order_by(ContactIdentity.created_at)
            .limit(1)
        )
        if address:
            return [address]
    raise DomainError(
        "INVALID", f"No {channel.name} recipient: give `to`, or link a contact with such an address.", "to"
    )


async def message_send(
    ctx: Context,
    *,
    thread_id: uuid.UUID | None,
    channel: Channel,
    body: str,
    subject: str | None = None,
    html: str | None = None,
    to: list[str] | None = None,
    attachment_ids: list[uuid.UUID] | None = None,
    idempotency_key: str | None = None,
    based_on_cursor: str | None = None,
    force: bool = False,
    template: Any = None,
) -> Message:
    """Store an outbound message: QUEUED for delivery on its channel, or SENT at once when INTERNAL.

    WhatsApp and SMS: the number it leaves from, SMS segments, and (WhatsApp) the 24-hour customer-care
    window, outside of which only an approved `template` (a messaging.TemplateChoice) may be sent.

    Collision guard: with `based_on_cursor` (the cursor of the last event the composer saw), a message
    added to the thread since by someone else fails with THREAD_CHANGED, unless `force`."""
    viewer = ctx.require(Permission.NOTE_ADD if channel == Channel.INTERNAL else Permission.MESSAGE_SEND)
    if template is None and (not body or not body.strip()):
        raise DomainError("INVALID", "The message body must not be empty.", "body")
    if channel == Channel.VOICE:
        raise DomainError("INVALID", "A call is started with callStart, not sent as a message.", "channel")
    v.body_for_channel(channel, body)
    if html is not None:
        v.body_for_channel(channel, html, "html")
    if subject is not None and len(subject) > v.EMAIL_SUBJECT_LIMIT:
        raise DomainError("TOO_LONG", f"The subject may have at most {v.EMAIL_SUBJECT_LIMIT} characters.", "subject")
    if attachment_ids and channel != Channel.EMAIL:
        raise DomainError("INVALID", f"Attachments cannot be sent on {channel.name} yet.", "attachmentIds")
    key = v.text(idempotency_key, "idempotencyKey", max_length=100)
    based_on = _decode_based_on(based_on_cursor) if based_on_cursor and not force else None
    if key is not None:
        existing = await ctx.db.scalar(select(Message).where(Message.idempotency_key == key))
        if existing is not None:
            return _same_request(existing, thread_id)
    try:
        async with ctx.transaction() as session:
            thread = await _open_thread(session, thread_id)
            if based_on is not None:
                await _check_unchanged(session, thread, based_on, viewer.user_id)
            recipients = await _recipients(session, thread, channel, to)
            account_id = await _email_account(session, thread) if channel == Channel.EMAIL else None
            provider_fields: dict[str, Any] = {}
            if channel in (Channel.WHATSAPP, Channel.SMS):
                from banxway.resolvers.messaging import prepare_outbound

                provider_fields = await prepare_outbound(
                    session, thread, channel, viewer.user_id, body, template, recipients[0]
                )
            elif template is not None:
                raise DomainError("INVALID", "Templates are for WhatsApp messages.", "template")
            now = datetime.now(UTC)
            message = Message(
                organization_id=viewer.organization_id,
                thread_id=thread.id,
                channel=channel,
                direction=Direction.OUTBOUND,
                status=MessageStatus.SENT if channel == Channel.INTERNAL else MessageStatus.QUEUED,
                body=body,
                subject=subject.strip() if subject else None,
                html=html,
                sender=viewer.email,
                recipients=recipients,
                author_id=viewer.user_id,
                contact_id=thread.contact_id if channel != Channel.INTERNAL else None,
                idempotency_key=key,
                email_account_id=account_id,
            )
            for name, value in provider_fields.items():
                setattr(message, name, value)
            session.add(message)
            await session.flush()
            await _attach(session, message, attachment_ids or [])
            thread.last_message_at = message.created_at
            thread.last_activity_at = message.created_at
            changed = []
            if channel != Channel.INTERNAL:
                if thread.first_response_at is None:
                    thread.first_response_at = now
                if thread.status == ThreadStatus.NEW:
                    thread.status = ThreadStatus.OPEN
                    changed.append("status")
            ctx.record(session, MessageAdded(thread_id=thread.id, message_id=message.id))
            if changed:
                ctx.record(session, ThreadUpdated(thread_id=thread.id, changed=changed))
    except IntegrityError:  # the same idempotency key committed concurrently
        existing = await ctx.db.scalar(select(Message).where(Message.idempotency_key == key))
        if existing is None:
            raise
        return _same_request(existing, thread_id)
    if message.channel in (Channel.EMAIL, Channel.WHATSAPP, Channel.SMS):
        from banxway.tasks import enqueue
        from banxway.tasks.actors import deliver_message

        await enqueue(deliver_message, str(message.id))
    return message


async def _attach(session: AsyncSession, message: Message, attachment_ids: list[uuid.UUID | None]) -> None:
    """Link uploaded files to the message; a file of another message (a forward) is linked as a copy."""
    for index, attachment_id in enumerate(attachment_ids):
        found = await session.get(Attachment, attachment_id) if attachment_id else None
        if found is None:
            raise DomainError("NOT_FOUND", "No such attachment.", f"attachmentIds.{index}")
        if found.message_id is None:
            found.message_id = message.id
        else:
            session.add(
                Attachment(
                    organization_id=message.organization_id,
                    message_id=message.id,
                    filename=found.filename,
                    content_type=found.content_type,
                    size=found.size,
                    sha256=found.sha256,
                )
            )
    await session.flush()


async def _email_account(session: AsyncSession, thread: Thread) -> uuid.UUID | None:
    """The account to send from: the one the thread's mail last came in on, else the first active one.
    None when there is none: the message is queued and its delivery fails saying so."""
    used = await session.scalar(
        select(Message.email_account_id)
        .join(EmailAccount, EmailAccount.id == Message.email_account_id)
        .where(Message.thread_id == thread.id, EmailAccount.active.is_(True))
        .order_by(Message.created_at.desc())
        .limit(1)
    )
    if used is not None:
        return used
    return await session.scalar(
        select(EmailAccount.id).where(EmailAccount.active.is_(True)).order_by(EmailAccount.created_at).limit(1)
    )


def _decode_based_on(cursor: str) -> int:
    try:
        return events.decode_cursor(cursor)[0]
    except events.BadCursor as exc:
        raise DomainError("INVALID", str(exc), "basedOnCursor") from None


async def _check_unchanged(session: AsyncSession, thread: Thread, seq: int, viewer_id: uuid.UUID) -> None:
    """THREAD_CHANGED if someone else added a message to the (locked) thread after event `seq`; an event
    committed but not yet published has no seq yet and counts as newer."""
    newer = await session.scalar(
        select(func.count())
        .select_from(EventRow)
        .where(
            EventRow.thread_id == thread.id,
            EventRow.type == MessageAdded.type,
            or_(EventRow.seq > seq, EventRow.seq.is_(None)),
            or_(EventRow.actor_id.is_(None), EventRow.actor_id != viewer_id),
        )
    )
    if newer:
        raise DomainError(
            "THREAD_CHANGED",
            f"{newer} new message{'s' if newer > 1 else ''} arrived in {thread.reference} since you started "
            "writing; read them, or send with `force: true`.",
            "basedOnCursor",
        )


_REOPEN_ON_REPLY = {ThreadStatus.PENDING, ThreadStatus.RESOLVED, ThreadStatus.CLOSED}


async def message_receive(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    thread_id: uuid.UUID,
    channel: Channel,
    body: str,
    sender: str,
    contact_id: uuid.UUID | None = None,
    subject: str | None = None,
    html: str | None = None,
    provider_message_id: str | None = None,
    headers: dict[str, Any] | None = None,
    received_at: datetime | None = None,
    full_body: str | None = None,
    email_account_id: uuid.UUID | None = None,
    integration_id: uuid.UUID | None = None,
    recipients: list[str] | None = None,
) -> Message:
    """Store an inbound message from a customer (channels call this inside their transaction).

    A reply to a PENDING, RESOLVED or CLOSED thread reopens it; an ARCHIVED thread stays archived.
    """
    thread = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
    message = Message(
        organization_id=organization_id,
        thread_id=thread.id,
        channel=channel,
        direction=Direction.INBOUND,
        status=MessageStatus.RECEIVED,
        body=body,
        subject=subject,
        html=html,
        sender=sender,
        contact_id=contact_id or thread.contact_id,
        provider_message_id=provider_message_id,
        headers=headers or {},
        full_body=full_body,
        email_account_id=email_account_id,
        integration_id=integration_id,
        recipients=recipients or [],
    )
    if received_at is not None:
        message.created_at = received_at
    session.add(message)
    await session.flush()
    thread.last_message_at = max(filter(None, [thread.last_message_at, message.created_at]))
    thread.last_activity_at = max(thread.last_activity_at, message.created_at)
    events.record(
        session,
        MessageAdded(thread_id=thread.id, message_id=message.id),
        organization_id=organization_id,
        actor_id=None,
    )
    if thread.status in _REOPEN_ON_REPLY:
        thread.status = ThreadStatus.OPEN
        events.record(
            session,
            ThreadUpdated(thread_id=thread.id, changed=["status"]),
            organization_id=organization_id,
            actor_id=None,
        )
    await notify(
        session,
        thread,
        [thread.assignee_id],
        NotificationType.INBOUND_MESSAGE,
        f"{sender} on {thread.reference}: {body}",
        actor_id=None,
        message_id=message.id,
    )
    return message


def _same_request(message: Message, thread_id: uuid.UUID | None) -> Message:
    if message.thread_id != thread_id:
        raise DomainError("INVALID", "This idempotency key was used for a message on another thread.", "idempotencyKey")
    return message


async def note_add(
    ctx: Context, *, thread_id: uuid.UUID | None, body: str, mentioned_user_ids: list[uuid.UUID] | None = None
) -> Note:
    """An internal note. Mentions: the given user ids, plus every `@email` of a colleague in the body."""
    viewer = ctx.require(Permission.NOTE_ADD)
    clean = v.text(body, "body", max_length=100_000, required=True)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
        mentioned: list[uuid.UUID] = []
        for index, user_id in enumerate(mentioned_user_ids or []):
            user = await active_user(session, user_id, f"mentionedUserIds.{index}")
            if user.id not in mentioned:
                mentioned.append(user.id)
        emails = {match.lower() for match in _MENTION.findall(clean or "")}
        if emails:
            for user_id in await session.scalars(select(User.id).where(User.email.in_(emails), User.active.is_(True))):
                if user_id not in mentioned:
                    mentioned.append(user_id)
        note = Note(
            organization_id=viewer.organization_id,
            thread_id=thread.id,
            author_id=viewer.user_id,
            body=clean,
            mentioned_user_ids=mentioned,
        )
        session.add(note)
        await session.flush()
        ctx.record(session, NoteAdded(thread_id=thread.id, note_id=note.id, mentioned_user_ids=mentioned))
        await notify(
            session,
            thread,
            mentioned,
            NotificationType.MENTION,
            f"{viewer.name} mentioned you on {thread.reference}: {clean}",
            actor_id=viewer.user_id,
            note_id=note.id,
        )
    return note


# -- actions -----------------------------------------------------------------------------

_ACTION_TRANSITIONS = {
    ActionStatus.OPEN: {ActionStatus.IN_PROGRESS, ActionStatus.DONE, ActionStatus.CANCELLED},
    ActionStatus.IN_PROGRESS: {ActionStatus.OPEN, ActionStatus.DONE, ActionStatus.CANCELLED},
    ActionStatus.DONE: {ActionStatus.OPEN},
    ActionStatus.CANCELLED: {ActionStatus.OPEN},
}


async def action_create(
    ctx: Context,
    *,
    thread_id: uuid.UUID | None,
    title: str,
    type: ActionType | None = None,
    due_at: datetime | None = None,
    assignee_id: uuid.UUID | None = None,
) -> Action:
    viewer = ctx.require(Permission.ACTION_MANAGE)
    clean_title = v.text(title, "title", max_length=300, required=True)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", label="thread")
        if assignee_id is not None:
            await active_user(session, assignee_id, "assigneeId")
        action = Action(
            organization_id=viewer.organization_id,
            thread_id=thread.id,
            title=clean_title,
            type=type or ActionType.TASK,
            status=ActionStatus.OPEN,
            due_at=due_at,
            assignee_id=assignee_id,
            created_by_id=viewer.user_id,
        )
        session.add(action)
        await session.flush()
        ctx.record(session, ActionCreated(thread_id=thread.id, action_id=action.id))
    return action


async def action_update(ctx: Context, action_id: uuid.UUID | None, changes: dict[str, Any]) -> Action:
    viewer = ctx.require(Permission.ACTION_MANAGE)
    values: dict[str, Any] = {}
    if "title" in changes:
        values["title"] = v.text(changes["title"], "title", max_length=300, required=True)
    for name in ("type", "status"):
        if name in changes:
            if changes[name] is None:
                raise DomainError("INVALID", f"{name} cannot be cleared.", name)
            values[name] = changes[name]
    if "due_at" in changes:
        values["due_at"] = changes["due_at"]
    async with ctx.transaction() as session:
        action = await get_or_error(session, Action, action_id, "id", lock=True)
        if "assignee_id" in changes:
            if changes["assignee_id"] is not None:
                await active_user(session, changes["assignee_id"], "assigneeId")
            values["assignee_id"] = changes["assignee_id"]
        new_status = values.get("status", action.status)
        if new_status != action.status and new_status not in _ACTION_TRANSITIONS[action.status]:
            raise DomainError(
                "INVALID_TRANSITION", f"An action cannot go from {action.status.name} to {new_status.name}.", "status"
            )
        if (
            new_status == ActionStatus.DONE
            and action.status != ActionStatus.DONE
            and values.get("type", action.type) in APPROVAL_ACTION_TYPES
            and not has_permission(viewer.role, Permission.ACTION_APPROVE)
        ):
            raise PermissionDenied(f"Role {viewer.role.name} may not {Permission.ACTION_APPROVE.value}")
        changed = apply_changes(action, values)
        if "status" in changed:
            done = action.status == ActionStatus.DONE
            action.completed_at = datetime.now(UTC) if done else None
            action.completed_by_id = viewer.user_id if done else None
        if changed:
            ctx.record(session, ActionUpdated(thread_id=action.thread_id, action_id=action.id, changed=changed))
    return action
