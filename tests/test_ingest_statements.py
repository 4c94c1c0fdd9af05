"""What a page of ingested mail costs in SQL statements, and that the batched way stores what the mail-by-mail way
does: the same threads, contacts, messages, attachments and events, a bad mail quarantined without losing the rest."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import event, select

from banxway.db.models import Attachment, Contact, EmailQuarantine, Message, Thread, ThreadCounter
from banxway.db.session import system_session
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.standins.mailservers import DovecotServer
from tests.test_email_ingest import count_rows, counts, mail, make_account, poll

PDF = ("manifest.pdf", "application/pdf", b"%PDF-1.4 manifest")


def _page(prefix: str, senders: int, mails: int, *, reply_to: list[str] = ()) -> list[bytes]:
    """`mails` mails from `senders` senders: a third new conversations, a third replies to an earlier mail of this
    list (the same page), a third replies to `reply_to` (earlier pages) when given; every fifth with a PDF."""
    raws = []
    for n in range(mails):
        message_id = f"<{prefix}-{n}@oceanic.test>"
        parent = None
        if n % 3 == 1 and n > 1:
            parent = f"<{prefix}-{n - 1}@oceanic.test>"
        elif n % 3 == 2 and reply_to:
            parent = reply_to[n % len(reply_to)]
        raws.append(
            mail(
                subject=f"Booking {prefix} {n}",
                sender=f"Sender {n % senders} <sender-{n % senders}@{prefix}.test>",
                message_id=message_id,
                in_reply_to=parent,
                references=parent,
                attachments=[PDF] if n % 5 == 0 else (),
            )
        )
    return raws


def _count_statements(state: AppState) -> tuple[list[str], Any]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        verb = statement.split(None, 1)[0].upper()
        table = re.search(r"\b(?:INTO|UPDATE|FROM)\s+(\w+)", statement)
        seen.append(f"{verb} {table.group(1) if table else ''}".strip())

    event.listen(state.engine.sync_engine, "before_cursor_execute", count)
    return seen, lambda: event.remove(state.engine.sync_engine, "before_cursor_execute", count)


async def test_a_page_of_mail_costs_a_few_statements_whatever_its_size(
    org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given a mailbox with 30 earlier mails imported, then 40 more and, in another run, 100 more: new conversations
    # from new and known senders, replies within the page and to earlier pages, attachments
    account_id = await make_account(state, org.id, dovecot)
    earlier = _page("early", 10, 30)
    dovecot.append_many(None, earlier)
    assert counts(await poll(state, settings, account_id)) == (30, 30, 0, 0)
    earlier_ids = [f"<early-{n}@oceanic.test>" for n in range(0, 30, 3)]
    per_page: dict[int, int] = {}
    for size in (40, 100):
        dovecot.append_many(None, _page(f"p{size}", 15, size, reply_to=earlier_ids))
        seen, stop = _count_statements(state)
        try:
            result = await poll(state, settings, account_id)
        finally:
            stop()
        assert counts(result) == (size, size, 0, 0)
        per_page[size] = len(seen)
        # then the page's rows go in one multi-row INSERT per table, not one per mail
        kinds = Counter(seen)
        assert kinds["INSERT messages"] == 1, kinds
        assert kinds["INSERT threads"] == 1 and kinds["INSERT attachments"] == 1, " | ".join(seen)
        # and there is no per-mail lookup: each SELECT (messages: the stored keys, then the threads of the keys
        # replied to; the account: the poll's and the page's lock) runs at most twice per page
        assert all(n <= 2 for kind, n in kinds.items() if kind.startswith("SELECT")), kinds
    # and a page costs well under the target of 4 statements per mail; what grows with the page is one UPDATE per
    # earlier thread that got a reply (10 here), not the number of mails
    assert per_page[100] <= per_page[40] + 2, per_page
    assert per_page[100] / 100 <= 0.5, per_page


async def test_a_bad_mail_in_a_page_is_quarantined_and_the_rest_stored_as_the_batch_would(
    org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given a page of 12 mails, one of them from an address too long to store (a database error, not a parse error:
    # the batched page fails as a whole and is stored again mail by mail)
    account_id = await make_account(state, org.id, dovecot)
    raws = _page("mix", 4, 12)
    long_sender = "x" * 330 + "@oceanic.test"
    raws.insert(6, mail(subject="Odd", sender=f"Odd <{long_sender}>", message_id="<odd@oceanic.test>"))
    dovecot.append_many(None, raws)
    # when the account is polled
    result = await poll(state, settings, account_id)
    # then the bad mail is quarantined with the database's reason and the 12 others are stored
    assert counts(result) == (13, 12, 0, 1)
    async with system_session(state.sessionmaker) as session:
        [bad] = list(await session.scalars(select(EmailQuarantine)))
        assert "too long" in bad.error
        # and the replies within the page joined their parents' threads, as the batched way threads them
        rows = (await session.execute(select(Message.provider_message_id, Message.thread_id))).all()
        thread_of = dict(rows)
        for n in range(12):
            if n % 3 == 1 and n > 1:
                assert thread_of[f"<mix-{n}@oceanic.test>"] == thread_of[f"<mix-{n - 1}@oceanic.test>"]
        assert len(set(thread_of.values())) == await count_rows(state, Thread) == 9
        # and the four senders are four contacts; no contact was left behind by the rolled-back batch
        assert await count_rows(state, Contact) == 4
        assert await count_rows(state, Attachment) == 3
        # and the thread references are numbered without a gap: the rolled-back reservation was not kept
        references = sorted(await session.scalars(select(Thread.reference)))
        assert [int(r.rsplit("-", 1)[1]) for r in references] == list(range(1, 10))
        assert await session.scalar(select(ThreadCounter.last_value)) == 9


async def test_the_batched_and_the_mail_by_mail_ways_store_the_same(
    api: Api, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given the same 30 mails in two mailboxes of two organizations: one read in a page of 30 (batched), the other
    # in pages of one mail (each page batched on its own: the mail-by-mail order of writes)
    other_org = await api.create_org("globex")
    raws = _page("same", 5, 30, reply_to=["<same-0@oceanic.test>"])
    dovecot.append_many(None, raws)
    dovecot.add_user("second", "secret-second")
    second_user = "second"
    dovecot.append_many(second_user, raws)
    batched = await make_account(state, org.id, dovecot)
    single = await make_account(state, other_org.id, dovecot, user=second_user, email="ops@other.test")
    assert counts(await poll(state, settings.model_copy(update={"email_page_size": 30}), batched))[1] == 30
    assert counts(await poll(state, settings.model_copy(update={"email_page_size": 1}), single))[1] == 30

    async def shape(organization_id: uuid.UUID) -> list[tuple[Any, ...]]:
        async with system_session(state.sessionmaker) as session:
            threads = {
                t.id: (t.reference, t.subject, t.status.name)
                for t in await session.scalars(select(Thread).where(Thread.organization_id == organization_id))
            }
            contacts = {
                c.id: c.name
                for c in await session.scalars(select(Contact).where(Contact.organization_id == organization_id))
            }
            rows = await session.execute(
                select(Message.provider_message_id, Message.thread_id, Message.contact_id, Message.body)
                .where(Message.organization_id == organization_id)
                .order_by(Message.created_at, Message.id)
            )
            return [(key, threads[thread], contacts[contact], body) for key, thread, contact, body in rows]

    # then both organizations hold the same threads (same references), contacts and messages, in the same order
    assert await shape(org.id) == await shape(other_org.id)
