"""Dramatiq actors: verb-noun, take ids, idempotent, each calls a use-case."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dramatiq
from sqlalchemy import or_, select

from banxway.db.models import Channel, EmailAccount, Message, MessageStatus
from banxway.db.session import system_session
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
    queue_name="email", max_retries=30, min_backoff=15_000, max_backoff=300_000, time_limit=180_000, max_age=3_900_000
)
async def deliver_message(message_id: str) -> None:
    """Send a QUEUED outbound message on its channel; a transient failure raises, and Dramatiq retries
    with back-off. Sends at most once however often it is delivered (see deliver_email)."""
    from banxway.channels.email.deliver import deliver_email

    rt = runtime()
    await deliver_email(rt.sessionmaker, rt.broadcast, rt.settings, rt.secret_key, uuid.UUID(message_id))


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def requeue_messages() -> None:
    """Enqueue again what waits too long: QUEUED email whose job was lost (Redis down at send time, or
    the retries ran out early), and SENDING email of a killed job (deliver_email fails it, never resends)."""
    from banxway.channels.email.deliver import STUCK_AFTER

    now = datetime.now(UTC)
    async with system_session(runtime().sessionmaker) as session:
        ids = list(
            await session.scalars(
                select(Message.id)
                .where(
                    Message.channel == Channel.EMAIL,
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


ALL = [prune_refresh_tokens, poll_mailbox, poll_mailboxes, deliver_message, requeue_messages]
