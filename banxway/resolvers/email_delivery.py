"""Sending an outbound email over SMTP, in the delivery state machine of `banxway.resolvers.delivery`:
a permanent refusal (5xx, authentication) fails the message with the server's reply; a transient one (4xx,
timeout, refused connection) is retried with back-off.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.context import SystemContext
from banxway.db.models import Attachment, EmailAccount, Message, Organization, Thread
from banxway.enums import Channel, Direction, MessageStatus
from banxway.integrations.email import smtp
from banxway.integrations.email.compose import Outbound, OutboundAttachment, compose, new_message_id
from banxway.integrations.storage import attachment_path
from banxway.resolvers.email_oauth import smtp_config_for
from banxway.resolvers.sending import (
    ChannelSender,
    PermanentFailure,
    Send,
    Sent,
    TransientFailure,
    merge_headers,
    read_headers,
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
    references = list((await read_headers(session, previous.id)).references)
    return previous.provider_message_id, references


async def prepare_email(session: AsyncSession, message: Message, ctx: SystemContext) -> Send:
    """Claim-time work for a mail: the account, our Message-ID (kept across retries), the threading headers,
    the attachments; returns the SMTP send."""
    account = await session.get(EmailAccount, message.email_account_id) if message.email_account_id else None
    if account is None:
        raise PermanentFailure("No email account to send from.")
    thread = await session.get(Thread, message.thread_id)
    assert thread is not None
    if not message.provider_message_id:  # kept across retries: the same mail, never a new one
        message.provider_message_id = new_message_id(account.email)
    in_reply_to, references = await _threading(session, message)
    chain = [*dict.fromkeys([*references, *([in_reply_to] if in_reply_to else [])])]
    await merge_headers(session, message, {"in_reply_to": in_reply_to, "references": chain})
    data_dir = ctx.settings.data_dir
    files = [
        OutboundAttachment(
            filename=a.filename,
            content_type=a.content_type,
            data=await asyncio.to_thread(attachment_path(data_dir, a.sha256).read_bytes),
        )
        for a in await session.scalars(
            select(Attachment).where(Attachment.message_id == message.id).order_by(Attachment.created_at)
        )
    ]
    signature = account.signature
    if not (signature and signature.strip()):  # the organization's default (organizationUpdate)
        signature = await session.scalar(
            select(Organization.signature).where(Organization.id == thread.organization_id)
        )
    outbound = Outbound(
        from_address=account.email,
        from_name=account.from_name,
        to=list(message.recipients),
        subject=message.subject or thread.subject,
        reference=thread.reference,
        body=message.body,
        html=message.html,
        signature=signature,
        in_reply_to=in_reply_to,
        references=references,
        message_id=message.provider_message_id,
        attachments=files,
    )

    async def send() -> Sent:
        try:
            _, raw = compose(outbound)
        except ValueError as exc:  # e.g. a recipient that is no address: no server would take it
            raise PermanentFailure(f"The mail could not be written: {exc}") from exc
        try:
            config = await smtp_config_for(ctx, account)  # after the claim: a token refresh may take a while
            reply = await smtp.asend_mail(
                config, sender=outbound.from_address, recipients=[*outbound.to, *outbound.cc], raw=raw
            )
        except smtp.PermanentSendError as exc:
            raise PermanentFailure(str(exc)) from exc
        except smtp.SendError as exc:
            raise TransientFailure(str(exc)) from exc
        return Sent(headers={"smtp_reply": reply})

    return send


EMAIL = ChannelSender(prepare_email)
