"""Notifications (mention, assignment, a customer's message on one's thread), typing, presence, and the
collision guard of messageSend (`basedOnCursor` → THREAD_CHANGED unless `force`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from banxway import presence
from banxway.db.session import tenant_session
from banxway.enums import Channel
from banxway.resolvers.inbound import message_receive
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox
from tests.live_helpers import GraphQLSocket, local_uuid, uvicorn_server

ME = "{ me { id } }"
NOTIFICATIONS = """
query($unreadOnly: Boolean) {
  notifications(first: 20, unreadOnly: $unreadOnly) {
    edges { node { id type summary read thread { id reference } note { body } message { body } actor { email } } }
  }
  notificationUnreadCount
}
"""
NOTE_ADD = """
mutation($threadId: ID!, $body: String!) { noteAdd(input: {threadId: $threadId, body: $body}) { note { id } userErrors { code } } }
"""
ASSIGN = """
mutation($threadId: ID!, $assigneeId: ID) {
  threadAssign(input: {threadId: $threadId, assigneeId: $assigneeId}) { thread { id } userErrors { code } }
}
"""
MARK_READ = """
mutation($ids: [ID!]!) {
  notificationMarkRead(input: {ids: $ids}) { notifications { id read } userErrors { field code message } }
}
"""
MARK_ALL_READ = "mutation { notificationMarkAllRead { notifications { id read } userErrors { code } } }"
SEND = """
mutation($threadId: ID!, $body: String!, $basedOnCursor: String, $force: Boolean! = false) {
  messageSend(input: {threadId: $threadId, channel: INTERNAL, body: $body, basedOnCursor: $basedOnCursor, force: $force}) {
    message { id } userErrors { field code message }
  }
}
"""
THREAD_EVENTS = "subscription($threadId: ID!) { threadEvents(threadId: $threadId) { cursor type } }"
TYPING = "mutation($threadId: ID!, $on: Boolean!) { threadTyping(input: {threadId: $threadId, isTyping: $on}) { expiresAt userErrors { code } } }"


async def _user(api: Api, org: Org, email: str, role: str = "support") -> tuple[str, str]:
    """(token, user global id) of a new colleague."""
    await api.create_user(org, email, role)
    token = await api.token(email)
    return token, (await api.gql(ME, token=token))["data"]["me"]["id"]


async def _notifications(api: Api, token: str, unread_only: bool | None = None) -> dict[str, Any]:
    result = await api.gql(NOTIFICATIONS, {"unreadOnly": unread_only}, token=token)
    assert "errors" not in result, result
    return result["data"]


# -- notifications -------------------------------------------------------------------------------


async def test_a_mention_notifies_the_colleague_and_not_the_author(api: Api, org: Org, inbox: Inbox) -> None:
    # given a colleague and a thread
    priya_token, _ = await _user(api, org, "priya@acme.test")
    thread = await inbox.thread("Reefer booking")
    # when the admin mentions Priya in a note
    result = await api.gql(
        NOTE_ADD, {"threadId": thread["id"], "body": "@priya@acme.test please check the VGM"}, token=inbox.token
    )
    assert result["data"]["noteAdd"]["userErrors"] == []
    # then Priya has one unread MENTION naming the thread, the note and the author; the admin has none
    mine = await _notifications(api, priya_token)
    assert mine["notificationUnreadCount"] == 1
    [edge] = mine["notifications"]["edges"]
    node = edge["node"]
    assert node["type"] == "MENTION"
    assert node["read"] is False
    assert node["thread"]["id"] == thread["id"]
    assert node["note"]["body"] == "@priya@acme.test please check the VGM"
    assert node["actor"]["email"] == org.admin_email
    assert thread["reference"] in node["summary"]
    assert (await _notifications(api, inbox.token))["notificationUnreadCount"] == 0


async def test_an_assignment_notifies_the_assignee_but_self_assignment_does_not(
    api: Api, org: Org, inbox: Inbox
) -> None:
    # given a colleague
    ravi_token, ravi_id = await _user(api, org, "ravi@acme.test")
    thread = await inbox.thread("Customs hold at Nhava Sheva")
    # when the admin assigns the thread to Ravi, and Ravi then takes another thread himself
    assert (await api.gql(ASSIGN, {"threadId": thread["id"], "assigneeId": ravi_id}, token=inbox.token))["data"][
        "threadAssign"
    ]["userErrors"] == []
    other = await inbox.thread("Another")
    await api.gql(ASSIGN, {"threadId": other["id"], "assigneeId": ravi_id}, token=ravi_token)
    # then Ravi has exactly one ASSIGNMENT, for the first thread
    edges = (await _notifications(api, ravi_token))["notifications"]["edges"]
    assert [(e["node"]["type"], e["node"]["thread"]["id"]) for e in edges] == [("ASSIGNMENT", thread["id"])]


async def test_an_inbound_message_on_an_assigned_thread_notifies_the_assignee(
    api: Api, org: Org, inbox: Inbox, state: AppState
) -> None:
    # given a thread assigned to Ravi
    ravi_token, ravi_id = await _user(api, org, "ravi@acme.test")
    thread = await inbox.thread("Where is my container?")
    await api.gql(ASSIGN, {"threadId": thread["id"], "assigneeId": ravi_id}, token=inbox.token)
    # when the customer writes (the write path every channel uses)
    async with tenant_session(state.sessionmaker, org.id) as session, session.begin():
        await message_receive(
            session,
            org.id,
            thread_id=local_uuid(thread["id"]),
            channel=Channel.EMAIL,
            body="Any news on MSCU1234565?",
            sender="buyer@customer.test",
        )
    # then Ravi is told, with the message
    edges = (await _notifications(api, ravi_token))["notifications"]["edges"]
    assert edges[0]["node"]["type"] == "INBOUND_MESSAGE"
    assert edges[0]["node"]["message"]["body"] == "Any news on MSCU1234565?"
    assert edges[0]["node"]["actor"] is None
    assert "buyer@customer.test" in edges[0]["node"]["summary"]


async def test_marking_read_one_and_all_and_nobody_elses(api: Api, org: Org, inbox: Inbox) -> None:
    # given three mentions of Priya, and Ravi
    priya_token, _ = await _user(api, org, "priya@acme.test")
    ravi_token, _ = await _user(api, org, "ravi@acme.test")
    thread = await inbox.thread()
    for n in range(3):
        await api.gql(NOTE_ADD, {"threadId": thread["id"], "body": f"@priya@acme.test #{n}"}, token=inbox.token)
    ids = [e["node"]["id"] for e in (await _notifications(api, priya_token))["notifications"]["edges"]]
    assert len(ids) == 3
    # when Ravi tries to mark Priya's notification read
    foreign = await api.gql(MARK_READ, {"ids": [ids[0]]}, token=ravi_token)
    # then it is not found for him, and stays unread
    assert foreign["data"]["notificationMarkRead"]["userErrors"][0]["code"] == "NOT_FOUND"
    assert foreign["data"]["notificationMarkRead"]["userErrors"][0]["field"] == ["ids", "0"]
    assert (await _notifications(api, priya_token))["notificationUnreadCount"] == 3
    # when Priya marks one read
    one = await api.gql(MARK_READ, {"ids": [ids[0]]}, token=priya_token)
    assert one["data"]["notificationMarkRead"]["notifications"] == [{"id": ids[0], "read": True}]
    assert (await _notifications(api, priya_token))["notificationUnreadCount"] == 2
    unread = (await _notifications(api, priya_token, unread_only=True))["notifications"]["edges"]
    assert ids[0] not in [e["node"]["id"] for e in unread]
    # when she marks all read
    rest = await api.gql(MARK_ALL_READ, token=priya_token)
    assert sorted(n["id"] for n in rest["data"]["notificationMarkAllRead"]["notifications"]) == sorted(ids[1:])
    assert (await _notifications(api, priya_token))["notificationUnreadCount"] == 0
    # and node(id) of her notification is null for Ravi
    node = await api.gql("query($id: ID!) { node(id: $id) { id } }", {"id": ids[0]}, token=ravi_token)
    assert node["data"]["node"] is None


@pytest.fixture
async def server(settings: Settings, state: AppState, api: Api, org: Org) -> AsyncIterator[str]:
    async with uvicorn_server(settings, state) as url:
        yield url


async def test_notification_received_is_live_and_private(api: Api, org: Org, inbox: Inbox, server: str) -> None:
    # given Priya and Ravi subscribed to their notifications
    priya_token, _ = await _user(api, org, "priya@acme.test")
    ravi_token, _ = await _user(api, org, "ravi@acme.test")
    thread = await inbox.thread()
    query = "subscription { notificationReceived { type summary note { body } } }"
    async with GraphQLSocket.open(server) as priya, GraphQLSocket.open(server) as ravi:
        await priya.init(priya_token)
        await ravi.init(ravi_token)
        await priya.subscribe("n", query)
        await ravi.subscribe("n", query)
        await asyncio.sleep(0.3)
        # when Priya is mentioned
        await api.gql(NOTE_ADD, {"threadId": thread["id"], "body": "@priya@acme.test ETA?"}, token=inbox.token)
        # then she receives it at once, and Ravi receives nothing
        _, received = await priya.next(within=3)
        assert received["type"] == "MENTION"
        assert received["note"]["body"] == "@priya@acme.test ETA?"
        with pytest.raises(TimeoutError):
            await ravi.receive(within=0.7)


# -- typing and presence --------------------------------------------------------------------------


async def test_typing_reaches_colleagues_and_lapses_after_the_ttl(
    api: Api, org: Org, inbox: Inbox, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given Priya watching a thread for typing, with a short TTL
    monkeypatch.setattr(presence, "TYPING_TTL", 0.6)
    priya_token, _ = await _user(api, org, "priya@acme.test")
    thread = await inbox.thread()
    query = "subscription($t: ID!) { typing(threadId: $t) { isTyping expiresAt user { email } thread { id } } }"
    async with GraphQLSocket.open(server) as priya:
        await priya.init(priya_token)
        await priya.subscribe("t", query, {"t": thread["id"]})
        await asyncio.sleep(0.3)
        # when the admin types
        typed = await api.gql(TYPING, {"threadId": thread["id"], "on": True}, token=inbox.token)
        assert typed["data"]["threadTyping"]["expiresAt"] is not None
        # then Priya sees it, and sees it stop once the TTL passes without a new signal
        _, started = await priya.next(within=3)
        assert (started["isTyping"], started["user"]["email"], started["thread"]["id"]) == (
            True,
            org.admin_email,
            thread["id"],
        )
        began = time.monotonic()
        _, stopped = await priya.next(within=3)
        assert stopped["isTyping"] is False and stopped["expiresAt"] is None
        assert 0.3 < time.monotonic() - began < 2.0
        # and an explicit stop is sent at once
        await api.gql(TYPING, {"threadId": thread["id"], "on": True}, token=inbox.token)
        assert (await priya.next(within=3))[1]["isTyping"] is True
        await api.gql(TYPING, {"threadId": thread["id"], "on": False}, token=inbox.token)
        assert (await priya.next(within=0.5))[1]["isTyping"] is False


async def test_typing_needs_a_role_that_writes_and_a_thread_of_ones_organization(
    api: Api, org: Org, inbox: Inbox
) -> None:
    # given a viewer and a thread of another organization
    viewer_token, _ = await _user(api, org, "viewer@acme.test", role="viewer")
    thread = await inbox.thread()
    other = await api.create_org("globex")
    other_token = await api.token(other.admin_email)
    # when they signal typing
    denied = await api.gql(TYPING, {"threadId": thread["id"], "on": True}, token=viewer_token)
    foreign = await api.gql(TYPING, {"threadId": thread["id"], "on": True}, token=other_token)
    # then the viewer is forbidden and the other organization finds no thread
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert foreign["data"]["threadTyping"]["userErrors"][0]["code"] == "NOT_FOUND"


async def test_thread_viewers_shows_who_has_the_thread_open_and_who_is_composing(
    api: Api, org: Org, inbox: Inbox, server: str
) -> None:
    # given Priya with the thread open (subscribed to its viewers)
    priya_token, priya_id = await _user(api, org, "priya@acme.test")
    thread = await inbox.thread()
    query = "subscription($t: ID!) { threadViewers(threadId: $t) { viewers { user { id } viewing composing } } }"
    viewers_query = "query($t: ID!) { threadViewers(threadId: $t) { user { id } viewing composing } }"
    async with GraphQLSocket.open(server) as priya:
        await priya.init(priya_token)
        await priya.subscribe("v", query, {"t": thread["id"]})
        _, first = await priya.next(within=3)
        assert first["viewers"] == [{"user": {"id": priya_id}, "viewing": True, "composing": False}]
        # when the admin opens it too (a second subscriber) and starts typing
        admin_id = (await api.gql(ME, token=inbox.token))["data"]["me"]["id"]
        async with GraphQLSocket.open(server) as admin:
            await admin.init(inbox.token)
            await admin.subscribe("v", query, {"t": thread["id"]})
            _, both = await priya.next(within=3)
            assert {v["user"]["id"] for v in both["viewers"]} == {priya_id, admin_id}
            await api.gql(TYPING, {"threadId": thread["id"], "on": True}, token=inbox.token)
            _, composing = await priya.next(within=3)
            assert {"user": {"id": admin_id}, "viewing": True, "composing": True} in composing["viewers"]
            # then the query agrees
            now = await api.gql(viewers_query, {"t": thread["id"]}, token=priya_token)
            assert {"user": {"id": admin_id}, "viewing": True, "composing": True} in now["data"]["threadViewers"]
        # when the admin closes the thread, then Priya sees her alone again (composing lapses too)
        deadline = time.monotonic() + 8
        while True:
            _, update = await priya.next(within=8)
            if [v["user"]["id"] for v in update["viewers"]] == [priya_id]:
                break
            assert time.monotonic() < deadline
    # and once Priya has left, nobody is viewing
    await asyncio.sleep(0.2)
    left = await api.gql(viewers_query, {"t": thread["id"]}, token=inbox.token)
    assert left["data"]["threadViewers"] == []


# -- the collision guard ----------------------------------------------------------------------------


async def test_a_send_based_on_an_old_cursor_fails_with_thread_changed_unless_forced(
    api: Api, org: Org, inbox: Inbox, server: str
) -> None:
    # given Priya composing with the thread's last event cursor
    priya_token, _ = await _user(api, org, "priya@acme.test")
    thread = await inbox.thread()
    async with GraphQLSocket.open(server) as priya:
        await priya.init(priya_token)
        await priya.subscribe("e", THREAD_EVENTS, {"threadId": thread["id"]})
        await asyncio.sleep(0.3)
        await api.gql(SEND, {"threadId": thread["id"], "body": "first"}, token=inbox.token)
        _, seen = await priya.next(within=3)
    cursor = seen["cursor"]
    # when the admin adds a message meanwhile and Priya sends based on her cursor
    await api.gql(SEND, {"threadId": thread["id"], "body": "second"}, token=inbox.token)
    collided = await api.gql(
        SEND, {"threadId": thread["id"], "body": "mine", "basedOnCursor": cursor}, token=priya_token
    )
    # then it fails with THREAD_CHANGED, naming the field, and sends nothing
    [error] = collided["data"]["messageSend"]["userErrors"]
    assert (error["code"], error["field"]) == ("THREAD_CHANGED", ["basedOnCursor"])
    assert "1 new message" in error["message"]
    assert collided["data"]["messageSend"]["message"] is None
    # when she forces it, then it is sent
    forced = await api.gql(
        SEND, {"threadId": thread["id"], "body": "mine", "basedOnCursor": cursor, "force": True}, token=priya_token
    )
    assert forced["data"]["messageSend"]["userErrors"] == []


async def test_ones_own_messages_and_an_unchanged_thread_do_not_collide(
    api: Api, org: Org, inbox: Inbox, server: str
) -> None:
    # given the admin's cursor after the last message
    thread = await inbox.thread()
    async with GraphQLSocket.open(server) as admin:
        await admin.init(inbox.token)
        await admin.subscribe("e", THREAD_EVENTS, {"threadId": thread["id"]})
        await asyncio.sleep(0.3)
        await api.gql(SEND, {"threadId": thread["id"], "body": "first"}, token=inbox.token)
        _, seen = await admin.next(within=3)
    # when only the admin writes afterwards, then sends based on the old cursor
    await api.gql(SEND, {"threadId": thread["id"], "body": "second"}, token=inbox.token)
    result = await api.gql(
        SEND, {"threadId": thread["id"], "body": "third", "basedOnCursor": seen["cursor"]}, token=inbox.token
    )
    # then there is no collision
    assert result["data"]["messageSend"]["userErrors"] == []
    # and a cursor that is not one is INVALID
    bad = await api.gql(SEND, {"threadId": thread["id"], "body": "x", "basedOnCursor": "nope"}, token=inbox.token)
    assert bad["data"]["messageSend"]["userErrors"][0]["code"] == "INVALID"
