"""Messages, notes and actions on a thread: messageSend (channels, recipients, limits, permissions,
idempotency), the thread's messages connection, noteAdd with mentions, actionCreate/actionUpdate."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from banxway.db.models import Action, Message, Note
from banxway.db.session import system_session
from tests.inbox_helpers import Inbox, open_whatsapp_window

MESSAGE_FIELDS = """
id channel direction status body subject html sender recipients createdAt
author { id email } contact { id } thread { id status lastMessageAt }
"""

MESSAGE_SEND = f"""
mutation($input: MessageSendInput!) {{
  messageSend(input: $input) {{ message {{ {MESSAGE_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

THREAD_CREATE = """
mutation($input: ThreadCreateInput!) {
  threadCreate(input: $input) { thread { id status lastMessageAt } userErrors { field code message } }
}
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

NOTE_FIELDS = "id body createdAt author { id email } mentions { id email } thread { id }"

NOTE_ADD = f"""
mutation($input: NoteAddInput!) {{
  noteAdd(input: $input) {{ note {{ {NOTE_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

THREAD_NOTES = """
query($id: ID!) { thread(id: $id) { notes(first: 50) { totalCount edges { node { body author { email } } } } } }
"""

ACTION_FIELDS = """
id title type status dueAt completedAt createdAt
assignee { id } createdBy { id } completedBy { id } thread { id }
"""

ACTION_CREATE = f"""
mutation($input: ActionCreateInput!) {{
  actionCreate(input: $input) {{ action {{ {ACTION_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

ACTION_UPDATE = f"""
mutation($input: ActionUpdateInput!) {{
  actionUpdate(input: $input) {{ action {{ {ACTION_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

THREAD_ACTIONS = """
query($id: ID!) { thread(id: $id) { actions(first: 50) { totalCount edges { node { title status type } } } } }
"""

ME_ID = "{ me { id } }"

USER_UPDATE = """
mutation($id: ID!, $active: Boolean) {
  userUpdate(input: {id: $id, active: $active}) { user { id active } userErrors { field code message } }
}
"""


# -- helpers -----------------------------------------------------------------------------


@dataclass
class Member:
    email: str
    token: str
    id: str


async def _member(inbox: Inbox, role: str, email: str | None = None) -> Member:
    """A user of the inbox's organization with `role`, logged in."""
    email = email or f"{role}@acme.test"
    await inbox.api.create_user(inbox.org, email, role)
    token = await inbox.api.token(email)
    me = await inbox.api.gql(ME_ID, token=token)
    return Member(email, token, me["data"]["me"]["id"])


async def _my_id(inbox: Inbox) -> str:
    return (await inbox.gql(ME_ID))["data"]["me"]["id"]


async def _foreign(inbox: Inbox) -> Inbox:
    org = await inbox.api.create_org("globex")
    return Inbox(inbox.api, org, await inbox.api.token(org.admin_email))


async def _thread(inbox: Inbox, **fields: Any) -> dict:
    fields.setdefault("subject", "Quote for 2x40HC Nhava Sheva to Hamburg")
    return (await inbox.ok(THREAD_CREATE, {"input": fields}, "threadCreate"))["thread"]


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


def _errors(payload: dict) -> list[tuple[str, list[str] | None]]:
    return [(error["code"], error["field"]) for error in payload["userErrors"]]


async def _count(inbox: Inbox, model: Any) -> int:
    async with system_session(inbox.api.state.sessionmaker) as session:
        return await session.scalar(
            select(func.count()).select_from(model).where(model.organization_id == inbox.org.id)
        )


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
    assert message["sender"] == inbox.org.admin_email
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


# -- noteAdd ---------------------------------------------------------------------------------------


async def test_note_add_stores_a_note_by_the_viewer(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    # when
    payload = await inbox.ok(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "  Call them at 5  "}}, "noteAdd")
    # then
    note = payload["note"]
    assert note["body"] == "Call them at 5"
    assert note["author"]["email"] == inbox.org.admin_email
    assert note["mentions"] == []
    assert note["thread"] == {"id": thread["id"]}


async def test_note_add_mentions_by_email_and_by_id(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    manager = await _member(inbox, "manager")
    validator = await _member(inbox, "validator")
    thread = await _thread(inbox)
    body = f"@{support.email} please check with @{manager.email.upper()}, cc nobody@acme.test and @ghost@acme.test."
    # when
    payload = await inbox.ok(
        NOTE_ADD,
        {"input": {"threadId": thread["id"], "body": body, "mentionedUserIds": [validator.id, support.id]}},
        "noteAdd",
    )
    # then
    mentioned = {user["email"] for user in payload["note"]["mentions"]}
    assert mentioned == {support.email, manager.email, validator.email}
    assert len(payload["note"]["mentions"]) == 3


async def test_note_add_does_not_mention_a_user_of_another_organization(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    thread = await _thread(inbox)
    # when
    payload = await inbox.ok(
        NOTE_ADD, {"input": {"threadId": thread["id"], "body": f"@{globex.org.admin_email} hi"}}, "noteAdd"
    )
    # then
    assert payload["note"]["mentions"] == []


async def test_note_add_with_a_foreign_mentioned_user_id_is_not_found(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    stranger = (await globex.gql(ME_ID))["data"]["me"]["id"]
    thread = await _thread(inbox)
    # when
    result = await inbox.gql(
        NOTE_ADD, {"input": {"threadId": thread["id"], "body": "Hi", "mentionedUserIds": [stranger]}}
    )
    # then
    payload = result["data"]["noteAdd"]
    assert payload["note"] is None
    assert [error["code"] for error in payload["userErrors"]] == ["NOT_FOUND"]
    assert payload["userErrors"][0]["field"] in (["mentionedUserIds.0"], ["mentionedUserIds", "0"])
    assert await _count(inbox, Note) == 0


async def test_note_add_with_a_deactivated_mentioned_user_is_invalid(inbox: Inbox) -> None:
    # given
    gone = await _member(inbox, "support", "gone@acme.test")
    await inbox.ok(USER_UPDATE, {"id": gone.id, "active": False}, "userUpdate")
    thread = await _thread(inbox)
    # when
    result = await inbox.gql(
        NOTE_ADD, {"input": {"threadId": thread["id"], "body": "Hi", "mentionedUserIds": [gone.id]}}
    )
    # then
    assert [error["code"] for error in result["data"]["noteAdd"]["userErrors"]] == ["INVALID"]
    assert await _count(inbox, Note) == 0


async def test_an_empty_note_is_invalid(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    # when
    result = await inbox.gql(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "  "}})
    # then
    assert _errors(result["data"]["noteAdd"]) == [("INVALID", ["body"])]
    assert await _count(inbox, Note) == 0


async def test_notes_are_listed_on_the_thread_oldest_first(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    other = await _thread(inbox, subject="Other")
    await inbox.ok(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "First"}}, "noteAdd")
    await inbox.ok(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "Second"}}, "noteAdd", support.token)
    await inbox.ok(NOTE_ADD, {"input": {"threadId": other["id"], "body": "Elsewhere"}}, "noteAdd")
    # when
    result = await inbox.gql(THREAD_NOTES, {"id": thread["id"]})
    # then
    notes = result["data"]["thread"]["notes"]
    assert notes["totalCount"] == 2
    assert [(e["node"]["body"], e["node"]["author"]["email"]) for e in notes["edges"]] == [
        ("First", inbox.org.admin_email),
        ("Second", support.email),
    ]


async def test_a_viewer_may_not_add_notes(inbox: Inbox) -> None:
    # given
    viewer = await _member(inbox, "viewer")
    thread = await _thread(inbox)
    # when
    result = await inbox.gql(NOTE_ADD, {"input": {"threadId": thread["id"], "body": "Hi"}}, viewer.token)
    # then
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert await _count(inbox, Note) == 0


# -- actions ---------------------------------------------------------------------------------------


async def _action(inbox: Inbox, thread_id: str, token: str | None = None, **fields: Any) -> dict:
    fields.setdefault("title", "Send the revised quote")
    payload = await inbox.ok(ACTION_CREATE, {"input": {"threadId": thread_id, **fields}}, "actionCreate", token)
    return payload["action"]


async def _action_update(inbox: Inbox, action_id: str, token: str | None = None, **fields: Any) -> dict:
    return await inbox.gql(ACTION_UPDATE, {"input": {"id": action_id, **fields}}, token)


async def test_action_create_with_defaults(inbox: Inbox) -> None:
    # given
    me = await _my_id(inbox)
    thread = await _thread(inbox)
    # when
    action = await _action(inbox, thread["id"], title="  Call the shipping line ")
    # then
    assert (action["title"], action["type"], action["status"]) == ("Call the shipping line", "TASK", "OPEN")
    assert action["createdBy"] == {"id": me}
    assert action["completedAt"] is None and action["completedBy"] is None
    assert action["assignee"] is None
    assert action["thread"] == {"id": thread["id"]}


async def test_action_create_with_type_due_date_and_assignee(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    due = datetime(2030, 1, 15, 9, 30, tzinfo=UTC)
    # when
    action = await _action(inbox, thread["id"], type="CALL_BACK", dueAt=due.isoformat(), assigneeId=support.id)
    # then
    assert action["type"] == "CALL_BACK"
    assert datetime.fromisoformat(action["dueAt"]) == due
    assert action["assignee"] == {"id": support.id}


async def test_action_create_for_a_foreign_assignee_is_not_found(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    stranger = (await globex.gql(ME_ID))["data"]["me"]["id"]
    thread = await _thread(inbox)
    # when
    result = await inbox.gql(ACTION_CREATE, {"input": {"threadId": thread["id"], "title": "X", "assigneeId": stranger}})
    # then
    assert _errors(result["data"]["actionCreate"]) == [("NOT_FOUND", ["assigneeId"])]
    assert await _count(inbox, Action) == 0


async def test_an_action_goes_open_in_progress_done(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"])
    # when
    started = await _action_update(inbox, action["id"], support.token, status="IN_PROGRESS")
    # then
    assert started["data"]["actionUpdate"]["userErrors"] == []
    assert started["data"]["actionUpdate"]["action"]["status"] == "IN_PROGRESS"
    assert started["data"]["actionUpdate"]["action"]["completedAt"] is None
    # when
    before = datetime.now(UTC) - timedelta(seconds=5)
    done = await _action_update(inbox, action["id"], support.token, status="DONE")
    # then
    finished = done["data"]["actionUpdate"]["action"]
    assert finished["status"] == "DONE"
    assert before <= datetime.fromisoformat(finished["completedAt"]) <= datetime.now(UTC) + timedelta(seconds=5)
    assert finished["completedBy"] == {"id": support.id}


async def test_a_done_action_cannot_go_back_in_progress(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"])
    await _action_update(inbox, action["id"], status="DONE")
    # when
    result = await _action_update(inbox, action["id"], status="IN_PROGRESS")
    # then
    payload = result["data"]["actionUpdate"]
    assert payload["action"] is None
    assert _errors(payload) == [("INVALID_TRANSITION", ["status"])]
    actions = (await inbox.gql(THREAD_ACTIONS, {"id": thread["id"]}))["data"]["thread"]["actions"]
    assert actions["edges"][0]["node"]["status"] == "DONE"


async def test_a_done_action_may_be_reopened_and_loses_its_completion(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"])
    await _action_update(inbox, action["id"], status="DONE")
    # when
    result = await _action_update(inbox, action["id"], status="OPEN")
    # then
    reopened = result["data"]["actionUpdate"]["action"]
    assert result["data"]["actionUpdate"]["userErrors"] == []
    assert reopened["status"] == "OPEN"
    assert reopened["completedAt"] is None
    assert reopened["completedBy"] is None


async def test_a_cancelled_action_cannot_be_done_directly(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"])
    await _action_update(inbox, action["id"], status="CANCELLED")
    # when
    result = await _action_update(inbox, action["id"], status="DONE")
    # then
    assert _errors(result["data"]["actionUpdate"]) == [("INVALID_TRANSITION", ["status"])]


async def test_action_update_changes_only_the_given_fields(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], title="Original", type="FOLLOW_UP")
    # when
    result = await _action_update(inbox, action["id"], title="Renamed")
    # then
    updated = result["data"]["actionUpdate"]["action"]
    assert (updated["title"], updated["type"], updated["status"]) == ("Renamed", "FOLLOW_UP", "OPEN")


@pytest.mark.parametrize("approval", ["QUOTE_APPROVAL", "DOCUMENT_APPROVAL"])
async def test_support_may_not_complete_an_approval(inbox: Inbox, approval: str) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], type=approval, title="Approve the quote")
    # when
    result = await _action_update(inbox, action["id"], support.token, status="DONE")
    # then
    assert result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    actions = (await inbox.gql(THREAD_ACTIONS, {"id": thread["id"]}))["data"]["thread"]["actions"]
    assert actions["edges"][0]["node"]["status"] == "OPEN"


async def test_support_may_not_complete_a_task_by_turning_it_into_an_approval(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], type="TASK")
    # when
    result = await _action_update(inbox, action["id"], support.token, status="DONE", type="QUOTE_APPROVAL")
    # then
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


async def test_support_may_work_on_an_approval_without_completing_it(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], support.token, type="QUOTE_APPROVAL")
    # when
    result = await _action_update(inbox, action["id"], support.token, status="IN_PROGRESS")
    # then
    assert "errors" not in result, result
    assert result["data"]["actionUpdate"]["action"]["status"] == "IN_PROGRESS"


async def test_a_validator_may_complete_a_quote_approval(inbox: Inbox) -> None:
    # given
    validator = await _member(inbox, "validator")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], type="QUOTE_APPROVAL", title="Approve the quote")
    # when
    result = await _action_update(inbox, action["id"], validator.token, status="DONE")
    # then
    assert "errors" not in result, result
    done = result["data"]["actionUpdate"]["action"]
    assert done["status"] == "DONE"
    assert done["completedBy"] == {"id": validator.id}
    assert done["completedAt"] is not None


async def test_a_viewer_may_not_create_actions(inbox: Inbox) -> None:
    # given
    viewer = await _member(inbox, "viewer")
    thread = await _thread(inbox)
    # when
    result = await inbox.gql(ACTION_CREATE, {"input": {"threadId": thread["id"], "title": "X"}}, viewer.token)
    # then
    assert result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert await _count(inbox, Action) == 0


async def test_a_viewer_may_not_update_actions(inbox: Inbox) -> None:
    # given
    viewer = await _member(inbox, "viewer")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"])
    # when
    result = await _action_update(inbox, action["id"], viewer.token, status="DONE")
    # then
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


async def test_actions_are_listed_on_the_thread(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    await _action(inbox, thread["id"], title="One")
    await _action(inbox, thread["id"], title="Two", type="SEND_QUOTE")
    # when
    result = await inbox.gql(THREAD_ACTIONS, {"id": thread["id"]})
    # then
    actions = result["data"]["thread"]["actions"]
    assert actions["totalCount"] == 2
    assert [(e["node"]["title"], e["node"]["type"]) for e in actions["edges"]] == [
        ("One", "TASK"),
        ("Two", "SEND_QUOTE"),
    ]


async def test_action_update_of_an_unknown_action_is_not_found(inbox: Inbox) -> None:
    # when
    result = await _action_update(inbox, str(GlobalID("Action", str(uuid.uuid4()))), status="DONE")
    # then
    assert _errors(result["data"]["actionUpdate"]) == [("NOT_FOUND", ["id"])]


async def test_action_update_reports_the_new_updated_at(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"])
    # when
    result = await inbox.gql(
        'mutation($id: ID!) { actionUpdate(input: {id: $id, title: "Renamed"}) { action { title updatedAt } } }',
        {"id": action["id"]},
    )
    # then
    assert "errors" not in result, result
    assert datetime.fromisoformat(result["data"]["actionUpdate"]["action"]["updatedAt"]) >= datetime.fromisoformat(
        action["createdAt"]
    )
