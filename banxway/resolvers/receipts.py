"""Delivery statuses reported by providers. They only move forward: a delivery or read receipt is proof the
customer got the message, so it outranks a failure report, and a failure outranks "sent" — every order of
callbacks ends in the same status. A status for a message whose send reply has not been processed yet is kept
(`PendingStatus`) and applied when the message gets its provider id."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.db.models import (
    Integration,
    Message,
    PendingStatus,
)
from banxway.enums import (
    Direction,
    MessageStatus,
)

if TYPE_CHECKING:
    pass

from banxway.integrations.messaging import StatusUpdate
from banxway.resolvers.inbound import by_provider_id, by_reference, lock_provider_id
from banxway.resolvers.sending import set_status

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
    message = await by_provider_id(session, integration.id, update.provider_id)
    if message is None and update.details.get("reference"):
        message = await by_reference(session, integration, update.details["reference"], update.provider_id)
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
