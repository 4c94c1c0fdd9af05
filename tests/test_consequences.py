"""Side effects start from committed events (`banxway.tasks.consequences`): an outbound message is enqueued for
delivery when its MESSAGE_ADDED is relayed, inbound media and call recordings likewise; and when enqueueing fails
(the broker unreachable) the event stays undispatched, so the sweeper relays it again and the job follows."""

from __future__ import annotations

import uuid

import orjson
from sqlalchemy import select

from banxway import events
from banxway.db.models import Event
from banxway.db.session import system_session
from banxway.schema.ids import local_id
from banxway.state import AppState
from banxway.tasks import actors, consequences
from banxway.tasks.actors import setup_broker
from tests.inbox_helpers import Inbox, configure_channels


def _row(type_name: str, **payload: object) -> Event:
    return Event(type=type_name, payload={"thread_id": str(uuid.uuid4()), "message_id": str(uuid.uuid4()), **payload})


def test_the_rules_pick_the_work_each_event_calls_for() -> None:
    # given events of every kind
    queued = _row("MESSAGE_ADDED", channel="EMAIL", direction="OUTBOUND", status="QUEUED")
    internal = _row("MESSAGE_ADDED", channel="INTERNAL", direction="OUTBOUND", status="SENT")
    with_media = _row("MESSAGE_ADDED", channel="WHATSAPP", direction="INBOUND", status="RECEIVED", media=2)
    plain_inbound = _row("MESSAGE_ADDED", channel="SMS", direction="INBOUND", status="RECEIVED")
    recorded = _row("MESSAGE_UPDATED", changed=["call", "recording"])
    call_only = _row("MESSAGE_UPDATED", changed=["call"])
    released = _row("MESSAGE_STATUS_CHANGED", status="QUEUED", released=True)  # a scheduled send's time came
    retried = _row("MESSAGE_STATUS_CHANGED", status="QUEUED", released=False)  # Dramatiq retries that one itself
    old = _row("MESSAGE_ADDED")  # an event of the first releases, without the facts
    compose = _row("COMPOSE_STARTED", session_id=str(uuid.uuid4()))
    # when the consequences are worked out
    rows = [queued, internal, with_media, plain_inbound, recorded, call_only, released, retried, old, compose]
    jobs = consequences.jobs(rows)
    # then exactly the delivery, the download, the analyses of inbound messages, the transcription and the drafts
    assert jobs == [
        (actors.deliver_message, queued.payload["message_id"]),
        (actors.fetch_message_media, with_media.payload["message_id"]),
        (actors.analyse_message, with_media.payload["message_id"]),
        (actors.analyse_message, plain_inbound.payload["message_id"]),
        (actors.transcribe_call, recorded.payload["message_id"]),
        (actors.deliver_message, released.payload["message_id"]),
        (actors.stream_compose, compose.payload["session_id"]),
    ]


def test_a_webhook_retry_or_replay_sends_the_endpoints_due_deliveries() -> None:
    endpoint = str(uuid.uuid4())
    queued = Event(type="WEBHOOK_DELIVERIES_QUEUED", payload={"webhook_endpoint_id": endpoint, "count": 2})
    assert consequences.jobs([queued]) == [(actors.send_webhook_deliveries, endpoint)]


def test_an_invitation_is_mailed_and_a_notification_only_when_its_user_asked_for_email() -> None:
    invitation, mailed, in_app = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    rows = [
        Event(type="INVITATION_CREATED", payload={"invitation_id": invitation}),
        Event(type="NOTIFICATION_CREATED", payload={"user_id": "u", "notification_id": mailed, "email": True}),
        Event(type="NOTIFICATION_CREATED", payload={"user_id": "u", "notification_id": in_app, "email": False}),
        Event(type="NOTIFICATION_CREATED", payload={"user_id": "u", "notification_id": in_app}),  # older events
    ]
    assert consequences.jobs(rows) == [
        (actors.send_invitation, invitation),
        (actors.send_notification_email, mailed),
    ]


async def _queued_ids(state: AppState, queue: str) -> set[str]:
    """The message ids of the jobs waiting in a Dramatiq queue of the test's Redis."""
    jobs = await state.redis.hvals(f"banxway:{queue}.msgs")
    return {orjson.loads(job)["args"][0] for job in jobs}


async def _message_event(state: AppState, message_id: str) -> Event:
    async with system_session(state.sessionmaker) as session:
        rows = list(await session.scalars(select(Event).where(Event.type == "MESSAGE_ADDED")))
    [row] = [row for row in rows if row.payload["message_id"] == message_id]
    return row


async def test_a_queued_message_is_enqueued_when_its_event_is_relayed(inbox: Inbox, state: AppState) -> None:
    # given a thread of an organization with an email account
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    # when an email and an internal note-like message are sent
    email = await inbox.send(thread["id"], "Our quote", channel="EMAIL", to=["buyer@example.com"])
    internal = await inbox.send(thread["id"], "FYI", channel="INTERNAL")
    # then the email waits in the delivery queue, and the internal message does not
    waiting = await _queued_ids(state, "delivery")
    assert str(_uuid(email["id"])) in waiting
    assert str(_uuid(internal["id"])) not in waiting


async def test_an_enqueue_that_failed_is_made_by_the_sweeper(inbox: Inbox, state: AppState) -> None:
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    # given a broker that cannot be reached when the message is sent
    setup_broker("redis://127.0.0.1:9/0")
    try:
        email = await inbox.send(thread["id"], "Our quote", channel="EMAIL", to=["buyer@example.com"])
    finally:
        setup_broker(state.settings.redis_url or "")
    message_id = str(_uuid(email["id"]))
    # then nothing was enqueued, and the event was left for the sweeper
    assert message_id not in await _queued_ids(state, "delivery")
    assert (await _message_event(state, message_id)).dispatched_at is None
    # when the sweeper relays what is undispatched
    await events.sweep(state.broadcast, state.sessionmaker, older_than=0, consequences=state.consequences)
    # then the job is enqueued and the event dispatched
    assert message_id in await _queued_ids(state, "delivery")
    assert (await _message_event(state, message_id)).dispatched_at is not None


def _uuid(global_id: str) -> uuid.UUID:
    found = local_id(global_id, "Message")
    assert found is not None
    return found


WEBHOOK_ENDPOINT_CREATE = """
mutation($input: WebhookEndpointCreateInput!) {
  webhookEndpointCreate(input: $input) { webhookEndpoint { id } userErrors { field code message } }
}
"""


async def test_an_event_an_enabled_webhook_endpoint_subscribes_to_is_enqueued_for_delivery(
    inbox: Inbox, state: AppState
) -> None:
    # given an endpoint for new threads
    values = {"url": "https://hooks.example.com/banxway", "eventTypes": ["THREAD_CREATED"]}
    await inbox.ok(WEBHOOK_ENDPOINT_CREATE, {"input": values}, "webhookEndpointCreate")
    # when a thread and a customer are created
    thread = await inbox.thread()
    await inbox.customer()
    # then the thread's event waits in the webhooks queue, and the customer's does not
    async with system_session(state.sessionmaker) as session:
        rows = {row.type: row.id for row in await session.scalars(select(Event))}
    waiting = await _queued_ids(state, "webhooks")
    assert waiting == {rows["THREAD_CREATED"]}, (waiting, rows, thread)


AI_AGENT_CREATE = """
mutation($input: AiAgentCreateInput!) { aiAgentCreate(input: $input) { aiAgent { id } userErrors { field code } } }
"""


async def test_messages_are_enqueued_for_the_ai_agent_only_where_an_organization_has_one(
    inbox: Inbox, state: AppState
) -> None:
    # given an organization without an AI agent
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    # when an email goes out, then no job waits for an agent (no work per message where nothing answers)
    before = await inbox.send(thread["id"], "Our quote", channel="EMAIL", to=["buyer@example.com"])
    assert str(_uuid(before["id"])) not in await _queued_ids(state, "ai_agent")
    # when it gets an agent on email and sends again (a person's reply suspends the agent on the thread)
    await inbox.ok(AI_AGENT_CREATE, {"input": {"name": "Ava", "channels": ["EMAIL"]}}, "aiAgentCreate")
    after = await inbox.send(thread["id"], "Updated quote", channel="EMAIL", to=["buyer@example.com"])
    # then that message waits for the agent
    assert str(_uuid(after["id"])) in await _queued_ids(state, "ai_agent")
