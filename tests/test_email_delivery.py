"""Email delivery (`banxway.resolvers.delivery.deliver`) to a real SMTP server (aiosmtpd): QUEUED → SENDING → SENT, FAILED on a
permanent refusal, back to QUEUED on a transient one, at most once, threading headers and status events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as default_policy
from email.utils import getaddresses
from typing import Any

import pytest
from sqlalchemy import select, update

from banxway.db.models import Event, Message
from banxway.db.session import system_session
from banxway.enums import MessageStatus
from banxway.resolvers import delivery
from banxway.resolvers.email_ingest import PollResult, poll_account
from banxway.resolvers.sending import RetryLater
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Org
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import local_uuid
from tests.standins.mailservers import DovecotServer, ReceivedMail, SmtpServer

ACCOUNT_CREATE = """
mutation($input: EmailAccountCreateInput!) {
  emailAccountCreate(input: $input) { emailAccount { id email } userErrors { field code message } }
}
"""
ACCOUNT_DELETE = """
mutation($id: ID!) { emailAccountDelete(input: {id: $id}) { deletedId userErrors { field code message } } }
"""
SEND = """
mutation($threadId: ID!, $body: String!, $subject: String) {
  messageSend(input: {threadId: $threadId, channel: EMAIL, body: $body, subject: $subject}) {
    message { id status channel direction recipients error }
    userErrors { field code message }
  }
}
"""
THREAD = """
query($id: ID!) {
  thread(id: $id) { id reference messages(first: 20) { edges { node { id status direction body error } } } }
}
"""
CUSTOMER = "priya.shah@oceanic.test"


# -- helpers ------------------------------------------------------------------------------------------------


async def create_account(
    inbox: Inbox, smtp: SmtpServer, dovecot: DovecotServer | None = None, email: str = "ops@acme.test"
) -> str:
    fields = {
        "name": "Operations",
        "email": email,
        "fromName": "Acme Ops",
        "imapHost": dovecot.host if dovecot else "127.0.0.1",
        "imapPort": dovecot.port if dovecot else 143,
        "imapSecurity": "NONE",
        "imapUsername": dovecot.user if dovecot else "nobody",
        "imapPassword": dovecot.password if dovecot else "unused",
        "smtpHost": smtp.host,
        "smtpPort": smtp.port,
        "smtpSecurity": "NONE",
        "smtpUsername": smtp.user,
        "smtpPassword": smtp.password,
    }
    payload = await inbox.ok(ACCOUNT_CREATE, {"input": fields}, "emailAccountCreate")
    return payload["emailAccount"]["id"]


async def customer_thread(inbox: Inbox, subject: str = "Quote 2x40HC Nhava Sheva") -> dict:
    contact = await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": CUSTOMER}])
    return await inbox.thread(subject, contactId=contact["id"])


async def send(inbox: Inbox, thread_id: str, body: str = "Our quote: USD 2,150.", subject: str | None = None) -> dict:
    payload = await inbox.ok(SEND, {"threadId": thread_id, "body": body, "subject": subject}, "messageSend")
    return payload["message"]


async def deliver(state: AppState, settings: Settings, message_id: str) -> MessageStatus | None:
    return await delivery.deliver(system_context(state, settings), local_uuid(message_id))


async def row(state: AppState, message_id: str) -> Message:
    async with system_session(state.sessionmaker) as session:
        message = await session.get(Message, local_uuid(message_id))
        assert message is not None
        return message


async def headers_of(state: AppState, message_id: str) -> dict[str, Any]:
    async with system_session(state.sessionmaker) as session:
        return await session.scalar(select(Message.headers).where(Message.id == local_uuid(message_id))) or {}


async def status_events(state: AppState, message_id: str) -> list[str]:
    async with system_session(state.sessionmaker) as session:
        rows = await session.scalars(select(Event).where(Event.type == "MESSAGE_STATUS_CHANGED").order_by(Event.id))
        return [r.payload["status"] for r in rows if r.payload["message_id"] == str(local_uuid(message_id))]


def parsed(received: ReceivedMail) -> EmailMessage:
    return BytesParser(policy=default_policy).parsebytes(received.raw)  # type: ignore[return-value]


def inbound(
    *, subject: str, message_id: str, body: str = "Can you quote?", in_reply_to: str | None = None, refs: str = ""
) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Priya Shah <{CUSTOMER}>"
    msg["To"] = "ops@acme.test"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 04 Mar 2025 10:00:00 +0000"
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if refs:
        msg["References"] = refs
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP_POLICY)


async def poll(state: AppState, settings: Settings, account_id: str) -> PollResult:
    return await poll_account(system_context(state, settings), local_uuid(account_id))


# -- sending ----------------------------------------------------------------------------------------------------


async def test_a_queued_email_is_sent_from_the_account_to_the_contact(
    inbox: Inbox, state: AppState, settings: Settings, smtp_server: SmtpServer
) -> None:
    # given an account and a thread whose contact has an email address
    account_id = await create_account(inbox, smtp_server)
    thread = await customer_thread(inbox)
    # when an agent sends an EMAIL message on it
    message = await send(inbox, thread["id"])
    # then it is QUEUED, addressed to the contact, to go out from the account
    assert message["status"] == "QUEUED"
    assert message["direction"] == "OUTBOUND"
    assert message["recipients"] == [CUSTOMER]
    assert (await row(state, message["id"])).email_account_id == local_uuid(account_id)
    assert smtp_server.messages == []
    # when it is delivered
    status = await deliver(state, settings, message["id"])
    # then it is SENT, and the server received one mail from the account to the contact
    assert status == MessageStatus.SENT
    [received] = smtp_server.messages
    assert received.mail_from == "ops@acme.test"
    assert received.rcpt_tos == [CUSTOMER]
    assert received.authenticated_as == smtp_server.user
    mime = parsed(received)
    assert getaddresses([str(mime["From"])]) == [("Acme Ops", "ops@acme.test")]
    assert getaddresses([str(mime["To"])])[0][1] == CUSTOMER
    # with the thread's subject and reference token
    assert str(mime["Subject"]) == f"Quote 2x40HC Nhava Sheva [{thread['reference']}]"
    assert mime["X-Banxway-Reference"] == thread["reference"]
    assert mime.get_body(("plain",)).get_content().strip() == "Our quote: USD 2,150."  # type: ignore[union-attr]
    # and no threading headers: it starts the conversation
    assert mime["In-Reply-To"] is None and mime["References"] is None
    # and the Message-ID it carried is stored on the message, with the server's reply
    stored = await row(state, message["id"])
    assert stored.status == MessageStatus.SENT
    assert stored.error is None
    assert stored.provider_message_id == mime["Message-ID"]
    assert stored.provider_message_id.startswith("<") and stored.provider_message_id.endswith("@acme.test>")
    assert (await headers_of(state, message["id"]))["smtp_reply"].startswith("250")
    # and GraphQL shows it SENT
    nodes = (await inbox.gql(THREAD, {"id": thread["id"]}))["data"]["thread"]["messages"]["edges"]
    assert [(n["node"]["status"], n["node"]["error"]) for n in nodes] == [("SENT", None)]
    # and delivering it again sends nothing
    assert await deliver(state, settings, message["id"]) == MessageStatus.SENT
    assert len(smtp_server.messages) == 1


async def test_a_message_subject_is_used_with_the_reference_token(
    inbox: Inbox, state: AppState, settings: Settings, smtp_server: SmtpServer
) -> None:
    # given a message with its own subject
    await create_account(inbox, smtp_server)
    thread = await customer_thread(inbox)
    message = await send(inbox, thread["id"], subject="Revised quote")
    # when it is delivered, the mail's subject is that one, with the thread's token
    assert await deliver(state, settings, message["id"]) == MessageStatus.SENT
    [received] = smtp_server.messages
    assert str(parsed(received)["Subject"]) == f"Revised quote [{thread['reference']}]"


async def test_a_reply_in_an_ingested_thread_carries_in_reply_to_and_references(
    inbox: Inbox, state: AppState, settings: Settings, smtp_server: SmtpServer, dovecot: DovecotServer
) -> None:
    # given a customer's mail, ingested, that itself replied to an earlier conversation
    account_id = await create_account(inbox, smtp_server, dovecot)
    dovecot.append(
        None,
        inbound(
            subject="Re: Rates for March",
            message_id="<m1@oceanic.test>",
            in_reply_to="<m0@acme.test>",
            refs="<r0@oceanic.test> <m0@acme.test>",
        ),
    )
    assert (await poll(state, settings, account_id)).imported == 1
    [edge] = (await inbox.gql("{ threads(first: 5) { edges { node { id reference } } } }"))["data"]["threads"]["edges"]
    thread = edge["node"]
    # when an agent replies by email (to the thread's contact, the sender)
    message = await send(inbox, thread["id"], body="Rates attached.")
    assert message["recipients"] == [CUSTOMER]
    assert (await row(state, message["id"])).email_account_id == local_uuid(account_id)
    assert await deliver(state, settings, message["id"]) == MessageStatus.SENT
    # then the mail answers the customer's mail: In-Reply-To its id, References its chain plus its id
    [received] = smtp_server.messages
    mime = parsed(received)
    assert mime["In-Reply-To"] == "<m1@oceanic.test>"
    assert str(mime["References"]).split() == ["<r0@oceanic.test>", "<m0@acme.test>", "<m1@oceanic.test>"]
    assert str(mime["Subject"]) == f"Re: Rates for March [{thread['reference']}]"


async def test_a_second_reply_keeps_the_whole_references_chain(
    inbox: Inbox, state: AppState, settings: Settings, smtp_server: SmtpServer, dovecot: DovecotServer
) -> None:
    # given a customer's mail, and our first reply to it, sent
    account_id = await create_account(inbox, smtp_server, dovecot)
    dovecot.append(None, inbound(subject="Rates", message_id="<m1@oceanic.test>", refs="<r0@oceanic.test>"))
    assert (await poll(state, settings, account_id)).imported == 1
    thread_id = (await inbox.gql("{ threads(first: 5) { edges { node { id } } } }"))["data"]["threads"]["edges"][0][
        "node"
    ]["id"]
    first = await send(inbox, thread_id, body="Rates attached.")
    assert await deliver(state, settings, first["id"]) == MessageStatus.SENT
    first_id = parsed(smtp_server.messages[0])["Message-ID"]
    # when a second reply follows ours
    second = await send(inbox, thread_id, body="Correction: USD 2,100.")
    assert await deliver(state, settings, second["id"]) == MessageStatus.SENT
    # then it answers our first reply, and its References keep the customer's chain (RFC 5322 3.6.4)
    mime = parsed(smtp_server.messages[1])
    assert mime["In-Reply-To"] == first_id
    assert str(mime["References"]).split() == ["<r0@oceanic.test>", "<m1@oceanic.test>", first_id]


async def test_a_failed_send_is_not_what_the_next_reply_answers(
    inbox: Inbox, state: AppState, settings: Settings, smtp_server: SmtpServer, dovecot: DovecotServer
) -> None:
    # given a customer's mail, and a reply to it that the server refused for good
    account_id = await create_account(inbox, smtp_server, dovecot)
    dovecot.append(None, inbound(subject="Rates", message_id="<m1@oceanic.test>"))
    assert (await poll(state, settings, account_id)).imported == 1
    thread_id = (await inbox.gql("{ threads(first: 5) { edges { node { id } } } }"))["data"]["threads"]["edges"][0][
        "node"
    ]["id"]
    smtp_server.reply_next("554 5.7.1 rejected")
    failed = await send(inbox, thread_id, body="Rates attached.")
    assert await deliver(state, settings, failed["id"]) == MessageStatus.FAILED
    # when the agent sends the reply again
    retry = await send(inbox, thread_id, body="Rates attached (again).")
    assert await deliver(state, settings, retry["id"]) == MessageStatus.SENT
    # then it answers the customer's mail, not the mail that never left
    [received] = smtp_server.messages
    mime = parsed(received)
    assert mime["In-Reply-To"] == "<m1@oceanic.test>"
    assert (await row(state, failed["id"])).provider_message_id not in str(mime["References"])


# -- failures -----------------------------------------------------------------------------------------------------


async def test_a_permanent_refusal_fails_the_message_at_once_with_the_servers_reply(
    inbox: Inbox, state: AppState, settings: Settings, smtp_server: SmtpServer
) -> None:
    # given a server that refuses the next mail for good
    await create_account(inbox, smtp_server)
    thread = await customer_thread(inbox)
    message = await send(inbox, thread["id"])
    smtp_server.reply_next("550 5.7.1 Message rejected as spam")
    # when it is delivered
    status = await deliver(state, settings, message["id"])
    # then it is FAILED at once (no retry), with the server's reply, and nothing was received
    assert status == MessageStatus.FAILED
    stored = await row(state, message["id"])
    assert stored.status == MessageStatus.FAILED
    assert stored.error is not None and "550" in stored.error and "rejected as spam" in stored.error
    assert smtp_server.messages == []
    # and GraphQL exposes the error on the message
    nodes = (await inbox.gql(THREAD, {"id": thread["id"]}))["data"]["thread"]["messages"]["edges"]
    assert nodes[0]["node"]["status"] == "FAILED"
    assert "550" in nodes[0]["node"]["error"]
    # and a later delivery attempt sends nothing
    assert await deliver(state, settings, message["id"]) == MessageStatus.FAILED
    assert smtp_server.messages == []
    assert await status_events(state, message["id"]) == ["SENDING", "FAILED"]


async def test_a_transient_refusal_queues_the_message_again_and_a_retry_sends_it_once(
    inbox: Inbox, state: AppState, settings: Settings, smtp_server: SmtpServer
) -> None:
    # given a server that answers the next mail with 451
    await create_account(inbox, smtp_server)
    thread = await customer_thread(inbox)
    message = await send(inbox, thread["id"])
    smtp_server.reply_next("451 4.3.0 Try again later")
    # when it is delivered
    with pytest.raises(RetryLater, match="451"):
        await deliver(state, settings, message["id"])
    # then the message is QUEUED again, with the error, and nothing was received
    stored = await row(state, message["id"])
    assert stored.status == MessageStatus.QUEUED
    assert stored.error is not None and "451" in stored.error
    assert smtp_server.messages == []
    first_id = stored.provider_message_id
    assert first_id
    # when the server has recovered and the job runs again
    status = await deliver(state, settings, message["id"])
    # then it is SENT, with the same Message-ID, the error cleared, and exactly one mail received
    assert status == MessageStatus.SENT
    [received] = smtp_server.messages
    assert parsed(received)["Message-ID"] == first_id
    stored = await row(state, message["id"])
    assert (stored.status, stored.error, stored.provider_message_id) == (MessageStatus.SENT, None, first_id)
    assert await status_events(state, message["id"]) == ["SENDING", "QUEUED", "SENDING", "SENT"]


async def test_a_refused_connection_is_transient(
    inbox: Inbox, state: AppState, settings: Settings, smtp_server: SmtpServer
) -> None:
    # given an account whose SMTP port nobody listens on
    from tests.standins.mailservers import free_ports

    (port,) = free_ports(1)
    dead = SmtpServer(smtp_server.host, port, port, smtp_server.cert_path, "u", "p", smtp_server.handler)
    await create_account(inbox, dead)
    thread = await customer_thread(inbox)
    message = await send(inbox, thread["id"])
    # when it is delivered: RetryLater, back to QUEUED with the reason
    with pytest.raises(RetryLater):
        await deliver(state, settings, message["id"])
    stored = await row(state, message["id"])
    assert stored.status == MessageStatus.QUEUED
    assert stored.error and "refused" in stored.error.lower()


async def test_two_concurrent_deliveries_send_exactly_one_mail(
    inbox: Inbox, state: AppState, settings: Settings, smtp_server: SmtpServer
) -> None:
    # given a queued message and a slow server
    await create_account(inbox, smtp_server)
    thread = await customer_thread(inbox)
    message = await send(inbox, thread["id"])
    smtp_server.slow(0.5)
    # when two jobs deliver it at the same time
    results = await asyncio.gather(deliver(state, settings, message["id"]), deliver(state, settings, message["id"]))
    # then one sent it and the other found it already claimed; exactly one mail was received
    assert MessageStatus.SENT in results
    assert set(results) <= {MessageStatus.SENT, MessageStatus.SENDING}, results
    assert len(smtp_server.messages) == 1
    assert (await row(state, message["id"])).status == MessageStatus.SENT
    assert await status_events(state, message["id"]) == ["SENDING", "SENT"]


async def _set_sending(state: AppState, message_id: str, minutes_ago: float) -> None:
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id == local_uuid(message_id))
            .values(status=MessageStatus.SENDING, updated_at=datetime.now(UTC) - timedelta(minutes=minutes_ago))
        )


async def test_a_message_stuck_in_sending_is_failed_and_not_resent(
    inbox: Inbox, state: AppState, settings: Settings, smtp_server: SmtpServer
) -> None:
    # given a message a killed job left in SENDING 20 minutes ago, and one left there a moment ago
    await create_account(inbox, smtp_server)
    thread = await customer_thread(inbox)
    stuck = await send(inbox, thread["id"], body="Stuck")
    recent = await send(inbox, thread["id"], body="In flight")
    await _set_sending(state, stuck["id"], minutes_ago=20)
    await _set_sending(state, recent["id"], minutes_ago=1)
    # when they are delivered
    stuck_status = await deliver(state, settings, stuck["id"])
    recent_status = await deliver(state, settings, recent["id"])
    # then the stuck one is FAILED (its outcome is unknown), the recent one left alone; nothing is sent
    assert stuck_status == MessageStatus.FAILED
    stored = await row(state, stuck["id"])
    assert stored.status == MessageStatus.FAILED
    assert stored.error and "interrupted" in stored.error
    assert recent_status == MessageStatus.SENDING
    assert (await row(state, recent["id"])).status == MessageStatus.SENDING
    assert smtp_server.messages == []
    assert await status_events(state, stuck["id"]) == ["FAILED"]


async def test_status_changes_are_recorded_as_events(
    inbox: Inbox, org: Org, state: AppState, settings: Settings, smtp_server: SmtpServer
) -> None:
    # given a queued message (its MESSAGE_ADDED recorded)
    await create_account(inbox, smtp_server)
    thread = await customer_thread(inbox)
    message = await send(inbox, thread["id"])
    # when it is delivered
    assert await deliver(state, settings, message["id"]) == MessageStatus.SENT
    # then MESSAGE_STATUS_CHANGED events were recorded for SENDING then SENT, on the thread, by no user,
    # and published (they have a delivery sequence)
    async with system_session(state.sessionmaker) as session:
        rows = list(
            await session.scalars(
                select(Event)
                .where(
                    Event.type.in_(["MESSAGE_ADDED", "MESSAGE_STATUS_CHANGED"]),
                    Event.thread_id == local_uuid(thread["id"]),
                )
                .order_by(Event.id)
            )
        )
    mine = [r for r in rows if r.payload["message_id"] == str(local_uuid(message["id"]))]
    assert [(r.type, r.payload.get("status")) for r in mine] == [
        ("MESSAGE_ADDED", "QUEUED"),  # the status it was added with (its consequence: the delivery)
        ("MESSAGE_STATUS_CHANGED", "SENDING"),
        ("MESSAGE_STATUS_CHANGED", "SENT"),
    ]
    assert all(r.organization_id == org.id for r in mine)
    assert all(r.actor_id is None for r in mine[1:])
    assert all(r.seq is not None and r.dispatched_at is not None for r in mine)


async def test_without_an_account_the_message_fails_with_a_clear_error(
    inbox: Inbox, state: AppState, settings: Settings, smtp_server: SmtpServer
) -> None:
    # given an EMAIL message queued from the organization's account (with none, messageSend refuses it at once:
    # CHANNEL_NOT_CONFIGURED, tests/test_dev_sink.py)
    account_id = await create_account(inbox, smtp_server)
    thread = await customer_thread(inbox)
    message = await send(inbox, thread["id"])
    assert message["status"] == "QUEUED"
    # when the account is deleted before the message is delivered: the message names no account any more
    await inbox.ok(ACCOUNT_DELETE, {"id": account_id}, "emailAccountDelete")
    assert (await row(state, message["id"])).email_account_id is None
    # then its delivery FAILS, saying there is no account, and nothing reaches the server
    assert await deliver(state, settings, message["id"]) == MessageStatus.FAILED
    stored = await row(state, message["id"])
    assert stored.status == MessageStatus.FAILED
    assert stored.error and "No email account" in stored.error
    nodes = (await inbox.gql(THREAD, {"id": thread["id"]}))["data"]["thread"]["messages"]["edges"]
    assert nodes[0]["node"]["error"] == stored.error
    assert await status_events(state, message["id"]) == ["FAILED"]
    assert smtp_server.messages == []


async def test_delivering_an_unknown_message_does_nothing(state: AppState, settings: Settings) -> None:
    assert await delivery.deliver(system_context(state, settings), uuid.uuid4()) is None
