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

from banxway import events
from banxway.context import SystemContext
from banxway.db.models import Attachment, EmailAccount, EmailQuarantine, Message, Thread
from banxway.db.session import transaction_memo
from banxway.enums import Channel
from banxway.integrations.email import imap
from banxway.integrations.email.compose import find_reference
from banxway.integrations.email.parse import MalformedEmail, ParsedEmail, parse_email
from banxway.integrations.storage import store_attachment_bytes
from banxway.logs import get_logger
from banxway.resolvers.contact_resolver import prefetch_contacts
from banxway.resolvers.email_oauth import imap_config_for
from banxway.resolvers.inbound import (
    contact_for_address,
    lock_threads,
    locked_thread,
    message_receive,
    new_inbound_thread,
)
from banxway.resolvers.sla import active_policies
from banxway.resolvers.threads import release_references, reserve_references
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


@dataclass
class _Page:
    """What one transaction of ingest knows about its page of mail, read in a few statements before the first mail is
    stored (`_prefetch`) and kept up to date as mails are stored: the keys already stored, the threads the page's
    In-Reply-To / References / subject references point to (locked), the senders' contacts."""

    stored_keys: set[str]
    # Message-ID key → (when, thread id) of the newest message with it
    threads_by_key: dict[str, tuple[datetime, uuid.UUID]]
    threads_by_reference: dict[str, uuid.UUID]


def _known_keys(parsed: ParsedEmail) -> list[str]:
    return [message_key(i) for i in (*parsed.in_reply_to, *reversed(parsed.references))]


async def _prefetch(session: AsyncSession, account: EmailAccount, parsed: list[ParsedEmail]) -> _Page:
    """One statement each for the page: stored keys, threads by Message-ID and by reference (locked), contacts; and
    a block of thread references for the mails that may open a thread."""
    keys = [_dedupe_key(p) for p in parsed]
    stored = set(
        await session.scalars(
            select(Message.provider_message_id).where(
                Message.email_account_id == account.id, Message.provider_message_id.in_(keys)
            )
        )
    )
    fresh = [p for p, key in zip(parsed, keys, strict=True) if key not in stored]
    wanted = sorted({key for p in fresh for key in _known_keys(p)})
    by_key: dict[str, tuple[datetime, uuid.UUID]] = {}
    if wanted:
        rows = await session.execute(
            select(Message.provider_message_id, Message.created_at, Message.thread_id).where(
                Message.channel == Channel.EMAIL, Message.provider_message_id.in_(wanted)
            )
        )
        for key, created_at, thread_id in rows:
            if key not in by_key or by_key[key][0] < created_at:
                by_key[key] = (created_at, thread_id)
    references = sorted({r for p in fresh if (r := find_reference(p.subject)) is not None})
    by_reference: dict[str, uuid.UUID] = {}
    if references:
        rows = await session.execute(select(Thread.reference, Thread.id).where(Thread.reference.in_(references)))
        by_reference = {reference: thread_id for reference, thread_id in rows}
    await lock_threads(session, {thread_id for _, thread_id in by_key.values()} | set(by_reference.values()))
    await prefetch_contacts(
        session, account.organization_id, Channel.EMAIL, [p.from_address for p in fresh if p.from_address]
    )
    unthreaded = sum(
        1
        for p in fresh
        if not any(k in by_key for k in _known_keys(p)) and find_reference(p.subject) not in by_reference
    )
    await reserve_references(session, account.organization_id, unthreaded)
    await active_policies(session, account.organization_id)  # what each new thread is matched against
    return _Page(stored, by_key, by_reference)


async def _thread_for(session: AsyncSession, parsed: ParsedEmail, page: _Page | None) -> Thread | None:
    known = _known_keys(parsed)
    if page is not None:
        found = [page.threads_by_key[key] for key in known if key in page.threads_by_key]
        if found:
            return await locked_thread(session, max(found)[1])
    elif known:
        thread_id = await session.scalar(
            select(Message.thread_id)
            .where(Message.channel == Channel.EMAIL, Message.provider_message_id.in_(known))
            .order_by(Message.created_at.desc())
            .limit(1)
        )
        if thread_id is not None:
            return await session.get(Thread, thread_id)
    reference = find_reference(parsed.subject)
    if reference is None:
        return None
    if page is not None:
        thread_id = page.threads_by_reference.get(reference)
        return await locked_thread(session, thread_id) if thread_id is not None else None
    return await session.scalar(select(Thread).where(Thread.reference == reference))


@dataclass
class _Parsed:
    """A mail parsed (off the event loop), its attachments' bytes stored: what `_store_parsed` writes rows for."""

    parsed: ParsedEmail
    digests: list[str]


def _parse(raw: bytes, settings: Settings) -> _Parsed:
    """CPU and file work of one mail, for a worker thread: parse, store the attachments' bytes."""
    parsed = parse_email(raw, max_attachment_bytes=settings.attachment_max_bytes)
    digests = [store_attachment_bytes(settings.data_dir, part.data) for part in parsed.attachments]
    return _Parsed(parsed, digests)


async def ingest_mail(
    session: AsyncSession, account: EmailAccount, raw: bytes, settings: Settings, *, uid: int | None = None
) -> Message | None:
    """Store one mail (in the caller's transaction); None when it was already stored.
    Raises MalformedEmail (or anything else) for the caller to quarantine."""
    return await _store_parsed(session, account, await asyncio.to_thread(_parse, raw, settings), uid=uid, page=None)


async def _store_parsed(
    session: AsyncSession, account: EmailAccount, item: _Parsed, *, uid: int | None, page: _Page | None
) -> Message | None:
    parsed = item.parsed
    key = _dedupe_key(parsed)
    if page is not None:
        exists: object = key if key in page.stored_keys else None
    else:
        exists = await session.scalar(
            select(Message.id).where(Message.email_account_id == account.id, Message.provider_message_id == key)
        )
    if exists is not None:
        return None
    if parsed.from_address is None:
        raise MalformedEmail("The mail has no usable From address.")
    organization_id = account.organization_id
    contact = await contact_for_address(session, organization_id, Channel.EMAIL, parsed.from_address, parsed.from_name)
    thread = await _thread_for(session, parsed, page)
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
    for part, digest in zip(parsed.attachments, item.digests, strict=True):
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
    if page is None:
        await session.flush()
    else:  # the next mails of the page see this one
        page.stored_keys.add(key)
        if parsed.message_id:
            page.threads_by_key[key] = (message.created_at, thread.id)
        page.threads_by_reference.setdefault(thread.reference, thread.id)
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
    config = await imap_config_for(ctx, account)  # a fresh access token for an OAuth account
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
                # a concurrent poll (IDLE and the timer) may have stored some meanwhile
                mails = [mail for mail in page.mails if not (same_folder and mail.uid <= current.last_uid)]
                result.fetched += len(mails)
                for outcome in await _store_page(session, current, mails, settings):
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


async def _store_page(
    session: AsyncSession, account: EmailAccount, mails: list[imap.FetchedMail], settings: Settings
) -> list[str]:
    """Store a page of mail in the caller's transaction: an outcome per mail ('imported', 'duplicates',
    'quarantined').

    The fast way first: the page's lookups in a few statements (`_prefetch`), every mail's rows added without a
    statement of its own and written together by one flush (a multi-row INSERT per table), all under one
    savepoint. If anything fails there, the savepoint is rolled back and the page is stored again mail by mail,
    each in its own savepoint, so that the one bad mail is quarantined and the others are stored."""
    parsed = await asyncio.to_thread(_parse_page, mails, settings)
    # the others are quarantined one by one below (oversized, unreadable, no sender)
    good = [
        (mail, item)
        for mail, item in zip(mails, parsed, strict=True)
        if isinstance(item, _Parsed) and item.parsed.from_address is not None
    ]
    mark = events.recorded_mark(session)
    try:
        async with session.begin_nested():
            transaction_memo(session, "batch")["savepoint"] = True
            page = await _prefetch(session, account, [item.parsed for _, item in good])
            fast = {mail.uid: await _store_one(session, account, mail, item, page) for mail, item in good}
            await release_references(session, account.organization_id)
            await session.flush()
            if not transaction_memo(session, "batch").pop("savepoint", False):
                # a savepoint inside the batch was rolled back (a contact's identity added concurrently): the memos
                # (reserved references, locked threads, contacts) were forgotten with it, so the batch is not trusted
                raise _BatchInterrupted
    except Exception as exc:
        events.drop_recorded_since(session, mark)
        log.info("page stored mail by mail", account=str(account.id), mails=len(mails), error=type(exc).__name__)
        fast = None
    outcomes = []
    for mail, item in zip(mails, parsed, strict=True):
        if fast is not None and mail.uid in fast:
            outcomes.append(fast[mail.uid])
        else:
            outcomes.append(await _store_alone(session, account, mail, item, settings))
    return outcomes


class _BatchInterrupted(Exception):
    """The batched way could not finish as it started: the page is stored mail by mail."""


def _parse_page(mails: list[imap.FetchedMail], settings: Settings) -> list[_Parsed | Exception | None]:
    """Each mail parsed with its attachments stored (a worker thread); an oversized one None, a failure its error."""
    parsed: list[_Parsed | Exception | None] = []
    for mail in mails:
        if not mail.raw:
            parsed.append(None)
            continue
        try:
            parsed.append(_parse(mail.raw, settings))
        except Exception as exc:
            parsed.append(exc)
    return parsed


async def _store_one(
    session: AsyncSession, account: EmailAccount, mail: imap.FetchedMail, item: _Parsed, page: _Page | None
) -> str:
    """'imported' or 'duplicates'; raises what the mail's rows could not be written for."""
    stored = await _store_parsed(session, account, item, uid=mail.uid, page=page)
    return "imported" if stored is not None else "duplicates"


async def _store_alone(
    session: AsyncSession,
    account: EmailAccount,
    mail: imap.FetchedMail,
    item: _Parsed | Exception | None,
    settings: Settings,
) -> str:
    """One mail in its own savepoint: 'imported', 'duplicates' or 'quarantined'."""
    if item is None:
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
    mark = events.recorded_mark(session)
    try:
        if isinstance(item, Exception):
            raise item
        async with session.begin_nested():
            return await _store_one(session, account, mail, item, None)
    except Exception as exc:  # whatever it is: keep the mail, go on with the next
        events.drop_recorded_since(session, mark)
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
