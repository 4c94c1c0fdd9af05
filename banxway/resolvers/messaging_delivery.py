"""Sending WhatsApp and SMS messages and starting calls through the message's integration, in the delivery
state machine of `banxway.resolvers.delivery`; statuses that arrived before the provider's reply are applied
once the message has the provider's id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.context import SystemContext
from banxway.db.headers import MessageHeaders
from banxway.db.models import Attachment, Integration, Message
from banxway.db.session import transaction_memo
from banxway.enums import Channel
from banxway.integrations import messaging as providers
from banxway.integrations.messaging import media_limits
from banxway.logs import get_logger
from banxway.resolvers.attachments import signed_query
from banxway.resolvers.inbox_events import to_global_id
from banxway.resolvers.integrations import provider_config, webhook_url
from banxway.resolvers.receipts import apply_pending
from banxway.resolvers.sending import (
    CLAIMED,
    ChannelSender,
    PermanentFailure,
    Send,
    Sent,
    TransientFailure,
    UnknownOutcome,
    headers_of,
    merge_headers,
)

log = get_logger("banxway.delivery")


async def prepare_messaging(session: AsyncSession, message: Message, ctx: SystemContext) -> Send:
    integration = await session.get(Integration, message.integration_id) if message.integration_id else None
    if integration is None or not integration.active or not message.sender:
        raise PermanentFailure(
            f"No {message.channel.name} number to send from: configure one with integrationConfigure."
        )
    if not message.recipients:
        raise PermanentFailure("The message has no recipient.")
    config = provider_config(integration, ctx.box, ctx.settings)
    provider = providers.provider(integration.type)
    headers = MessageHeaders.of(await headers_of(session, message))
    reference = str(message.id)

    if message.channel == Channel.VOICE:
        callback = webhook_url(ctx.settings, integration, provider.status_path(Channel.VOICE))

        async def start() -> Sent:
            with _classified():
                sid = await provider.start_call(
                    config,
                    agent=headers.agent_number or "",
                    customer=message.recipients[0],
                    caller_id=message.sender or "",
                    status_callback=callback,
                    reference=reference,
                )
            return Sent(provider_message_id=sid)

        return start

    template = headers.template
    outgoing = providers.Outgoing(
        channel=message.channel,
        from_number=message.sender,
        to=message.recipients[0],
        body=message.body,
        status_callback=webhook_url(ctx.settings, integration, provider.status_path(message.channel)),
        reference=reference,
        tag=headers.message_tag,
        template=providers.Template(
            name=template.name,
            language=template.language,
            parameters=list(template.parameters),
            content_sid=template.content_sid,
        )
        if template
        else None,
        media=await _media(session, message, ctx),
    )

    if outgoing.media is not None and not media_limits.takes_caption(message.channel) and (message.body or "").strip():
        return _text_then_file(ctx, message, provider, config, outgoing, headers.text_message_id)

    async def send() -> Sent:
        with _classified():
            sid = await provider.send_message(config, outgoing)
        return Sent(provider_message_id=sid)

    return send


def _text_then_file(
    ctx: SystemContext,
    message: Message,
    provider: providers.Provider,
    config: providers.ProviderConfig,
    outgoing: providers.Outgoing,
    text_id: str | None,
) -> Send:
    """Messenger/Instagram: a file takes no text, so the text goes first as a message of its own, then the file
    (whose id is the message's provider id). The text's id is stored as soon as Meta took it (`text_message_id`): a
    retry after the file failed sends the file alone, never the text twice.

    Storing that id is best effort: when it fails (the database unreachable, a pool timeout), the file is sent all
    the same and the final transaction stores the id with the file's (`Sent.headers`). Should the file then fail
    in a way worth a retry, the retry would not know the text went: it is UnknownOutcome instead (not retried)."""
    message_id = message.id

    async def send() -> Sent:
        nonlocal text_id
        stored = text_id is not None
        if text_id is None:
            with _classified():
                text_id = await provider.send_message(config, replace(outgoing, media=None))
            stored = await _keep_text_id(ctx, message_id, text_id)
        try:
            with _classified():
                sid = await provider.send_message(config, outgoing)
        except TransientFailure as exc:
            if stored:
                raise
            raise UnknownOutcome(
                f"The text went (id {text_id}), but its id could not be stored and the file failed: {exc}. "
                "Not retried, so as not to send the text twice."
            ) from exc
        return Sent(provider_message_id=sid, headers={"text_message_id": text_id})

    return send


async def _keep_text_id(ctx: SystemContext, message_id: uuid.UUID, text_id: str) -> bool:
    """Store the id of the text sent before the file; False (logged) when the database would not take it."""
    try:
        async with ctx.transaction() as session:
            row = await session.get(Message, message_id, with_for_update=True)
            if row is not None:
                await merge_headers(session, row, {"text_message_id": text_id})
    except Exception as exc:  # best effort: the file is sent all the same (`_text_then_file`)
        log.warning("text_message_id not stored", message=str(message_id), text_id=text_id, error=str(exc))
        return False
    return True


async def _media(session: AsyncSession, message: Message, ctx: SystemContext) -> providers.OutgoingMedia | None:
    """The message's file (WhatsApp, MMS, Messenger, Instagram) as the provider fetches it: a signed public download
    URL on BANXWAY_PUBLIC_URL (`Attachment.downloadUrl`), valid for BANXWAY_ATTACHMENT_URL_TTL."""
    claimed = transaction_memo(session, CLAIMED).get(message.id)
    if claimed is not None and not claimed[1]:  # delivery's claim saw no file
        return None
    attachment = await session.scalar(
        select(Attachment).where(Attachment.message_id == message.id).order_by(Attachment.created_at).limit(1)
    )
    if attachment is None:
        return None
    root = (ctx.settings.public_url or "http://127.0.0.1:8000").rstrip("/")
    query = signed_query(ctx, attachment)  # type: ignore[arg-type]  # a SystemContext has its settings and key
    url = f"{root}/attachments/{to_global_id('Attachment', attachment.id)}?{query}"
    return providers.OutgoingMedia(
        url=url,
        content_type=attachment.content_type,
        filename=attachment.filename,
        kind=media_limits.media_kind(message.channel, attachment.content_type),
    )


@contextmanager
def _classified() -> Iterator[None]:
    """Provider errors as the delivery state machine's failures."""
    try:
        yield
    except providers.PermanentProviderError as exc:
        raise PermanentFailure(exc.detail) from exc
    except providers.TransientProviderError as exc:
        raise TransientFailure(exc.detail, exc.retry_after) from exc
    except providers.OutcomeUnknown as exc:
        raise UnknownOutcome(exc.detail) from exc


MESSAGING = ChannelSender(prepare_messaging, apply_pending)
