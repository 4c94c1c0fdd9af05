"""Calls through Exotel: `call_start` rings the agent, then connects the contact (recorded); the status callbacks
(`call_update`) follow the call on its VOICE message, and a recording is transcribed (`banxway.resolvers.media`)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from banxway import events
from banxway.auth import Permission
from banxway.db.models import Contact, ContactIdentity, Integration, Message
from banxway.enums import Channel, Direction, MessageStatus
from banxway.errors import DomainError
from banxway.events import MessageUpdated
from banxway.integrations.messaging import CallUpdate, Inbound, provider
from banxway.resolvers import validation as v
from banxway.resolvers.common import get_or_error
from banxway.resolvers.inbound import by_provider_id, by_reference, lock_provider_id, new_inbound_thread, receive
from banxway.resolvers.outbound import add_outbound, open_thread, outbound_route
from banxway.resolvers.receipts import apply_status
from banxway.resolvers.sending import merge_headers, read_headers

if TYPE_CHECKING:
    from banxway.context import Context


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
            thread = await open_thread(session, thread_id)
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
        # no number to call from, in development with the sink on: the sink takes the call (resolvers.dev_sink)
        sunk = integration is None and ctx.settings.dev_sink_enabled
        if not sunk and (integration is None or not provider(integration.type).calls):
            raise DomainError(
                "INVALID",
                "No number to call from: calls go through an Exotel integration with a VOICE number "
                "(integrationConfigure).",
                "agentNumber",
            )
        message = await add_outbound(
            ctx,
            session,
            thread,
            channel=Channel.VOICE,
            status=MessageStatus.QUEUED,
            body=f"Call to {contact.name} ({phone})",
            sender=route.number,
            recipients=[phone],
            contact_id=contact.id,
            integration_id=route.integration_id,
            headers={"agent_number": agent},
        )
    return message


_CALL_FAILED = {"busy": "busy", "no-answer": "not answered", "failed": "failed", "canceled": "cancelled"}


async def call_update(session: AsyncSession, integration: Integration, update: CallUpdate) -> Message | None:
    """A call's status callback: update its VOICE message (an inbound call we have not seen gets one)."""
    await lock_provider_id(session, integration.id, update.call_sid)
    message = await by_provider_id(session, integration.id, update.call_sid)
    if message is None and update.reference:
        message = await by_reference(session, integration, update.reference, update.call_sid)
    if message is None:
        if not update.inbound or not update.sender:
            return None  # a call we did not place and that is not inbound: nothing to attach it to
        message, _ = await receive(
            session,
            integration,
            Inbound(update.call_sid, Channel.VOICE, update.sender, update.to or "", "Incoming call"),
        )
    await apply_call_update(session, message, update)
    return message


async def apply_call_update(session: AsyncSession, message: Message, update: CallUpdate) -> None:
    """What a call's status says, on its VOICE message: the call's details, DELIVERED (answered and completed) or
    FAILED, the summary, MESSAGE_UPDATED. Also how the development sink completes the calls it takes."""
    changed: list[str] = []
    details: dict[str, Any] = {"call_status": update.status}
    if update.duration is not None:
        details["duration"] = update.duration
    if update.recording_url:
        details["recording_url"] = update.recording_url
    if update.status == "completed":
        details["summary"] = _call_summary(message, update)
    headers = await read_headers(session, message.id)
    if any(getattr(headers, name) != value for name, value in details.items()):
        await merge_headers(session, message, details)
        changed.append("call")
        if update.status == "completed" and update.recording_url and not headers.transcribed:
            changed.append("recording")  # its consequence: the recording is transcribed
    if message.direction == Direction.OUTBOUND:
        if update.status == "completed":
            apply_status(session, message, MessageStatus.DELIVERED, None)
        elif update.status in _CALL_FAILED:
            apply_status(session, message, MessageStatus.FAILED, f"The call was {_CALL_FAILED[update.status]}.")
    if update.status == "completed" and not headers.transcribed:
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


def _call_summary(message: Message, update: CallUpdate) -> str:
    who = message.recipients[0] if message.direction == Direction.OUTBOUND and message.recipients else message.sender
    length = f"{update.duration // 60}:{update.duration % 60:02d}" if update.duration is not None else "unknown length"
    return f"Call {'to' if message.direction == Direction.OUTBOUND else 'from'} {who} ({length})."
