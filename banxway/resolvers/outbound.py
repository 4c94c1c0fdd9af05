"""Outbound messages: the one constructor that `message_send` and `call_start` share, the number a WhatsApp/SMS
message or a call leaves from, the WhatsApp customer-care window and approved templates."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.db.headers import checked
from banxway.db.models import (
    Attachment,
    Integration,
    Message,
    PhoneNumber,
    Thread,
)
from banxway.enums import Channel, Direction, ThreadStatus
from banxway.errors import DomainError
from banxway.events import MessageAdded
from banxway.integrations.messaging import media_limits, provider, sms
from banxway.resolvers import validation as v
from banxway.resolvers.common import get_or_error
from banxway.resolvers.integrations import render_template, template_parameter_count

if TYPE_CHECKING:
    from banxway.context import Context


@dataclass(frozen=True)
class Route:
    integration_id: uuid.UUID | None
    number: str | None


async def outbound_route(session: AsyncSession, thread: Thread, channel: Channel, user_id: uuid.UUID) -> Route:
    """The number a message on `channel` leaves from: the one the customer last wrote to on this thread, else
    the sender's own number, else the organization's first number for the channel. No number: Route(None, None),
    and the delivery fails saying so (as email does without an account)."""
    parameters = {"thread_id": thread.id, "channel": channel, "channels": [channel.value], "user_id": user_id}
    row = (await session.execute(_route_query(), parameters)).first()
    return Route(row[0], row[1]) if row is not None else Route(None, None)


@functools.cache
def _route_query() -> Any:
    """One statement: the number the customer last wrote to first (NULL, i.e. last, when they never wrote here).
    Built once, with bind parameters."""
    channel = bindparam("channel", type_=Message.channel.type)
    last_to = (
        select(Message.recipients[1])
        .where(
            Message.thread_id == bindparam("thread_id", type_=_UUID),
            Message.channel == channel,
            Message.direction == Direction.INBOUND,
            Message.integration_id.is_not(None),
        )
        .order_by(Message.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(PhoneNumber.integration_id, PhoneNumber.number)
        .join(Integration, Integration.id == PhoneNumber.integration_id)
        .where(
            Integration.active.is_(True),
            PhoneNumber.channels.contains(bindparam("channels", type_=PhoneNumber.channels.type)),
        )
        .order_by(
            (PhoneNumber.number == last_to).desc().nulls_last(),
            (PhoneNumber.assignee_id == bindparam("user_id", type_=_UUID)).desc().nulls_last(),
            PhoneNumber.created_at,
            PhoneNumber.number,
        )
        .limit(1)
    )


async def window_closes_at(session: AsyncSession, number: str) -> datetime | None:
    """When the WhatsApp customer-care window with `number` closes: 24 h after its last WhatsApp message to us."""
    last = await session.scalar(_WINDOW_QUERY, {"number": number})
    return last + CUSTOMER_CARE_WINDOW if last is not None else None


_UUID = UUID(as_uuid=True)
_WINDOW_QUERY = select(func.max(Message.created_at)).where(
    Message.sender == bindparam("number"),
    Message.direction == Direction.INBOUND,
    Message.channel == Channel.WHATSAPP,
)


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
    require_body(body)
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


CUSTOMER_CARE_WINDOW = timedelta(hours=24)

# Channels whose messages may carry files (attachmentIds), within `messaging.media_limits`: through a provider, or
# (WEB_CHAT) downloaded by the visitor.
MEDIA_CHANNELS = (Channel.WHATSAPP, Channel.SMS, Channel.MESSENGER, Channel.INSTAGRAM, Channel.WEB_CHAT)


async def check_media(
    session: AsyncSession,
    channel: Channel,
    attachment_ids: list[uuid.UUID | None],
    provider_fields: dict[str, Any],
    recipient: str,
) -> None:
    """INVALID naming `attachmentIds[.i]` when the files cannot go on `channel` through the message's provider:
    more than one, a type or size past the table in `messaging.media_limits`, a template, SMS without MMS."""
    if len(attachment_ids) > (most := media_limits.media_per_message(channel)):
        files = "one media file" if most == 1 else f"at most {most} files"
        raise DomainError(
            "INVALID", f"A {channel.name} message carries {files}; send the others separately.", "attachmentIds"
        )
    if "template" in (provider_fields.get("headers") or {}):
        raise DomainError("INVALID", "A template message carries no media here.", "attachmentIds")
    integration_id = provider_fields.get("integration_id")
    integration = await session.get(Integration, integration_id) if integration_id else None
    if integration is None and channel != Channel.WEB_CHAT:  # web chat: no provider, the visitor downloads them
        raise DomainError(
            "INVALID", f"No {channel.name} number to send media from: configure one (integrationConfigure).", "to"
        )
    kind = provider(integration.type) if integration is not None else None
    for index, attachment_id in enumerate(attachment_ids):
        found = await session.get(Attachment, attachment_id) if attachment_id else None
        if found is None:
            raise DomainError("NOT_FOUND", "No such attachment.", f"attachmentIds.{index}")
        problem = media_limits.media_problem(
            channel,
            found.content_type,
            found.size,
            provider=integration.type.value if integration is not None else channel.value,
            mms_regions=kind.mms_regions if kind is not None else frozenset(),
            to=recipient,
            filename=found.filename,
        )
        if problem:
            raise DomainError("INVALID", problem, f"attachmentIds.{index}")


async def open_thread(session: AsyncSession, thread_id: uuid.UUID | None) -> Thread:
    """The thread to add a message to, locked; INVALID_TRANSITION when it is archived."""
    thread = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
    if thread.status == ThreadStatus.ARCHIVED:
        raise DomainError("INVALID_TRANSITION", "The thread is archived; reopen it first.", "threadId")
    return thread


def require_body(body: str | None) -> None:
    if not body or not body.strip():
        raise DomainError("INVALID", "The message body must not be empty.", "body")


async def add_outbound(
    ctx: Context,
    session: AsyncSession,
    thread: Thread,
    *,
    attach: Callable[[Message], Awaitable[None]] | None = None,
    **columns: Any,
) -> Message:
    """Store an outbound message by the viewer on `thread` (channel, status, body, recipients... in `columns`) and
    record MESSAGE_ADDED, whose consequence delivers it when it is QUEUED."""
    viewer = ctx.viewer
    if "headers" in columns:
        columns["headers"] = checked(columns["headers"])
    message = Message(
        **{
            "organization_id": viewer.organization_id,
            "thread_id": thread.id,
            "direction": Direction.OUTBOUND,
            "sender": viewer.email,
            "author_id": viewer.user_id,
            **columns,
        }
    )
    session.add(message)
    await session.flush()
    if attach is not None:
        await attach(message)
    thread.last_activity_at = message.created_at
    ctx.record(session, MessageAdded.of(message))
    return message
