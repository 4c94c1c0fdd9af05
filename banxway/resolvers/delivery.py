"""Delivering an outbound message on its channel: QUEUED → SENDING → SENT, or FAILED. One state machine for
every channel; each channel gives a `prepare` (in the claiming transaction) that returns its `send`.

At most once: the message is claimed (QUEUED → SENDING) and committed before the provider is called, so a
redelivered job finds it SENDING or SENT and sends nothing. A permanent refusal fails it at once with the
provider's words; a transient one puts it back to QUEUED for a retry with back-off (or after the
provider's Retry-After), until it is `RETRY_FOR` old. When the request went out but no answer came, or a
job was killed mid-send, the message stays SENDING: a status callback may settle it; after `STUCK_AFTER` it
is failed rather than risk a second copy.

In development, BANXWAY_DEV_SINK sends what has no account or number of its own to the sink
(`banxway.resolvers.dev_sink`) instead of failing it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from banxway.context import SystemContext
from banxway.db.models import Attachment, Integration, Message
from banxway.db.session import transaction_memo
from banxway.enums import Channel, Direction, MessageStatus
from banxway.logs import get_logger
from banxway.resolvers.dev_sink import SINK, sink_takes
from banxway.resolvers.email_delivery import EMAIL
from banxway.resolvers.messaging_delivery import MESSAGING
from banxway.resolvers.sending import (
    CLAIMED,
    RETRY_FOR,
    STUCK_AFTER,
    PermanentFailure,
    RetryLater,
    Send,
    Sent,
    TransientFailure,
    UnknownOutcome,
    merge_headers,
    set_status,
)
from banxway.resolvers.web_chat import WEB_CHAT_SENDER

log = get_logger("banxway.delivery")
_META_SENDERS = {Channel.MESSENGER: MESSAGING, Channel.INSTAGRAM: MESSAGING}  # the Send API (resolvers.meta)

_SENDERS = {Channel.EMAIL: EMAIL, Channel.WHATSAPP: MESSAGING, Channel.SMS: MESSAGING, Channel.VOICE: MESSAGING}
_SENDERS.update(_META_SENDERS)
_SENDERS[Channel.WEB_CHAT] = WEB_CHAT_SENDER  # no provider: SENT, then read live by the visitor (resolvers.web_chat)


async def deliver(ctx: SystemContext, message_id: uuid.UUID) -> MessageStatus | None:
    """Send the message if it is QUEUED; its status afterwards (None if there is no such message).
    Raises RetryLater on a transient failure."""
    send: Send | None = None
    async with ctx.transaction() as session:
        message = await _claim(session, message_id)
        if message is None:
            return None
        if message.status == MessageStatus.SENDING and message.updated_at < datetime.now(UTC) - STUCK_AFTER:
            set_status(
                session,
                message,
                MessageStatus.FAILED,
                "Sending was interrupted and its outcome is unknown; not retried, to avoid a second copy.",
            )
        status = message.status
        # no account or number of its own, and the development sink is on (never in production): the sink sends it
        sender = SINK if sink_takes(ctx.settings, message) else _SENDERS.get(message.channel)
        if status == MessageStatus.QUEUED:
            try:
                if sender is None:
                    raise PermanentFailure(f"{message.channel.name} messages cannot be sent.")
                send = await sender.prepare(session, message, ctx)
            except PermanentFailure as exc:
                set_status(session, message, MessageStatus.FAILED, str(exc))
            else:
                set_status(session, message, MessageStatus.SENDING)
            status = message.status
        created_at = message.created_at
    if send is None:
        return status

    result: Sent | None = None
    error: Exception | None = None
    try:
        result = await send()
    except (PermanentFailure, TransientFailure, UnknownOutcome) as exc:
        error = exc
    async with ctx.transaction() as session:
        message = await session.get(Message, message_id, with_for_update=True)
        assert message is not None
        if result is not None:
            if result.provider_message_id:
                message.provider_message_id = result.provider_message_id
            if result.headers:
                await merge_headers(session, message, result.headers)
            if message.status == MessageStatus.SENDING:  # a callback may have moved it on already
                set_status(session, message, MessageStatus.SENT)
            if sender is not None and sender.after_sent is not None:
                await sender.after_sent(session, message)
        elif isinstance(error, UnknownOutcome):
            if message.status == MessageStatus.SENDING:
                message.error = str(error)
        elif isinstance(error, PermanentFailure) or datetime.now(UTC) - created_at > RETRY_FOR:
            set_status(session, message, MessageStatus.FAILED, str(error))
        else:
            set_status(session, message, MessageStatus.QUEUED, str(error))
        status = message.status
    log.info("delivery", message=str(message_id), status=status.name, error=str(error) if error else None)
    if status == MessageStatus.QUEUED:
        raise RetryLater(str(error), getattr(error, "retry_after", None))
    return status


async def _claim(session: AsyncSession, message_id: uuid.UUID) -> Message | None:
    """The message, row-locked, with what preparing its send reads, in one statement: its headers, its integration
    (in the session now: `session.get` finds it there) and whether it has a file (`CLAIMED`)."""
    has_file = exists().where(Attachment.message_id == Message.id)
    row = (
        await session.execute(
            select(Message, Integration, has_file)
            .outerjoin(Integration, Integration.id == Message.integration_id)
            .where(Message.id == message_id)
            .options(undefer(Message.headers))
            .with_for_update(of=Message)
        )
    ).first()
    if row is None:
        return None
    transaction_memo(session, CLAIMED)[message_id] = (row[1], row[2])
    return row[0]


async def messages_to_requeue(ctx: SystemContext, *, limit: int = 1000) -> list[uuid.UUID]:
    """What waits too long: QUEUED messages whose job was lost (Redis down at send time, or the retries ran out
    early), and SENDING ones of a killed job (`deliver` fails them, never resends)."""
    now = datetime.now(UTC)
    async with ctx.session() as session:
        return list(
            await session.scalars(
                select(Message.id)
                .where(
                    Message.channel.in_(list(_SENDERS)),
                    Message.direction == Direction.OUTBOUND,
                    or_(
                        (Message.status == MessageStatus.QUEUED) & (Message.updated_at < now - timedelta(minutes=5)),
                        (Message.status == MessageStatus.SENDING) & (Message.updated_at < now - STUCK_AFTER),
                    ),
                )
                .limit(limit)
            )
        )
