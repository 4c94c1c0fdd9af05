"""Dramatiq actors: verb-noun, take ids, idempotent, each calls a use-case."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dramatiq
from sqlalchemy import or_, select

from banxway.db.models import EmailAccount, Message
from banxway.db.session import system_session
from banxway.enums import Channel, Direction, MessageStatus
from banxway.logs import get_logger
from banxway.resolvers.auth import prune_refresh_tokens as prune_refresh_tokens_use_case
from banxway.tasks.runtime import runtime

log = get_logger("banxway.tasks")


@dramatiq.actor(queue_name="maintenance", max_retries=3, time_limit=60_000, max_age=3_600_000)
async def prune_refresh_tokens() -> None:
    """Delete refresh tokens that expired more than a day ago."""
    async with system_session(runtime().sessionmaker) as session, session.begin():
        removed = await prune_refresh_tokens_use_case(session)
    log.info("pruned refresh tokens", removed=removed)


@dramatiq.actor(queue_name="email", max_retries=0, time_limit=600_000)
async def poll_mailbox(account_id: str) -> None:
    """Import an email account's new mail. A server that cannot be reached is recorded on the account
    (`lastError`) and tried again at the next poll; nothing is lost, the cursor stays."""
    from banxway.channels.email import transport
    from banxway.channels.email.ingest import poll_account

    rt = runtime()
    try:
        await poll_account(rt.sessionmaker, rt.broadcast, rt.settings, rt.secret_key, uuid.UUID(account_id))
    except transport.ImapError as exc:
        async with system_session(rt.sessionmaker) as session, session.begin():
            account = await session.get(EmailAccount, uuid.UUID(account_id))
            if account is not None:
                account.last_error = f"{exc.step}: {exc.detail}"
        log.warning("mailbox poll failed", account=account_id, step=exc.step, error=exc.detail)


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def poll_mailboxes() -> None:
    """Enqueue a poll of every active email account (the scheduler runs this every EMAIL_POLL_INTERVAL)."""
    async with system_session(runtime().sessionmaker) as session:
        ids = list(await session.scalars(select(EmailAccount.id).where(EmailAccount.active.is_(True))))
    for account_id in ids:
        poll_mailbox.send(str(account_id))


@dramatiq.actor(
    queue_name="delivery",
    max_retries=30,
    min_backoff=15_000,
    max_backoff=300_000,
    time_limit=180_000,
    max_age=3_900_000,
)
async def deliver_message(message_id: str) -> None:
    """Send a QUEUED outbound message on its channel; a transient failure raises, and Dramatiq retries
    with back-off, or after the provider's Retry-After. Sends at most once however often it is delivered
    (see banxway.channels.delivery)."""
    from banxway.channels.delivery import RetryLater, deliver

    rt = runtime()
    try:
        await deliver(rt.sessionmaker, rt.broadcast, rt.settings, rt.secret_key, uuid.UUID(message_id))
    except RetryLater as exc:
        if exc.retry_after is None:
            raise
        delay = int(min(max(exc.retry_after, 1.0), 3_600.0) * 1000)
        raise dramatiq.Retry(str(exc), delay=delay) from exc


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def requeue_messages() -> None:
    """Enqueue again what waits too long: QUEUED messages whose job was lost (Redis down at send time, or
    the retries ran out early), and SENDING ones of a killed job (delivery fails them, never resends)."""
    from banxway.channels.delivery import STUCK_AFTER

    now = datetime.now(UTC)
    async with system_session(runtime().sessionmaker) as session:
        ids = list(
            await session.scalars(
                select(Message.id)
                .where(
                    Message.channel.in_([Channel.EMAIL, Channel.WHATSAPP, Channel.SMS, Channel.VOICE]),
                    Message.direction == Direction.OUTBOUND,
                    or_(
                        (Message.status == MessageStatus.QUEUED) & (Message.updated_at < now - timedelta(minutes=5)),
                        (Message.status == MessageStatus.SENDING) & (Message.updated_at < now - STUCK_AFTER),
                    ),
                )
                .limit(1000)
            )
        )
    for message_id in ids:
        deliver_message.send(str(message_id))
    if ids:
        log.info("requeued messages", count=len(ids))


@dramatiq.actor(queue_name="media", max_retries=10, min_backoff=10_000, max_backoff=600_000, time_limit=300_000)
async def fetch_message_media(message_id: str) -> None:
    """Download an inbound message's media (WhatsApp/SMS) into attachment storage; retried while the
    provider cannot be reached, recorded on the message when it refuses."""
    from banxway.channels.messaging.media import fetch_media

    rt = runtime()
    await fetch_media(rt.sessionmaker, rt.broadcast, rt.settings, rt.secret_key, uuid.UUID(message_id))


@dramatiq.actor(queue_name="media", max_retries=10, min_backoff=30_000, max_backoff=900_000, time_limit=600_000)
async def transcribe_call(message_id: str) -> None:
    """Transcribe a recorded call into its message (without an AI provider: says "no transcript")."""
    from banxway.channels.messaging.media import transcribe

    rt = runtime()
    await transcribe(rt.sessionmaker, rt.broadcast, rt.settings, rt.secret_key, uuid.UUID(message_id))


ALL = [
    prune_refresh_tokens,
    poll_mailbox,
    poll_mailboxes,
    deliver_message,
    requeue_messages,
    fetch_message_media,
    transcribe_call,
]
