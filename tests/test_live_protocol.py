"""Live subscriptions over real sockets: the legacy handshake, the subscription cap, slow consumers,
keep-alives, and resuming across 500 (and 1,100) missed events.

The app is served by uvicorn inside the test's event loop (`tests/live_helpers.py`), so that every read
has a timeout and the tests can look at the process's broadcast (`state.broadcast._subscribers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from banxway import broadcast as broadcast_module
from banxway.broadcast import Broadcast
from banxway.cli import SERVE_WS_PING_INTERVAL
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import SECRET, Api, Org
from tests.live_helpers import (
    INBOX_EVENTS,
    LEGACY_WS,
    THREAD_CREATE,
    GraphQLSocket,
    create_thread,
    send_message,
    subscriber_queues,
    uvicorn_server,
    wait_subscribed,
)

THREADS_COUNT = "{ threads(first: 1) { totalCount } }"
SMALL_INBOX_EVENTS = "subscription { inboxEvents { cursor type } }"
BIG_INBOX_EVENTS = "subscription { inboxEvents { cursor type message { body } } }"
READER_INBOX_EVENTS = "subscription { inboxEvents { cursor type message { id } } }"


def settings_with(settings: Settings, **overrides: Any) -> Settings:
    """The test's settings with some fields changed, validated as conftest builds them."""
    return Settings(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        data_dir=settings.data_dir,
        secret_key=SECRET,
        env="development",
        **overrides,
    )


@pytest.fixture
async def server(settings: Settings, state: AppState, api: Api, org: Org) -> AsyncIterator[str]:
    # with `banxway serve`'s keep-alive pings (the protocols' own keep-alives are looked at separately)
    async with uvicorn_server(settings, state, ws_ping_interval=SERVE_WS_PING_INTERVAL) as url:
        yield url


@pytest.fixture
async def token(api: Api, org: Org) -> str:
    return await api.token(org.admin_email)


async def send_messages(api: Api, token: str, thread_id: str, bodies: list[str], per_request: int = 25) -> list[str]:
    """One messageSend mutation per body, `per_request` of them (aliased) in each request; the message ids."""
    ids: list[str] = []
    for start in range(0, len(bodies), per_request):
        chunk = bodies[start : start + per_request]
        variables = ", ".join(f"$b{n}: String!" for n in range(len(chunk)))
        fields = " ".join(
            f"m{n}: messageSend(input: {{threadId: $t, channel: INTERNAL, body: $b{n}}}) "
            "{ message { id } userErrors { code } }"
            for n in range(len(chunk))
        )
        result = await api.gql(
            f"mutation($t: ID!, {variables}) {{ {fields} }}",
            {"t": thread_id, **{f"b{n}": body for n, body in enumerate(chunk)}},
            token=token,
        )
        assert "errors" not in result, result
        for n in range(len(chunk)):
            payload = result["data"][f"m{n}"]
            assert payload["userErrors"] == [], payload
            ids.append(payload["message"]["id"])
    return ids


# -- 1. the legacy graphql-ws protocol requires its handshake ----------------------------------


@pytest.mark.parametrize(
    ("query", "variables"),
    [(THREAD_CREATE, {"subject": "Sneaked in"}), (INBOX_EVENTS, {})],
    ids=["mutation", "subscription"],
)
async def test_legacy_ws_start_before_connection_init_is_closed_with_4401_without_running(
    server: str, api: Api, token: str, query: str, variables: dict[str, Any]
) -> None:
    async with GraphQLSocket.open(server, LEGACY_WS) as socket:
        # when an operation is started before connection_init
        await socket.send({"id": "1", "type": "start", "payload": {"query": query, "variables": variables}})
        # then the socket is closed with 4401 and nothing was answered (the operation never ran:
        # an unauthenticated run would have sent `data` with UNAUTHENTICATED or an `error`)
        code, received = await socket.close_code()
    assert code == 4401
    assert received == []
    # and nothing was written
    assert (await api.gql(THREADS_COUNT, token=token))["data"]["threads"]["totalCount"] == 0


async def test_legacy_ws_subscription_after_init_and_ack_delivers_an_event(
    server: str, api: Api, org: Org, state: AppState, token: str
) -> None:
    async with GraphQLSocket.open(server, LEGACY_WS) as socket:
        # given a legacy subscription after connection_init and its ack
        assert await socket.init(token) == {"type": "connection_ack"}
        await socket.subscribe("inbox", INBOX_EVENTS)
        await wait_subscribed(state, org.id, 1)
        # when a thread is created
        thread = await create_thread(api, token, "Legacy reefer")
        # then the event arrives as a `data` message of that operation
        operation, event = await socket.next()
        assert operation == "inbox"
        assert event["type"] == "THREAD_CREATED"
        assert event["thread"] == {"id": thread["id"], "subject": "Legacy reefer"}
        assert event["cursor"]
        # and `stop` completes it
        await socket.stop("inbox")
        assert await socket.receive() == {"id": "inbox", "type": "complete"}
    await wait_subscribed(state, org.id, 0)


# -- 2. the per-connection subscription cap ---------------------------------------------------


async def test_transport_ws_subscription_over_the_cap_gets_an_error_and_the_others_keep_working(
    settings: Settings, state: AppState, api: Api, org: Org, token: str
) -> None:
    # given a server that allows two operations per connection
    async with (
        uvicorn_server(settings_with(settings, ws_max_subscriptions=2), state) as url,
        GraphQLSocket.open(url) as socket,
    ):
        await socket.init(token)
        await socket.subscribe("a", SMALL_INBOX_EVENTS)
        await socket.subscribe("b", SMALL_INBOX_EVENTS)
        await wait_subscribed(state, org.id, 2)
        # when a third is subscribed
        await socket.subscribe("c", SMALL_INBOX_EVENTS)
        # then it gets an error naming the limit, and is not subscribed
        refused = await socket.receive()
        assert refused["type"] == "error"
        assert refused["id"] == "c"
        assert [error["message"] for error in refused["payload"]] == ["Subscription limit reached"]
        await wait_subscribed(state, org.id, 2)
        # and the first two still receive events, the socket still open
        await create_thread(api, token, "Capped")
        received = [await socket.next(), await socket.next()]
        assert sorted(operation for operation, _ in received) == ["a", "b"]
        assert {event["type"] for _, event in received} == {"THREAD_CREATED"}
        # when one completes, its place is free again
        await socket.stop("a")
        await wait_subscribed(state, org.id, 1)
        await socket.subscribe("d", SMALL_INBOX_EVENTS)
        await wait_subscribed(state, org.id, 2)
        await create_thread(api, token, "Freed")
        received = [await socket.next(), await socket.next()]
        assert sorted(operation for operation, _ in received) == ["b", "d"]


async def test_legacy_ws_subscription_over_the_cap_gets_an_error_and_the_others_keep_working(
    settings: Settings, state: AppState, api: Api, org: Org, token: str
) -> None:
    async with (
        uvicorn_server(settings_with(settings, ws_max_subscriptions=1), state) as url,
        GraphQLSocket.open(url, LEGACY_WS) as socket,
    ):
        # given the one allowed operation
        await socket.init(token)
        await socket.subscribe("a", SMALL_INBOX_EVENTS)
        await wait_subscribed(state, org.id, 1)
        # when another is started
        await socket.subscribe("b", SMALL_INBOX_EVENTS)
        # then
        assert await socket.receive() == {
            "type": "error",
            "id": "b",
            "payload": {"message": "Subscription limit reached"},
        }
        await create_thread(api, token, "Capped legacy")
        operation, event = await socket.next()
        assert (operation, event["type"]) == ("a", "THREAD_CREATED")


async def test_several_subscriptions_on_one_connection_each_get_every_event_and_give_back_their_connections(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    # given five subscriptions on one connection (well under the cap)
    thread = await create_thread(api, token, "Five tabs")
    received: dict[str, list[str]] = {f"s{n}": [] for n in range(5)}
    problems: list[dict[str, Any]] = []
    async with GraphQLSocket.open(server) as socket:
        await socket.init(token)
        for operation in received:
            await socket.subscribe(operation, INBOX_EVENTS)
        await wait_subscribed(state, org.id, len(received))
        # when 20 messages are sent
        sent = await send_messages(api, token, thread["id"], [f"update {n}" for n in range(20)])
        # then each subscription gets all 20, in order, and no errors
        with contextlib.suppress(TimeoutError):
            while sum(map(len, received.values())) + len(problems) < len(received) * len(sent):
                message = await socket.receive(within=5)
                if message["type"] == "next" and "errors" not in message["payload"]:
                    received[message["id"]].append(message["payload"]["data"]["inboxEvents"]["message"]["id"])
                else:
                    problems.append(message)
    assert problems == []
    assert received == {operation: sent for operation in received}
    # and once the connection is closed, every database connection is back in the pool
    await wait_subscribed(state, org.id, 0)
    deadline = time.monotonic() + 5
    while state.engine.pool.checkedout() > 0:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"database connections still checked out: {state.engine.pool.status()}"
        await asyncio.sleep(0.05)


# -- 3. a slow consumer is dropped, the others go on ----------------------------------------------


async def test_a_subscriber_that_stops_reading_is_dropped_while_a_reading_one_keeps_receiving(
    server: str, state: AppState, api: Api, org: Org, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a small per-subscriber queue, and messages of 100,000 characters for the events to show
    monkeypatch.setattr(broadcast_module, "QUEUE_SIZE", 20)
    thread = await create_thread(api, token, "Firehose")
    big = "x" * 100_000
    # a slow subscriber: it asks for the big bodies and never reads (its client buffers at most 4 frames,
    # uncompressed, then TCP pushes back, and the server's sends to it block)
    async with GraphQLSocket.open(server, max_queue=4, compression=None) as slow, GraphQLSocket.open(server) as reader:
        await slow.init(token)
        await slow.subscribe("slow", BIG_INBOX_EVENTS)
        await wait_subscribed(state, org.id, 1)
        (slow_queue,) = subscriber_queues(state, org.id)
        # and a reading one on the same organization
        await reader.init(token)
        await reader.subscribe("reader", READER_INBOX_EVENTS)
        await wait_subscribed(state, org.id, 2)
        (reader_queue,) = subscriber_queues(state, org.id) - {slow_queue}
        # when messages are sent, a few at a time, which the reader reads as they come
        sent = 0
        while slow_queue in subscriber_queues(state, org.id):
            assert sent < 1000, "the slow subscriber was never dropped"
            batch = [await send_message(api, token, thread["id"], big) for _ in range(5)]
            assert [(await reader.next())[1]["message"]["id"] for _ in batch] == batch
            sent += len(batch)
        # then the server no longer holds the slow subscriber's queue, and still holds the reader's
        assert subscriber_queues(state, org.id) == {reader_queue}
        # and the reader keeps receiving
        live = await send_message(api, token, thread["id"], "still here")
        assert (await reader.next())[1]["message"]["id"] == live
        # and the slow subscriber, when it reads again, finds its subscription ended with SLOW_CONSUMER after no
        # more than what was sent to it (issue 16, item 14: not a close by the keep-alive), on a socket still open
        ending: list[dict[str, Any]] = []
        for _ in range(sent + 2):
            message = await slow.receive()
            if message["type"] == "next" and "errors" not in message["payload"]:
                continue
            ending.append(message)
            if message["type"] in ("complete", "error"):
                break
        assert ending, "the slow subscription never ended"
        errors = ending[0]["payload"]["errors"]
        assert [error["extensions"]["code"] for error in errors] == ["SLOW_CONSUMER"], ending
        assert ending[1:] == [{"id": "slow", "type": "complete"}], ending
        await slow.subscribe("me", "{ me { email } }")
        assert (await slow.next())[1] == {"email": org.admin_email}
    await wait_subscribed(state, org.id, 0)


async def test_a_dropped_subscriber_can_leave_after_the_other_subscribers_of_its_channel(
    clean_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given two subscribers of a channel, one of which stops reading and overflows its queue
    monkeypatch.setattr(broadcast_module, "QUEUE_SIZE", 2)
    hub = Broadcast(clean_redis)
    await hub.connect()
    try:
        slow_subscription = hub.subscribe("chan")
        slow = await slow_subscription.__aenter__()
        async with hub.subscribe("chan") as other:
            await asyncio.sleep(0.05)
            reader = aiter(other)
            for n in range(4):
                await hub.publish("chan", str(n))
                assert await asyncio.wait_for(anext(reader), 5) == str(n)
            assert slow.queue not in hub._subscribers["chan"]
        # when the other subscriber leaves first, and then the dropped one
        # then the dropped one leaves without an error, and nothing is left of the channel
        await slow_subscription.__aexit__(None, None, None)
        assert hub._subscribers == {}
    finally:
        await hub.disconnect()


# -- 4. ping/pong and keep-alives -----------------------------------------------------------------

# The issue asks for keep-alive pings so that idle connections behind proxies survive, at an interval
# that can be configured. The setting is looked up by name; the default interval when there is none is
# the one app.py gives the legacy protocol (keep_alive_interval=15).
KEEP_ALIVE_SETTING = next(
    (
        name
        for name, field in Settings.model_fields.items()
        if any(word in (field.alias or name).upper() for word in ("KEEPALIVE", "KEEP_ALIVE", "PING"))
    ),
    None,
)
DEFAULT_KEEP_ALIVE_SECONDS = 15.0


def keep_alive_settings(settings: Settings) -> tuple[Settings, float]:
    """Settings with a one-second keep-alive when that is configurable; else the defaults and their interval."""
    if KEEP_ALIVE_SETTING is None:
        return settings, DEFAULT_KEEP_ALIVE_SECONDS
    return settings_with(settings, **{KEEP_ALIVE_SETTING: 1}), 1.0


@pytest.mark.parametrize("subscribed", [False, True], ids=["idle", "while-subscribed"])
async def test_transport_ws_ping_gets_pong(
    server: str, state: AppState, org: Org, token: str, subscribed: bool
) -> None:
    async with GraphQLSocket.open(server) as socket:
        await socket.init(token)
        if subscribed:
            await socket.subscribe("s", SMALL_INBOX_EVENTS)
            await wait_subscribed(state, org.id, 1)
        # when
        await socket.send({"type": "ping", "payload": {"sent": 1}})
        # then
        pong = await socket.receive()
        assert pong["type"] == "pong"


def test_the_keep_alive_interval_is_configurable() -> None:
    # then a setting (BANXWAY_WS_KEEPALIVE or the like) sets the interval of the server's keep-alives
    assert KEEP_ALIVE_SETTING is not None, (
        "no keep-alive/ping setting in banxway/settings.py; app.py hard-codes keep_alive_interval=15 "
        "and cli.py ws_ping_interval=20"
    )


async def test_transport_ws_idle_connection_gets_pings_from_the_server(
    settings: Settings, state: AppState, api: Api, org: Org, token: str
) -> None:
    # given an acknowledged connection that then sends nothing
    configured, interval = keep_alive_settings(settings)
    async with uvicorn_server(configured, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(token)
        # when it stays idle for longer than the keep-alive interval
        # then the server sends a graphql-transport-ws `ping`
        try:
            message = await socket.receive(within=interval + 2, keep_alive=True)
        except TimeoutError:
            pytest.fail(f"no `ping` from the server on an idle graphql-transport-ws connection within {interval + 2} s")
        assert message["type"] == "ping"


async def test_legacy_ws_idle_connection_gets_keep_alives(
    settings: Settings, state: AppState, api: Api, org: Org, token: str
) -> None:
    configured, interval = keep_alive_settings(settings)
    async with uvicorn_server(configured, state) as url, GraphQLSocket.open(url, LEGACY_WS) as socket:
        await socket.init(token)
        # when the connection stays idle, then `ka` messages come, one per interval
        first = await socket.receive(within=interval + 2, keep_alive=True)
        second = await socket.receive(within=interval + 2, keep_alive=True)
        assert first == second == {"type": "ka"}


# -- 5. resuming after 500 missed events -----------------------------------------------------------


async def test_resuming_after_500_missed_events_replays_them_all_in_order_then_live_ones(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    # given a subscriber that received some events and went away
    thread = await create_thread(api, token, "Long weekend")
    async with GraphQLSocket.open(server) as socket:
        await socket.init(token)
        await socket.subscribe("s", INBOX_EVENTS)
        await wait_subscribed(state, org.id, 1)
        seen_ids = [await send_message(api, token, thread["id"], f"seen {n}") for n in range(3)]
        seen = [(await socket.next())[1] for _ in seen_ids]
    assert [event["message"]["id"] for event in seen] == seen_ids
    cursor = seen[-1]["cursor"]
    await wait_subscribed(state, org.id, 0)
    # while it was away, 500 events (500 messageSend mutations, 25 to a request)
    missed_ids = await send_messages(api, token, thread["id"], [f"missed {n}" for n in range(500)])
    # when it resumes after its last cursor
    async with GraphQLSocket.open(server) as socket:
        await socket.init(token)
        await socket.subscribe("s", INBOX_EVENTS, {"after": cursor})
        replayed = [(await socket.next())[1] for _ in missed_ids]
        # and a live event follows
        live_id = await send_message(api, token, thread["id"], "live")
        _, live = await socket.next()
    # then exactly the missed events arrived, in order: none lost, none repeated
    assert [event["type"] for event in replayed] == ["MESSAGE_ADDED"] * 500
    assert [event["message"]["id"] for event in replayed] == missed_ids
    assert [event["message"]["body"] for event in replayed] == [f"missed {n}" for n in range(500)]
    # and the first event after them is the live one (a repeat would have come before it)
    assert live["message"] == {"id": live_id, "body": "live"}
    cursors = [event["cursor"] for event in [*seen, *replayed, live]]
    assert len(set(cursors)) == len(cursors)


async def test_resuming_after_1100_missed_events_pages_through_all_of_them(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    # given a subscriber's last cursor
    thread = await create_thread(api, token, "Very long weekend")
    async with GraphQLSocket.open(server) as socket:
        await socket.init(token)
        await socket.subscribe("s", INBOX_EVENTS)
        await wait_subscribed(state, org.id, 1)
        last_seen = await send_message(api, token, thread["id"], "last seen")
        _, event = await socket.next()
    assert event["message"]["id"] == last_seen
    await wait_subscribed(state, org.id, 0)
    # and then more events than one read of the event log returns
    bodies = [f"missed {n}" for n in range(1100)]
    missed = await send_messages(api, token, thread["id"], bodies)
    # when it resumes after its cursor
    async with GraphQLSocket.open(server) as socket:
        await socket.init(token)
        await socket.subscribe("s", INBOX_EVENTS, {"after": event["cursor"]})
        received: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            for _ in missed:
                received.append((await socket.next(within=5))[1])
    # then every missed event arrives, in order
    assert len(received) == len(missed), f"{len(received)} of {len(missed)} missed events were replayed"
    assert [event["message"]["id"] for event in received] == missed
    assert [event["message"]["body"] for event in received] == bodies
