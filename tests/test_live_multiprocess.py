"""Live events across processes: two real `banxway serve` on one database and one Redis, and a third-party
client (the `gql` library) on each WebSocket protocol.

The two processes are shared by the tests of this module, on a database of the module's own (a clone of the
migrated template, as conftest makes them) and the session's Redis.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

from banxway.db.session import create_engine, create_sessionmaker, system_session
from banxway.resolvers.users import organization_create
from banxway.settings import Settings
from tests.conftest import PASSWORD
from tests.live_helpers import (
    INBOX_EVENTS,
    LOGIN,
    MESSAGE_SEND,
    THREAD_CREATE,
    GraphQLSocket,
    ServeProcess,
    http_gql,
    module_settings,
    wait_redis_subscribers,
)


@pytest.fixture(scope="module")
async def live_settings(
    postgres_server_url: str, template_database: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    data_dir = tmp_path_factory.mktemp("live-multiprocess") / "data"
    async with module_settings(postgres_server_url, template_database, redis_url, data_dir) as settings:
        yield settings


@pytest.fixture(scope="module")
async def processes(
    live_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ServeProcess, ServeProcess]]:
    """Process A and process B, both ready; stopped afterwards, and checked gone."""
    directory: Path = tmp_path_factory.mktemp("serve")
    started: list[ServeProcess] = []
    try:
        for name in ("a", "b"):
            started.append(ServeProcess.start(live_settings, directory, name))
        await asyncio.gather(*(process.wait_ready() for process in started))
        yield started[0], started[1]
    finally:
        for process in started:
            process.stop()


@pytest.fixture(scope="module")
async def new_org(live_settings: Settings) -> AsyncIterator[Any]:
    """Creates an organization (a new one per test, so that their channels do not mix); its id and admin email."""
    engine = create_engine(str(live_settings.database_url))
    sessionmaker = create_sessionmaker(engine)

    async def create(slug: str) -> tuple[uuid.UUID, str]:
        email = f"admin@{slug}.test"
        async with system_session(sessionmaker) as session:
            organization, _ = await organization_create(
                session, name=slug.title(), slug=slug, admin_email=email, admin_password=PASSWORD
            )
        return organization.id, email

    yield create
    await engine.dispose()


async def login(process: ServeProcess, email: str) -> str:
    payload = (await http_gql(process, LOGIN, {"email": email, "password": PASSWORD}))["authLogin"]
    assert payload["userErrors"] == [], payload
    return payload["accessToken"]


# -- 6. a mutation on one process reaches a subscriber on the other --------------------------------


async def test_an_event_from_a_mutation_on_process_a_reaches_a_subscriber_on_process_b_within_2_s(
    processes: tuple[ServeProcess, ServeProcess], live_settings: Settings, new_org: Any
) -> None:
    a, b = processes
    organization_id, email = await new_org("across")
    token = await login(a, email)
    # given a subscriber on process B
    async with GraphQLSocket.open(b.ws_url) as socket:
        await socket.init(token)
        await socket.subscribe("inbox", INBOX_EVENTS)
        await wait_redis_subscribers(str(live_settings.redis_url), organization_id, 1)
        # when a thread is created through process A
        started = time.monotonic()
        created = (await http_gql(a, THREAD_CREATE, {"subject": "Across processes"}, token))["threadCreate"]
        # then B's subscriber gets the event within 2 s
        operation, event = await socket.next(within=2)
        elapsed = time.monotonic() - started
    assert operation == "inbox"
    assert event["type"] == "THREAD_CREATED"
    assert event["thread"] == {"id": created["thread"]["id"], "subject": "Across processes"}
    assert elapsed < 2


# -- 7. a third-party client: gql ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "subprotocol",
    [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL, WebsocketsTransport.APOLLO_SUBPROTOCOL],
    ids=["graphql-transport-ws", "graphql-ws"],
)
async def test_gql_client_receives_live_events_and_resumes_with_after(
    processes: tuple[ServeProcess, ServeProcess], live_settings: Settings, new_org: Any, subprotocol: str
) -> None:
    a, b = processes
    organization_id, email = await new_org("gql-legacy" if subprotocol == "graphql-ws" else "gql-transport")
    token = await login(a, email)
    thread = (await http_gql(a, THREAD_CREATE, {"subject": "Via gql"}, token))["threadCreate"]["thread"]

    def transport() -> WebsocketsTransport:
        return WebsocketsTransport(
            url=b.ws_url, subprotocols=[subprotocol], init_payload={"authorization": f"Bearer {token}"}
        )

    # given a gql subscription on process B
    async with Client(transport=transport(), fetch_schema_from_transport=False) as session:
        stream = session.subscribe(GraphQLRequest(INBOX_EVENTS))
        first = asyncio.create_task(anext(stream))
        await wait_redis_subscribers(str(live_settings.redis_url), organization_id, 1)
        # when a message is sent through process A
        live = await http_gql(a, MESSAGE_SEND, {"threadId": thread["id"], "body": "first"}, token)
        # then gql yields the event
        event = (await asyncio.wait_for(first, 5))["inboxEvents"]
        await stream.aclose()
    assert event["type"] == "MESSAGE_ADDED"
    assert event["message"] == {"id": live["messageSend"]["message"]["id"], "body": "first"}
    await wait_redis_subscribers(str(live_settings.redis_url), organization_id, 0)

    # given three messages sent while no one listened
    missed = [
        (await http_gql(a, MESSAGE_SEND, {"threadId": thread["id"], "body": f"missed {n}"}, token))["messageSend"]
        for n in range(3)
    ]
    # when gql subscribes again with `after` = the last cursor it got
    async with Client(transport=transport(), fetch_schema_from_transport=False) as session:
        stream = session.subscribe(GraphQLRequest(INBOX_EVENTS, variable_values={"after": event["cursor"]}))
        replayed = [(await asyncio.wait_for(anext(stream), 5))["inboxEvents"] for _ in missed]
        # and a live one follows
        following = asyncio.create_task(anext(stream))
        after = await http_gql(a, MESSAGE_SEND, {"threadId": thread["id"], "body": "after"}, token)
        next_live = (await asyncio.wait_for(following, 5))["inboxEvents"]
        await stream.aclose()
    # then it gets exactly the missed ones, in order, then the live one
    assert [e["message"]["id"] for e in replayed] == [m["message"]["id"] for m in missed]
    assert [e["message"]["body"] for e in replayed] == ["missed 0", "missed 1", "missed 2"]
    assert next_live["message"] == {"id": after["messageSend"]["message"]["id"], "body": "after"}
