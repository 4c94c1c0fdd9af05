"""Email ingest (`poll_account`) against a real Dovecot: threads, contacts, attachments, dedupe, the cursor,
the quarantine, tenancy, and the live inbox events."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator, Sequence
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from banxway.db.models import Contact, ContactIdentity, EmailAccount, EmailQuarantine, Message, Thread
from banxway.db.session import system_session, tenant_session
from banxway.enums import MessageStatus
from banxway.resolvers import email_ingest as ingest
from banxway.resolvers.delivery import deliver
from banxway.resolvers.email_ingest import PollResult, poll_account
from banxway.secrets import SecretBox
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import INBOX_EVENTS, GraphQLSocket, local_uuid, uvicorn_server, wait_subscribed
from tests.standins.mailservers import DovecotServer, SmtpServer

CORPUS = Path(__file__).parent / "mail_corpus"

THREADS = """
{
  threads(first: 100) {
    totalCount
    edges { node {
      id reference subject primaryChannel status
      contact { id name verified identities { channel address } }
      messages(first: 50) { edges { node {
        id direction status channel body fullBody subject sender
        contact { id }
        attachments { filename contentType size sha256 inline contentId }
      } } }
    } }
  }
}
"""
QUARANTINE = """
query($first: Int, $after: String) {
  emailQuarantine(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id uid size error reprocessedAt createdAt account { id email } message { id body } } }
  }
}
"""
REPROCESS = """
mutation($id: ID!) {
  emailQuarantineReprocess(input: {id: $id}) {
    quarantined { id reprocessedAt message { id body } }
    message { id body thread { id subject } }
    userErrors { field code message }
  }
}
"""
MESSAGE_SEND = """
mutation($threadId: ID!, $body: String!) {
  messageSend(input: {threadId: $threadId, channel: EMAIL, body: $body}) {
    message { id status } userErrors { field code message }
  }
}
"""


# -- helpers ---------------------------------------------------------------------------------------------


def mail(
    *,
    subject: str = "Quote request",
    sender: str = "Priya Shah <priya.shah@oceanic.test>",
    to: str = "ops@acme.test",
    body: str = "Hello.",
    message_id: str | None = "<quote-1@oceanic.test>",
    in_reply_to: str | None = None,
    references: str | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    date: str = "Tue, 04 Mar 2025 10:00:00 +0000",
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = date
    if message_id is not None:
        msg["Message-ID"] = message_id
    if in_reply_to is not None:
        msg["In-Reply-To"] = in_reply_to
    if references is not None:
        msg["References"] = references
    msg.set_content(body)
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=SMTP_POLICY)


async def make_account(
    state: AppState,
    organization_id: uuid.UUID,
    dovecot: DovecotServer,
    smtp: SmtpServer | None = None,
    *,
    email: str = "ops@acme.test",
    user: str | None = None,
) -> uuid.UUID:
    box = SecretBox(state.secret_key)
    user = user or dovecot.user
    async with tenant_session(state.sessionmaker, organization_id) as session, session.begin():
        account = EmailAccount(
            organization_id=organization_id,
            name="Operations",
            email=email,
            imap_host=dovecot.host,
            imap_port=dovecot.port,
            imap_security="NONE",
            imap_username=user,
            imap_password=box.encrypt(dovecot.users[user]),
            imap_folder="INBOX",
            smtp_host=smtp.host if smtp else "127.0.0.1",
            smtp_port=smtp.port if smtp else 25,
            smtp_security="NONE",
            smtp_username=smtp.user if smtp else None,
            smtp_password=box.encrypt(smtp.password) if smtp else None,
        )
        session.add(account)
        await session.flush()
        return account.id


async def poll(state: AppState, settings: Settings, account_id: uuid.UUID) -> PollResult:
    return await poll_account(system_context(state, settings), account_id)


def counts(result: PollResult) -> tuple[int, int, int, int]:
    return (result.fetched, result.imported, result.duplicates, result.quarantined)


async def account_row(state: AppState, account_id: uuid.UUID) -> EmailAccount:
    async with system_session(state.sessionmaker) as session:
        row = await session.get(EmailAccount, account_id)
        assert row is not None
        return row


async def set_cursor(state: AppState, account_id: uuid.UUID, *, uidvalidity: Any = ..., last_uid: int = 0) -> None:
    async with system_session(state.sessionmaker) as session, session.begin():
        row = await session.get(EmailAccount, account_id)
        assert row is not None
        if uidvalidity is not ...:
            row.uidvalidity = uidvalidity
        row.last_uid = last_uid


async def count_rows(state: AppState, model: Any, *where: Any) -> int:
    async with system_session(state.sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def threads(inbox: Inbox, token: str | None = None) -> list[dict]:
    result = await inbox.gql(THREADS, token=token)
    assert "errors" not in result, result
    return [edge["node"] for edge in result["data"]["threads"]["edges"]]


def messages_of(thread: dict) -> list[dict]:
    return [edge["node"] for edge in thread["messages"]["edges"]]


async def quarantine_list(inbox: Inbox, first: int = 50) -> list[dict]:
    result = await inbox.gql(QUARANTINE, {"first": first})
    assert "errors" not in result, result
    return [edge["node"] for edge in result["data"]["emailQuarantine"]["edges"]]


# -- a new mail, replies, contacts -------------------------------------------------------------------------


async def test_a_new_mail_starts_a_thread_with_an_unverified_contact_and_attachments(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given an account, and a mail from an unknown sender with a quoted history and a PDF
    account_id = await make_account(state, org.id, dovecot)
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8
    text = (
        "Please send the booking confirmation.\n\n"
        "On Tue, 4 Mar 2025 at 10:00, Ops <ops@acme.test> wrote:\n"
        "> Your quote is ready.\n"
        "> Regards\n"
    )
    uid = dovecot.append(
        None,
        mail(subject="Booking 2x40HC Nhava Sheva", body=text, attachments=[("BL draft.pdf", "application/pdf", pdf)]),
    )
    # when the account is polled
    result = await poll(state, settings, account_id)
    # then one mail was fetched and imported
    assert counts(result) == (1, 1, 0, 0)
    # and it opened a new EMAIL thread with the mail's subject
    [thread] = await threads(inbox)
    assert thread["subject"] == "Booking 2x40HC Nhava Sheva"
    assert thread["primaryChannel"] == "EMAIL"
    assert thread["status"] == "NEW"
    # with a new unverified contact named after the sender, owning the sender's address
    contact = thread["contact"]
    assert contact["name"] == "Priya Shah"
    assert contact["verified"] is False
    assert contact["identities"] == [{"channel": "EMAIL", "address": "priya.shah@oceanic.test"}]
    # and the message is INBOUND, RECEIVED, its body the reply alone and its fullBody the whole text
    [message] = messages_of(thread)
    assert message["direction"] == "INBOUND"
    assert message["status"] == "RECEIVED"
    assert message["channel"] == "EMAIL"
    assert message["body"] == "Please send the booking confirmation."
    assert message["fullBody"].startswith("Please send the booking confirmation.")
    assert "> Your quote is ready." in message["fullBody"]
    assert message["sender"] == "priya.shah@oceanic.test"
    assert message["contact"]["id"] == contact["id"]
    # with the attachment's size and sha256, its bytes stored under the data dir
    digest = hashlib.sha256(pdf).hexdigest()
    assert message["attachments"] == [
        {
            "filename": "BL draft.pdf",
            "contentType": "application/pdf",
            "size": len(pdf),
            "sha256": digest,
            "inline": False,
            "contentId": None,
        }
    ]
    stored = settings.data_dir / "attachments" / digest[:2] / digest
    assert stored.read_bytes() == pdf
    # and the cursor moved past the mail, in the transaction that stored it
    row = await account_row(state, account_id)
    assert row.last_uid == uid
    assert row.uidvalidity == dovecot.uidvalidity()
    assert row.last_polled_at is not None and row.last_error is None
    # and the mail was not marked \Seen on the server
    assert b"\\Seen" not in dovecot.flags()[uid]
    # and the stored row keeps the Message-ID and the account
    async with system_session(state.sessionmaker) as session:
        stored_message = await session.get(Message, local_uuid(message["id"]))
        assert stored_message is not None
        assert stored_message.provider_message_id == "<quote-1@oceanic.test>"
        assert stored_message.email_account_id == account_id


async def test_a_reply_to_a_mail_we_sent_joins_its_thread_by_in_reply_to(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    # given a thread with a contact, and a mail we sent on it
    account_id = await make_account(state, org.id, dovecot, smtp_server)
    contact = await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya.shah@oceanic.test"}])
    thread = await inbox.thread("Quote 2x40HC", contactId=contact["id"])
    sent = await inbox.ok(MESSAGE_SEND, {"threadId": thread["id"], "body": "Our quote: USD 2,150."}, "messageSend")
    status = await deliver(system_context(state, settings), local_uuid(sent["message"]["id"]))
    assert status == MessageStatus.SENT
    [received] = smtp_server.messages
    our_id = BytesParser().parsebytes(received.raw)["Message-ID"]
    assert our_id
    # when the customer replies with In-Reply-To our Message-ID, and a subject without the reference token
    dovecot.append(
        None,
        mail(
            subject="Re: Quote 2x40HC",
            body="Accepted, please book.",
            message_id="<accept-1@oceanic.test>",
            in_reply_to=our_id,
            references=our_id,
        ),
    )
    result = await poll(state, settings, account_id)
    # then the reply joined that thread, and no thread was created
    assert counts(result) == (1, 1, 0, 0)
    [only] = await threads(inbox)
    assert only["id"] == thread["id"]
    assert [(m["direction"], m["body"]) for m in messages_of(only)] == [
        ("OUTBOUND", "Our quote: USD 2,150."),
        ("INBOUND", "Accepted, please book."),
    ]


async def test_a_reply_is_threaded_by_the_reference_token_in_the_subject(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given two threads
    account_id = await make_account(state, org.id, dovecot)
    await inbox.thread("Something else")
    thread = await inbox.thread("Customs hold at Nhava Sheva")
    # when a mail arrives whose only link is the [BX-YYYY-NNNN] token of the second one (unknown In-Reply-To)
    dovecot.append(
        None,
        mail(
            subject=f"Re: Customs hold [{thread['reference'].lower()}]",
            body="The documents are attached.",
            message_id="<docs-1@oceanic.test>",
            in_reply_to="<never-seen@elsewhere.test>",
        ),
    )
    result = await poll(state, settings, account_id)
    # then it joined that thread
    assert counts(result) == (1, 1, 0, 0)
    by_id = {t["id"]: t for t in await threads(inbox)}
    assert len(by_id) == 2
    assert [m["body"] for m in messages_of(by_id[thread["id"]])] == ["The documents are attached."]


async def test_a_mail_from_a_known_contact_links_to_that_contact(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given a contact with an email address
    account_id = await make_account(state, org.id, dovecot)
    contact = await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya.shah@oceanic.test"}])
    # when a mail comes from that address (in another case, under another display name)
    dovecot.append(None, mail(sender="P. SHAH <Priya.Shah@Oceanic.TEST>", subject="New booking"))
    result = await poll(state, settings, account_id)
    # then the new thread and its message belong to that contact, and no contact was created
    assert counts(result) == (1, 1, 0, 0)
    [thread] = await threads(inbox)
    assert thread["contact"]["id"] == contact["id"]
    assert thread["contact"]["verified"] is True
    assert messages_of(thread)[0]["contact"]["id"] == contact["id"]
    assert await count_rows(state, Contact) == 1
    assert await count_rows(state, ContactIdentity) == 1


# -- the cursor and dedupe ----------------------------------------------------------------------------------


async def test_a_second_poll_imports_nothing_and_a_rewound_cursor_only_finds_duplicates(
    org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given three mails, imported
    account_id = await make_account(state, org.id, dovecot)
    dovecot.append_many(None, [mail(subject=f"Booking {n}", message_id=f"<b-{n}@oceanic.test>") for n in range(3)])
    assert counts(await poll(state, settings, account_id)) == (3, 3, 0, 0)
    # when it polls again with nothing new
    again = await poll(state, settings, account_id)
    # then nothing is fetched or imported
    assert counts(again) == (0, 0, 0, 0)
    # when the cursor is rewound to 0 (as after a crash that lost it) and it polls again
    await set_cursor(state, account_id, last_uid=0)
    rewound = await poll(state, settings, account_id)
    # then every mail is a duplicate, nothing new is stored
    assert counts(rewound) == (3, 0, 3, 0)
    assert await count_rows(state, Message) == 3
    assert await count_rows(state, Thread) == 3
    assert (await account_row(state, account_id)).last_uid == 3


async def test_a_crash_mid_way_keeps_the_pages_stored_and_never_duplicates(
    org: Org, state: AppState, settings: Settings, dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given five mails, pages of two, and a process that dies while storing the fifth mail
    account_id = await make_account(state, org.id, dovecot)
    dovecot.append_many(None, [mail(subject=f"Booking {n}", message_id=f"<b-{n}@oceanic.test>") for n in range(5)])
    small = settings.model_copy(update={"email_page_size": 2})
    real_store = ingest._store_one
    calls = 0

    async def dying_store(*args: Any, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise SystemExit("killed")  # not an Exception: nothing may catch it and go on
        return await real_store(*args, **kwargs)

    monkeypatch.setattr(ingest, "_store_one", dying_store)
    with pytest.raises(SystemExit):
        await poll(state, small, account_id)
    # then the two first pages are stored with their cursor, the third page not at all
    assert await count_rows(state, Message) == 4
    assert (await account_row(state, account_id)).last_uid == 4
    # when the next poll runs normally
    monkeypatch.setattr(ingest, "_store_one", real_store)
    resumed = await poll(state, small, account_id)
    # then only the fifth mail is imported
    assert counts(resumed) == (1, 1, 0, 0)
    # and re-reading everything finds only duplicates
    await set_cursor(state, account_id, last_uid=0)
    assert counts(await poll(state, small, account_id)) == (5, 0, 5, 0)
    assert await count_rows(state, Message) == 5


async def test_a_uidvalidity_change_rereads_without_duplicates(
    org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given three mails imported
    account_id = await make_account(state, org.id, dovecot)
    dovecot.append_many(None, [mail(subject=f"Booking {n}", message_id=f"<b-{n}@oceanic.test>") for n in range(3)])
    assert counts(await poll(state, settings, account_id)) == (3, 3, 0, 0)
    old = (await account_row(state, account_id)).uidvalidity
    # when the server's store is rebuilt (new UIDVALIDITY, UIDs from 1 again) and a fourth mail arrives
    new = dovecot.change_uidvalidity()
    dovecot.append(None, mail(subject="Booking 3", message_id="<b-3@oceanic.test>"))
    result = await poll(state, settings, account_id)
    # then the folder is read again: the three known mails are duplicates and the new one is imported
    assert counts(result) == (4, 1, 3, 0)
    assert await count_rows(state, Message) == 4
    row = await account_row(state, account_id)
    assert row.uidvalidity == new != old
    assert row.last_uid == 4
    # and the next poll is quiet
    assert counts(await poll(state, settings, account_id)) == (0, 0, 0, 0)


async def test_a_mail_without_message_id_is_deduplicated_by_content_hash(
    org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given the same mail without a Message-ID delivered twice, and a different one without a Message-ID
    account_id = await make_account(state, org.id, dovecot)
    raw = (CORPUS / "no_message_id.eml").read_bytes()
    other = mail(subject="Daily status", body="Nothing moved today.", message_id=None)
    dovecot.append_many(None, [raw, raw, other])
    # when the account is polled
    result = await poll(state, settings, account_id)
    # then the copy is a duplicate, and the other one is imported
    assert counts(result) == (3, 2, 1, 0)
    async with system_session(state.sessionmaker) as session:
        keys = sorted(await session.scalars(select(Message.provider_message_id)))
    assert len(keys) == 2
    assert all(key.startswith("sha256:") for key in keys), keys
    # and a rewound cursor finds all three to be duplicates
    await set_cursor(state, account_id, last_uid=0)
    assert counts(await poll(state, settings, account_id)) == (3, 0, 3, 0)


# -- malformed mail and the quarantine -------------------------------------------------------------------------

NO_FROM = b"To: ops@acme.test\r\nSubject: Who sent this?\r\nMessage-ID: <nofrom@x.test>\r\n\r\nNo sender here.\r\n"


async def test_the_malformed_corpus_never_stops_the_loop(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given every mail of the malformed corpus, plus one with no From address, between two good mails
    account_id = await make_account(state, org.id, dovecot)
    files = sorted(CORPUS.glob("*.eml"))
    assert len(files) >= 20
    raws = [mail(subject="First", message_id="<first@x.test>")]
    raws += [path.read_bytes() for path in files]
    raws += [NO_FROM, mail(subject="Last", message_id="<last@x.test>")]
    uids = dovecot.append_many(None, raws)
    # when the account is polled
    result = await poll(state, settings, account_id)
    # then every mail was fetched, and each one is either imported or quarantined
    assert result.fetched == len(raws)
    assert result.imported + result.quarantined == len(raws), result
    assert result.duplicates == 0
    async with system_session(state.sessionmaker) as session:
        headers = list(await session.scalars(select(Message.headers)))
        quarantined = list(await session.scalars(select(EmailQuarantine)))
    imported_uids = {h["uid"] for h in headers}
    quarantined_uids = {q.uid for q in quarantined}
    assert imported_uids | quarantined_uids == set(uids)
    assert not imported_uids & quarantined_uids
    assert len(headers) == result.imported and len(quarantined) == result.quarantined
    # and the loop went on to the last mail, the cursor past it
    assert uids[0] in imported_uids and uids[-1] in imported_uids
    assert (await account_row(state, account_id)).last_uid == uids[-1]
    # and the mail without a sender is in the quarantine, listed for the admin with its error
    listed = await quarantine_list(inbox)
    assert len(listed) == result.quarantined
    [no_from] = [item for item in listed if item["uid"] == uids[-2]]
    assert "From" in no_from["error"]
    assert no_from["size"] == len(NO_FROM)
    assert no_from["reprocessedAt"] is None and no_from["message"] is None
    assert no_from["account"]["email"] == "ops@acme.test"
    # and reprocessing it, still unfixable, answers INVALID and leaves it as it was
    answer = (await inbox.gql(REPROCESS, {"id": no_from["id"]}))["data"]["emailQuarantineReprocess"]
    assert [(e["code"], e["field"]) for e in answer["userErrors"]] == [("INVALID", ["id"])], answer
    assert "From" in answer["userErrors"][0]["message"]
    assert answer["message"] is None
    assert next(q for q in await quarantine_list(inbox) if q["id"] == no_from["id"])["reprocessedAt"] is None
    # and a second poll imports nothing and quarantines nothing again
    assert counts(await poll(state, settings, account_id)) == (0, 0, 0, 0)
    assert len(await quarantine_list(inbox)) == result.quarantined


async def test_a_quarantined_mail_is_reprocessed_once_it_can_be_stored(
    api: Api,
    inbox: Inbox,
    org: Org,
    state: AppState,
    settings: Settings,
    dovecot: DovecotServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a disk that is full while a mail with an attachment is polled, and a good mail after it
    account_id = await make_account(state, org.id, dovecot)
    pdf = b"%PDF-1.4 packing list"
    uids = dovecot.append_many(
        None,
        [
            mail(subject="Packing list 7781", attachments=[("packing.pdf", "application/pdf", pdf)]),
            mail(subject="Other", message_id="<other@oceanic.test>"),
        ],
    )

    def disk_full(data_dir: Path, data: bytes) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ingest, "store_attachment_bytes", disk_full)
    result = await poll(state, settings, account_id)
    # then that mail is quarantined with the error, and the next one imported
    assert counts(result) == (2, 1, 0, 1)
    [item] = await quarantine_list(inbox)
    assert item["uid"] == uids[0]
    assert "No space left on device" in item["error"]
    assert [t["subject"] for t in await threads(inbox)] == ["Other"]
    async with system_session(state.sessionmaker) as session:
        raw = await session.scalar(select(EmailQuarantine.raw))
    assert raw is not None and b"Packing list 7781" in raw
    # and a support user may not reprocess it
    await api.create_user(org, "sam@acme.test", "support")
    forbidden = await api.gql(REPROCESS, {"id": item["id"]}, token=await api.token("sam@acme.test"))
    assert [e["extensions"]["code"] for e in forbidden["errors"]] == ["FORBIDDEN"]
    # when the disk has room again and the admin reprocesses it
    monkeypatch.undo()
    answer = (await inbox.gql(REPROCESS, {"id": item["id"]}))["data"]["emailQuarantineReprocess"]
    # then it became a message in a new thread, linked from the quarantine record
    assert answer["userErrors"] == [], answer
    assert answer["message"]["body"] == "Hello."
    assert answer["message"]["thread"]["subject"] == "Packing list 7781"
    assert answer["quarantined"]["reprocessedAt"] is not None
    assert answer["quarantined"]["message"]["id"] == answer["message"]["id"]
    digest = hashlib.sha256(pdf).hexdigest()
    assert (settings.data_dir / "attachments" / digest[:2] / digest).read_bytes() == pdf
    # and reprocessing it again answers INVALID
    again = (await inbox.gql(REPROCESS, {"id": item["id"]}))["data"]["emailQuarantineReprocess"]
    assert [e["code"] for e in again["userErrors"]] == ["INVALID"]
    assert await count_rows(state, Message) == 2


async def test_reprocessing_a_mail_that_still_cannot_be_stored_answers_invalid(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a mail quarantined because the disk was full, and a disk that is still full
    account_id = await make_account(state, org.id, dovecot)
    dovecot.append(None, mail(subject="Packing list", attachments=[("p.pdf", "application/pdf", b"%PDF-1.4 x")]))

    def disk_full(data_dir: Path, data: bytes) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ingest, "store_attachment_bytes", disk_full)
    assert counts(await poll(state, settings, account_id)) == (1, 0, 0, 1)
    [item] = await quarantine_list(inbox)
    # when the admin reprocesses it
    result = await inbox.gql(REPROCESS, {"id": item["id"]})
    # then the answer is INVALID with the reason (not a server error), and the record stays as it was
    assert "errors" not in result, result
    answer = result["data"]["emailQuarantineReprocess"]
    assert [(e["code"], e["field"]) for e in answer["userErrors"]] == [("INVALID", ["id"])], answer
    assert "No space left on device" in answer["userErrors"][0]["message"]
    [after] = await quarantine_list(inbox)
    assert after["reprocessedAt"] is None and after["message"] is None
    assert await count_rows(state, Message) == 0


async def test_the_quarantine_is_paginated(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given three quarantined mails
    account_id = await make_account(state, org.id, dovecot)
    dovecot.append_many(None, [NO_FROM.replace(b"nofrom@", f"nofrom{n}@".encode()) for n in range(3)])
    assert counts(await poll(state, settings, account_id)) == (3, 0, 0, 3)
    # when the admin reads them one page of one at a time
    seen: list[int] = []
    after = None
    while True:
        result = await inbox.gql(QUARANTINE, {"first": 1, "after": after})
        page = result["data"]["emailQuarantine"]
        assert page["totalCount"] == 3
        seen += [edge["node"]["uid"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    # then each is listed exactly once
    assert sorted(seen) == [1, 2, 3]


async def test_another_organization_cannot_list_or_reprocess_the_quarantine(
    api: Api, inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given a quarantined mail of Acme
    account_id = await make_account(state, org.id, dovecot)
    dovecot.append(None, NO_FROM)
    assert counts(await poll(state, settings, account_id)) == (1, 0, 0, 1)
    [item] = await quarantine_list(inbox)
    # when Globex's admin lists and reprocesses
    globex = await api.create_org("globex")
    token = await api.token(globex.admin_email)
    listed = await api.gql(QUARANTINE, {"first": 10}, token=token)
    answer = await api.gql(REPROCESS, {"id": item["id"]}, token=token)
    # then it sees nothing, and the id is NOT_FOUND
    assert listed["data"]["emailQuarantine"]["totalCount"] == 0
    assert [e["code"] for e in answer["data"]["emailQuarantineReprocess"]["userErrors"]] == ["NOT_FOUND"]


async def test_an_oversized_mail_gets_one_record_without_bytes(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given a 1 KiB limit, and a 6 KiB mail between two small ones
    account_id = await make_account(state, org.id, dovecot)
    limited = settings.model_copy(update={"email_max_bytes": 1024})
    big = mail(subject="Scans", message_id="<scans@oceanic.test>", body="x" * 6000)
    uids = dovecot.append_many(
        None,
        [
            mail(subject="Before", message_id="<before@oceanic.test>"),
            big,
            mail(subject="After", message_id="<after@oceanic.test>"),
        ],
    )
    # when the account is polled
    result = await poll(state, limited, account_id)
    # then the small ones are imported and the big one recorded once, without its bytes
    assert counts(result) == (3, 2, 0, 1)
    assert sorted(t["subject"] for t in await threads(inbox)) == ["After", "Before"]
    [item] = await quarantine_list(inbox)
    assert item["uid"] == uids[1]
    assert item["size"] == len(big)
    assert "1024" in item["error"]
    async with system_session(state.sessionmaker) as session:
        assert await session.scalar(select(EmailQuarantine.raw)) is None
    # and a second poll does not record it again
    assert counts(await poll(state, limited, account_id)) == (0, 0, 0, 0)
    assert len(await quarantine_list(inbox)) == 1
    # and it cannot be reprocessed: there are no bytes
    answer = (await inbox.gql(REPROCESS, {"id": item["id"]}))["data"]["emailQuarantineReprocess"]
    assert [e["code"] for e in answer["userErrors"]] == ["INVALID"]
    assert "too large" in answer["userErrors"][0]["message"]


async def test_rereading_the_folder_does_not_quarantine_the_same_mail_twice(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given an oversized mail and a mail without a sender, each quarantined once
    account_id = await make_account(state, org.id, dovecot)
    limited = settings.model_copy(update={"email_max_bytes": 1024})
    dovecot.append_many(None, [mail(subject="Scans", body="x" * 6000), NO_FROM, mail(subject="Fine", message_id=None)])
    assert counts(await poll(state, limited, account_id)) == (3, 1, 0, 2)
    # when the folder is read again from the start (a new UIDVALIDITY)
    dovecot.change_uidvalidity()
    again = await poll(state, limited, account_id)
    # then nothing new is stored: the good mail is a duplicate, and the two are not quarantined a second time
    assert again.imported == 0
    assert await count_rows(state, EmailQuarantine) == 2, [q["error"] for q in await quarantine_list(inbox)]


async def test_a_mail_with_a_very_long_subject_is_imported_not_quarantined(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given a mail whose subject is longer than the 998 characters a subject column holds
    account_id = await make_account(state, org.id, dovecot)
    subject = "Re: " + "Booking confirmation 2x40HC " * 45
    assert len(subject) > 998
    dovecot.append(None, mail(subject=subject, message_id="<long-subject@oceanic.test>"))
    # when the account is polled
    result = await poll(state, settings, account_id)
    # then it is imported (the subject shortened), not quarantined over a database error
    assert counts(result) == (1, 1, 0, 0), [q["error"] for q in await quarantine_list(inbox)]
    [thread] = await threads(inbox)
    assert subject.startswith(thread["subject"])


async def test_a_mail_with_a_long_message_id_is_imported_and_deduplicated(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given a mail whose (valid) Message-ID is longer than 255 characters
    account_id = await make_account(state, org.id, dovecot)
    dovecot.append(None, mail(subject="Long id", message_id="<" + "a1b2c3d4" * 40 + "@mailer.example>"))
    # when the account is polled
    result = await poll(state, settings, account_id)
    # then it is imported rather than quarantined over a database error
    assert counts(result) == (1, 1, 0, 0), [q["error"] for q in await quarantine_list(inbox)]
    # and reading it again finds a duplicate
    await set_cursor(state, account_id, last_uid=0)
    assert counts(await poll(state, settings, account_id)) == (1, 0, 1, 0)


# -- tenancy ---------------------------------------------------------------------------------------------------


async def test_mail_of_another_organization_never_lands_in_this_organizations_threads(
    api: Api, inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given Acme with a thread and an ingested mail on it (its Message-ID known to Acme)
    acme_account = await make_account(state, org.id, dovecot)
    await inbox.thread("First")
    thread = await inbox.thread("Reefer booking")
    dovecot.append(
        None, mail(subject=f"Reefer booking [{thread['reference']}]", message_id="<acme-reefer@oceanic.test>")
    )
    assert counts(await poll(state, settings, acme_account)) == (1, 1, 0, 0)
    # and Globex with its own account on another mailbox, and no threads
    globex = await api.create_org("globex")
    globex_inbox = Inbox(api, globex, await api.token(globex.admin_email))
    dovecot.add_user("bob", "secret-bob")
    globex_account = await make_account(state, globex.id, dovecot, email="ops@globex.test", user="bob")
    # when Globex receives a mail forging Acme's thread token and replying to Acme's Message-ID
    dovecot.append(
        "bob",
        mail(
            subject=f"Re: Reefer booking [{thread['reference']}]",
            body="Forged reply.",
            message_id="<forged@evil.test>",
            in_reply_to="<acme-reefer@oceanic.test>",
            references="<acme-reefer@oceanic.test>",
        ),
    )
    result = await poll(state, settings, globex_account)
    # then it is imported into a new Globex thread
    assert counts(result) == (1, 1, 0, 0)
    [globex_thread] = await threads(globex_inbox)
    assert [m["body"] for m in messages_of(globex_thread)] == ["Forged reply."]
    async with system_session(state.sessionmaker) as session:
        forged = await session.scalar(select(Message).where(Message.provider_message_id == "<forged@evil.test>"))
        assert forged is not None
        assert forged.organization_id == globex.id
        assert (await session.get(Thread, forged.thread_id)).organization_id == globex.id  # type: ignore[union-attr]
        # and its contact is Globex's
        contact = await session.get(Contact, forged.contact_id)
        assert contact is not None and contact.organization_id == globex.id
    # and Acme's thread holds only Acme's mail
    acme_threads = {t["id"]: t for t in await threads(inbox)}
    assert len(acme_threads) == 2
    assert [m["body"] for m in messages_of(acme_threads[thread["id"]])] == ["Hello."]


# -- volume ------------------------------------------------------------------------------------------------------


async def test_a_300_mail_backlog_is_imported_completely_in_pages_of_100(
    org: Org, state: AppState, settings: Settings, dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given 300 mails waiting
    account_id = await make_account(state, org.id, dovecot)
    uids = dovecot.append_many(
        None, [mail(subject=f"Status {n}", message_id=f"<status-{n}@oceanic.test>") for n in range(300)]
    )
    # and a record of the pages as they are read, and of the cursor after each page
    pages: list[int] = []
    real_pages = ingest._pages

    def recording_pages(*args: Any, **kwargs: Any) -> Iterator[Any]:
        inner = real_pages(*args, **kwargs)

        def wrapped() -> Iterator[Any]:
            try:
                for page in inner:
                    pages.append(len(page.mails))
                    yield page
            finally:
                inner.close()

        return wrapped()

    monkeypatch.setattr(ingest, "_pages", recording_pages)
    assert settings.email_page_size == 100
    # when the account is polled
    result = await poll(state, settings, account_id)
    # then all 300 are imported, read in three pages of 100
    assert counts(result) == (300, 300, 0, 0)
    assert pages == [100, 100, 100]
    assert await count_rows(state, Message) == 300
    assert (await account_row(state, account_id)).last_uid == uids[-1]
    async with system_session(state.sessionmaker) as session:
        ids = set(await session.scalars(select(Message.provider_message_id)))
    assert ids == {f"<status-{n}@oceanic.test>" for n in range(300)}


# -- live ----------------------------------------------------------------------------------------------------------


async def test_a_subscriber_receives_message_added_for_ingested_mail(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, dovecot: DovecotServer
) -> None:
    # given an admin subscribed to inboxEvents
    account_id = await make_account(state, org.id, dovecot)
    async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(inbox.token)
        await socket.subscribe("inbox", INBOX_EVENTS)
        await wait_subscribed(state, org.id, 1)
        # when a mail is ingested
        dovecot.append(None, mail(subject="Live booking", body="Is there space on Friday's vessel?"))
        assert counts(await poll(state, settings, account_id)) == (1, 1, 0, 0)
        # then the subscriber receives MESSAGE_ADDED with the message and its thread
        received: list[dict] = []
        async with asyncio.timeout(10):
            while not any(event["type"] == "MESSAGE_ADDED" for event in received):
                _, event = await socket.next()
                received.append(event)
    added = next(event for event in received if event["type"] == "MESSAGE_ADDED")
    assert added["message"]["body"] == "Is there space on Friday's vessel?"
    assert added["thread"]["subject"] == "Live booking"
    assert {"THREAD_CREATED", "MESSAGE_ADDED"} <= {event["type"] for event in received}
