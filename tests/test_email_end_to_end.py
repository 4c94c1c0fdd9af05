"""The email channel end to end, on a real Dovecot and SMTP server: an account made over GraphQL, mail
appended to the mailbox lands in a thread and reaches a subscriber (IMAP IDLE, within 2 s), and a reply
sent with messageSend goes out through a real Dramatiq worker with threading headers."""

from __future__ import annotations

import asyncio
import email
import email.policy
import signal
import time
import uuid
from datetime import timedelta

import pytest
from dramatiq import Worker
from sqlalchemy import update

from banxway import events
from banxway.db.models import Message
from banxway.db.session import system_session
from banxway.enums import MessageStatus
from banxway.resolvers.delivery import deliver
from banxway.resolvers.email_ingest import poll_account
from banxway.settings import Settings
from banxway.state import AppState
from banxway.tasks.idle import watch_mailboxes
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import local_uuid, serve_env, worker_process

ACCOUNT_CREATE = """
mutation($input: EmailAccountCreateInput!) {
  emailAccountCreate(input: $input) { emailAccount { id email imapSecurity } userErrors { field code message } }
}
"""
THREADS = """
{ threads(first: 10) { edges { node { id reference subject contact { name } messages(last: 5) { edges { node {
  id body direction status sender subject attachments { filename size url } } } } } } } }
"""
SEND = """
mutation($threadId: ID!, $body: String!) {
  messageSend(input: {threadId: $threadId, channel: EMAIL, body: $body}) { message { id status } userErrors { code message } }
}
"""
MESSAGE_STATUS = "query($id: ID!) { node(id: $id) { ... on Message { status error } } }"

CUSTOMER_MAIL = b"""From: Priya Shah <priya@customer.test>
To: ops@forwarder.test
Subject: Quote for 2x40HC Nhava Sheva to Hamburg
Message-ID: <quote-1@customer.test>
Date: Sun, 22 Nov 2026 10:00:00 +0000
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

Please quote 2x40HC, ready 1 Dec.

--b1
Content-Type: application/pdf; name="packing-list.pdf"
Content-Disposition: attachment; filename="packing-list.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcfsj6IK
--b1--
""".replace(b"\n", b"\r\n")


async def _account(api: Api, token: str, dovecot, smtp_server) -> str:  # type: ignore[no-untyped-def]
    result = await api.gql(
        ACCOUNT_CREATE,
        {
            "input": {
                "name": "Operations",
                "email": "ops@forwarder.test",
                "fromName": "Forwarder Ops",
                "imapHost": dovecot.host,
                "imapPort": dovecot.port,
                "imapSecurity": "NONE",
                "imapUsername": dovecot.user,
                "imapPassword": dovecot.password,
                "smtpHost": smtp_server.host,
                "smtpPort": smtp_server.port,
                "smtpSecurity": "NONE",
                "smtpUsername": smtp_server.user,
                "smtpPassword": smtp_server.password,
            }
        },
        token=token,
    )
    payload = result["data"]["emailAccountCreate"]
    assert payload["userErrors"] == [], payload
    return payload["emailAccount"]["id"]


async def test_mail_in_a_thread_and_a_threaded_reply_out(
    api: Api, org: Org, inbox: Inbox, state: AppState, settings: Settings, dovecot, smtp_server, worker: Worker
) -> None:
    # given an account and a customer's mail in the mailbox
    account_id = local_uuid(await _account(api, inbox.token, dovecot, smtp_server))
    dovecot.append(None, CUSTOMER_MAIL)
    # when the mailbox is polled
    result = await poll_account(system_context(state, settings), account_id)
    # then a thread holds the message, from a new contact, with its attachment stored
    assert (result.imported, result.quarantined) == (1, 0)
    [edge] = (await api.gql(THREADS, token=inbox.token))["data"]["threads"]["edges"]
    thread = edge["node"]
    assert thread["subject"] == "Quote for 2x40HC Nhava Sheva to Hamburg"
    assert thread["contact"]["name"] == "Priya Shah"
    [message] = [e["node"] for e in thread["messages"]["edges"]]
    assert (message["direction"], message["status"], message["sender"]) == (
        "INBOUND",
        "RECEIVED",
        "priya@customer.test",
    )
    assert message["body"].strip() == "Please quote 2x40HC, ready 1 Dec."
    [attachment] = message["attachments"]
    assert attachment["filename"] == "packing-list.pdf"
    download = await api.http.get(attachment["url"], headers={"authorization": f"Bearer {inbox.token}"})
    assert download.status_code == 200
    assert download.content.startswith(b"%PDF-1.4")
    assert (await api.http.get(attachment["url"])).status_code == 401
    # when an agent replies by email
    sent = await api.gql(
        SEND, {"threadId": thread["id"], "body": "USD 2,150 per 40HC, valid to 15 Dec."}, token=inbox.token
    )
    reply = sent["data"]["messageSend"]["message"]
    assert reply["status"] == "QUEUED"
    # then the worker delivers it, threaded under the customer's mail
    deadline = time.monotonic() + 15
    while (status := (await api.gql(MESSAGE_STATUS, {"id": reply["id"]}, token=inbox.token))["data"]["node"])[
        "status"
    ] != "SENT":
        assert status["status"] in ("QUEUED", "SENDING"), status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.1)
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["priya@customer.test"]
    mail = email.message_from_bytes(received.raw, policy=email.policy.default)
    assert mail["In-Reply-To"] == "<quote-1@customer.test>"
    assert f"[{thread['reference']}]" in mail["Subject"]
    assert "Forwarder Ops" in mail["From"] and "ops@forwarder.test" in mail["From"]
    # and the customer's answer to it lands in the same thread
    answer = (
        f"From: priya@customer.test\r\nTo: ops@forwarder.test\r\nSubject: Re: {mail['Subject']}\r\n"
        f"Message-ID: <answer-1@customer.test>\r\nIn-Reply-To: {mail['Message-ID']}\r\n\r\nBooked, thanks!\r\n"
    ).encode()
    dovecot.append(None, answer)
    await poll_account(system_context(state, settings), account_id)
    [edge] = (await api.gql(THREADS, token=inbox.token))["data"]["threads"]["edges"]
    bodies = [e["node"]["body"].strip() for e in edge["node"]["messages"]["edges"]]
    assert bodies[-1] == "Booked, thanks!"
    assert len(bodies) == 3


async def test_new_mail_reaches_a_subscriber_within_two_seconds_with_idle(
    api: Api, org: Org, inbox: Inbox, state: AppState, settings: Settings, dovecot, smtp_server
) -> None:
    # given an account watched with IMAP IDLE, and a subscriber to the organization's events
    account_id = local_uuid(await _account(api, inbox.token, dovecot, smtp_server))
    await poll_account(system_context(state, settings), account_id)

    async def on_mail(changed: uuid.UUID) -> None:
        await poll_account(system_context(state, settings), changed)

    watcher = asyncio.create_task(watch_mailboxes(system_context(state, settings), on_mail))
    try:
        async with state.broadcast.subscribe(events.channel(org.id)) as subscriber:
            await asyncio.sleep(1.0)  # the watcher is idling
            # when a mail is delivered to the mailbox
            dovecot.append(None, CUSTOMER_MAIL)
            appended = time.monotonic()
            # then MESSAGE_ADDED is published within 2 s
            async with asyncio.timeout(5):
                async for published in subscriber:
                    if isinstance(published, str) and '"MESSAGE_ADDED"' in published:
                        break
            assert time.monotonic() - appended < 2.0
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


SEND_WITH_FILES = """
mutation($threadId: ID!, $channel: Channel!, $files: [ID!]) {
  messageSend(input: {threadId: $threadId, channel: $channel, body: "Please find the draft B/L.", attachmentIds: $files}) {
    message { id attachments { filename size } } userErrors { field code message }
  }
}
"""


async def test_an_uploaded_file_goes_out_attached_to_the_reply(
    api: Api, org: Org, inbox: Inbox, state: AppState, settings: Settings, dovecot, smtp_server, worker: Worker
) -> None:
    # given an ingested thread and a file uploaded by the agent
    account_id = local_uuid(await _account(api, inbox.token, dovecot, smtp_server))
    dovecot.append(None, CUSTOMER_MAIL)
    await poll_account(system_context(state, settings), account_id)
    [edge] = (await api.gql(THREADS, token=inbox.token))["data"]["threads"]["edges"]
    draft = b"%PDF-1.4 draft bill of lading MSCU1234565"
    auth = {"authorization": f"Bearer {inbox.token}", "content-type": "application/pdf"}
    uploaded = await api.http.post("/attachments?filename=draft-bl.pdf", content=draft, headers=auth)
    assert uploaded.status_code == 201, uploaded.text
    file_id = uploaded.json()["id"]
    # when the agent sends it by email (and tries it on WhatsApp — which takes media, tests/test_outbound_media.py,
    # but is not configured here — and with a file that does not exist)
    whatsapp = await api.gql(
        SEND_WITH_FILES, {"threadId": edge["node"]["id"], "channel": "WHATSAPP", "files": [file_id]}, token=inbox.token
    )
    missing = await api.gql(
        SEND_WITH_FILES,
        {"threadId": edge["node"]["id"], "channel": "EMAIL", "files": [file_id[:-4] + "AAAA"]},
        token=inbox.token,
    )
    sent = await api.gql(
        SEND_WITH_FILES, {"threadId": edge["node"]["id"], "channel": "EMAIL", "files": [file_id]}, token=inbox.token
    )
    # then only the email is accepted, with the file, and the mail carries it
    assert whatsapp["data"]["messageSend"]["userErrors"][0]["code"] == "CHANNEL_NOT_CONFIGURED"
    assert missing["data"]["messageSend"]["userErrors"][0]["field"] == ["attachmentIds", "0"]
    payload = sent["data"]["messageSend"]
    assert payload["userErrors"] == []
    assert payload["message"]["attachments"] == [{"filename": "draft-bl.pdf", "size": len(draft)}]
    deadline = time.monotonic() + 15
    while not smtp_server.messages:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    mail = email.message_from_bytes(smtp_server.messages[0].raw, policy=email.policy.default)
    [part] = list(mail.iter_attachments())
    assert part.get_filename() == "draft-bl.pdf"
    assert part.get_content() == draft


async def test_uploads_need_a_sending_role_a_name_and_respect_the_size_limit(
    api: Api, org: Org, inbox: Inbox, settings: Settings
) -> None:
    # given a viewer, and the admin
    await api.create_user(org, "viewer@acme.test", "viewer")
    viewer = await api.token("viewer@acme.test")
    admin = {"authorization": f"Bearer {inbox.token}"}
    # when they upload
    denied = await api.http.post(
        "/attachments?filename=a.pdf", content=b"x", headers={"authorization": f"Bearer {viewer}"}
    )
    anonymous = await api.http.post("/attachments?filename=a.pdf", content=b"x")
    unnamed = await api.http.post("/attachments", content=b"x", headers=admin)
    too_big = await api.http.post(
        "/attachments?filename=big.bin", content=b"x" * (settings.attachment_max_bytes + 1), headers=admin
    )
    # then each is refused with its reason
    assert (denied.status_code, anonymous.status_code, unnamed.status_code, too_big.status_code) == (403, 401, 400, 413)
    assert "limit" in too_big.json()["error"]


async def test_a_worker_killed_while_sending_never_sends_twice(
    api: Api, org: Org, inbox: Inbox, state: AppState, settings: Settings, dovecot, smtp_server, tmp_path
) -> None:
    # given a `banxway worker` process, and an SMTP server that takes its time over DATA
    account_id = local_uuid(await _account(api, inbox.token, dovecot, smtp_server))
    dovecot.append(None, CUSTOMER_MAIL)
    await poll_account(system_context(state, settings), account_id)
    [edge] = (await api.gql(THREADS, token=inbox.token))["data"]["threads"]["edges"]
    smtp_server.slow(3.0)
    log = (tmp_path / "worker.log").open("wb")
    worker = worker_process(serve_env(settings, tmp_path / "worker-data"), log)
    try:
        # when a reply is sent and the worker is killed in the middle of the SMTP conversation
        sent = await api.gql(SEND, {"threadId": edge["node"]["id"], "body": "Confirmed."}, token=inbox.token)
        message_id = local_uuid(sent["data"]["messageSend"]["message"]["id"])

        async def status() -> MessageStatus:
            async with system_session(state.sessionmaker) as session:
                message = await session.get(Message, message_id)
                assert message is not None
                return message.status

        deadline = time.monotonic() + 30
        while await status() != MessageStatus.SENDING:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-2000:]
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # inside the SMTP conversation now
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
        log.close()
    await asyncio.sleep(3.5)  # whatever the server was doing with that connection is over
    delivered_before = len(smtp_server.messages)
    # then the job delivered again sends nothing while the outcome is unknown,
    assert await deliver(system_context(state, settings), message_id) == (MessageStatus.SENDING)
    # and once it is stuck long enough it is failed, not resent
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(updated_at=Message.updated_at - timedelta(minutes=20))
        )
    assert await deliver(system_context(state, settings), message_id) == (MessageStatus.FAILED)
    assert len(smtp_server.messages) == delivered_before <= 1
