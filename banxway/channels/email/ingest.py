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
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from banxway import events
from banxway.broadcast import Broadcast
from banxway.channels.email import transport
from banxway.channels.email.compose import find_reference
from banxway.channels.email.parse import MalformedEmail, ParsedEmail, parse_email
from banxway.db.models import Attachment, EmailAccount, EmailQuarantine, Message, Thread
from banxway.db.session import system_session, tenant_session
from banxway.enums import Channel
from banxway.logs import get_logger
from banxway.resolvers.inbound import contact_for_address, new_inbound_thread
from banxway.resolvers.messages import message_receive
from banxway.secrets import SecretBox
from banxway.settings import Settings

log = get_logger("banxway.email")


@dataclass
class PollResult:
    fetched: int = 0
    imported: int = 0
    duplicates: int = 0
    quarantined: int = 0


def imap_config(account: EmailAccount, box: SecretBox, settings: Settings) -> transport.ImapConfig:
    return transport.ImapConfig(
        host=account.imap_host,
        port=account.imap_port,
        security=transport.Security(account.imap_security),
        username=account.imap_username,
        password=box.decrypt(account.imap_password),
        folder=account.imap_folder,
        timeout=settings.email_timeout_seconds,
        ca_file=settings.email_ca_file,
    )


def smtp_config(account: EmailAccount, box: SecretBox, settings: Settings) -> transport.SmtpConfig:
    return transport.SmtpConfig(
        host=account.smtp_host,
        port=account.smtp_port,
        security=transport.Security(account.smtp_security),
        username=account.smtp_username,
        password=box.decrypt(account.smtp_password) if account.smtp_password else None,
        timeout=settings.email_timeout_seconds,
        ca_file=settings.email_ca_file,
    )


# -- attachments ------------------------------------------------------------------------------------


def attachment_path(data_dir: Path, sha256: str) -> Path:
    """Content-addressed: the same file attached twice is stored once."""
    return data_dir / "attachments" / sha256[:2] / sha256


def store_attachment_bytes(data_dir: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    path = attachment_path(data_dir, digest)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{uuid.uuid4().hex}.part")
        partial.write_bytes(data)
        partial.replace(path)  # atomic: a reader never sees half a file
    return digest


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


def _pages(config: transport.ImapConfig, account: EmailAccount, settings: Settings) -> Iterator[transport.MailboxPage]:
    return transport.fetch_since(
        config,
        uidvalidity=account.uidvalidity,
        last_uid=account.last_uid,
        page_size=settings.email_page_size,
        max_size=settings.email_max_bytes,
    )


async def poll_account(
    sessionmaker: async_sessionmaker[AsyncSession],
    broadcast: Broadcast,
    settings: Settings,
    secret_key: str,
    account_id: uuid.UUID,
) -> PollResult:
    """Import the account's new mail; returns what happened. Raises transport.ImapError when the
    server cannot be reached (the cursor stays where it was)."""
    result = PollResult()
    async with system_session(sessionmaker) as session:
        account = await session.get(EmailAccount, account_id)
    if account is None or not account.active:
        return result
    organization_id = account.organization_id
    config = imap_config(account, SecretBox(secret_key), settings)
    pages = await asyncio.to_thread(_pages, config, account, settings)
    try:
        while True:
            page = await asyncio.to_thread(next, pages, None)
            if page is None:
                break
            async with tenant_session(sessionmaker, organization_id) as session:
                async with session.begin():
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
                await events.relay(broadcast, sessionmaker, events.take_recorded(session))
    finally:
        await asyncio.to_thread(pages.close)
    if result.fetched:
        log.info("mail imported", account=str(account_id), **result.__dict__)
    return result


async def _store_one(
    session: AsyncSession, account: EmailAccount, mail: transport.FetchedMail, settings: Settings
) -> str:
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
