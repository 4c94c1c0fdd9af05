"""Multiplexed fan-out (banxway/fanout.py): subscribers with the same selection share one execution and the
same bytes, while what each may see stays exact — private events, administration events, a slow subscriber,
resume with `after`, a deactivated user, per-viewer fields.

Real WebSocket clients against uvicorn in the test's event loop (tests/live_helpers.py), real PostgreSQL and
Redis; `fanout.hub(state).executions` counts the executions of subscription selections in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import orjson
import pytest
import redis
from websockets.frames import Opcode

from banxway import broadcast as broadcast_module
from banxway import fanout
from banxway.broadcast import Broadcast, Signal
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.live_helpers import (
    LEGACY_WS,
    GraphQLSocket,
    ServerClosed,
    create_thread,
    send_message,
    subscriber_queues,
    uvicorn_server,
    wait_subscribed,
)
from tests.test_events_outbox import EMAIL_ACCOUNT_CREATE, EMAIL_ACCOUNT_UPDATE, USER_CHANGE, email_account_input
from tests.test_live_protocol import send_messages

EVENTS = "subscription { inboxEvents { cursor type nodeId thread { id subject } message { id body } } }"
RESUMABLE = """
subscription($after: String) { inboxEvents(after: $after) { cursor type message { id body } } }
"""
THREAD_EVENTS = """
subscription($threadId: ID!) { threadEvents(threadId: $threadId) { cursor type message { body } } }
"""
UNREAD = "subscription { inboxEvents { type thread { id unreadCount } } }"
NOTE_ADD = """
mutation($threadId: ID!, $body: String!) { noteAdd(input: {threadId: $threadId, body: $body}) { note { id } userErrors { code } } }
"""
MARK_READ = "mutation($threadId: ID!) { threadMarkRead(input: {threadId: $threadId}) { userErrors { code } } }"
ME = "{ me { id } }"


@pytest.fixture
async def server(settings: Settings, state: AppState, api: Api, org: Org) -> AsyncIterator[str]:
    async with uvicorn_server(settings, state) as url:
        yield url


@pytest.fixture
async def token(api: Api, org: Org) -> str:
    return await api.token(org.admin_email)


async def colleague(api: Api, org: Org, email: str, role: str = "support") -> tuple[str, str]:
    """(token, user global id) of a new user of the organization."""
    await api.create_user(org, email, role)
    token = await api.token(email)
    return token, (await api.gql(ME, token=token))["data"]["me"]["id"]


async def gql_ok(api: Api, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    result = await api.gql(query, variables, token=token)
    assert "errors" not in result, result
    payload = next(iter(result["data"].values()))
    assert payload["userErrors"] == [], payload
    return payload


async def raw_frame(socket: GraphQLSocket, within: float = 10.0) -> str:
    """The next frame as the server wrote it (keep-alives skipped)."""
    async with asyncio.timeout(within):
        while True:
            raw = await socket.ws.recv()
            assert isinstance(raw, str), "a text frame"
            if orjson.loads(raw).get("type") not in ("ka", "ping"):
                return raw


def payload_text(frame: str) -> str:
    """The `payload` member of a frame, as written (the frame without its operation head)."""
    start = frame.index('"payload":') + len('"payload":')
    assert frame.endswith("}")
    return frame[start:-1]


async def next_event(socket: GraphQLSocket, within: float = 10.0) -> dict[str, Any]:
    return (await socket.next(within))[1]


async def nothing_more(socket: GraphQLSocket, within: float = 0.7) -> None:
    try:
        message = await socket.receive(within=within)
    except TimeoutError:
        return
    pytest.fail(f"unexpected message: {message}")


# -- one execution, the same bytes -----------------------------------------------------------------


async def test_subscribers_with_the_same_selection_get_the_same_bytes_from_one_execution(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    # given four subscribers with the same selection: three on graphql-transport-ws, one on legacy graphql-ws,
    # two of them another user of the same role (admin)
    second_token, _ = await colleague(api, org, "second@acme.test", "admin")
    hub = fanout.hub(state)
    thread = await create_thread(api, token, "Reefer booking")
    async with AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(GraphQLSocket.open(server)) for _ in range(3)]
        legacy = await stack.enter_async_context(GraphQLSocket.open(server, LEGACY_WS))
        for socket, who in zip([*sockets, legacy], [token, token, second_token, second_token], strict=True):
            await socket.init(who)
            await socket.subscribe("live", EVENTS)
        await wait_subscribed(state, org.id, 4)
        # in one group
        [group] = hub.groups(org.id)
        assert len(group.members) == 4
        executions = hub.executions
        # when three messages are sent
        sent = [await send_message(api, token, thread["id"], f"update {n}") for n in range(3)]
        frames = [[await raw_frame(socket) for _ in sent] for socket in sockets]
        legacy_frames = [await raw_frame(legacy) for _ in sent]
    # then each was executed once for all four subscribers
    assert hub.executions - executions == len(sent)
    # and every graphql-transport-ws subscriber received the same bytes (they use the same operation id)
    assert frames[0] == frames[1] == frames[2]
    # and the legacy one the same payloads, in its own frames
    assert [payload_text(frame) for frame in legacy_frames] == [payload_text(frame) for frame in frames[0]]
    assert [orjson.loads(frame)["type"] for frame in legacy_frames] == ["data"] * 3
    events = [orjson.loads(frame) for frame in frames[0]]
    assert [(e["id"], e["type"]) for e in events] == [("live", "next")] * 3
    assert [e["payload"]["data"]["inboxEvents"]["message"]["id"] for e in events] == sent


async def test_live_frames_go_straight_to_the_socket_uncompressed_between_compressed_messages(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    # given a subscriber whose connection negotiated permessage-deflate, its frames observed as they arrive
    thread = await create_thread(api, token, "Direct frames")
    async with GraphQLSocket.open(server) as socket:
        [deflate] = socket.ws.protocol.extensions  # the client library's PerMessageDeflate, as negotiated
        arrived: list[tuple[bool, dict[str, Any]]] = []
        decode = deflate.decode

        def observed(frame: Any, *, max_size: int | None = None) -> Any:
            decoded = decode(frame, max_size=max_size)
            if frame.opcode is Opcode.TEXT:  # (not the close frame)
                arrived.append((frame.rsv1, orjson.loads(decoded.data)))
            return decoded

        deflate.decode = observed  # type: ignore[method-assign]
        await socket.init(token)
        await socket.subscribe("live", EVENTS)
        await wait_subscribed(state, org.id, 1)
        [group] = fanout.hub(state).groups(org.id)
        assert all(member.sink.write is not None for member in group.members), "no direct writer under uvicorn"
        # when live events and query results (sent the ASGI way, compressed) alternate on the connection
        first = await send_message(api, token, thread["id"], "direct one")
        assert (await next_event(socket))["message"]["id"] == first
        await socket.subscribe("q", ME)
        assert (await socket.next())[1]["id"]
        assert await socket.receive() == {"id": "q", "type": "complete"}
        second = await send_message(api, token, thread["id"], "direct two")
        assert (await next_event(socket))["message"]["id"] == second
    # then every frame decoded, the live ones sent uncompressed and the others compressed
    live = [rsv1 for rsv1, message in arrived if message.get("id") == "live"]
    others = [rsv1 for rsv1, message in arrived if message.get("id") == "q" or message["type"] == "connection_ack"]
    assert live == [False, False]
    assert others and all(others), arrived


async def test_different_selections_and_roles_are_executed_apart(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    # given an admin and a support user with one selection, and the admin with another
    support_token, _ = await colleague(api, org, "support@acme.test")
    hub = fanout.hub(state)
    thread = await create_thread(api, token, "Apart")
    small = "subscription { inboxEvents { type } }"
    async with (
        GraphQLSocket.open(server) as admin,
        GraphQLSocket.open(server) as support,
        GraphQLSocket.open(server) as other,
    ):
        for socket, who, query in ((admin, token, EVENTS), (support, support_token, EVENTS), (other, token, small)):
            await socket.init(who)
            await socket.subscribe("s", query)
        await wait_subscribed(state, org.id, 3)
        assert len(hub.groups(org.id)) == 3
        executions = hub.executions
        # when one message is sent
        message = await send_message(api, token, thread["id"], "apart")
        # then each group executed it once, and each got its own selection
        assert (await next_event(admin))["message"]["id"] == message
        assert (await next_event(support))["message"]["id"] == message
        assert await next_event(other) == {"type": "MESSAGE_ADDED"}
    assert hub.executions - executions == 3


async def test_thread_events_of_several_threads_share_a_group_and_each_gets_only_its_thread(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    first = await create_thread(api, token, "First")
    second = await create_thread(api, token, "Second")
    async with GraphQLSocket.open(server) as one, GraphQLSocket.open(server) as two:
        for socket, thread in ((one, first), (two, second)):
            await socket.init(token)
            await socket.subscribe("t", THREAD_EVENTS, {"threadId": thread["id"]})
        await wait_subscribed(state, org.id, 2)
        assert len(fanout.hub(state).groups(org.id)) == 1  # the thread is a filter, not part of the payload
        await send_message(api, token, second["id"], "to the second")
        await send_message(api, token, first["id"], "to the first")
        assert (await next_event(one))["message"] == {"body": "to the first"}
        assert (await next_event(two))["message"] == {"body": "to the second"}
        await nothing_more(one)
        await nothing_more(two)


# -- per-viewer exactness inside a group -----------------------------------------------------------


async def test_a_private_event_reaches_only_its_user_within_a_shared_group(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    # given Priya and Ravi (same role) with the same selection: one group
    priya_token, _ = await colleague(api, org, "priya@acme.test")
    ravi_token, _ = await colleague(api, org, "ravi@acme.test")
    thread = await create_thread(api, token, "Private")
    async with GraphQLSocket.open(server) as priya, GraphQLSocket.open(server) as ravi:
        for socket, who in ((priya, priya_token), (ravi, ravi_token)):
            await socket.init(who)
            await socket.subscribe("s", EVENTS)
        await wait_subscribed(state, org.id, 2)
        [group] = fanout.hub(state).groups(org.id)
        assert len(group.members) == 2
        # when Priya marks the thread read (THREAD_READ is private to her), and then a message is sent
        await gql_ok(api, priya_token, MARK_READ, {"threadId": thread["id"]})
        message = await send_message(api, token, thread["id"], "for everyone")
        # then Priya gets her read position first, and the message
        read = await next_event(priya)
        assert (read["type"], read["thread"]["id"]) == ("THREAD_READ", thread["id"])
        assert (await next_event(priya))["message"]["id"] == message
        # and Ravi only the message
        received = await next_event(ravi)
        assert (received["type"], received["message"]["id"]) == ("MESSAGE_ADDED", message)
        # when Ravi is mentioned (a notification, private to him) and Priya is not
        await gql_ok(api, token, NOTE_ADD, {"threadId": thread["id"], "body": "@ravi@acme.test VGM?"})
        types = [(await next_event(ravi))["type"] for _ in range(2)]
        assert sorted(types) == ["NOTE_ADDED", "NOTIFICATION_CREATED"]
        assert (await next_event(priya))["type"] == "NOTE_ADDED"
        await nothing_more(priya)


async def test_an_admin_event_reaches_only_admins(server: str, state: AppState, api: Api, org: Org, token: str) -> None:
    # given two admins (one group) and a viewer, subscribed with the same selection
    second_token, _ = await colleague(api, org, "second@acme.test", "admin")
    viewer_token, _ = await colleague(api, org, "viewer@acme.test", "viewer")
    account = (await gql_ok(api, token, EMAIL_ACCOUNT_CREATE, {"input": email_account_input()}))["emailAccount"]["id"]
    async with (
        GraphQLSocket.open(server) as admin,
        GraphQLSocket.open(server) as second,
        GraphQLSocket.open(server) as viewer,
    ):
        for socket, who in ((admin, token), (second, second_token), (viewer, viewer_token)):
            await socket.init(who)
            await socket.subscribe("s", EVENTS)
        await wait_subscribed(state, org.id, 3)
        assert sorted(len(group.members) for group in fanout.hub(state).groups(org.id)) == [1, 2]
        # when an admin renames the email account, then opens a thread
        await gql_ok(api, token, EMAIL_ACCOUNT_UPDATE, {"input": {"id": account, "name": "Ops desk"}})
        thread = await create_thread(api, token, "After the rename")
        # then both admins get the account event, then the thread
        for socket in (admin, second):
            event = await next_event(socket)
            assert (event["type"], event["nodeId"]) == ("EMAIL_ACCOUNT_UPDATED", account)
            assert (await next_event(socket))["thread"]["id"] == thread["id"]
        # and the viewer only the thread
        event = await next_event(viewer)
        assert (event["type"], event["thread"]["id"]) == ("THREAD_CREATED", thread["id"])
        await nothing_more(viewer)


async def test_a_per_viewer_field_is_executed_per_user(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    # given a message by the admin that Priya (an admin too) has read
    priya_token, _ = await colleague(api, org, "priya@acme.test", "admin")
    thread = await create_thread(api, token, "Unread")
    await send_message(api, token, thread["id"], "before")
    await gql_ok(api, priya_token, MARK_READ, {"threadId": thread["id"]})
    # and both asking for the unread count
    async with GraphQLSocket.open(server) as admin, GraphQLSocket.open(server) as priya:
        for socket, who in ((admin, token), (priya, priya_token)):
            await socket.init(who)
            await socket.subscribe("s", UNREAD)
        await wait_subscribed(state, org.id, 2)
        # then they are not grouped together, though of one role (the selection reads a per-viewer field)
        assert len(fanout.hub(state).groups(org.id)) == 2
        # when Priya writes
        executions = fanout.hub(state).executions
        await send_message(api, priya_token, thread["id"], "from priya")
        # then each sees the count as it is for them: the admin has Priya's message unread, Priya nothing
        assert (await next_event(admin))["thread"]["unreadCount"] == 1
        assert (await next_event(priya))["thread"]["unreadCount"] == 0
        assert fanout.hub(state).executions - executions == 2


# -- one subscriber's trouble is its own -----------------------------------------------------------


async def test_a_slow_subscriber_is_ended_with_slow_consumer_while_its_group_keeps_receiving(
    server: str, state: AppState, api: Api, org: Org, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a small per-subscriber buffer, and big messages so that a socket that is not read blocks
    monkeypatch.setattr(broadcast_module, "QUEUE_SIZE", 10)
    thread = await create_thread(api, token, "Firehose")
    big = "x" * 100_000
    async with GraphQLSocket.open(server, max_queue=2, compression=None) as slow, GraphQLSocket.open(server) as reader:
        # two subscribers of one group; the slow one never reads
        for socket in (slow, reader):
            await socket.init(token)
            await socket.subscribe("s", EVENTS)
        await wait_subscribed(state, org.id, 2)
        [group] = fanout.hub(state).groups(org.id)
        slow_member = next(iter(group.members))
        # when messages keep coming, read by the reader as they come
        sent = 0
        while slow_member in subscriber_queues(state, org.id):
            assert sent < 500, "the slow subscriber was never ended"
            message = await send_message(api, token, thread["id"], big)
            assert (await next_event(reader))["message"]["id"] == message
            sent += 1
        # then the reader is still a member, and keeps receiving
        assert subscriber_queues(state, org.id) == set(group.members)
        live = await send_message(api, token, thread["id"], "still here")
        assert (await next_event(reader))["message"]["id"] == live
        # and the slow one, reading at last, finds its subscription ended with SLOW_CONSUMER
        ending: dict[str, Any] = {}
        with contextlib.suppress(ServerClosed):
            for _ in range(sent + 2):
                message = await slow.receive()
                if message["type"] != "next" or "errors" in message["payload"]:
                    ending = message
                    break
        assert ending.get("type") == "next", ending
        assert ending["payload"]["errors"][0]["extensions"]["code"] == "SLOW_CONSUMER"
        assert await slow.receive() == {"id": "s", "type": "complete"}
    await wait_subscribed(state, org.id, 0)


async def test_a_deactivated_users_subscription_ends_and_the_others_go_on(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    priya_token, priya_id = await colleague(api, org, "priya@acme.test")
    ravi_token, _ = await colleague(api, org, "ravi@acme.test")
    thread = await create_thread(api, token, "Leaving")
    async with GraphQLSocket.open(server) as priya, GraphQLSocket.open(server) as ravi:
        for socket, who in ((priya, priya_token), (ravi, ravi_token)):
            await socket.init(who)
            await socket.subscribe("s", EVENTS)
        await wait_subscribed(state, org.id, 2)
        # when Priya is deactivated (USER_UPDATED reaches both), and a message is sent a second later
        await gql_ok(api, token, USER_CHANGE, {"input": {"id": priya_id, "active": False}})
        assert (await next_event(priya))["type"] == "USER_UPDATED"
        assert (await next_event(ravi))["type"] == "USER_UPDATED"
        await asyncio.sleep(1.2)  # users are checked at most once a second
        message = await send_message(api, token, thread["id"], "after she left")
        # then Priya's subscription ends with UNAUTHENTICATED, and Ravi gets the message
        ended = await priya.receive()
        assert ended["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", ended
        assert (await next_event(ravi))["message"]["id"] == message


# -- resume ------------------------------------------------------------------------------------------


async def test_resuming_while_events_keep_coming_loses_and_repeats_nothing(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    # given a cursor, then 600 events missed (two pages of the log: the second is read while events come)
    thread = await create_thread(api, token, "Resume under load")
    async with GraphQLSocket.open(server) as first:
        await first.init(token)
        await first.subscribe("s", RESUMABLE)
        await wait_subscribed(state, org.id, 1)
        await send_message(api, token, thread["id"], "seen")
        cursor = (await next_event(first))["cursor"]
    await wait_subscribed(state, org.id, 0)
    missed = await send_messages(api, token, thread["id"], [f"missed {n}" for n in range(600)])
    # and a live subscriber of the same selection already there
    async with GraphQLSocket.open(server) as live, GraphQLSocket.open(server) as one, GraphQLSocket.open(server) as two:
        await live.init(token)
        await live.subscribe("s", RESUMABLE)
        await wait_subscribed(state, org.id, 1)

        # when two subscribers resume from the cursor while 40 more messages are being sent
        async def keep_sending() -> list[str]:
            return [await send_message(api, token, thread["id"], f"during {n}") for n in range(40)]

        sending = asyncio.create_task(keep_sending())
        for socket in (one, two):
            await socket.init(token)
            await socket.subscribe("s", RESUMABLE, {"after": cursor})
        during = await sending
        # then each receives exactly the missed ones and those sent meanwhile, in order, once
        expected = missed + during
        for socket in (one, two):
            received = [(await next_event(socket))["message"]["id"] for _ in expected]
            assert received == expected
            await nothing_more(socket, 0.5)
        # and the live one exactly those sent meanwhile
        assert [(await next_event(live))["message"]["id"] for _ in during] == during
        await nothing_more(live, 0.3)


async def test_a_resume_cursor_for_another_viewer_skips_what_the_viewer_may_not_see(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    # given a viewer's cursor, then an administration event and a message
    viewer_token, _ = await colleague(api, org, "viewer@acme.test", "viewer")
    thread = await create_thread(api, token, "Replay filter")
    async with GraphQLSocket.open(server) as socket:
        await socket.init(viewer_token)
        await socket.subscribe("s", RESUMABLE)
        await wait_subscribed(state, org.id, 1)
        await send_message(api, token, thread["id"], "seen")
        cursor = (await next_event(socket))["cursor"]
    await gql_ok(api, token, EMAIL_ACCOUNT_CREATE, {"input": email_account_input()})
    message = await send_message(api, token, thread["id"], "missed")
    # when the viewer resumes, then only the message is replayed
    async with GraphQLSocket.open(server) as socket:
        await socket.init(viewer_token)
        await socket.subscribe("s", RESUMABLE, {"after": cursor})
        event = await next_event(socket)
        assert (event["type"], event["message"]["id"]) == ("MESSAGE_ADDED", message)
        await nothing_more(socket)


async def test_the_channel_is_given_up_when_its_last_subscriber_leaves(
    server: str, state: AppState, api: Api, org: Org, token: str
) -> None:
    hub = fanout.hub(state)
    async with GraphQLSocket.open(server) as socket:
        await socket.init(token)
        await socket.subscribe("s", EVENTS)
        await wait_subscribed(state, org.id, 1)
        assert org.id in hub.channels
    await wait_subscribed(state, org.id, 0)
    for _ in range(100):
        if org.id not in hub.channels:
            break
        await asyncio.sleep(0.02)
    assert org.id not in hub.channels


async def test_a_reader_that_may_catch_up_keeps_its_place_when_its_queue_overflows(clean_redis: str) -> None:
    # given a reader of a channel (the fan-out's channel reads this way) whose queue holds 2 messages
    hub = Broadcast(clean_redis)
    await hub.connect()
    try:
        async with hub.subscribe("chan", size=2, resync_on_overflow=True) as reader:
            await asyncio.sleep(0.05)
            # when 5 messages are published while it does not read
            for n in range(5):
                await hub.publish("chan", str(n))
            await asyncio.sleep(0.2)
            # then it is still subscribed, and what it missed is replaced by one RESYNC (read the log)
            assert reader.queue in hub._subscribers["chan"]
            queued = [reader.queue.get_nowait() for _ in range(reader.queue.qsize())]
            assert queued[-1] is Signal.RESYNC
            assert Signal.TOO_SLOW not in queued
            # and it goes on receiving
            await hub.publish("chan", "after")
            assert await asyncio.wait_for(reader.queue.get(), 5) == "after"
    finally:
        await hub.disconnect()


async def test_a_channel_that_missed_events_reads_them_from_the_log_once(
    server: str, state: AppState, api: Api, org: Org, token: str, settings: Settings
) -> None:
    # given two subscribers, one of which has seen an event
    thread = await create_thread(api, token, "Gap")
    async with GraphQLSocket.open(server) as one, GraphQLSocket.open(server) as two:
        for socket in (one, two):
            await socket.init(token)
            await socket.subscribe("s", RESUMABLE)
        await wait_subscribed(state, org.id, 2)
        first = await send_message(api, token, thread["id"], "first")
        assert (await next_event(one))["message"]["id"] == first
        assert (await next_event(two))["message"]["id"] == first
        catch_ups = fanout.hub(state).catch_ups
        # when the process's pub/sub connection drops and comes back while messages are sent
        killed = redis.Redis.from_url(settings.redis_url).client_kill_filter(_type="pubsub")
        assert killed >= 1
        sent = await send_messages(api, token, thread["id"], [f"during {n}" for n in range(30)])
        # then both get every message once, in order (from the log, or live; not both)
        for socket in (one, two):
            assert [(await next_event(socket))["message"]["id"] for _ in sent] == sent
            await nothing_more(socket, 0.5)
    assert fanout.hub(state).catch_ups > catch_ups
