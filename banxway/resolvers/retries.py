"""`message_retry`: send a FAILED outbound message again (a provider outage, a fixed configuration). The message
goes back to QUEUED and its MESSAGE_STATUS_CHANGED says `released`, whose consequence is `deliver_message`, as for a
scheduled message whose time came: the same delivery state machine, claim and retries."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from banxway import events
from banxway.auth import Permission
from banxway.db.models import Message
from banxway.enums import Channel, Direction, MessageStatus
from banxway.errors import DomainError
from banxway.resolvers.common import get_or_error

if TYPE_CHECKING:
    from banxway.context import Context

_NOT_RETRIED = (Channel.INTERNAL, Channel.VOICE)  # nothing to send again; a call is started again with callStart


async def message_retry(ctx: Context, message_id: uuid.UUID | None) -> Message:
    """Queue a FAILED outbound message again; INVALID_TRANSITION (naming `messageId`) for any other message."""
    ctx.require(Permission.MESSAGE_SEND)
    async with ctx.transaction() as session:
        message = await get_or_error(session, Message, message_id, "messageId", lock=True, label="message")
        if message.direction != Direction.OUTBOUND or message.channel in _NOT_RETRIED:
            raise DomainError("INVALID_TRANSITION", "Only an outbound message that failed can be retried.", "messageId")
        if message.status != MessageStatus.FAILED:
            raise DomainError(
                "INVALID_TRANSITION",
                f"Only a FAILED message can be retried; this one is {message.status.name}.",
                "messageId",
            )
        message.status = MessageStatus.QUEUED
        message.error = None
        ctx.record(
            session,
            events.MessageStatusChanged(
                thread_id=message.thread_id, message_id=message.id, status=MessageStatus.QUEUED.name, released=True
            ),
        )
    return message
