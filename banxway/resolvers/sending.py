"""What the delivery state machine (`banxway.resolvers.delivery`) and each channel's sender share: the failure
classes, what a provider answered (`Sent`), the sender interface, and the status change that records its event."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from banxway import events
from banxway.context import SystemContext
from banxway.db.headers import MessageHeaders, checked
from banxway.db.models import Message
from banxway.enums import MessageStatus

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


CLAIMED = "delivery_claimed"
"""The `transaction_memo` of delivery's claim: message id → (its integration or None, whether it has a file), as the
claim read them. Held there, the integration stays in the session's (weak) identity map: `session.get` finds it."""

Send = Callable[[], Awaitable[Sent]]
# prepare(session, message, ctx) → send; runs in the claiming transaction, may raise PermanentFailure
Prepare = Callable[[AsyncSession, Message, SystemContext], Awaitable[Send]]
# after_sent(session, message): runs in the transaction that records SENT (e.g. apply early statuses)
AfterSent = Callable[[AsyncSession, Message], Awaitable[None]]


@dataclass(frozen=True)
class ChannelSender:
    prepare: Prepare
    after_sent: AfterSent | None = None


def set_status(session: AsyncSession, message: Message, status: MessageStatus, error: str | None = None) -> None:
    message.status = status
    message.error = error
    events.record(
        session,
        events.MessageStatusChanged(thread_id=message.thread_id, message_id=message.id, status=status.name),
        organization_id=message.organization_id,
        actor_id=None,
    )


async def read_headers(session: AsyncSession, message_id: uuid.UUID) -> MessageHeaders:
    """A message's (deferred) headers, typed."""
    return MessageHeaders.of(await _stored_headers(session, message_id))


async def headers_of(session: AsyncSession, message: Message) -> dict[str, Any]:
    """A message's (deferred) headers: as loaded with the row (`undefer`, e.g. by delivery's claim), else read."""
    if "headers" in message.__dict__:
        return message.headers or {}
    return await _stored_headers(session, message.id)


async def _stored_headers(session: AsyncSession, message_id: uuid.UUID) -> dict[str, Any]:
    return await session.scalar(select(Message.headers).where(Message.id == message_id)) or {}


async def merge_headers(session: AsyncSession, message: Message, values: dict[str, Any]) -> None:
    """Add `values` to the message's (deferred) headers, checked against MessageHeaders."""
    message.headers = checked({**(await headers_of(session, message)), **values})
