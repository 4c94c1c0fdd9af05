"""WhatsApp, SMS and voice at run time: choosing the number an outbound message leaves from, the WhatsApp
customer-care window and templates, calls (`call_start`), and what the providers' webhooks report —
inbound messages, delivery statuses, call updates — stored through the same write paths as everything else.

Webhook work runs in a tenant session of the integration's organization. Each provider id is handled under a
transaction-scoped advisory lock (`lock_provider_id`), so that concurrent deliveries of one callback store
one message, and a status racing the send's reply is either applied or kept (`PendingStatus`) — never lost.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import phonenumbers
from sqlalchemy import delete, exists, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from banxway import events
from banxway.auth import Permission
from banxway.channels.delivery import merge_headers, set_status
from banxway.channels.messaging import sms
from banxway.channels.messaging.providers import CallUpdate, Inbound, StatusUpdate
from banxway.db.models import Contact, ContactIdentity, Integration, Message, PendingStatus, PhoneNumber, Thread
from banxway.enums import Channel, Direction, IntegrationType, MessageStatus, ThreadStatus
from banxway.errors import DomainError
from banxway.events import MessageAdded, MessageUpdated
from banxway.resolvers import validation as v
from banxway.resolvers.common import get_or_error
from banxway.resolvers.inbound import contact_for_address, new_inbound_thread
from banxway.resolvers.integrations import render_template, template_parameter_count
from banxway.resolvers.messages import message_receive

if TYPE_CHECKING:
    from banxway.context import Context

CUSTOMER_CARE_WINDOW = timedelta(hours=24)

# Delivery statuses only move forward. A delivery or read receipt is proof the customer got the message, so
# it outranks a failure report; a failure outranks "sent". Every order of callbacks ends in the same status.
STATUS_RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.FAILED: 3,
    MessageStatus.DELIVERED: 4,
    MessageStatus.READ: 5,
}


# -- outbound ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    integration_id: uuid.UUID | None
    number: str | None


async def outbound_route(session: AsyncSession, thread: Thread, channel: Channel, user_id: uuid.UUID) -> Route:
    """The number a message on `channel` leaves from: the one the customer last wrote to on this thread, else
    the sender's own number, else the organization's first number for the channel. No number: Route(None, None),
    and the delivery fails saying so (as email does without an account)."""
    last_to = await session.scalar(
        select(Message.recipients[1])
        .where(
            Message.thread_id == thread.id,
            Message.channel == channel,
            Message.direction == Direction.INBOUND,
            Message.integration_id.is_not(None),
        )
        .order_by(Message.created_at.desc())
        .limit(1)
    )
    candidates = (
        select(PhoneNumber.integration_id, PhoneNumber.number)
        .join(Integration, Integration.id == PhoneNumber.integration_id)
        .where(Integration.active.is_(True), PhoneNumber.channels.contains([channel.value]))
    )
    if last_to:
        row = (await session.execute(candidates.where(PhoneNumber.number == last_to))).first()
        if row is not None:
            return Route(row[0], row[1])
    row = (
        await session.execute(
            candidates.order_by(
                (PhoneNumber.assignee_id == user_id).desc().nulls_last(), PhoneNumber.created_at, PhoneNumber.number
            )
        )
    ).first()
    return Route(row[0], row[1]) if row is not None else Route(None, None)


async def window_closes_at(session: AsyncSession, number: str) -> datetime | None:
    """When the WhatsApp customer-care window with `number` closes: 24 h after its last WhatsApp message to us."""
    last = await session.scalar(
        select(func.max(Message.created_at)).where(
            Message.sender == number,
            Message.direction == Direction.INBOUND,
            Message.channel == Channel.WHATSAPP,
        )
    )
    return last + CUSTOMER_CARE_WINDOW if last is not None else None


@dataclass(frozen=True)
class TemplateChoice:
    name: str
    language: str
    parameters: list[str]


async def prepare_outbound(
    session: AsyncSession,
    thread: Thread,
    channel: Channel,
    user_id: uuid.UUID,
    body: str,
    template: TemplateChoice | None,
    recipient: str,
) -> dict[str, Any]:
    """Message columns for an outbound WhatsApp/SMS message: route, segments, template; WINDOW_CLOSED when a
    free-form WhatsApp message is sent outside the customer-care window."""
    values: dict[str, Any] = {}
    if template is not None:
        if channel != Channel.WHATSAPP:
            raise DomainError("INVALID", "Templates are for WhatsApp messages.", "template")
        definition = await _template(session, template)
        body = render_template(definition["body"], template.parameters)
        values["headers"] = {
            "template": {
                "name": definition["name"],
                "language": definition["language"],
                "parameters": template.parameters,
                "content_sid": definition.get("content_sid"),
            }
        }
    elif channel == Channel.WHATSAPP:
        closes = await window_closes_at(session, recipient)
        if closes is None or closes <= datetime.now(UTC):
            since = f"since {closes:%Y-%m-%d %H:%M} UTC" if closes else f"({recipient} has not written on WhatsApp)"
            raise DomainError(
                "WINDOW_CLOSED",
                f"The 24-hour WhatsApp window is closed {since}: send an approved template (whatsappTemplates).",
                "body",
            )
    if not body.strip():
        raise DomainError("INVALID", "The message body must not be empty.", "body")
    route = await outbound_route(session, thread, channel, user_id)
    values.update(body=body, integration_id=route.integration_id)
    if route.number:
        values["sender"] = route.number
    if channel == Channel.SMS:
        values["segments"] = sms.segments(body)
    return values


async def _template(session: AsyncSession, choice: TemplateChoice) -> dict[str, Any]:
    for templates in await session.scalars(select(Integration.whatsapp_templates).where(Integration.active.is_(True))):
        for definition in templates:
            if definition["name"] == choice.name and definition["language"] == choice.language:
                expected = template_parameter_count(definition["body"])
                if len(choice.parameters) != expected:
                    raise DomainError(
                        "INVALID",
                        f"Template {choice.name} takes {expected} parameters; {len(choice.parameters)} given.",
                        "template.parameters",
                    )
                for index, parameter in enumerate(choice.parameters):
                    v.text(parameter, f"template.parameters.{index}", max_length=1024, required=True)
                return definition
    raise DomainError("NOT_FOUND", f"No approved template {choice.name} ({choice.language}).", "template.name")


# -- calls ---------------------------------------------------------------------------------------------------


async def call_start(
    ctx: Context, *, thread_id: uuid.UUID | None, contact_id: uuid.UUID | None, agent_number: str | None
) -> Message:
    """Ring the agent's phone, then connect the contact (Exotel click-to-call, recorded); a VOICE message on the
    thread (a new one when only a contact is given) follows the call through its status callbacks."""
    viewer = ctx.require(Permission.MESSAGE_SEND)
    agent = v.phone(agent_number, "agentNumber")
    if agent is None:
        raise DomainError("INVALID", "Give agentNumber: the phone the agent takes the call on.", "agentNumber")
    if (thread_id is None) == (contact_id is None):
        raise DomainError("INVALID", "Give threadId or contactId (one of them).", "threadId")
    async with ctx.transaction() as session:
        if thread_id is not None:
            thread = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
            if thread.status == ThreadStatus.ARCHIVED:
                raise DomainError("INVALID_TRANSITION", "The thread is archived; reopen it first.", "threadId")
            if thread.contact_id is None:
                raise DomainError("INVALID", "The thread has no contact to call.", "threadId")
            contact = await get_or_error(session, Contact, thread.contact_id, "threadId", label="contact")
        else:
            contact = await get_or_error(session, Contact, contact_id, "contactId", label="contact")
            thread = await new_inbound_thread(
                session,
                viewer.organization_id,
                subject=f"Call with {contact.name}",
                channel=Channel.VOICE,
                contact=contact,
            )
        phone = await session.scalar(
            select(ContactIdentity.address)
            .where(
                ContactIdentity.contact_id == contact.id,
                ContactIdentity.channel.in_([Channel.VOICE, Channel.SMS, Channel.WHATSAPP]),
            )
            .order_by((ContactIdentity.channel == Channel.VOICE).desc(), ContactIdentity.created_at)
            .limit(1)
        )
        if phone is None:
            raise DomainError("INVALID", f"{contact.name} has no phone number.", "contactId")
        route = await outbound_route(session, thread, Channel.VOICE, viewer.user_id)
        integration = await session.get(Integration, route.integration_id) if route.integration_id else None
        if integration is None or integration.type != IntegrationType.EXOTEL:
            raise DomainError(
                "INVALID",
                "No number to call from: calls go through an Exotel integration with a VOICE number "
                "(integrationConfigure).",
                "agentNumber",
            )
        message = Message(
            organization_id=viewer.organization_id,
            thread_id=thread.id,
            channel=Channel.VOICE,
            direction=Direction.OUTBOUND,
            status=MessageStatus.QUEUED,
            body=f"Call to {contact.name} ({phone})",
            sender=route.number,
            recipients=[phone],
            author_id=viewer.user_id,
            contact_id=contact.id,
            integration_id=route.integration_id,
            headers={"agent_number": agent},
        )
        session.add(message)
        await session.flush()
        thread.last_activity_at = message.created_at
        ctx.record(session, MessageAdded(thread_id=thread.id, message_id=message.id))
    from banxway.tasks import enqueue
    from banxway.tasks.actors import deliver_message

    await enqueue(deliver_message, str(message.id))
    return message


# -- webhooks ------------------------------------------------------------------------------------------------


async def lock_provider_id(session: AsyncSession, integration_id: uuid.UUID, provider_id: str) -> None:
    """Serialise the work on one provider message id (until the transaction ends)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"{integration_id}:{provider_id}"}
    )


async def _by_provider_id(session: AsyncSession, integration_id: uuid.UUID, provider_id: str) -> Message | None:
    return await session.scalar(
        select(Message)
        .where(Message.integration_id == integration_id, Message.provider_message_id == provider_id)
        .with_for_update()
    )


async def _by_reference(
    session: AsyncSession, integration: Integration, reference: str, provider_id: str
) -> Message | None:
    """Our outbound message named by the id we sent along (Exotel echoes CustomField / custom_data), when its
    provider id is not stored yet (the send's reply never came, or is still being processed); it gets it."""
    try:
        message_id = uuid.UUID(reference)
    except ValueError:
        return None
    message = await session.scalar(
        select(Message)
        .where(
            Message.id == message_id,
            Message.integration_id == integration.id,
            Message.direction == Direction.OUTBOUND,
            Message.provider_message_id.is_(None),
        )
        .with_for_update()
    )
    if message is not None:
        message.provider_message_id = provider_id
    return message


async def receive(session: AsyncSession, integration: Integration, inbound: Inbound) -> tuple[Message, bool]:
    """Store an inbound WhatsApp/SMS message once: (message, whether it is new). The sender's contact by E.164
    number, their open thread on that channel or a new one; opens the WhatsApp customer-care window."""
    await lock_provider_id(session, integration.id, inbound.provider_id)
    existing = await _by_provider_id(session, integration.id, inbound.provider_id)
    if existing is not None:
        return existing, False
    region = "IN" if integration.type == IntegrationType.EXOTEL else None
    sender = normalise_number(inbound.sender, region)
    to = normalise_number(inbound.to, region) if inbound.to else None
    contact = await contact_for_address(
        session, integration.organization_id, inbound.channel, sender, inbound.profile_name
    )
    # two first messages of one contact at once: one opens the thread, the other joins it
    await lock_provider_id(session, integration.id, f"thread-of:{contact.id}:{inbound.channel.value}")
    thread = await open_thread_of(session, contact.id, inbound.channel)
    if thread is None:
        first_line = inbound.body.strip().splitlines()[0] if inbound.body.strip() else inbound.channel.name
        thread = await new_inbound_thread(
            session,
            integration.organization_id,
            subject=f"{inbound.channel.name.title()}: {first_line[:120]}",
            channel=inbound.channel,
            contact=contact,
        )
    headers: dict[str, Any] = {"provider": integration.type.value}
    if inbound.profile_name:
        headers["profile_name"] = inbound.profile_name
    if inbound.media:
        headers["media"] = [{"url": m.url, "content_type": m.content_type, "caption": m.caption} for m in inbound.media]
    message = await message_receive(
        session,
        integration.organization_id,
        thread_id=thread.id,
        channel=inbound.channel,
        body=inbound.body,
        sender=sender,
        contact_id=contact.id,
        provider_message_id=inbound.provider_id,
        headers=headers,
        integration_id=integration.id,
        recipients=[to] if to else [],
    )
    return message, True


def normalise_number(value: str, region: str | None) -> str:
    """E.164 where the number can be read as one (Exotel sends Indian numbers in national form: 09820054321);
    otherwise (a short code, an alphanumeric sender) as given."""
    raw = value.strip()
    try:
        parsed = phonenumbers.parse(raw, region if not raw.startswith("+") else None)
    except phonenumbers.NumberParseException:
        return raw
    if not phonenumbers.is_valid_number(parsed):
        return raw
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


async def open_thread_of(session: AsyncSession, contact_id: uuid.UUID, channel: Channel) -> Thread | None:
    """The contact's most recently active open (NEW, OPEN, PENDING) thread on `channel`."""
    on_channel = exists().where(Message.thread_id == Thread.id, Message.channel == channel)
    return await session.scalar(
        select(Thread)
        .where(
            Thread.contact_id == contact_id,
            Thread.status.in_([ThreadStatus.NEW, ThreadStatus.OPEN, ThreadStatus.PENDING]),
            or_(Thread.primary_channel == channel, on_channel),
        )
        .order_by(Thread.last_activity_at.desc())
        .limit(1)
    )


def apply_status(session: AsyncSession, message: Message, status: MessageStatus, error: str | None) -> bool:
    """Move the message to `status` if that is forward (STATUS_RANK); whether it changed."""
    if message.direction != Direction.OUTBOUND or message.status not in STATUS_RANK:
        return False
    if STATUS_RANK[status] <= STATUS_RANK[message.status]:
        return False
    set_status(session, message, status, error if status == MessageStatus.FAILED else None)
    return True


async def status_update(session: AsyncSession, integration: Integration, update: StatusUpdate) -> Message | None:
    """Apply a delivery status; for an id we have not stored yet, keep it for when we do."""
    await lock_provider_id(session, integration.id, update.provider_id)
    message = await _by_provider_id(session, integration.id, update.provider_id)
    if message is None and update.details.get("reference"):
        message = await _by_reference(session, integration, update.details["reference"], update.provider_id)
    if message is None:
        session.add(
            PendingStatus(
                organization_id=integration.organization_id,
                integration_id=integration.id,
                provider_message_id=update.provider_id,
                status=update.status,
                error=update.error,
                details=update.details,
            )
        )
        return None
    apply_status(session, message, update.status, update.error)
    return message


async def apply_pending(session: AsyncSession, message: Message) -> None:
    """Apply the statuses that arrived before the message had its provider id (called when it gets it)."""
    if message.integration_id is None or not message.provider_message_id:
        return
    await lock_provider_id(session, message.integration_id, message.provider_message_id)
    pending = list(
        await session.scalars(
            select(PendingStatus).where(
                PendingStatus.integration_id == message.integration_id,
                PendingStatus.provider_message_id == message.provider_message_id,
            )
        )
    )
    for item in sorted(pending, key=lambda p: STATUS_RANK.get(p.status, 0)):
        apply_status(session, message, item.status, item.error)
    if pending:
        await session.execute(delete(PendingStatus).where(PendingStatus.id.in_([p.id for p in pending])))


_CALL_FAILED = {"busy": "busy", "no-answer": "not answered", "failed": "failed", "canceled": "cancelled"}


async def call_update(session: AsyncSession, integration: Integration, update: CallUpdate) -> Message | None:
    """A call's status callback: update its VOICE message (an inbound call we have not seen gets one)."""
    await lock_provider_id(session, integration.id, update.call_sid)
    message = await _by_provider_id(session, integration.id, update.call_sid)
    if message is None and update.reference:
        message = await _by_reference(session, integration, update.reference, update.call_sid)
    if message is None:
        if not update.inbound or not update.sender:
            return None  # a call we did not place and that is not inbound: nothing to attach it to
        message, _ = await receive(
            session,
            integration,
            Inbound(update.call_sid, Channel.VOICE, update.sender, update.to or "", "Incoming call"),
        )
    changed: list[str] = []
    details: dict[str, Any] = {"call_status": update.status}
    if update.duration is not None:
        details["duration"] = update.duration
    if update.recording_url:
        details["recording_url"] = update.recording_url
    if update.status == "completed":
        details["summary"] = _call_summary(message, update)
    headers = await session.scalar(select(Message.headers).where(Message.id == message.id)) or {}
    if any(headers.get(k) != value for k, value in details.items()):
        await merge_headers(session, message, details)
        changed.append("call")
    if message.direction == Direction.OUTBOUND:
        if update.status == "completed":
            apply_status(session, message, MessageStatus.DELIVERED, None)
        elif update.status in _CALL_FAILED:
            apply_status(session, message, MessageStatus.FAILED, f"The call was {_CALL_FAILED[update.status]}.")
    if update.status == "completed" and not headers.get("transcribed"):
        note = "Recording: transcription pending." if update.recording_url else "No recording."
        body = f"{details['summary']} {note}"
        if message.body != body:
            message.body = body
            changed.append("body")
    if changed:
        events.record(
            session,
            MessageUpdated(thread_id=message.thread_id, message_id=message.id, changed=changed),
            organization_id=message.organization_id,
            actor_id=None,
        )
    return message


def _call_summary(message: Message, update: CallUpdate) -> str:
    who = message.recipients[0] if message.direction == Direction.OUTBOUND and message.recipients else message.sender
    length = f"{update.duration // 60}:{update.duration % 60:02d}" if update.duration is not None else "unknown length"
    return f"Call {'to' if message.direction == Direction.OUTBOUND else 'from'} {who} ({length})."
