"""The write path of messages from customers, shared by every channel (email, WhatsApp, SMS, voice).

A channel finds or creates the sender's contact (`contact_for_address`), picks the thread (its own
rules, else `new_inbound_thread`), then stores the message with `message_receive`; all in one
transaction of a tenant session, whose recorded events are relayed after commit.

WhatsApp and SMS from a provider's webhook (`receive`): each provider id is handled under a transaction-scoped
advisory lock (`lock_provider_id`), so that concurrent deliveries of one callback store one message.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from sqlalchemy import exists, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from banxway import events
from banxway.db.headers import checked
from banxway.db.models import Contact, Integration, Message, Thread
from banxway.db.session import transaction_memo
from banxway.enums import Channel, Direction, MessageStatus, NotificationType, ThreadStatus
from banxway.events import MessageAdded, ThreadUpdated
from banxway.integrations.messaging import Inbound, provider
from banxway.resolvers import sla
from banxway.resolvers import validation as v
from banxway.resolvers.common import get_or_error
from banxway.resolvers.contact_resolver import created_here, resolve_contact
from banxway.resolvers.notifications import notify
from banxway.resolvers.threads import new_thread, wake_up


async def contact_for_address(
    session: AsyncSession, organization_id: uuid.UUID, channel: Channel, address: str, name: str | None
) -> Contact:
    """The contact owning `address`, matched across channels by the contact resolver (the same number on WhatsApp,
    SMS and voice, an email in any case; merges followed), or a new unverified one."""
    return await resolve_contact(session, organization_id, channel, address, name=name)


async def new_inbound_thread(
    session: AsyncSession, organization_id: uuid.UUID, *, subject: str, channel: Channel, contact: Contact
) -> Thread:
    """A NEW thread for a conversation a customer started."""
    thread = await new_thread(
        session,
        organization_id,
        subject=subject.strip()[:998] or "(no subject)",
        primary_channel=channel,
        customer_id=contact.customer_id,
        contact_id=contact.id,
    )
    events.record(session, events.ThreadCreated(thread_id=thread.id), organization_id=organization_id, actor_id=None)
    return thread


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
    media: int = 0,
) -> Message:
    """Store an inbound message from a customer (channels call this inside their transaction).

    A reply to a PENDING, RESOLVED or CLOSED thread reopens it; an ARCHIVED thread stays archived. `media`: how
    many media items of the message wait to be downloaded (the event says so, and the download follows).
    """
    body, subject, html, sender, full_body = v.without_nul((body, subject, html, sender, full_body))
    headers, recipients = v.without_nul(headers), v.without_nul(recipients)
    thread = await locked_thread(session, thread_id)
    message = Message(
        id=uuid.uuid4(),  # known now: the INSERT goes with the transaction's next flush, batched with others
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
        headers=checked(headers or {}),
        full_body=full_body,
        email_account_id=email_account_id,
        integration_id=integration_id,
        recipients=recipients or [],
    )
    # the time it was received, not the transaction's start: a page of mail stored in one transaction keeps its order
    message.created_at = received_at or datetime.now(UTC)
    session.add(message)
    thread.last_message_at = max(filter(None, [thread.last_message_at, message.created_at]))
    thread.last_activity_at = max(thread.last_activity_at, message.created_at)
    events.record(
        session,
        MessageAdded.of(message, media=media),
        organization_id=organization_id,
        actor_id=None,
    )
    previous_status = thread.status
    if thread.status in _REOPEN_ON_REPLY:
        thread.status = ThreadStatus.OPEN
        events.record(
            session,
            ThreadUpdated(
                thread_id=thread.id, changed=["status"], status=thread.status.name, previous_status=previous_status.name
            ),
            organization_id=organization_id,
            actor_id=None,
        )
    if thread.status != ThreadStatus.ARCHIVED:
        await sla.customer_wrote(session, thread, previous_status)
    await wake_up(session, thread)
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


async def locked_thread(session: AsyncSession, thread_id: uuid.UUID) -> Thread:
    """The thread, row-locked for the rest of the transaction: read once per transaction (a page of mail adds many
    messages to one thread; a thread opened in this transaction needs no lock)."""
    memo = transaction_memo(session, "threads_locked")
    thread = memo.get(thread_id)
    if thread is None:
        thread = memo[thread_id] = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
    return thread


async def lock_threads(session: AsyncSession, thread_ids: set[uuid.UUID]) -> None:
    """Lock many threads in one statement (in id order, as every batch does), for `locked_thread` to answer."""
    memo = transaction_memo(session, "threads_locked")
    wanted = sorted(thread_id for thread_id in thread_ids if thread_id not in memo)
    if wanted:
        for thread in await session.scalars(
            select(Thread).where(Thread.id.in_(wanted)).order_by(Thread.id).with_for_update()
        ):
            memo[thread.id] = thread


async def lock_provider_id(session: AsyncSession, integration_id: uuid.UUID, provider_id: str) -> None:
    """Serialise the work on one provider message id (until the transaction ends)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"{integration_id}:{provider_id}"}
    )


async def by_provider_id(session: AsyncSession, integration_id: uuid.UUID, provider_id: str) -> Message | None:
    return await session.scalar(
        select(Message)
        .where(Message.integration_id == integration_id, Message.provider_message_id == provider_id)
        .with_for_update()
    )


async def by_reference(
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
    """Store an inbound WhatsApp/SMS message of a provider integration once: (message, whether it is new)."""
    return await receive_for(
        session,
        integration.organization_id,
        inbound,
        integration_id=integration.id,
        provider_name=integration.type.value,
        region=provider(integration.type).region,
    )


async def receive_for(
    session: AsyncSession,
    organization_id: uuid.UUID,
    inbound: Inbound,
    *,
    integration_id: uuid.UUID | None,
    provider_name: str,
    region: str | None,
) -> tuple[Message, bool]:
    """Store an inbound WhatsApp/SMS message once: (message, whether it is new). The sender's contact by E.164
    number, their open thread on that channel or a new one; opens the WhatsApp customer-care window. Without an
    integration (the development sink's simulated customer) the provider id is not deduplicated."""
    lock_scope = integration_id or organization_id
    if integration_id is not None:
        await lock_provider_id(session, integration_id, inbound.provider_id)
        existing = await by_provider_id(session, integration_id, inbound.provider_id)
        if existing is not None:
            return existing, False
    sender = normalise_number(inbound.sender, region)
    to = normalise_number(inbound.to, region) if inbound.to else None
    contact = await contact_for_address(session, organization_id, inbound.channel, sender, inbound.profile_name)
    if created_here(session, contact.id):
        # a contact nobody else sees yet has no thread but those opened in this transaction, and none can be
        # opened for them concurrently
        thread = opened_here(session, contact.id, inbound.channel)
    else:
        # two first messages of one contact at once: one opens the thread, the other joins it
        await lock_provider_id(session, lock_scope, f"thread-of:{contact.id}:{inbound.channel.value}")
        thread = await open_thread_of(session, contact.id, inbound.channel)
    if thread is None:
        first_line = inbound.body.strip().splitlines()[0] if inbound.body.strip() else inbound.channel.name
        thread = await new_inbound_thread(
            session,
            organization_id,
            subject=f"{inbound.channel.name.title()}: {first_line[:120]}",
            channel=inbound.channel,
            contact=contact,
        )
    headers: dict[str, Any] = {"provider": provider_name}
    if inbound.profile_name:
        headers["profile_name"] = inbound.profile_name
    if inbound.media:
        headers["media"] = [{"url": m.url, "content_type": m.content_type, "caption": m.caption} for m in inbound.media]
    message = await message_receive(
        session,
        organization_id,
        thread_id=thread.id,
        channel=inbound.channel,
        body=inbound.body,
        sender=sender,
        contact_id=contact.id,
        provider_message_id=inbound.provider_id,
        headers=headers,
        integration_id=integration_id,
        recipients=[to] if to else [],
        media=len(inbound.media),
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


_OPEN = (ThreadStatus.NEW, ThreadStatus.OPEN, ThreadStatus.PENDING)


def opened_here(session: AsyncSession, contact_id: uuid.UUID, channel: Channel) -> Thread | None:
    """What `open_thread_of` finds for a contact created in this transaction: an open thread of theirs on `channel`
    that this transaction opened (a callback that brings two messages of a new sender), else None."""
    opened = [
        thread
        for thread in transaction_memo(session, "threads_locked").values()
        if thread.contact_id == contact_id and thread.status in _OPEN and thread.primary_channel == channel
    ]
    return max(opened, key=lambda thread: thread.last_activity_at, default=None)


async def open_thread_of(session: AsyncSession, contact_id: uuid.UUID, channel: Channel) -> Thread | None:
    """The contact's most recently active open (NEW, OPEN, PENDING) thread on `channel`, row-locked for the rest of
    the transaction (the message about to be added to it needs the lock: one statement for both)."""
    on_channel = exists().where(Message.thread_id == Thread.id, Message.channel == channel)
    thread = await session.scalar(
        select(Thread)
        .where(
            Thread.contact_id == contact_id,
            Thread.status.in_(_OPEN),
            or_(Thread.primary_channel == channel, on_channel),
        )
        .order_by(Thread.last_activity_at.desc())
        .limit(1)
        .with_for_update(of=Thread)
    )
    if thread is not None:
        transaction_memo(session, "threads_locked")[thread.id] = thread
    return thread
