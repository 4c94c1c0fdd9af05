"""Outbound webhooks (issue 15): endpoints an admin registers receive the organization's relayed events, signed,
through the real worker path; retries with back-off, permanent failures, the SSRF guard, the delivery log, retry
and replay, disabling after the window; tested against a stand-in receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from banxway import events
from banxway.context import SystemContext
from banxway.db.models import AuditEntry, Event, WebhookDelivery, WebhookEndpoint
from banxway.db.session import system_session
from banxway.resolvers.webhook_endpoints import (
    webhook_deliveries_create,
    webhook_deliveries_due,
    webhook_delivery_send,
)
from banxway.schema.ids import local_id, to_global_id
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org, http_client
from tests.inbox_helpers import Inbox, _foreign, _member
from tests.standins.webhook_receiver import Receiver, webhook_receiver

ENDPOINT_CREATE = """
mutation($input: WebhookEndpointCreateInput!) {
  webhookEndpointCreate(input: $input) {
    webhookEndpoint { id url description eventTypes enabled disabledReason pendingDeliveries }
    secret
    userErrors { field code message }
  }
}
"""
ENDPOINT_UPDATE = """
mutation($input: WebhookEndpointUpdateInput!) {
  webhookEndpointUpdate(input: $input) {
    webhookEndpoint { id url eventTypes enabled disabledReason failingSince } userErrors { field code message }
  }
}
"""
ENDPOINT_DELETE = """
mutation($id: ID!) { webhookEndpointDelete(input: {id: $id}) { deletedId userErrors { field code message } } }
"""
ROTATE = """
mutation($id: ID!) {
  webhookEndpointRotateSecret(input: {id: $id}) { secret webhookEndpoint { id } userErrors { field code message } }
}
"""
ENDPOINTS = """
query {
  webhookEndpoints { id url description eventTypes enabled disabledReason disabledAt failingSince pendingDeliveries }
}
"""
DELIVERIES = """
query($endpointId: ID!, $status: WebhookDeliveryStatus) {
  webhookDeliveries(endpointId: $endpointId, status: $status, first: 50) {
    totalCount
    edges { node {
      id status attempts eventId eventType responseStatus responseBody durationMs lastError nextAttemptAt body
    } }
  }
}
"""
RETRY = """
mutation($id: ID!) {
  webhookDeliveryRetry(input: {id: $id}) { webhookDelivery { id status } userErrors { field code message } }
}
"""
REPLAY = """
mutation($input: WebhookEndpointReplayInput!) {
  webhookEndpointReplay(input: $input) {
    queued hasMore lastCursor webhookEndpoint { id pendingDeliveries } userErrors { field code message }
  }
}
"""
EVENT_TYPES = "{ webhookEventTypes }"
NOTIFICATIONS = "{ notifications(first: 10) { edges { node { type summary thread { id } } } } }"


# The README's verification recipe, verbatim (/tmp/readme_webhooks.md, "Verifying a delivery"):
def verify(secret: str, body: bytes, signature_header: str, tolerance: int = 300) -> bool:
    """`body`: the raw request body, exactly as received (before any JSON parsing)."""
    fields = dict(part.split("=", 1) for part in signature_header.split(","))
    timestamp, received = int(fields["t"]), fields["v1"]
    if abs(time.time() - timestamp) > tolerance:
        return False  # too old: someone is replaying a captured request
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # the receiver is on 127.0.0.1 over http; retries 0.2 s apart; a receiver that hangs gives up after 1 s
    return settings.model_copy(
        update={
            "allow_private_webhooks": True,
            "webhook_retry_base_seconds": 0.2,
            "webhook_timeout_seconds": 1.0,
            "webhook_retry_window_seconds": 3600.0,
        }
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as found:
        yield found


def errors(payload: dict) -> list[tuple[str, list[str] | None]]:
    return [(error["code"], error["field"]) for error in payload["userErrors"]]


def forbidden(result: dict) -> bool:
    return bool(result.get("errors")) and result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


async def create_endpoint(inbox: Inbox, url: str, types: list[str] | None = None, **fields: Any) -> dict:
    values = {"url": url, "eventTypes": types or ["THREAD_CREATED"], **fields}
    return await inbox.ok(ENDPOINT_CREATE, {"input": values}, "webhookEndpointCreate")


async def deliveries(inbox: Inbox, endpoint_id: str, status: str | None = None) -> list[dict]:
    result = await inbox.gql(DELIVERIES, {"endpointId": endpoint_id, "status": status})
    assert "errors" not in result, result
    return [edge["node"] for edge in result["data"]["webhookDeliveries"]["edges"]]


async def wait_for(check: Callable[[], Awaitable[Any]], what: str, seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return found


async def event_row(state: AppState, event_type: str, **payload: str) -> Event:
    async with system_session(state.sessionmaker) as session:
        rows = list(await session.scalars(select(Event).where(Event.type == event_type).order_by(Event.id)))
    found = [row for row in rows if all(row.payload.get(k) == v for k, v in payload.items())]
    assert len(found) == 1, found
    return found[0]


async def thread_event(state: AppState, thread: dict) -> Event:
    return await event_row(state, "THREAD_CREATED", thread_id=str(local_id(thread["id"], "Thread")))


async def delivered(state: AppState, thread: dict) -> list[uuid.UUID]:
    """The deliveries of a thread's THREAD_CREATED, written as the `deliver_webhooks` actor does."""
    return await webhook_deliveries_create(SystemContext(state), (await thread_event(state, thread)).id)


async def send(state: AppState, delivery_id: uuid.UUID, settings: Settings | None = None) -> Any:
    target = state if settings is None else dataclasses.replace(state, settings=settings)
    return await webhook_delivery_send(SystemContext(target), delivery_id)


async def row(state: AppState, delivery_id: uuid.UUID) -> WebhookDelivery:
    async with system_session(state.sessionmaker) as session:
        found = await session.get(WebhookDelivery, delivery_id)
        assert found is not None
        return found


async def make_due(state: AppState, delivery_id: uuid.UUID) -> None:
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(next_attempt_at=func.now())
        )


# -- delivery through the worker ---------------------------------------------------------------------------------


async def test_an_event_reaches_the_receiver_signed_as_the_readme_says(
    inbox: Inbox, state: AppState, receiver: Receiver, worker: Any
) -> None:
    # given an endpoint subscribed to new threads (its secret shown in the create payload)
    created = await create_endpoint(inbox, receiver.url, ["THREAD_CREATED"], description="ERP sync")
    secret, endpoint = created["secret"], created["webhookEndpoint"]
    assert secret.startswith("whsec_") and len(secret) > 30
    # when a thread is created, and a customer (a type the endpoint did not ask for)
    await inbox.customer("Not subscribed")
    thread = await inbox.thread("Rates for May")
    # then the worker POSTs the thread's event, once, signed so that the README's recipe verifies it
    await wait_for(lambda: asyncio.sleep(0, receiver.requests), "the delivery")
    await asyncio.sleep(0.3)
    [request] = receiver.requests
    assert request.path == "/hooks/banxway"
    assert verify(secret, request.body, request.headers["banxway-signature"])
    assert not verify(secret, request.body + b" ", request.headers["banxway-signature"])
    assert not verify("whsec_wrong", request.body, request.headers["banxway-signature"])
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Banxway-Webhooks/")
    body = orjson.loads(request.body)
    event = await thread_event(state, thread)
    assert request.headers["banxway-event-id"] == body["id"] == str(event.id)
    assert body["type"] == "THREAD_CREATED"
    assert body["organizationId"] == to_global_id("Organization", inbox.org.id)
    assert body["object"] == {"threadId": thread["id"]}
    assert events.decode_cursor(body["cursor"])[:2] == (event.seq, event.id)
    assert body["createdAt"].endswith("Z")
    # and the delivery log says so
    [logged] = await wait_for(lambda: _with_status(inbox, endpoint["id"], "SUCCEEDED"), "the delivery to be recorded")
    assert (logged["attempts"], logged["responseStatus"], logged["eventType"]) == (1, 200, "THREAD_CREATED")
    assert logged["eventId"] == body["id"] and logged["body"] == request.body.decode()
    assert logged["responseBody"].startswith("answer 200: ") and len(logged["responseBody"]) == 1024
    assert logged["durationMs"] is not None and logged["lastError"] is None


async def _with_status(inbox: Inbox, endpoint_id: str, status: str) -> list[dict]:
    return [d for d in await deliveries(inbox, endpoint_id) if d["status"] == status]


async def test_a_delivery_answered_500_is_retried_until_it_succeeds(
    inbox: Inbox, receiver: Receiver, worker: Any
) -> None:
    # given a receiver that fails twice with 500, then accepts
    receiver.answer_with(500, 503, default=200)
    endpoint = (await create_endpoint(inbox, receiver.url))["webhookEndpoint"]
    # when an event is relayed
    await inbox.thread()
    # then it is sent three times, with the same event id and body, and ends SUCCEEDED
    [logged] = await wait_for(lambda: _with_status(inbox, endpoint["id"], "SUCCEEDED"), "the third attempt")
    assert logged["attempts"] == 3 and logged["responseStatus"] == 200
    assert len(receiver.requests) == 3
    assert len({r.headers["banxway-event-id"] for r in receiver.requests}) == 1
    assert len({r.body for r in receiver.requests}) == 1


async def test_another_organizations_events_never_reach_this_endpoint(
    inbox: Inbox, state: AppState, receiver: Receiver, worker: Any
) -> None:
    # given my endpoint, and another organization's own endpoint for the same types
    mine = (await create_endpoint(inbox, receiver.url))["webhookEndpoint"]
    other = await _foreign(inbox)
    async with webhook_receiver() as theirs:
        await create_endpoint(other, theirs.url)
        # when both organizations create a thread (theirs first)
        their_thread = await other.thread("Globex business")
        my_thread = await inbox.thread("Acme business")
        await wait_for(lambda: _with_status(inbox, mine["id"], "SUCCEEDED"), "my delivery")
        await wait_for(lambda: asyncio.sleep(0, theirs.requests), "their delivery")
        await asyncio.sleep(0.3)
    # then each receiver got its own organization's event only
    assert [orjson.loads(r.body)["object"]["threadId"] for r in receiver.requests] == [my_thread["id"]]
    assert [orjson.loads(r.body)["object"]["threadId"] for r in theirs.requests] == [their_thread["id"]]


async def test_a_failed_delivery_is_sent_again_on_retry_with_the_same_event_id(
    inbox: Inbox, state: AppState, receiver: Receiver, worker: Any
) -> None:
    # given a delivery the receiver refused (404: failed at once)
    receiver.answer_with(404, default=200)
    endpoint = (await create_endpoint(inbox, receiver.url))["webhookEndpoint"]
    await inbox.thread()
    [failed] = await wait_for(lambda: _with_status(inbox, endpoint["id"], "FAILED"), "the refusal")
    assert failed["attempts"] == 1 and failed["responseStatus"] == 404 and failed["nextAttemptAt"] is None
    assert await deliveries(inbox, endpoint["id"], "SUCCEEDED") == []  # the log's status filter
    assert [d["id"] for d in await deliveries(inbox, endpoint["id"], "FAILED")] == [failed["id"]]
    # when an admin retries it
    retried = await inbox.ok(RETRY, {"id": failed["id"]}, "webhookDeliveryRetry")
    assert retried["webhookDelivery"]["status"] == "PENDING"
    # then it is sent again now, the same event with the same body, and succeeds
    [done] = await wait_for(lambda: _with_status(inbox, endpoint["id"], "SUCCEEDED"), "the retry")
    assert done["attempts"] == 2 and done["id"] == failed["id"]
    first, second = receiver.requests
    assert first.body == second.body and first.headers["banxway-event-id"] == second.headers["banxway-event-id"]


async def test_replay_sends_again_the_subscribed_events_after_a_cursor(
    inbox: Inbox, state: AppState, receiver: Receiver, worker: Any
) -> None:
    # given three threads created before the endpoint existed, and a customer (not subscribed)
    threads = [await inbox.thread(f"Thread {n}") for n in range(3)]
    await inbox.customer("Not subscribed")
    endpoint = (await create_endpoint(inbox, receiver.url))["webhookEndpoint"]
    first = await thread_event(state, threads[0])
    cursor = events.encode_cursor(first.seq, first.id, first.created_at)
    # when an admin replays after the first thread's event
    replay = await inbox.ok(REPLAY, {"input": {"endpointId": endpoint["id"], "after": cursor}}, "webhookEndpointReplay")
    # then the two later threads' events are queued, and sent, oldest first
    assert (replay["queued"], replay["hasMore"]) == (2, False)
    last = await thread_event(state, threads[2])
    assert events.decode_cursor(replay["lastCursor"])[:2] == (last.seq, last.id)
    await wait_for(lambda: _count_at_least(receiver, 2), "the replayed events")
    await asyncio.sleep(0.3)
    assert [orjson.loads(r.body)["object"]["threadId"] for r in receiver.requests] == [t["id"] for t in threads[1:]]
    # and a replay from the start sends all three again (the two delivered ones are reset, not duplicated)
    again = await inbox.ok(REPLAY, {"input": {"endpointId": endpoint["id"]}}, "webhookEndpointReplay")
    assert again["queued"] == 3
    await wait_for(lambda: _count_at_least(receiver, 5), "the second replay")
    assert len(await deliveries(inbox, endpoint["id"])) == 3
    # and a cursor that is not one is refused, naming it
    bad = await inbox.gql(REPLAY, {"input": {"endpointId": endpoint["id"], "after": "nonsense"}})
    assert errors(bad["data"]["webhookEndpointReplay"]) == [("INVALID", ["after"])]


async def _count_at_least(receiver: Receiver, count: int) -> bool:
    return len(receiver.requests) >= count


# -- one attempt at a time (the actor's resolver, called as the worker calls it) -------------------------------


async def test_a_4xx_fails_at_once_and_a_redelivered_job_sends_nothing_more(
    inbox: Inbox, state: AppState, receiver: Receiver
) -> None:
    receiver.answer_with(422)
    await create_endpoint(inbox, receiver.url)
    thread = await inbox.thread()
    [delivery_id] = await delivered(state, thread)
    assert await delivered(state, thread) == [delivery_id]  # written once
    outcome = await send(state, delivery_id)
    assert outcome.status.name == "FAILED" and outcome.next_attempt_at is None
    found = await row(state, delivery_id)
    assert (found.status, found.attempts, found.response_status) == ("FAILED", 1, 422)
    assert await send(state, delivery_id) is None  # a second job: nothing to do
    assert len(receiver.requests) == 1


async def test_a_receiver_that_does_not_answer_in_time_is_retried_later(
    inbox: Inbox, state: AppState, receiver: Receiver
) -> None:
    receiver.answer_with("hang", default=200)
    await create_endpoint(inbox, receiver.url)
    [delivery_id] = await delivered(state, await inbox.thread())
    started = time.monotonic()
    outcome = await send(state, delivery_id)
    assert time.monotonic() - started < 2.5  # the 1 s timeout, not the receiver's 3 s
    assert outcome.status.name == "RETRYING" and outcome.next_attempt_at is not None
    found = await row(state, delivery_id)
    assert "No answer within 1 s" in (found.last_error or "") and found.locked_until is None
    # not due yet: a job now does nothing; once due, the next attempt succeeds
    assert await send(state, delivery_id) is None
    await asyncio.sleep(0.25)
    assert (await send(state, delivery_id)).status.name == "SUCCEEDED"
    assert (await row(state, delivery_id)).attempts == 2


async def test_a_redirect_is_not_followed(inbox: Inbox, state: AppState, receiver: Receiver) -> None:
    receiver.answer_with("redirect")
    await create_endpoint(inbox, receiver.url)
    [delivery_id] = await delivered(state, await inbox.thread())
    assert (await send(state, delivery_id)).status.name == "FAILED"
    assert [r.path for r in receiver.requests] == ["/hooks/banxway"]  # never /elsewhere
    found = await row(state, delivery_id)
    assert found.response_status == 302 and "redirects are not followed" in (found.last_error or "")


async def test_a_private_address_is_refused_at_save_and_at_send_time(
    inbox: Inbox, settings: Settings, state: AppState, receiver: Receiver
) -> None:
    strict = settings.model_copy(update={"allow_private_webhooks": False})
    # at save: an admin of a server that refuses private addresses cannot register one
    strict_state = dataclasses.replace(state, settings=strict)
    async with http_client(strict, strict_state) as http:
        api = Api(http, strict_state)
        admin = Inbox(api, inbox.org, await api.token(inbox.org.admin_email))
        for url in ("https://127.0.0.1:8443/hook", "https://169.254.169.254/latest", "https://[::1]/hook"):
            result = await admin.gql(ENDPOINT_CREATE, {"input": {"url": url, "eventTypes": ["THREAD_CREATED"]}})
            payload = result["data"]["webhookEndpointCreate"]
            assert errors(payload) == [("INVALID", ["url"])], payload
            assert "private or reserved address" in payload["userErrors"][0]["message"]
    # at send time: one saved while they were allowed is not connected to once they are refused (DNS rebinding)
    await create_endpoint(inbox, receiver.url)
    [delivery_id] = await delivered(state, await inbox.thread())
    assert (await send(state, delivery_id, strict)).status.name == "FAILED"
    found = await row(state, delivery_id)
    assert "resolves to 127.0.0.1, a private or reserved address" in (found.last_error or "")
    assert "BANXWAY_ALLOW_PRIVATE_WEBHOOKS" in (found.last_error or "")
    assert receiver.requests == []


async def test_https_is_required_in_production(inbox: Inbox, settings: Settings, state: AppState) -> None:
    production = settings.model_copy(update={"env": "production", "allow_private_webhooks": False})
    production_state = dataclasses.replace(state, settings=production)
    async with http_client(production, production_state) as http:
        api = Api(http, production_state)
        admin = Inbox(api, inbox.org, await api.token(inbox.org.admin_email))
        result = await admin.gql(ENDPOINT_CREATE, {"input": {"url": "http://93.184.216.34/hook", "eventTypes": []}})
        payload = result["data"]["webhookEndpointCreate"]
        assert errors(payload) == [("INVALID", ["url"])] and "not https://" in payload["userErrors"][0]["message"]


async def test_an_endpoint_failing_for_the_whole_window_is_disabled_and_admins_are_told(
    inbox: Inbox, settings: Settings, state: AppState, receiver: Receiver
) -> None:
    # given a window shrunk to 1 s, a receiver that always fails, and a manager besides the admin
    short = settings.model_copy(update={"webhook_retry_window_seconds": 1.0})
    short_state = dataclasses.replace(state, settings=short)
    manager = await _member(inbox, "manager")
    receiver.answer_with(default=500)
    endpoint = (await create_endpoint(inbox, receiver.url))["webhookEndpoint"]
    first, second = (
        await delivered(short_state, await inbox.thread()),
        await delivered(short_state, await inbox.thread("Another")),
    )
    # when the first attempts fail, then, past the window, another one
    assert (await send(short_state, first[0])).status.name == "RETRYING"
    await asyncio.sleep(1.1)
    outcome = await send(short_state, second[0])
    # then that delivery gives up, the endpoint is disabled with its reason, and every open delivery failed
    assert outcome.status.name == "FAILED"
    [listed] = (await inbox.gql(ENDPOINTS))["data"]["webhookEndpoints"]
    assert listed["enabled"] is False and "failed for 1 seconds" in listed["disabledReason"]
    assert listed["pendingDeliveries"] == 0
    assert (await row(state, first[0])).status == "FAILED"
    # and the admin (not the manager) has a notification saying so
    [note] = [e["node"] for e in (await inbox.gql(NOTIFICATIONS))["data"]["notifications"]["edges"]]
    assert note["type"] == "WEBHOOK_DISABLED" and receiver.url in note["summary"] and note["thread"] is None
    assert (await inbox.gql(NOTIFICATIONS, token=manager.token))["data"]["notifications"]["edges"] == []
    # and nothing is sent to it any more: a retry is refused until it is enabled again
    refused = await inbox.gql(RETRY, {"id": to_global_id("WebhookDelivery", first[0])})
    assert errors(refused["data"]["webhookDeliveryRetry"]) == [("INVALID", ["id"])]
    enabled = await inbox.ok(
        ENDPOINT_UPDATE, {"input": {"id": endpoint["id"], "enabled": True}}, "webhookEndpointUpdate"
    )
    assert enabled["webhookEndpoint"]["disabledReason"] is None and enabled["webhookEndpoint"]["failingSince"] is None


async def test_a_delivery_whose_worker_died_is_found_by_the_sweep(
    inbox: Inbox, state: AppState, receiver: Receiver
) -> None:
    await create_endpoint(inbox, receiver.url)
    [delivery_id] = await delivered(state, await inbox.thread())
    # given an attempt claimed by a worker that died (its claim expired)
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(locked_until=datetime.now(UTC) - timedelta(minutes=1), attempts=1)
        )
    # when the scheduler's sweep runs, then it finds it, and it is sent
    due = await webhook_deliveries_due(SystemContext(state), lookahead=timedelta(seconds=90))
    assert [found for found, _ in due] == [delivery_id]
    assert (await send(state, delivery_id)).status.name == "SUCCEEDED"
    assert (await row(state, delivery_id)).attempts == 2


async def test_a_rotated_secret_signs_the_next_attempts(inbox: Inbox, state: AppState, receiver: Receiver) -> None:
    created = await create_endpoint(inbox, receiver.url)
    rotated = await inbox.ok(ROTATE, {"id": created["webhookEndpoint"]["id"]}, "webhookEndpointRotateSecret")
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    [delivery_id] = await delivered(state, await inbox.thread())
    await send(state, delivery_id)
    [request] = receiver.requests
    assert verify(rotated["secret"], request.body, request.headers["banxway-signature"])
    assert not verify(created["secret"], request.body, request.headers["banxway-signature"])


# -- administration: secrets, audit, input, roles, tenancy ----------------------------------------------------


async def test_the_secret_is_shown_once_stored_encrypted_and_each_change_audited(
    inbox: Inbox, state: AppState, receiver: Receiver
) -> None:
    created = await create_endpoint(inbox, receiver.url, ["THREAD_CREATED", "message_added"], description="ERP")
    endpoint, secret = created["webhookEndpoint"], created["secret"]
    assert endpoint["eventTypes"] == ["THREAD_CREATED", "MESSAGE_ADDED"] and endpoint["enabled"] is True
    listed = await inbox.gql(ENDPOINTS)
    assert secret not in str(listed) and listed["data"]["webhookEndpoints"][0]["description"] == "ERP"
    async with system_session(state.sessionmaker) as session:
        stored = await session.scalar(select(WebhookEndpoint.secret))
    assert stored and secret not in stored and state.box.decrypt(stored) == secret
    # and every change is in the audit log, never the secret
    await inbox.ok(ENDPOINT_UPDATE, {"input": {"id": endpoint["id"], "enabled": False}}, "webhookEndpointUpdate")
    await inbox.ok(ROTATE, {"id": endpoint["id"]}, "webhookEndpointRotateSecret")
    await inbox.ok(ENDPOINT_DELETE, {"id": endpoint["id"]}, "webhookEndpointDelete")
    async with system_session(state.sessionmaker) as session:
        audited = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [entry.action for entry in audited] == [
        "webhookEndpointCreate",
        "webhookEndpointUpdate",
        "webhookEndpointRotateSecret",
        "webhookEndpointDelete",
    ]
    assert audited[1].details == {"before": {"enabled": True}, "after": {"enabled": False}}
    assert all(entry.target == endpoint["id"] for entry in audited)
    assert "whsec_" not in str([entry.details for entry in audited])
    assert (await inbox.gql(ENDPOINTS))["data"]["webhookEndpoints"] == []


async def test_bad_input_is_refused_naming_the_field_and_writes_nothing(inbox: Inbox, state: AppState) -> None:
    cases = [
        ({"url": "https://hooks.example.com/x", "eventTypes": ["THREAD_CREATED", "NO_SUCH_TYPE"]}, ["eventTypes", "1"]),
        ({"url": "https://hooks.example.com/x", "eventTypes": ["THREAD_READ"]}, ["eventTypes", "0"]),  # private
        ({"url": "https://hooks.example.com/x", "eventTypes": []}, ["eventTypes"]),
        ({"url": "ftp://hooks.example.com/x", "eventTypes": ["THREAD_CREATED"]}, ["url"]),
        ({"url": "", "eventTypes": ["THREAD_CREATED"]}, ["url"]),
        ({"url": "https://hooks.example.com/" + "x" * 500, "eventTypes": ["THREAD_CREATED"]}, ["url"]),
        ({"url": "https://hooks.example.com/x", "eventTypes": ["THREAD_CREATED"], "description": "d" * 501}, None),
    ]
    for values, field in cases:
        result = await inbox.gql(ENDPOINT_CREATE, {"input": values})
        payload = result["data"]["webhookEndpointCreate"]
        assert payload["webhookEndpoint"] is None and payload["secret"] is None, values
        [(code, found)] = errors(payload)
        assert found == (field or ["description"]) and code in ("INVALID", "TOO_LONG"), (values, payload)
    assert (await inbox.gql(ENDPOINTS))["data"]["webhookEndpoints"] == []
    async with system_session(state.sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0
    # and the types one may ask for are the registry's public ones
    types = (await inbox.gql(EVENT_TYPES))["data"]["webhookEventTypes"]
    assert "THREAD_CREATED" in types and "MESSAGE_ADDED" in types
    assert "THREAD_READ" not in types and "NOTIFICATION_CREATED" not in types


async def test_managers_and_support_may_not_see_or_change_endpoints(inbox: Inbox, receiver: Receiver) -> None:
    endpoint = (await create_endpoint(inbox, receiver.url))["webhookEndpoint"]
    for role in ("manager", "support"):
        member = await _member(inbox, role)
        values = {"url": receiver.url, "eventTypes": ["THREAD_CREATED"]}
        assert forbidden(await inbox.gql(ENDPOINT_CREATE, {"input": values}, member.token))
        assert forbidden(await inbox.gql(ENDPOINTS, token=member.token))
        assert forbidden(await inbox.gql(DELIVERIES, {"endpointId": endpoint["id"]}, member.token))
        assert forbidden(await inbox.gql(ENDPOINT_DELETE, {"id": endpoint["id"]}, member.token))
        replay = {"input": {"endpointId": endpoint["id"]}}
        assert forbidden(await inbox.gql(REPLAY, replay, member.token))
    assert len((await inbox.gql(ENDPOINTS))["data"]["webhookEndpoints"]) == 1


async def test_another_organizations_endpoint_and_deliveries_are_not_found(
    inbox: Inbox, state: AppState, receiver: Receiver
) -> None:
    other = await _foreign(inbox)
    theirs = (await create_endpoint(other, receiver.url))["webhookEndpoint"]
    [their_delivery] = await delivered(state, await other.thread())
    their_delivery_id = to_global_id("WebhookDelivery", their_delivery)
    updated = await inbox.gql(ENDPOINT_UPDATE, {"input": {"id": theirs["id"], "enabled": False}})
    assert errors(updated["data"]["webhookEndpointUpdate"]) == [("NOT_FOUND", ["id"])]
    deleted = await inbox.gql(ENDPOINT_DELETE, {"id": theirs["id"]})
    assert errors(deleted["data"]["webhookEndpointDelete"]) == [("NOT_FOUND", ["id"])]
    rotated = await inbox.gql(ROTATE, {"id": theirs["id"]})
    assert errors(rotated["data"]["webhookEndpointRotateSecret"]) == [("NOT_FOUND", ["id"])]
    replayed = await inbox.gql(REPLAY, {"input": {"endpointId": theirs["id"]}})
    assert errors(replayed["data"]["webhookEndpointReplay"]) == [("NOT_FOUND", ["endpointId"])]
    retried = await inbox.gql(RETRY, {"id": their_delivery_id})
    assert errors(retried["data"]["webhookDeliveryRetry"]) == [("NOT_FOUND", ["id"])]
    assert await deliveries(inbox, theirs["id"]) == []
    assert (await inbox.gql(ENDPOINTS))["data"]["webhookEndpoints"] == []
    # and theirs is untouched
    [still] = (await other.gql(ENDPOINTS))["data"]["webhookEndpoints"]
    assert still["enabled"] is True and len(await deliveries(other, theirs["id"])) == 1


def test_the_object_carries_global_ids() -> None:
    from banxway.resolvers.webhook_endpoints import _object

    thread, user = uuid.uuid4(), uuid.uuid4()
    payload = {"thread_id": str(thread), "mentioned_user_ids": [str(user)], "changed": ["status"], "merge_id": "x"}
    assert _object(payload) == {
        "threadId": base64.b64encode(f"Thread:{thread}".encode()).decode(),
        "mentionedUserIds": [base64.b64encode(f"User:{user}".encode()).decode()],
        "changed": ["status"],
        "mergeId": "x",
    }


async def test_only_subscribed_events_of_enabled_endpoints_are_enqueued(
    inbox: Inbox, org: Org, state: AppState
) -> None:
    from banxway.resolvers.webhook_endpoints import subscribed_types, webhook_event_ids

    await create_endpoint(inbox, "https://hooks.example.com/a", ["THREAD_CREATED"])
    await create_endpoint(inbox, "https://hooks.example.com/b", ["CUSTOMER_CREATED"], enabled=False)
    thread = await inbox.thread()
    await inbox.customer()
    async with system_session(state.sessionmaker) as session:
        rows = list(await session.scalars(select(Event).where(Event.organization_id == org.id).order_by(Event.id)))
        types = await session.scalar(select(subscribed_types(org.id)))
    assert types == ["THREAD_CREATED"]  # the disabled endpoint's CUSTOMER_CREATED is not among them
    wanted = webhook_event_ids(rows, {org.id: set(types)})
    assert wanted == [(await thread_event(state, thread)).id]


def test_the_back_off_doubles_from_the_base_up_to_an_hour(settings: Settings) -> None:
    from banxway.resolvers.webhook_endpoints import backoff

    base = settings.model_copy(update={"webhook_retry_base_seconds": 60.0})
    assert [backoff(base, n).total_seconds() for n in (1, 2, 3, 4, 7)] == [60, 120, 240, 480, 3600]
    assert backoff(base, 30).total_seconds() == 3600


async def test_an_event_not_yet_relayed_gets_no_delivery(inbox: Inbox, org: Org, state: AppState) -> None:
    # given an endpoint, and an event committed but not dispatched (its relay rolled back: the sweeper will retry)
    await create_endpoint(inbox, "https://hooks.example.com/a", ["THREAD_CREATED"])
    async with system_session(state.sessionmaker) as session, session.begin():
        row = Event(organization_id=org.id, type="THREAD_CREATED", payload={"thread_id": str(uuid.uuid4())})
        session.add(row)
    # when its job runs early, then it writes nothing (the job that follows the relay will)
    assert await webhook_deliveries_create(SystemContext(state), row.id) == []
    async with system_session(state.sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
