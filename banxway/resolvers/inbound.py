"""The write path of messages from customers, shared by every channel (email, WhatsApp, SMS, voice).

A channel finds or creates the sender's contact (`contact_for_address`), picks the thread (its own
rules, else `new_inbound_thread`), then stores the message with `messages.message_receive`; all in one
transaction of a tenant session, whose recorded events the caller relays after commit.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from banxway import events
from banxway.db.models import Contact, ContactIdentity, Thread
from banxway.enums import Channel
from banxway.resolvers.threads import new_thread


async def contact_for_address(
    session: AsyncSession, organization_id: uuid.UUID, channel: Channel, address: str, name: str | None
) -> Contact:
    """The contact owning `address` on `channel` (following merges), or a new unverified one."""
    contact = await session.scalar(
        select(Contact)
        .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
        .where(ContactIdentity.channel == channel, ContactIdentity.address == address)
    )
    while contact is not None and contact.merged_into_id is not None:
        contact = await session.get(Contact, contact.merged_into_id)
    if contact is not None:
        return contact
    try:
        async with session.begin_nested():
            contact = Contact(organization_id=organization_id, name=(name or address)[:200], verified=False)
            session.add(contact)
            await session.flush()
            session.add(
                ContactIdentity(
                    organization_id=organization_id, contact_id=contact.id, channel=channel, address=address
                )
            )
            await session.flush()
    except IntegrityError:  # a concurrent message from the same new sender created it first
        return await contact_for_address(session, organization_id, channel, address, name)
    events.record(session, events.ContactCreated(contact_id=contact.id), organization_id=organization_id, actor_id=None)
    return contact


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
