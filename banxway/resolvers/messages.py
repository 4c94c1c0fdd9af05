"""Sending a message on a thread (`message_send`): validation, the collision guard, idempotency, attachments; and
scheduled sends (`message_update_scheduled`, `message_cancel_scheduled`, the timer's `release_scheduled`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from banxway import events
from banxway.auth import Permission
from banxway.db.models import Attachment, ContactIdentity, EmailAccount, Message, Thread
from banxway.db.models import Event as EventRow
from banxway.enums import (
    Channel,
    MessageStatus,
    ThreadStatus,
)
from banxway.errors import DomainError
from banxway.events import MessageAdded, ThreadUpdated
from banxway.integrations.messaging import sms
from banxway.resolvers import sla
from banxway.resolvers import validation as v
from banxway.resolvers.attachments import FileUpload, prepare_uploads
from banxway.resolvers.common import apply_changes, get_or_error
from banxway.resolvers.integrations import require_configured
from banxway.resolvers.meta import meta_outbound
from banxway.resolvers.meta_accounts import META_CHANNELS
from banxway.resolvers.outbound import (
    MEDIA_CHANNELS,
    add_outbound,
    check_media,
    open_thread,
    prepare_outbound,
    require_body,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context, SystemContext


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
    files: list[FileUpload] | None = None,
    idempotency_key: str | None = None,
    based_on_cursor: str | None = None,
    force: bool = False,
    template: Any = None,
    send_at: datetime | None = None,
    message_tag: str | None = None,
) -> Message:
    """Store an outbound message: QUEUED for delivery on its channel, or SENT at once when INTERNAL; with
    `send_at`, SCHEDULED until then (`release_scheduled` queues it; `message_cancel_scheduled` cancels it).

    WhatsApp and SMS: the number it leaves from, SMS segments, and (WhatsApp) the 24-hour customer-care
    window, outside of which only an approved `template` (a messaging.TemplateChoice) may be sent.

    Attachments (EMAIL): `attachment_ids` of files uploaded before, and `files` uploaded with the send (multipart
    request), stored as `attachment_upload` stores them but in the send's transaction: a bad file is INVALID or
    TOO_LARGE naming `files.<index>`, and a send that fails leaves no attachment row.

    Collision guard: with `based_on_cursor` (the cursor of the last event the composer saw), a message
    added to the thread since by someone else fails with THREAD_CHANGED, unless `force`."""
    viewer = ctx.require(Permission.NOTE_ADD if channel == Channel.INTERNAL else Permission.MESSAGE_SEND)
    if template is None:
        require_body(body)
    elif channel != Channel.WHATSAPP:
        raise DomainError("INVALID", "Templates are for WhatsApp messages.", "template")
    if channel == Channel.VOICE:
        raise DomainError("INVALID", "A call is started with callStart, not sent as a message.", "channel")
    v.body_for_channel(channel, body)
    if html is not None:
        v.body_for_channel(channel, html, "html")
    if subject is not None and len(subject) > v.EMAIL_SUBJECT_LIMIT:
        raise DomainError("TOO_LONG", f"The subject may have at most {v.EMAIL_SUBJECT_LIMIT} characters.", "subject")
    if attachment_ids and channel != Channel.EMAIL and channel not in MEDIA_CHANNELS:
        raise DomainError("INVALID", f"Attachments cannot be sent on {channel.name} yet.", "attachmentIds")
    if files and channel != Channel.EMAIL:
        raise DomainError("INVALID", f"Attachments cannot be sent on {channel.name} yet.", "files")
    if send_at is not None:
        _check_send_at(channel, send_at)
    key = v.text(idempotency_key, "idempotencyKey", max_length=100)
    based_on = _decode_based_on(based_on_cursor) if based_on_cursor and not force else None
    if key is not None:
        existing = await ctx.db.scalar(select(Message).where(Message.idempotency_key == key))
        if existing is not None:
            return _same_request(existing, thread_id)
    if channel in (Channel.EMAIL, Channel.WHATSAPP, Channel.SMS):
        await require_configured(ctx, channel)  # CHANNEL_NOT_CONFIGURED now, not a FAILED message later
    uploaded = await prepare_uploads(ctx, [(f, f"files.{i}") for i, f in enumerate(files)]) if files else []
    try:
        async with ctx.transaction() as session:
            thread = await open_thread(session, thread_id)
            if based_on is not None:
                await _check_unchanged(session, thread, based_on, viewer.user_id)
            recipients = await _recipients(session, thread, channel, to)
            account_id = await _email_account(session, thread) if channel == Channel.EMAIL else None
            provider_fields: dict[str, Any] = {}
            if channel in (Channel.WHATSAPP, Channel.SMS):
                provider_fields = await prepare_outbound(
                    session, thread, channel, viewer.user_id, body, template, recipients[0]
                )
            elif channel in META_CHANNELS:  # Messenger/Instagram: the 24-hour window, message tags
                provider_fields = await meta_outbound(session, channel, body, message_tag, recipients[0])
            if attachment_ids and channel in MEDIA_CHANNELS:  # the provider's limits, before anything is stored
                await check_media(session, channel, attachment_ids, provider_fields, recipients[0])
            now = datetime.now(UTC)
            if send_at is not None:
                status = MessageStatus.SCHEDULED
            else:
                status = MessageStatus.SENT if channel == Channel.INTERNAL else MessageStatus.QUEUED
            message = await add_outbound(
                ctx,
                session,
                thread,
                **{
                    "channel": channel,
                    "status": status,
                    "send_at": send_at,
                    "body": body,
                    "subject": subject.strip() if subject else None,
                    "html": html,
                    "recipients": recipients,
                    "contact_id": thread.contact_id if channel != Channel.INTERNAL else None,
                    "idempotency_key": key,
                    "email_account_id": account_id,
                    **provider_fields,
                },
                attach=lambda message: _attach(session, message, attachment_ids or [], uploaded),
            )
            if send_at is None:
                thread.last_message_at = message.created_at
                if channel != Channel.INTERNAL:
                    await _went_out(session, thread, now, viewer.user_id)
    except IntegrityError:  # the same idempotency key committed concurrently
        existing = await ctx.db.scalar(select(Message).where(Message.idempotency_key == key))
        if existing is None:
            raise
        return _same_request(existing, thread_id)
    return message


async def _went_out(session: AsyncSession, thread: Thread, at: datetime, actor_id: uuid.UUID | None) -> None:
    """A reply to the customer went out (sent now, or a scheduled one released): the thread's first response,
    NEW -> OPEN, and the SLA's response target."""
    if thread.first_response_at is None:
        thread.first_response_at = at
    if thread.status == ThreadStatus.NEW:
        thread.status = ThreadStatus.OPEN
        events.record(
            session,
            ThreadUpdated(thread_id=thread.id, changed=["status"], status="OPEN", previous_status="NEW"),
            organization_id=thread.organization_id,
            actor_id=actor_id,
        )
    await sla.agent_replied(session, thread, at)


# -- scheduled sends ----------------------------------------------------------------------------------------

SCHEDULE_LIMIT = timedelta(days=366)


def _check_send_at(channel: Channel, send_at: datetime) -> None:
    if channel == Channel.INTERNAL:
        raise DomainError("INVALID", "Internal messages are not scheduled.", "sendAt")
    if send_at.tzinfo is None:
        raise DomainError("INVALID", "Give a time zone (e.g. 2026-12-04T09:00:00+05:30).", "sendAt")
    now = datetime.now(UTC)
    if not now < send_at <= now + SCHEDULE_LIMIT:
        raise DomainError("INVALID", "Schedule a send in the future, within a year.", "sendAt")


async def _scheduled(session: AsyncSession, message_id: uuid.UUID | None, code: str, verb: str) -> Message:
    """The message, locked, while it is SCHEDULED; `code` (naming `messageId`) once it is not."""
    message = await get_or_error(session, Message, message_id, "messageId", lock=True, label="message")
    if message.status != MessageStatus.SCHEDULED:
        raise DomainError(
            code, f"Only a scheduled message can be {verb}; this one is {message.status.name}.", "messageId"
        )
    return message


async def message_cancel_scheduled(ctx: Context, message_id: uuid.UUID | None) -> Message:
    """Cancel a scheduled message that has not gone yet (CANCELLED, kept in the thread)."""
    ctx.require(Permission.MESSAGE_SEND)
    async with ctx.transaction() as session:
        message = await _scheduled(session, message_id, "INVALID_TRANSITION", "cancelled")
        message.status = MessageStatus.CANCELLED
        ctx.record(
            session,
            events.MessageStatusChanged(
                thread_id=message.thread_id, message_id=message.id, status=MessageStatus.CANCELLED.name
            ),
        )
    return message


async def message_update_scheduled(
    ctx: Context,
    message_id: uuid.UUID | None,
    *,
    body: str | None = None,
    subject: str | None = None,
    html: str | None = None,
    send_at: datetime | None = None,
) -> Message:
    """Edit a scheduled message that has not gone yet: its text, and when it goes. Allowed to whoever may cancel it
    (MESSAGE_SEND, as `message_cancel_scheduled`). NOT_SCHEDULED once it left SCHEDULED (released, cancelled).

    The message's row is locked as `release_scheduled` locks it: a release at the same moment either goes first
    (and this edit is NOT_SCHEDULED) or waits for this one and sends the new text — never the old one. Records
    MESSAGE_UPDATED with what changed; a new `send_at` re-arms the timer (its consequence, `tasks.consequences`),
    and a timer already set for the old time finds the message not due and does nothing."""
    ctx.require(Permission.MESSAGE_SEND)
    async with ctx.transaction() as session:
        message = await _scheduled(session, message_id, "NOT_SCHEDULED", "edited")
        changes: dict[str, Any] = {}
        if body is not None:
            template = await session.scalar(select(Message.headers["template"]).where(Message.id == message.id))
            if template:
                raise DomainError(
                    "INVALID", "A template message's text is its template's: cancel it and schedule another.", "body"
                )
            require_body(body)
            changes["body"] = v.body_for_channel(message.channel, body)
            if message.channel == Channel.SMS:
                changes["segments"] = sms.segments(body)
            if html is None and message.html is not None and body != message.body:
                raise DomainError(
                    "INVALID",
                    "This message has an HTML part: give `html` with the new `body`, to say the same.",
                    "html",
                )
        if html is not None:
            changes["html"] = v.body_for_channel(message.channel, html, "html") or None
        if subject is not None:
            if len(subject) > v.EMAIL_SUBJECT_LIMIT:
                raise DomainError(
                    "TOO_LONG", f"The subject may have at most {v.EMAIL_SUBJECT_LIMIT} characters.", "subject"
                )
            changes["subject"] = subject.strip() or None
        if send_at is not None:
            _check_send_at(message.channel, send_at)
            changes["send_at"] = send_at
        changed = apply_changes(message, changes)
        if changed:
            ctx.record(
                session, events.MessageUpdated(thread_id=message.thread_id, message_id=message.id, changed=changed)
            )
    return message


async def scheduled_due(
    ctx: SystemContext, within: timedelta, message_id: uuid.UUID | None = None
) -> list[tuple[uuid.UUID, datetime]]:
    """(message id, send_at) of the scheduled messages due before now + `within`, soonest first (only
    `message_id`'s when given: a message whose time was moved)."""
    horizon = datetime.now(UTC) + within
    query = select(Message.id, Message.send_at).where(
        Message.send_at <= horizon, Message.status == MessageStatus.SCHEDULED
    )
    if message_id is not None:
        query = query.where(Message.id == message_id)
    async with ctx.session() as session:
        rows = await session.execute(query.order_by(Message.send_at).limit(10_000))
        return [(row[0], row[1]) for row in rows]


async def release_scheduled(ctx: SystemContext, message_id: uuid.UUID) -> bool:
    """The timer of a scheduled send: QUEUED once its time came (MESSAGE_STATUS_CHANGED `released`, whose
    consequence delivers it), as if sent by its author now. Idempotent; False when nothing changed."""
    async with ctx.session() as probe:
        organization_id = await probe.scalar(select(Message.organization_id).where(Message.id == message_id))
    if organization_id is None:
        return False
    now = datetime.now(UTC)
    async with ctx.for_organization(organization_id).transaction() as session:
        message = await session.scalar(select(Message).where(Message.id == message_id).with_for_update())
        if message is None or message.status != MessageStatus.SCHEDULED or (message.send_at or now) > now:
            return False
        thread = await session.scalar(select(Thread).where(Thread.id == message.thread_id).with_for_update())
        assert thread is not None
        message.status = MessageStatus.QUEUED
        events.record(
            session,
            events.MessageStatusChanged(
                thread_id=thread.id, message_id=message.id, status=MessageStatus.QUEUED.name, released=True
            ),
            organization_id=organization_id,
            actor_id=message.author_id,
        )
        thread.last_message_at = now
        await _went_out(session, thread, now, message.author_id)
    return True


async def _attach(
    session: AsyncSession, message: Message, attachment_ids: list[uuid.UUID | None], uploaded: list[Attachment]
) -> None:
    """Link uploaded files to the message; a file of another message (a forward) is linked as a copy. `uploaded`:
    new rows of files sent with the message (`prepare_uploads`)."""
    for row in uploaded:
        row.message_id = message.id
        session.add(row)
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


def _same_request(message: Message, thread_id: uuid.UUID | None) -> Message:
    if message.thread_id != thread_id:
        raise DomainError("INVALID", "This idempotency key was used for a message on another thread.", "idempotencyKey")
    return message
