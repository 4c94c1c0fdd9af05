"""Live inbox events over graphql-transport-ws: delivery after commit, resume without loss, isolation, expiry."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from banxway.app import create_app
from banxway.events import encode_cursor
from banxway.settings import Settings
from tests.conftest import Api, Org
from tests.test_websocket import TRANSPORT_WS, _receive, _token

INBOX_EVENTS = """
subscription($after: String) {
  inboxEvents(after: $after) { cursor type occurredAt thread { reference subject } message { body } }
}
"""
THREAD_EVENTS = """
subscription($threadId: ID!, $after: String) {
  threadEvents(threadId: $threadId, after: $after) { cursor type message { body } }
}
"""
THREAD_CREATE = """
mutation($subject: String!) { threadCreate(input: {subject: $subject}) { thread { id reference } userErrors { code } } }
"""
MESSAGE_SEND = """
mutation($threadId: ID!, $body: String!) {
  messageSend(input: {threadId: $threadId, channel: INTERNAL, body: $body}) { message { id } userErrors { code } }
}
"""


@pytest.fixture
def http(settings: Settings, api: Api, org: Org) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _gql(http: TestClient, token: str, query: str, variables: dict[str, Any]) -> dict:
    response = http.post(
        "/graphql", json={"query": query, "variables": variables}, headers={"authorization": f"Bearer {token}"}
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def _subscribe(ws: Any, token: str, query: str, variables: dict[str, Any]) -> None:
    ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    assert _receive(ws)["type"] == "connection_ack"
    ws.send_json({"id": "s", "type": "subscribe", "payload": {"query": query, "variables": variables}})
    time.sleep(0.5)  # let the subscription reach Redis before the test writes


def _next_event(ws: Any) -> dict:
    message = _receive(ws)
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    return next(iter(message["payload"]["data"].values()))


def test_a_mutation_reaches_a_subscriber_after_commit(http: TestClient, org: Org) -> None:
    # given
    token = _token(http, org.admin_email)
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        _subscribe(ws, token, INBOX_EVENTS, {})
        # when
        created = _gql(http, token, THREAD_CREATE, {"subject": "Reefer booking"})["threadCreate"]["thread"]
        # then
        event = _next_event(ws)
        assert event["type"] == "THREAD_CREATED"
        assert event["thread"] == {"reference": created["reference"], "subject": "Reefer booking"}
        assert event["cursor"]


def test_resuming_with_a_cursor_replays_what_was_missed_in_order_without_duplicates(http: TestClient, org: Org) -> None:
    # given a subscriber that saw one event and went away
    token = _token(http, org.admin_email)
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        _subscribe(ws, token, INBOX_EVENTS, {})
        thread = _gql(http, token, THREAD_CREATE, {"subject": "Customs hold"})["threadCreate"]["thread"]
        cursor = _next_event(ws)["cursor"]
    # while it was away
    bodies = [f"update {n}" for n in range(12)]
    for body in bodies:
        _gql(http, token, MESSAGE_SEND, {"threadId": thread["id"], "body": body})
    # when it comes back with its cursor
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        _subscribe(ws, token, INBOX_EVENTS, {"after": cursor})
        received = [_next_event(ws) for _ in bodies]
        # and then a live one follows
        _gql(http, token, MESSAGE_SEND, {"threadId": thread["id"], "body": "live"})
        live = _next_event(ws)
    # then
    assert [e["type"] for e in received] == ["MESSAGE_ADDED"] * len(bodies)
    assert [e["message"]["body"] for e in received] == bodies
    assert live["message"]["body"] == "live"
    assert len({e["cursor"] for e in [*received, live]}) == len(bodies) + 1


def test_thread_events_carry_only_that_thread(http: TestClient, org: Org) -> None:
    token = _token(http, org.admin_email)
    watched = _gql(http, token, THREAD_CREATE, {"subject": "Watched"})["threadCreate"]["thread"]
    other = _gql(http, token, THREAD_CREATE, {"subject": "Other"})["threadCreate"]["thread"]
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        _subscribe(ws, token, THREAD_EVENTS, {"threadId": watched["id"]})
        _gql(http, token, MESSAGE_SEND, {"threadId": other["id"], "body": "not for you"})
        _gql(http, token, MESSAGE_SEND, {"threadId": watched["id"], "body": "for you"})
        assert _next_event(ws)["message"] == {"body": "for you"}


async def test_another_organization_sees_none_of_the_events(settings: Settings, api: Api, org: Org) -> None:
    other = await api.create_org("globex")
    with TestClient(create_app(settings)) as http:
        acme_token = _token(http, org.admin_email)
        globex_token = _token(http, other.admin_email)
        with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
            _subscribe(ws, globex_token, INBOX_EVENTS, {})
            _gql(http, acme_token, THREAD_CREATE, {"subject": "Acme secret"})
            _gql(http, globex_token, THREAD_CREATE, {"subject": "Globex own"})
            # the first event this subscriber gets is its own organization's
            assert _next_event(ws)["thread"]["subject"] == "Globex own"


def test_a_cursor_older_than_the_retention_is_expired(http: TestClient, org: Org) -> None:
    token = _token(http, org.admin_email)
    stale = encode_cursor(1, 1, dt.datetime.now(dt.UTC) - dt.timedelta(days=8))
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        _subscribe(ws, token, INBOX_EVENTS, {"after": stale})
        message = _receive(ws)
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "CURSOR_EXPIRED"


def test_the_sweeper_delivers_an_event_left_undispatched_by_a_crash(
    http: TestClient, settings: Settings, org: Org
) -> None:
    # given an event committed but never published (the process died between commit and publish)
    token = _token(http, org.admin_email)
    thread = _gql(http, token, THREAD_CREATE, {"subject": "Crash"})["threadCreate"]["thread"]
    thread_id = uuid.UUID(base64.b64decode(thread["id"]).decode().split(":")[1])
    with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
        _subscribe(ws, token, INBOX_EVENTS, {})
        asyncio.run(_insert_undispatched_event(settings, org, thread_id))
        # when time passes, then the sweeper publishes it
        started = time.monotonic()
        event = _next_event(ws)
    assert event["type"] == "THREAD_ARCHIVED"
    assert event["thread"]["subject"] == "Crash"
    assert time.monotonic() - started < 5


async def _insert_undispatched_event(settings: Settings, org: Org, thread_id: uuid.UUID) -> None:
    """Written straight to the table, as a transaction that committed but never reached the relay."""
    from banxway.events import ThreadArchived

    payload = ThreadArchived(thread_id=thread_id).model_dump_json()
    dsn = make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "INSERT INTO events (organization_id, type, thread_id, payload) VALUES ($1, $2, $3, $4::jsonb)",
            org.id,
            ThreadArchived.type,
            thread_id,
            payload,
        )
    finally:
        await connection.close()


# -- administration events reach only the roles that administer ------------------------------------------------

ADMIN_EVENTS = """
subscription { inboxEvents { type changed nodeId node { __typename id } thread { subject } } }
"""


def _admin_gql(http: TestClient, token: str, query: str, variables: dict[str, Any], name: str) -> dict:
    payload = _gql(http, token, query, variables)[name]
    assert payload["userErrors"] == [], payload
    return payload


async def test_email_account_events_reach_an_admin_but_not_a_viewer(settings: Settings, api: Api, org: Org) -> None:
    from tests.test_events_outbox import EMAIL_ACCOUNT_CREATE, EMAIL_ACCOUNT_UPDATE, email_account_input

    await api.create_user(org, "viewer@acme.test", "viewer")
    with TestClient(create_app(settings)) as http:
        admin_token = _token(http, org.admin_email)
        viewer_token = _token(http, "viewer@acme.test")
        account = _admin_gql(
            http, admin_token, EMAIL_ACCOUNT_CREATE, {"input": email_account_input()}, "emailAccountCreate"
        )["emailAccount"]["id"]
        with (
            http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as admin,
            http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as viewer,
        ):
            _subscribe(admin, admin_token, ADMIN_EVENTS, {})
            _subscribe(viewer, viewer_token, ADMIN_EVENTS, {})
            # when an admin renames the account, and then opens a thread (which everyone sees)
            update = {"input": {"id": account, "name": "Ops desk"}}
            _admin_gql(http, admin_token, EMAIL_ACCOUNT_UPDATE, update, "emailAccountUpdate")
            _gql(http, admin_token, THREAD_CREATE, {"subject": "After the rename"})
            # then the admin receives both, the account as its node
            assert _next_event(admin) == {
                "type": "EMAIL_ACCOUNT_UPDATED",
                "changed": ["name"],
                "nodeId": account,
                "node": {"__typename": "EmailAccount", "id": account},
                "thread": None,
            }
            assert _next_event(admin)["type"] == "THREAD_CREATED"
            # and the viewer only the thread
            first = _next_event(viewer)
            assert (first["type"], first["thread"]) == ("THREAD_CREATED", {"subject": "After the rename"})


def _wait_for_the_next_user_check() -> None:
    """A subscription checks its user (still active? which role?) at most once a second."""
    time.sleep(1.2)  # the app runs in the TestClient's own thread: blocking here blocks only the test


async def test_an_admin_demoted_while_subscribed_stops_receiving_administration_events(
    settings: Settings, api: Api, org: Org
) -> None:
    from tests.test_events_outbox import EMAIL_ACCOUNT_CREATE, USER_CHANGE, email_account_input

    await api.create_user(org, "second@acme.test", "admin")
    with TestClient(create_app(settings)) as http:
        admin_token = _token(http, org.admin_email)
        second_token = _token(http, "second@acme.test")
        second_id = _gql(http, second_token, "{ me { id } }", {})["me"]["id"]
        with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as second:
            _subscribe(second, second_token, ADMIN_EVENTS, {})
            # given the second admin, subscribed, is made a viewer (an event everyone receives)
            demote = {"input": {"id": second_id, "role": "VIEWER"}}
            _admin_gql(http, admin_token, USER_CHANGE, demote, "userUpdate")
            demoted = _next_event(second)
            assert (demoted["type"], demoted["changed"], demoted["node"]) == (
                "USER_UPDATED",
                ["role"],
                {"__typename": "User", "id": second_id},
            )
            _wait_for_the_next_user_check()
            # when an email account is added, and then a thread
            _admin_gql(http, admin_token, EMAIL_ACCOUNT_CREATE, {"input": email_account_input()}, "emailAccountCreate")
            _gql(http, admin_token, THREAD_CREATE, {"subject": "For everyone"})
            # then the subscription, now a viewer's, skips the account
            assert _next_event(second)["type"] == "THREAD_CREATED"
