"""The development sink (`BANXWAY_DEV_SINK`, which `serve --demo` turns on; never in production): a delivery path
whose provider is us, for every channel that has none of its own.

An email with no email account to send from, a WhatsApp or SMS message with no number, a call with no Exotel
number: instead of failing, the delivery state machine (`banxway.resolvers.delivery`) hands it to `SINK`, which
"sends" it — QUEUED → SENDING → SENT as with any provider, recorded with `provider: DEV_SINK` in its headers and a
provider id of ours. Then, on a realistic schedule (`SCHEDULE`), the `advance_dev_sink_message` actor reports
what a provider's status callback would: DELIVERED, and READ on WhatsApp, through the same forward-only receipts
path (`receipts.apply_status`), and a call is answered and completed through the call-status path
(`calls.apply_call_update`) — so MESSAGE_STATUS_CHANGED and MESSAGE_UPDATED events flow live exactly as with a
real provider. The outbox (`dev_outbox`) is the list of the organization's messages the sink delivered: the
outbound messages are the outbox, no table of its own."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.auth import Permission
from banxway.db.models import Message, Thread
from banxway.enums import Channel, Direction, MessageStatus
from banxway.errors import DevelopmentOnly, DomainError
from banxway.integrations.email.compose import new_message_id
from banxway.integrations.messaging import CallUpdate, Inbound
from banxway.resolvers import validation as v
from banxway.resolvers.calls import apply_call_update
from banxway.resolvers.inbound import normalise_number, receive_for
from banxway.resolvers.receipts import STATUS_RANK, apply_status
from banxway.resolvers.sending import ChannelSender, PermanentFailure, Send, Sent, read_headers

if TYPE_CHECKING:
    from banxway.context import Context, SystemContext
    from banxway.settings import Settings

PROVIDER = "DEV_SINK"  # the `provider` header of what the sink delivered
SINK_DOMAIN = "dev-sink.invalid"  # the domain of the Message-IDs the sink gives emails (RFC 2606: never real)
CALL_SECONDS = 5  # how long a call to the sink lasts

# What a provider would report after SENT, and when: (status, seconds after the previous step).
SCHEDULE: dict[Channel, list[tuple[MessageStatus, float]]] = {
    Channel.EMAIL: [(MessageStatus.DELIVERED, 2.0)],
    Channel.SMS: [(MessageStatus.DELIVERED, 2.0)],
    Channel.WHATSAPP: [(MessageStatus.DELIVERED, 2.0), (MessageStatus.READ, 3.0)],
    Channel.VOICE: [(MessageStatus.DELIVERED, float(CALL_SECONDS))],  # answered, then completed
}


def sink_takes(settings: Settings, message: Message) -> bool:
    """Whether the sink delivers `message`: the sink is on (never in production) and the message has no account
    or number of its own on a channel the sink serves."""
    if not settings.dev_sink_enabled or message.direction != Direction.OUTBOUND or message.channel not in SCHEDULE:
        return False
    if message.channel == Channel.EMAIL:
        return message.email_account_id is None
    return message.integration_id is None


async def _prepare(session: AsyncSession, message: Message, ctx: SystemContext) -> Send:
    if not message.recipients:
        raise PermanentFailure("The message has no recipient.")
    if message.channel == Channel.EMAIL:
        # a Message-ID as a mail server would keep (replies thread on it), the same across retries
        provider_id = message.provider_message_id or new_message_id(f"outbox@{SINK_DOMAIN}")
    else:
        provider_id = message.provider_message_id or f"dev-sink-{uuid.uuid4().hex}"
    message.provider_message_id = provider_id
    headers: dict[str, object] = {"provider": PROVIDER}
    if message.channel == Channel.VOICE:
        headers["call_status"] = "ringing"

    async def send() -> Sent:
        return Sent(provider_message_id=provider_id, headers=headers)

    return send


SINK = ChannelSender(_prepare)


@dataclass(frozen=True)
class SinkStep:
    """The next thing the sink reports about a message: `status`, `delay_ms` from now."""

    message_id: uuid.UUID
    status: MessageStatus
    delay_ms: int


def _after(message: Message) -> SinkStep | None:
    """The first step of the message's schedule past its status (None: nothing more will happen)."""
    if message.status not in STATUS_RANK or message.status == MessageStatus.FAILED:
        return None
    for status, seconds in SCHEDULE.get(message.channel, []):
        if STATUS_RANK[status] > STATUS_RANK[message.status]:
            return SinkStep(message.id, status, int(seconds * 1000))
    return None


async def _sink_message(session: AsyncSession, message_id: uuid.UUID, *, lock: bool = False) -> Message | None:
    message = await session.get(Message, message_id, with_for_update=lock)
    if message is None or message.direction != Direction.OUTBOUND:
        return None
    if (await read_headers(session, message.id)).provider != PROVIDER:
        return None
    return message


async def dev_sink_next_step(ctx: SystemContext, message_id: uuid.UUID) -> SinkStep | None:
    """After a delivery: what the sink reports next about the message, if the sink delivered it (nothing when the
    sink is off: no query either)."""
    if not ctx.settings.dev_sink_enabled:
        return None
    async with ctx.session() as session:
        message = await _sink_message(session, message_id)
        return _after(message) if message is not None and message.status != MessageStatus.SENDING else None


async def dev_sink_advance(ctx: SystemContext, message_id: uuid.UUID, status: MessageStatus) -> SinkStep | None:
    """Report `status` for a message the sink delivered, as a provider's status callback does (forward only: a
    repeated or late report changes nothing); the step after it."""
    if not ctx.settings.dev_sink_enabled:
        return None
    async with ctx.transaction() as session:
        message = await _sink_message(session, message_id, lock=True)
        if message is None:
            return None
        if message.channel == Channel.VOICE and status == MessageStatus.DELIVERED:
            if STATUS_RANK.get(message.status, 0) < STATUS_RANK[MessageStatus.DELIVERED]:
                update = CallUpdate(
                    call_sid=message.provider_message_id or "",
                    status="completed",
                    sender=message.sender,
                    to=message.recipients[0] if message.recipients else None,
                    inbound=False,
                    duration=CALL_SECONDS,
                )
                await apply_call_update(session, message, update)
        else:
            apply_status(session, message, status, None)
        return _after(message)


@dataclass(frozen=True)
class OutboxItem:
    message: Message
    thread_reference: str
    thread_subject: str


OUTBOX_LIMIT = 100


async def dev_outbox(ctx: Context, first: int = 50) -> list[OutboxItem]:
    """The messages of the viewer's organization that the development sink delivered, newest first. Development
    only: in production DEVELOPMENT_ONLY, whether or not the sink was ever on."""
    if ctx.settings.production:
        raise DevelopmentOnly("The development outbox does not exist in production.")
    ctx.require(Permission.READ)
    if not 1 <= first <= OUTBOX_LIMIT:
        raise DomainError("INVALID", f"first must be between 1 and {OUTBOX_LIMIT}.", "first")
    result = await ctx.db.execute(
        select(Message, Thread.reference, Thread.subject)
        .join(Thread, Thread.id == Message.thread_id)
        .where(Message.direction == Direction.OUTBOUND, Message.headers.contains({"provider": PROVIDER}))
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(first)
    )
    return [OutboxItem(message, reference, subject) for message, reference, subject in result.all()]


SIMULATED_CHANNELS = (Channel.WHATSAPP, Channel.SMS)


async def dev_inbound(
    ctx: Context, *, channel: Channel, sender: str, body: str, profile_name: str | None = None
) -> Message:
    """Development: a customer's WhatsApp or SMS message as if a provider's webhook had brought it — through the
    same inbound path (contact by number, their open thread or a new one, MESSAGE_ADDED and what follows it:
    analysis, workflows, notifications). Needs the sink on (BANXWAY_DEV_SINK); DEVELOPMENT_ONLY in production."""
    settings = ctx.settings
    if settings.production:
        raise DevelopmentOnly("Simulated customer messages do not exist in production.")
    viewer = ctx.require(Permission.THREAD_CREATE)
    if not settings.dev_sink:
        raise DomainError("INVALID", "Simulated customer messages need the development sink (BANXWAY_DEV_SINK).")
    if channel not in SIMULATED_CHANNELS:
        raise DomainError("INVALID", "A simulated customer writes on WHATSAPP or SMS.", "channel")
    text = v.text(body, "body", max_length=4096, required=True) or ""
    number = normalise_number(sender or "", None)
    if not re.fullmatch(r"\+\d{8,15}", number):
        raise DomainError("INVALID", f"'{sender}' is not a phone number in E.164 form (+<country><number>).", "from")
    inbound = Inbound(
        provider_id=f"dev-{uuid.uuid4().hex}",
        channel=channel,
        sender=number,
        to="",
        body=text,
        profile_name=(profile_name or "").strip()[:200] or None,
    )
    async with ctx.transaction() as session:
        message, _ = await receive_for(
            session, viewer.organization_id, inbound, integration_id=None, provider_name=PROVIDER, region=None
        )
    return message
