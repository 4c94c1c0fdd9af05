"""Delivering an outbound message on its channel: QUEUED → SENDING → SENT, or FAILED. One state machine for
every channel; each channel gives a `prepare` (in the claiming transaction) that returns its `send`.

At most once: the message is claimed (QUEUED → SENDING) and committed before the provider is called, so a
redelivered job finds it SENDING or SENT and sends nothing. A permanent refusal fails it at once with the
provider's words; a transient one puts it back to QUEUED for a retry with back-off (or after the
provider's Retry-After), until it is `RETRY_FOR` old. When the request went out but no answer came, or a
job was killed mid-send, the message stays SENDING: a status callback may settle it; after `STUCK_AFTER` it
is failed rather than risk a second copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from banxway import events
from banxway.broadcast import Broadcast
from banxway.db.models import Message
from banxway.db.session import system_session
from banxway.enums import Channel, MessageStatus
from banxway.logs import get_logger
from banxway.secrets import SecretBox
from banxway.settings import Settings

log = get_logger("banxway.delivery")

RETRY_FOR = timedelta(hours=1)
STUCK_AFTER = timedelta(minutes=10)


class PermanentFailure(Exception):
    """Sending cannot succeed (refused, invalid, not configured): the message fails with this text."""


class TransientFailure(Exception):
    """Worth another try later; `retry_after` in seconds when the provider said when."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class UnknownOutcome(Exception):
    """The provider may have taken the message (no answer after the request went out): it stays SENDING,
    not retried — a status callback settles it, else it is failed after STUCK_AFTER."""


class RetryLater(Exception):
    """Raised by `deliver` after a transient failure: the job should run again (after `retry_after` s)."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


@dataclass
class Sent:
    """What the provider said: its id for the message, and details to keep in `headers`."""

    provider_message_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Deps:
    sessionmaker: async_sessionmaker[AsyncSession]
    broadcast: Broadcast
    settings: Settings
    box: SecretBox


Send = Callable[[], Awaitable[Sent]]
# prepare(session, message, deps) → send; runs in the claiming transaction, may raise PermanentFailure
Prepare = Callable[[AsyncSession, Message, Deps], Awaitable[Send]]
# after_sent(session, message, deps): runs in the transaction that records SENT (e.g. apply early statuses)
AfterSent = Callable[[AsyncSession, Message, Deps], Awaitable[None]]


@dataclass(frozen=True)
class ChannelSender:
    prepare: Prepare
    after_sent: AfterSent | None = None


def _senders() -> dict[Channel, ChannelSender]:
    from banxway.channels.email.deliver import EMAIL
    from banxway.channels.messaging.deliver import MESSAGING

    return {Channel.EMAIL: EMAIL, Channel.WHATSAPP: MESSAGING, Channel.SMS: MESSAGING, Channel.VOICE: MESSAGING}


def set_status(session: AsyncSession, message: Message, status: MessageStatus, error: str | None = None) -> None:
    message.status = status
    message.error = error
    events.record(
        session,
        events.MessageStatusChanged(thread_id=message.thread_id, message_id=message.id, status=status.name),
        organization_id=message.organization_id,
        actor_id=None,
    )


async def merge_headers(session: AsyncSession, message: Message, values: dict[str, Any]) -> None:
    """Add `values` to the message's (deferred) headers."""
    headers = await session.scalar(select(Message.headers).where(Message.id == message.id))
    message.headers = {**(headers or {}), **values}


async def deliver(
    sessionmaker: async_sessionmaker[AsyncSession],
    broadcast: Broadcast,
    settings: Settings,
    secret_key: str,
    message_id: uuid.UUID,
) -> MessageStatus | None:
    """Send the message if it is QUEUED; its status afterwards (None if there is no such message).
    Raises RetryLater on a transient failure."""
    deps = Deps(sessionmaker, broadcast, settings, SecretBox(secret_key))
    send: Send | None = None
    async with system_session(sessionmaker) as session:
        async with session.begin():
            message = await session.get(Message, message_id, with_for_update=True)
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
            sender = _senders().get(message.channel)
            if status == MessageStatus.QUEUED:
                try:
                    if sender is None:
                        raise PermanentFailure(f"{message.channel.name} messages cannot be sent.")
                    send = await sender.prepare(session, message, deps)
                except PermanentFailure as exc:
                    set_status(session, message, MessageStatus.FAILED, str(exc))
                else:
                    set_status(session, message, MessageStatus.SENDING)
                status = message.status
            created_at = message.created_at
        await events.relay(broadcast, sessionmaker, events.take_recorded(session))
    if send is None:
        return status

    result: Sent | None = None
    error: Exception | None = None
    try:
        result = await send()
    except (PermanentFailure, TransientFailure, UnknownOutcome) as exc:
        error = exc
    async with system_session(sessionmaker) as session:
        async with session.begin():
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
                    await sender.after_sent(session, message, deps)
            elif isinstance(error, UnknownOutcome):
                if message.status == MessageStatus.SENDING:
                    message.error = str(error)
            elif isinstance(error, PermanentFailure) or datetime.now(UTC) - created_at > RETRY_FOR:
                set_status(session, message, MessageStatus.FAILED, str(error))
            else:
                set_status(session, message, MessageStatus.QUEUED, str(error))
            status = message.status
        await events.relay(broadcast, sessionmaker, events.take_recorded(session))
    log.info("delivery", message=str(message_id), status=status.name, error=str(error) if error else None)
    if status == MessageStatus.QUEUED:
        raise RetryLater(str(error), getattr(error, "retry_after", None))
    return status
