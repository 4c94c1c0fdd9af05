"""Messages on a thread: messageSend (channels, recipients, limits, permissions, idempotency, the thread's
status and lastMessageAt) and the thread's messages connection. Notes are in test_notes.py, actions in
test_actions.py."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from banxway.db.models import Message
from banxway.db.session import system_session
from tests.inbox_helpers import (
    OUR_NUMBERS,
    Inbox,
    _count,
    _errors,
    _foreign,
    _member,
    _thread,
    configure_channels,
    open_whatsapp_window,
)

MESSAGE_FIELDS = """
id channel direction status body subject html sender recipients createdAt
author { id email } contact { id } thread { id status lastMessageAt }
"""

MESSAGE_SEND = f"""
mutation($input: MessageSendInput!) {{
  messageSend(input: $input) {{ message {{ {MESSAGE_FIELDS} }} userErrors {{ field code message }} }}
}}
"""


THREAD_UPDATE = """
mutation($input: ThreadUpdateInput!) {
  threadUpdate(input: $input) { thread { id status } userErrors { field code message } }
}
"""

THREAD_ARCHIVE = """
mutation($threadId: ID!) {
  threadArchive(input: {threadId: $threadId}) { thread { id status } userErrors { field code message } }
}
"""

THREAD = """
query($id: ID!) { thread(id: $id) { id status lastMessageAt updatedAt } }
"""

THREAD_MESSAGES = """
query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  thread(id: $id) {
    messages(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { id body createdAt } }
    }
  }
}
"""

INBOX_MESSAGES = """
query {
  threads(first: 10) { edges { node { id first: messages(first: 4) { totalCount edges { node { body } } }
                                          last: messages(last: 4) { totalCount edges { node { body } } } } } }
}
"""


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
async def configured(inbox: Inbox) -> None:
    """The organization has an email account and WhatsApp and SMS numbers: messageSend takes every channel (one
    that is not configured is refused: tests/test_dev_sink.py)."""
    await configure_channels(inbox)


async def _thread_with_contact(inbox: Inbox) -> dict:
    """A thread whose contact has an email, a WhatsApp and an SMS address."""
    customer = await inbox.customer("Acme Imports")
    contact = await inbox.contact(
        "Priya Shah",
        customerId=customer["id"],
        identities=[
            {"channel": "EMAIL", "address": "priya@acme.example"},
            {"channel": "WHATSAPP", "address": "+919820054321"},
            {"channel": "SMS", "address": "+919820011111"},
        ],
    )
    thread = await _thread(inbox, contactId=contact["id"])
    return {**thread, "contactId": contact["id"]}


async def _send(inbox: Inbox, thread_id: str, token: str | None = None, **fields: Any) -> dict:
    """messageSend; the payload (message and userErrors). Fails on top-level errors."""
    fields.setdefault("channel", "INTERNAL")
    fields.setdefault("body", "Hello")
    result = await inbox.gql(MESSAGE_SEND, {"input": {"threadId": thread_id, **fields}}, token)
    assert "errors" not in result, result
    return result["data"]["messageSend"]


async def _sent(inbox: Inbox, thread_id: str, token: str | None = None, **fields: Any) -> dict:
    payload = await _send(inbox, thread_id, token, **fields)
    assert payload["userErrors"] == [], payload
    return payload["message"]


async def _read_thread(inbox: Inbox, thread_id: str) -> dict:
    return (await inbox.gql(THREAD, {"id": thread_id}))["data"]["thread"]


# -- messageSend: channels and recipients ------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "recipient"),
    [("EMAIL", "priya@acme.example"), ("WHATSAPP", "+919820054321"), ("SMS", "+919820011111")],
)
async def test_a_customer_message_is_queued_to_the_contacts_address_on_its_channel(
    inbox: Inbox, channel: str, recipient: str
) -> None:
    # given (on WhatsApp, the customer wrote within 24 hours)
    thread = await _thread_with_contact(inbox)
    if channel == "WHATSAPP":
        await open_whatsapp_window(inbox, recipient)
    # when
    message = await _sent(inbox, thread["id"], channel=channel, body="Your container sailed today.")
    # then
    assert (message["channel"], message["direction"], message["status"]) == (channel, "OUTBOUND", "QUEUED")
    assert message["recipients"] == [recipient]
    assert message["body"] == "Your container sailed today."
    assert message["author"]["email"] == inbox.org.admin_email
    # an email is the agent's (sent from the organization's account), WhatsApp and SMS leave from our number
    assert message["sender"] == OUR_NUMBERS.get(channel, inbox.org.admin_email)
    assert message["contact"] == {"id": thread["contactId"]}


async def test_an_internal_message_is_sent_at_once_to_nobody(inbox: Inbox) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    # when
    message = await _sent(inbox, thread["id"], channel="INTERNAL", body="Checked with the carrier")
    # then
    assert (message["channel"], message["direction"], message["status"]) == ("INTERNAL", "OUTBOUND", "SENT")
    assert message["recipients"] == []
    assert message["contact"] is None


@pytest.mark.parametrize(
    ("channel", "given", "normalised"),
    [
        ("EMAIL", [" Ops@Acme.Example ", "billing@ACME.example"], ["ops@acme.example", "billing@acme.example"]),
        ("WHATSAPP", ["+91 98200 54321"], ["+919820054321"]),
        ("SMS", ["0049 151 12345678"], ["+4915112345678"]),
    ],
)
async def test_to_overrides_the_contact_and_is_normalised(
    inbox: Inbox, channel: str, given: list[str], normalised: list[str]
) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    if channel == "WHATSAPP":
        await open_whatsapp_window(inbox, normalised[0])
    # when
    message = await _sent(inbox, thread["id"], channel=channel, body="Hi", to=given)
    # then
    assert message["recipients"] == normalised
    assert message["status"] == "QUEUED"


async def test_to_gives_the_recipient_of_a_thread_without_contact(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    # when
    message = await _sent(inbox, thread["id"], channel="EMAIL", body="Hi", to=["Someone@Example.COM"])
    # then
    assert message["recipients"] == ["someone@example.com"]
    assert message["contact"] is None


async def test_no_recipient_is_invalid(inbox: Inbox) -> None:
    # given: a thread without a contact
    thread = await _thread(inbox)
    # when
    payload = await _send(inbox, thread["id"], channel="EMAIL", body="Hi")
    # then
    assert payload["message"] is None
    assert _errors(payload) == [("INVALID", ["to"])]
    assert await _count(inbox, Message) == 0


async def test_a_contact_without_an_address_on_the_channel_is_no_recipient(inbox: Inbox) -> None:
    # given: the contact has an email address only
    contact = await inbox.contact("Email Only", identities=[{"channel": "EMAIL", "address": "only@acme.example"}])
    thread = await _thread(inbox, contactId=contact["id"])
    # when
    payload = await _send(inbox, thread["id"], channel="WHATSAPP", body="Hi")
    # then
    assert _errors(payload) == [("INVALID", ["to"])]
    assert await _count(inbox, Message) == 0


async def test_an_invalid_to_address_is_refused(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    # when
    payload = await _send(inbox, thread["id"], channel="EMAIL", body="Hi", to=["ok@acme.example", "not an email"])
    # then
    assert [error["code"] for error in payload["userErrors"]] == ["INVALID"]
    assert payload["userErrors"][0]["field"] in (["to.1"], ["to", "1"])
    assert await _count(inbox, Message) == 0


# -- messageSend: limits ----------------------------------------------------------------------------


@pytest.mark.parametrize(("channel", "limit"), [("WHATSAPP", 4096), ("SMS", 1600)])
async def test_a_body_at_the_channel_limit_is_sent(inbox: Inbox, channel: str, limit: int) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    if channel == "WHATSAPP":
        await open_whatsapp_window(inbox, "+919820054321")
    # when
    message = await _sent(inbox, thread["id"], channel=channel, body="x" * limit)
    # then (besides the customer's WhatsApp message that opened the window)
    assert len(message["body"]) == limit
    assert await _count(inbox, Message) == (2 if channel == "WHATSAPP" else 1)


@pytest.mark.parametrize(("channel", "limit"), [("WHATSAPP", 4096), ("SMS", 1600)])
async def test_a_body_over_the_channel_limit_is_too_long_and_nothing_is_stored(
    inbox: Inbox, channel: str, limit: int
) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    # when
    payload = await _send(inbox, thread["id"], channel=channel, body="x" * (limit + 1))
    # then
    assert payload["message"] is None
    assert _errors(payload) == [("TOO_LONG", ["body"])]
    assert await _count(inbox, Message) == 0
    assert (await _read_thread(inbox, thread["id"]))["status"] == "NEW"


async def test_an_email_subject_over_998_characters_is_too_long(inbox: Inbox) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    # when
    too_long = await _send(inbox, thread["id"], channel="EMAIL", body="Hi", subject="s" * 999)
    just_right = await _send(inbox, thread["id"], channel="EMAIL", body="Hi", subject="s" * 998)
    # then
    assert _errors(too_long) == [("TOO_LONG", ["subject"])]
    assert just_right["userErrors"] == []
    assert just_right["message"]["subject"] == "s" * 998
    assert await _count(inbox, Message) == 1


@pytest.mark.parametrize("body", ["", "   \n\t "])
async def test_an_empty_body_is_invalid(inbox: Inbox, body: str) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    # when
    payload = await _send(inbox, thread["id"], channel="EMAIL", body=body)
    # then
    assert _errors(payload) == [("INVALID", ["body"])]
    assert await _count(inbox, Message) == 0


async def test_a_message_on_an_archived_thread_is_an_invalid_transition(inbox: Inbox) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    await inbox.ok(THREAD_ARCHIVE, {"threadId": thread["id"]}, "threadArchive")
    # when
    payload = await _send(inbox, thread["id"], channel="EMAIL", body="Hi")
    internal = await _send(inbox, thread["id"], channel="INTERNAL", body="Hi")
    # then
    assert _errors(payload) == [("INVALID_TRANSITION", ["threadId"])]
    assert _errors(internal) == [("INVALID_TRANSITION", ["threadId"])]
    assert await _count(inbox, Message) == 0


async def test_a_message_on_a_foreign_thread_is_not_found(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    theirs = await _thread(globex)
    # when
    payload = await _send(inbox, theirs["id"], channel="INTERNAL", body="Hi")
    # then
    assert _errors(payload) == [("NOT_FOUND", ["threadId"])]
    async with system_session(inbox.api.state.sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0


# -- messageSend: roles ----------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["INTERNAL", "EMAIL"])
async def test_a_viewer_may_not_send(inbox: Inbox, channel: str) -> None:
    # given
    viewer = await _member(inbox, "viewer")
    thread = await _thread_with_contact(inbox)
    # when
    result = await inbox.gql(
        MESSAGE_SEND, {"input": {"threadId": thread["id"], "channel": channel, "body": "Hi"}}, viewer.token
    )
    # then
    assert result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert await _count(inbox, Message) == 0


async def test_a_validator_may_send_internal_messages_but_not_emails(inbox: Inbox) -> None:
    # given
    validator = await _member(inbox, "validator")
    thread = await _thread_with_contact(inbox)
    # when
    internal = await inbox.gql(
        MESSAGE_SEND, {"input": {"threadId": thread["id"], "channel": "INTERNAL", "body": "Approved"}}, validator.token
    )
    email = await inbox.gql(
        MESSAGE_SEND, {"input": {"threadId": thread["id"], "channel": "EMAIL", "body": "Approved"}}, validator.token
    )
    # then
    assert "errors" not in internal, internal
    assert internal["data"]["messageSend"]["message"]["status"] == "SENT"
    assert email["data"] is None
    assert email["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert await _count(inbox, Message) == 1


async def test_support_may_send_emails(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread_with_contact(inbox)
    # when
    message = await _sent(inbox, thread["id"], support.token, channel="EMAIL", body="Hi")
    # then
    assert message["author"] == {"id": support.id, "email": support.email}
    assert message["sender"] == support.email


# -- messageSend: idempotency ----------------------------------------------------------------------


async def test_sending_twice_with_the_same_idempotency_key_stores_one_message(inbox: Inbox) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    first = await _sent(inbox, thread["id"], channel="EMAIL", body="Quote attached", idempotencyKey="quote-42")
    # when
    again = await _sent(inbox, thread["id"], channel="EMAIL", body="Quote attached", idempotencyKey="quote-42")
    # then
    assert again["id"] == first["id"]
    assert await _count(inbox, Message) == 1


async def test_concurrent_sends_with_the_same_idempotency_key_store_one_message(inbox: Inbox) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    variables = {
        "input": {"threadId": thread["id"], "channel": "EMAIL", "body": "Quote attached", "idempotencyKey": "k-1"}
    }
    # when
    results = await asyncio.gather(*(inbox.gql(MESSAGE_SEND, variables) for _ in range(5)))
    # then
    for result in results:
        assert "errors" not in result, result
        assert result["data"]["messageSend"]["userErrors"] == []
    assert len({result["data"]["messageSend"]["message"]["id"] for result in results}) == 1
    assert await _count(inbox, Message) == 1


async def test_different_idempotency_keys_store_different_messages(inbox: Inbox) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    # when
    one = await _sent(inbox, thread["id"], channel="INTERNAL", body="Same body", idempotencyKey="a")
    two = await _sent(inbox, thread["id"], channel="INTERNAL", body="Same body", idempotencyKey="b")
    # then
    assert one["id"] != two["id"]
    assert await _count(inbox, Message) == 2


async def test_the_same_idempotency_key_on_another_thread_is_invalid(inbox: Inbox) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    other = await _thread(inbox, subject="Other")
    await _sent(inbox, thread["id"], channel="INTERNAL", body="Hi", idempotencyKey="shared")
    # when
    payload = await _send(inbox, other["id"], channel="INTERNAL", body="Hi", idempotencyKey="shared")
    # then
    assert payload["message"] is None
    assert _errors(payload) == [("INVALID", ["idempotencyKey"])]
    assert await _count(inbox, Message) == 1


async def test_idempotency_keys_of_another_organization_do_not_collide(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    theirs = await _thread(globex)
    ours = await _thread(inbox)
    their_message = await _sent(globex, theirs["id"], channel="INTERNAL", body="Hi", idempotencyKey="same-key")
    # when
    our_message = await _sent(inbox, ours["id"], channel="INTERNAL", body="Hi", idempotencyKey="same-key")
    # then
    assert our_message["id"] != their_message["id"]
    assert our_message["thread"]["id"] == ours["id"]


# -- messageSend: the thread -----------------------------------------------------------------------


async def test_the_first_outbound_customer_message_opens_a_new_thread(inbox: Inbox) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    # when
    message = await _sent(inbox, thread["id"], channel="EMAIL", body="Hi")
    # then
    assert message["thread"]["status"] == "OPEN"
    stored = await _read_thread(inbox, thread["id"])
    assert stored["status"] == "OPEN"
    assert stored["lastMessageAt"] == message["createdAt"]


async def test_an_internal_message_keeps_the_thread_new_but_moves_last_message_at(inbox: Inbox) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    assert thread["lastMessageAt"] is None
    # when
    message = await _sent(inbox, thread["id"], channel="INTERNAL", body="Note to self")
    # then
    stored = await _read_thread(inbox, thread["id"])
    assert stored["status"] == "NEW"
    assert stored["lastMessageAt"] == message["createdAt"]


async def test_a_customer_message_leaves_a_pending_thread_pending(inbox: Inbox) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    await inbox.ok(THREAD_UPDATE, {"input": {"id": thread["id"], "status": "PENDING"}}, "threadUpdate")
    # when
    message = await _sent(inbox, thread["id"], channel="EMAIL", body="Hi")
    # then
    assert message["thread"]["status"] == "PENDING"


async def test_last_message_at_follows_the_latest_message(inbox: Inbox) -> None:
    # given
    thread = await _thread_with_contact(inbox)
    first = await _sent(inbox, thread["id"], channel="EMAIL", body="One")
    # when
    second = await _sent(inbox, thread["id"], channel="SMS", body="Two")
    # then
    assert datetime.fromisoformat(second["createdAt"]) > datetime.fromisoformat(first["createdAt"])
    assert (await _read_thread(inbox, thread["id"]))["lastMessageAt"] == second["createdAt"]


# -- the messages connection -------------------------------------------------------------------------


async def _thirty(inbox: Inbox) -> tuple[str, list[str]]:
    thread = await _thread(inbox)
    bodies = [f"Message {n:02d}" for n in range(30)]
    for body in bodies:
        await _sent(inbox, thread["id"], channel="INTERNAL", body=body)
    return thread["id"], bodies


async def _messages(inbox: Inbox, thread_id: str, **variables: Any) -> dict:
    result = await inbox.gql(THREAD_MESSAGES, {"id": thread_id, **variables})
    assert "errors" not in result, result
    return result["data"]["thread"]["messages"]


async def test_messages_are_oldest_first(inbox: Inbox) -> None:
    # given
    thread_id, bodies = await _thirty(inbox)
    # when
    page = await _messages(inbox, thread_id, first=100)
    # then
    assert [edge["node"]["body"] for edge in page["edges"]] == bodies
    assert page["totalCount"] == 30
    times = [datetime.fromisoformat(edge["node"]["createdAt"]) for edge in page["edges"]]
    assert times == sorted(times)


async def test_messages_forward_pagination(inbox: Inbox) -> None:
    # given
    thread_id, bodies = await _thirty(inbox)
    # when
    seen: list[str] = []
    pages = []
    after = None
    while True:
        page = await _messages(inbox, thread_id, first=12, after=after)
        pages.append(page)
        seen += [edge["node"]["body"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    # then
    assert seen == bodies
    assert [len(page["edges"]) for page in pages] == [12, 12, 6]
    assert [page["pageInfo"]["hasPreviousPage"] for page in pages] == [False, True, True]
    assert all(page["totalCount"] == 30 for page in pages)


async def test_messages_backward_pagination(inbox: Inbox) -> None:
    # given
    thread_id, bodies = await _thirty(inbox)
    # when
    seen: list[str] = []
    pages = []
    before = None
    while True:
        page = await _messages(inbox, thread_id, last=12, before=before)
        pages.append(page)
        seen = [edge["node"]["body"] for edge in page["edges"]] + seen
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    # then
    assert seen == bodies
    assert [len(page["edges"]) for page in pages] == [12, 12, 6]
    assert pages[0]["edges"][-1]["node"]["body"] == "Message 29"


async def test_messages_between_two_cursors(inbox: Inbox) -> None:
    # given
    thread_id, bodies = await _thirty(inbox)
    whole = await _messages(inbox, thread_id, first=30)
    after, before = whole["edges"][4]["cursor"], whole["edges"][10]["cursor"]
    # when
    page = await _messages(inbox, thread_id, first=30, after=after, before=before)
    # then
    assert [edge["node"]["body"] for edge in page["edges"]] == bodies[5:10]


async def test_first_and_last_messages_in_the_inbox_list(inbox: Inbox) -> None:
    # given
    thread_id, bodies = await _thirty(inbox)
    # when
    result = await inbox.gql(INBOX_MESSAGES)
    # then
    assert "errors" not in result, result
    node = result["data"]["threads"]["edges"][0]["node"]
    assert node["id"] == thread_id
    assert [edge["node"]["body"] for edge in node["first"]["edges"]] == bodies[:4]
    assert [edge["node"]["body"] for edge in node["last"]["edges"]] == bodies[-4:]
    assert node["first"]["totalCount"] == node["last"]["totalCount"] == 30
