"""Email ingest: new mail of an account's IMAP folder → contacts, threads and messages.

`poll_account` reads the mailbox from the account's cursor (UIDVALIDITY, last UID) page by page; each
page is stored in one transaction together with the advanced cursor, so the cursor never runs ahead of
what was committed, and a crash re-reads at most one page (deduplicated by Message-ID, or by content
hash when there is none). A mail that cannot be stored is quarantined with its raw bytes instead of
stopping the loop; an oversized one gets one failure record and is not downloaded.

Threading: In-Reply-To/References against Message-IDs we sent or ingested (this organization only),
then the `[BX-YYYY-NNNN]` reference in the subject, else a new thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.context import SystemContext
from banxway.db.models import Attachment, EmailAccount, EmailQuarantine, Message, Thread
from banxway.enums import Channel
from banxway.integrations.email import imap
from banxway.integrations.email.compose import find_reference
from banxway.integrations.email.parse import MalformedEmail, ParsedEmail, parse_email
from banxway.integrations.storage import store_attachment_bytes
from banxway.logs import get_logger
from banxway.resolvers.inbound import contact_for_address, message_receive, new_inbound_thread
from banxway.resolvers.mailboxes import imap_config
from banxway.settings import Settings

log = get_logger("banxway.email")


@dataclass
class PollResult:
    fetched: int = 0
    imported: int = 0
    duplicates: int = 0
    quarantined: int = 0


# -- one mail -------------------------------------------------------------------------------------


_KEY_LIMIT = 255  # messages.provider_message_id


def message_key(message_id: str) -> str:
    """How a Message-ID is stored and looked up: as it is, or hashed when longer than the column."""
    if len(message_id) <= _KEY_LIMIT:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode()).hexdigest()


def _dedupe_key(parsed: ParsedEmail) -> str:
    return message_key(parsed.message_id) if parsed.message_id else f"sha256:{parsed.content_hash}"


async def _thread_for(session: AsyncSession, parsed: ParsedEmail) -> Thread | None:
    known = [message_key(i) for i in (*parsed.in_reply_to, *reversed(parsed.references))]
    if known:
        thread_id = await session.scalar(
            select(Message.thread_id)
            .where(Message.channel == Channel.EMAIL, Message.provider_message_id.in_(known))
            .order_by(Message.created_at.desc())
            .limit(1)
        )
        if thread_id is not None:
            return await session.get(Thread, thread_id)
    reference = find_reference(parsed.subject)
    if reference is not None:
        return await session.scalar(select(Thread).where(Thread.reference == reference))
    return None


async def ingest_mail(
    session: AsyncSession, account: EmailAccount, raw: bytes, settings: Settings, *, uid: int | None = None
) -> Message | None:
    """Store one mail (in the caller's transaction); None when it was already stored.
    Raises MalformedEmail (or anything else) for the caller to quarantine."""
    parsed = parse_email(raw, max_attachment_bytes=settings.attachment_max_bytes)
    key = _dedupe_key(parsed)
    exists = await session.scalar(
        select(Message.id).where(Message.email_account_id == account.id, Message.provider_message_id == key)
    )
    if exists is not None:
        return None
    if parsed.from_address is None:
        raise MalformedEmail("The mail has no usable From address.")
    organization_id = account.organization_id
    contact = await contact_for_address(session, organization_id, Channel.EMAIL, parsed.from_address, parsed.from_name)
    thread = await _thread_for(session, parsed)
    if thread is None:
        thread = await new_inbound_thread(
            session, organization_id, subject=parsed.subject, channel=Channel.EMAIL, contact=contact
        )
    headers = {
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to,
        "references": parsed.references,
        "to": parsed.to,
        "cc": parsed.cc,
        "reply_to": parsed.reply_to,
        "date": parsed.date.isoformat() if parsed.date else None,
        "uid": uid,
        "defects": parsed.defects,
        "skipped_attachments": [
            {"filename": s.filename, "content_type": s.content_type, "size": s.size, "reason": s.reason}
            for s in parsed.skipped_attachments
        ],
    }
    message = await message_receive(
        session,
        organization_id,
        thread_id=thread.id,
        channel=Channel.EMAIL,
        body=parsed.reply_text,
        full_body=parsed.text,
        sender=parsed.from_address,
        contact_id=contact.id,
        subject=parsed.subject[:998] or None,
        html=parsed.html,
        provider_message_id=key,
        headers=headers,
        email_account_id=account.id,
    )
    for part in parsed.attachments:
        digest = await asyncio.to_thread(store_attachment_bytes, settings.data_dir, part.data)
        session.add(
            Attachment(
                organization_id=organization_id,
                message_id=message.id,
                filename=part.filename[:255],
                content_type=part.content_type[:255],
                size=part.size,
                sha256=digest,
                content_id=(part.content_id or None) and part.content_id[:255],
                inline=part.inline,
            )
        )
    await session.flush()
    return message


async def quarantine(
    session: AsyncSession,
    account: EmailAccount,
    *,
    uid: int | None,
    raw: bytes | None,
    size: int,
    error: str,
    header: bytes = b"",
) -> bool:
    """Record a mail that could not be stored, once: a re-read of the folder does not record it again
    (it is known by its bytes, or an oversized one by its size and identifying headers).
    False when it was recorded already."""
    fingerprint = hashlib.sha256(raw or b"oversized:%d:" % size + header.strip()).hexdigest()
    known = await session.scalar(
        select(EmailQuarantine.id).where(
            EmailQuarantine.account_id == account.id,
            EmailQuarantine.fingerprint == fingerprint,
            EmailQuarantine.reprocessed_at.is_(None),
        )
    )
    if known is not None:
        return False
    session.add(
        EmailQuarantine(
            organization_id=account.organization_id,
            account_id=account.id,
            uid=uid,
            size=size,
            raw=raw,
            error=error[:2000],
            fingerprint=fingerprint,
        )
    )
    return True


# -- a mailbox ----------------------------------------------------------------------------------------


def _pages(config: imap.ImapConfig, account: EmailAccount, settings: Settings) -> Iterator[imap.MailboxPage]:
    return imap.fetch_since(
        config,
        uidvalidity=account.uidvalidity,
        last_uid=account.last_uid,
        page_size=settings.email_page_size,
        max_size=settings.email_max_bytes,
    )


async def poll_account(ctx: SystemContext, account_id: uuid.UUID) -> PollResult:
    """Import the account's new mail; returns what happened. Raises imap.ImapError when the
    server cannot be reached (the cursor stays where it was)."""
    result = PollResult()
    settings = ctx.settings
    async with ctx.session() as session:
        account = await session.get(EmailAccount, account_id)
    if account is None or not account.active:
        return result
    tenant = ctx.for_organization(account.organization_id)
    config = imap_config(account, ctx.box, settings)
    pages = await asyncio.to_thread(_pages, config, account, settings)
    try:
        while True:
            page = await asyncio.to_thread(next, pages, None)
            if page is None:
                break
            async with tenant.transaction() as session:
                current = await session.get(EmailAccount, account_id, with_for_update=True)
                if current is None:
                    return result
                if current.uidvalidity not in (None, page.uidvalidity):
                    log.warning(
                        "UIDVALIDITY changed: re-reading the folder",
                        account=str(account_id),
                        old=current.uidvalidity,
                        new=page.uidvalidity,
                    )
                same_folder = current.uidvalidity == page.uidvalidity
                for mail in page.mails:
                    if same_folder and mail.uid <= current.last_uid:
                        continue  # a concurrent poll (IDLE and the timer) stored it meanwhile
                    result.fetched += 1
                    outcome = await _store_one(session, current, mail, settings)
                    setattr(result, outcome, getattr(result, outcome) + 1)
                current.last_uid = max(page.highest_uid, current.last_uid if same_folder else 0)
                current.uidvalidity = page.uidvalidity
                current.last_polled_at = datetime.now(UTC)
                current.last_error = None
    finally:
        await asyncio.to_thread(pages.close)
    if result.fetched:
        log.info("mail imported", account=str(account_id), **result.__dict__)
    return result


async def _store_one(session: AsyncSession, account: EmailAccount, mail: imap.FetchedMail, settings: Settings) -> str:
    """'imported', 'duplicates' or 'quarantined'."""
    if not mail.raw:
        await quarantine(
            session,
            account,
            uid=mail.uid,
            raw=None,
            header=mail.header,
            size=mail.size,
            error=f"The message is {mail.size} bytes, over the {settings.email_max_bytes}-byte limit; "
            "it was left on the server.",
        )
        return "quarantined"
    try:
        async with session.begin_nested():
            stored = await ingest_mail(session, account, mail.raw, settings, uid=mail.uid)
        return "imported" if stored is not None else "duplicates"
    except Exception as exc:  # whatever it is: keep the mail, go on with the next
        # the cause in one line (a database error's own message, not the statement with the mail in it)
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {cause[0] if cause else ''}"[:500]
        log.warning("mail quarantined", account=str(account.id), uid=mail.uid, error=reason)
        await quarantine(session, account, uid=mail.uid, raw=mail.raw, size=mail.size, error=reason)
        return "quarantined"


async def record_poll_failure(ctx: SystemContext, account_id: uuid.UUID, error: str) -> None:
    """Keep why the account's server could not be read (`lastError`); the next poll tries again."""
    async with ctx.transaction() as session:
        account = await session.get(EmailAccount, account_id)
        if account is not None:
            account.last_error = error


async def active_account_ids(ctx: SystemContext) -> list[uuid.UUID]:
    """The accounts to poll."""
    async with ctx.session() as session:
        return list(await session.scalars(select(EmailAccount.id).where(EmailAccount.active.is_(True))))


# what an IMAP IDLE watcher connects with: a change restarts it
_CONNECTION = (
    EmailAccount.imap_host,
    EmailAccount.imap_port,
    EmailAccount.imap_security,
    EmailAccount.imap_username,
    EmailAccount.imap_password,
    EmailAccount.imap_folder,
)


async def watched_accounts(ctx: SystemContext) -> dict[uuid.UUID, tuple[object, ...]]:
    """Every active account, with the settings its IDLE watcher connects with."""
    async with ctx.session() as session:
        rows = await session.execute(select(EmailAccount.id, *_CONNECTION).where(EmailAccount.active.is_(True)))
        return {row[0]: tuple(row[1:]) for row in rows}


async def email_account(ctx: SystemContext, account_id: uuid.UUID) -> EmailAccount | None:
    async with ctx.session() as session:
        return await session.get(EmailAccount, account_id)
