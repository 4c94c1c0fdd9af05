"""Sending an outbound email message over SMTP: QUEUED → SENDING → SENT, or FAILED.

At most once: the message is claimed (QUEUED → SENDING) and committed before the SMTP conversation, so
a redelivered job finds it SENDING or SENT and sends nothing. A permanent refusal (5xx, authentication)
fails it at once with the server's reply; a transient one (4xx, timeout, refused connection) puts it
back to QUEUED for a retry with back-off, until it is `RETRY_FOR` old. A job killed mid-conversation
leaves SENDING behind: after `STUCK_AFTER` it is failed rather than risk a second copy.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from banxway import events
from banxway.broadcast import Broadcast
from banxway.channels.email import transport
from banxway.channels.email.compose import Outbound, OutboundAttachment, compose, new_message_id
from banxway.channels.email.ingest import attachment_path, smtp_config
from banxway.db.models import Attachment, Channel, Direction, EmailAccount, Message, MessageStatus, Thread
from banxway.db.session import system_session
from banxway.logs import get_logger
from banxway.secrets import SecretBox
from banxway.settings import Settings

log = get_logger("banxway.email")

RETRY_FOR = timedelta(hours=1)
STUCK_AFTER = timedelta(minutes=10)


class RetryLater(Exception):
    """A transient failure: the job should run again later (Dramatiq retries it with back-off)."""


def _set_status(session: AsyncSession, message: Message, status: MessageStatus, error: str | None = None) -> None:
    message.status = status
    message.error = error
    events.record(
        session,
        events.MessageStatusChanged(thread_id=message.thread_id, message_id=message.id, status=status.name),
        organization_id=message.organization_id,
        actor_id=None,
    )


async def _threading(session: AsyncSession, message: Message) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) for a reply: the thread's latest other email with a Message-ID."""
    previous = await session.scalar(
        select(Message)
        .where(
            Message.thread_id == message.thread_id,
            Message.channel == Channel.EMAIL,
            Message.id != message.id,
            Message.provider_message_id.like("<%"),
            Message.created_at <= message.created_at,
            # a mail that never left is not something the customer can have answered
            or_(
                Message.direction == Direction.INBOUND,
                Message.status.in_([MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ]),
            ),
        )
        .order_by(Message.created_at.desc())
        .limit(1)
    )
    if previous is None:
        return None, []
    # the chain it carried: an inbound mail's References, or the References we sent with ours
    headers = await session.scalar(select(Message.headers).where(Message.id == previous.id))
    references = list((headers or {}).get("references") or [])
    return previous.provider_message_id, references


async def deliver_email(
    sessionmaker: async_sessionmaker[AsyncSession],
    broadcast: Broadcast,
    settings: Settings,
    secret_key: str,
    message_id: uuid.UUID,
) -> MessageStatus | None:
    """Send the message if it is QUEUED; its status afterwards (None if there is no such message).
    Raises RetryLater on a transient failure."""
    async with system_session(sessionmaker) as session:
        async with session.begin():
            message = await session.get(Message, message_id, with_for_update=True)
            if message is None:
                return None
            if message.status == MessageStatus.SENDING and message.updated_at < datetime.now(UTC) - STUCK_AFTER:
                _set_status(
                    session,
                    message,
                    MessageStatus.FAILED,
                    "Sending was interrupted and its outcome is unknown; not retried, to avoid a second copy.",
                )
            if message.status != MessageStatus.QUEUED:
                status = message.status
            else:
                status = None
                account = (
                    await session.get(EmailAccount, message.email_account_id) if message.email_account_id else None
                )
                if account is None:
                    _set_status(session, message, MessageStatus.FAILED, "No email account to send from.")
                    status = MessageStatus.FAILED
                else:
                    thread = await session.get(Thread, message.thread_id)
                    assert thread is not None
                    if not message.provider_message_id:  # kept across retries: the same mail, never a new one
                        message.provider_message_id = new_message_id(account.email)
                    in_reply_to, references = await _threading(session, message)
                    chain = [*dict.fromkeys([*references, *([in_reply_to] if in_reply_to else [])])]
                    headers = await session.scalar(select(Message.headers).where(Message.id == message.id))
                    message.headers = {**(headers or {}), "in_reply_to": in_reply_to, "references": chain}
                    _set_status(session, message, MessageStatus.SENDING)
                    files = [
                        OutboundAttachment(
                            filename=a.filename,
                            content_type=a.content_type,
                            data=await asyncio.to_thread(attachment_path(settings.data_dir, a.sha256).read_bytes),
                        )
                        for a in await session.scalars(
                            select(Attachment)
                            .where(Attachment.message_id == message.id)
                            .order_by(Attachment.created_at)
                        )
                    ]
                    outbound = Outbound(
                        from_address=account.email,
                        from_name=account.from_name,
                        to=list(message.recipients),
                        subject=message.subject or thread.subject,
                        reference=thread.reference,
                        body=message.body,
                        html=message.html,
                        signature=account.signature,
                        in_reply_to=in_reply_to,
                        references=references,
                        message_id=message.provider_message_id,
                        attachments=files,
                    )
                    config = smtp_config(account, SecretBox(secret_key), settings)
                    created_at = message.created_at
        await events.relay(broadcast, sessionmaker, events.take_recorded(session))
    if status is not None:
        return status

    error: transport.SendError | None = None
    try:
        _, raw = compose(outbound)
    except ValueError as exc:  # e.g. a recipient that is no address: no server would take it
        error = transport.PermanentSendError(None, f"The mail could not be written: {exc}", "compose")
    else:
        try:
            reply = await transport.asend_mail(
                config, sender=outbound.from_address, recipients=[*outbound.to, *outbound.cc], raw=raw
            )
        except transport.SendError as exc:
            error = exc
    async with system_session(sessionmaker) as session:
        async with session.begin():
            message = await session.get(Message, message_id, with_for_update=True)
            assert message is not None
            if error is None:
                _set_status(session, message, MessageStatus.SENT)
                headers = await session.scalar(select(Message.headers).where(Message.id == message.id))
                message.headers = {**(headers or {}), "smtp_reply": reply}
            elif isinstance(error, transport.PermanentSendError) or datetime.now(UTC) - created_at > RETRY_FOR:
                _set_status(session, message, MessageStatus.FAILED, str(error))
            else:
                _set_status(session, message, MessageStatus.QUEUED, str(error))
            status = message.status
        await events.relay(broadcast, sessionmaker, events.take_recorded(session))
    log.info("email delivery", message=str(message_id), status=status.name, error=str(error) if error else None)
    if status == MessageStatus.QUEUED:
        raise RetryLater(str(error))
    return status
