"""Nothing lost when Redis goes away: a restart, a dropped pub/sub connection; and delivery in `seq` order,
so that a cursor is a safe resume point even when transactions commit out of id order."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import orjson
import pytest
import redis
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from banxway import events
from banxway.app import create_app
from banxway.broadcast import Broadcast
from banxway.db.session import system_session, tenant_session
from banxway.embedded import EmbeddedRedis
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.test_subscriptions import INBOX_EVENTS, THREAD_CREATE, _gql, _next_event, _subscribe
from tests.test_websocket import TRANSPORT_WS, _token


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, str]]:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    yield server, url
    server.stop()


def _thread_uuid(global_id: str) -> uuid.UUID:
    return uuid.UUID(base64.b64decode(global_id).decode().split(":")[1])


def test_subscribers_get_what_was_written_while_redis_was_down(
    settings: Settings, api: Api, org: Org, own_redis: tuple[EmbeddedRedis, str]
) -> None:
    # given a server on a Redis of its own and a subscriber
    server, url = own_redis
    with TestClient(create_app(settings.model_copy(update={"redis_url": url}))) as http:
        token = _token(http, org.admin_email)
        with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
            _subscribe(ws, token, INBOX_EVENTS, {})
            # when Redis stops, a thread is created meanwhile, and Redis comes back
            server.stop()
            created = _gql(http, token, THREAD_CREATE, {"subject": "Written during the outage"})["threadCreate"]
            server.start()
            started = time.monotonic()
            event = _next_event(ws)
            # then the event arrives (from the sweeper or the catch-up), once
            assert event["type"] == "THREAD_CREATED"
            assert event["thread"]["subject"] == "Written during the outage"
            assert time.monotonic() - started < 6
            _gql(http, token, THREAD_CREATE, {"subject": "After the outage"})
            assert _next_event(ws)["thread"]["subject"] == "After the outage"
            assert created["userErrors"] == []


async def _publish_without_redis(settings: Settings, org: Org, thread_id: uuid.UUID) -> None:
    """An event published (seq assigned, dispatched) while this process's listener was not connected."""
    dsn = make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "INSERT INTO events (organization_id, type, thread_id, payload, seq, dispatched_at) "
            "VALUES ($1, $2, $3, $4::jsonb, nextval('events_seq'), now())",
            org.id,
            events.ThreadArchived.type,
            thread_id,
            events.ThreadArchived(thread_id=thread_id).model_dump_json(),
        )
    finally:
        await connection.close()


def test_a_dropped_pubsub_connection_catches_up_from_the_log(settings: Settings, api: Api, org: Org) -> None:
    # given a subscriber
    with TestClient(create_app(settings)) as http:
        token = _token(http, org.admin_email)
        thread = _gql(http, token, THREAD_CREATE, {"subject": "Gap"})["threadCreate"]["thread"]
        with http.websocket_connect("/graphql", subprotocols=[TRANSPORT_WS]) as ws:
            _subscribe(ws, token, INBOX_EVENTS, {})
            # when an event is published while the server's pub/sub connection is away, and it reconnects
            asyncio.run(_publish_without_redis(settings, org, _thread_uuid(thread["id"])))
            killed = redis.Redis.from_url(settings.redis_url).client_kill_filter(_type="pubsub")
            assert killed >= 1
            # then the subscriber gets the event from the log
            event = _next_event(ws)
            assert event["type"] == "THREAD_ARCHIVED"
            assert event["thread"]["subject"] == "Gap"


async def test_delivery_follows_seq_even_when_transactions_commit_out_of_id_order(
    state: AppState, api: Api, org: Org
) -> None:
    # given a listener on the organization's channel
    broadcast = Broadcast(state.settings.redis_url)
    await broadcast.connect()
    received: list[dict] = []
    try:
        async with broadcast.subscribe(events.channel(org.id)) as subscriber:

            async def listen() -> None:
                async for message in subscriber:
                    received.append(orjson.loads(message))

            listener = asyncio.create_task(listen())
            await asyncio.sleep(0.2)
            # when two transactions take event ids in one order and commit in the other
            first = tenant_session(state.sessionmaker, org.id)
            second = tenant_session(state.sessionmaker, org.id)
            async with first, second:
                await first.begin()
                await second.begin()
                events.record(
                    first, events.CustomerCreated(customer_id=uuid.uuid4()), organization_id=org.id, actor_id=None
                )
                await first.flush()
                for _ in range(3):
                    events.record(
                        second, events.CustomerCreated(customer_id=uuid.uuid4()), organization_id=org.id, actor_id=None
                    )
                await second.flush()
                await second.commit()
                await events.relay(state.broadcast, state.sessionmaker, events.take_recorded(second))
                await first.commit()
                await events.relay(state.broadcast, state.sessionmaker, events.take_recorded(first))
            for _ in range(50):
                if len(received) == 4:
                    break
                await asyncio.sleep(0.05)
            listener.cancel()
    finally:
        await broadcast.disconnect()
    # then they arrive in seq order, which is not id order
    assert [r["seq"] for r in received] == sorted(r["seq"] for r in received)
    assert [r["id"] for r in received] != sorted(r["id"] for r in received)
    # and a reader resuming after any delivered event gets exactly the ones delivered after it
    async with system_session(state.sessionmaker) as session, session.begin():
        for index, row in enumerate(received):
            rest = await events.replay(session, org.id, row["seq"])
            assert [r.id for r in rest] == [r["id"] for r in received[index + 1 :]]
