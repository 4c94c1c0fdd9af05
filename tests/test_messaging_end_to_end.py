"""WhatsApp end to end, as the issue's "done when" describes it: an inbound webhook opens a thread, a reply sent
with messageSend goes out through a real Dramatiq worker to the provider, and the provider's delivery callback
turns it DELIVERED live in a GraphQL subscription. And a `banxway worker` killed mid-send never sends twice."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta

import httpx
from dramatiq import Worker
from sqlalchemy import select, update

from banxway.db.models import Message
from banxway.db.session import system_session
from banxway.enums import MessageStatus
from banxway.resolvers.delivery import deliver
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Org
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import GraphQLSocket, local_uuid, serve_env, uvicorn_server, wait_subscribed, worker_process
from tests.messaging_helpers import CUSTOMER_PHONE, WHATSAPP_NUMBER, configure_exotel, post_json, send, url_of
from tests.standins.providers import StandIn, exotel_whatsapp_dlr, exotel_whatsapp_incoming

EVENTS = """
subscription { inboxEvents { type thread { id subject } message { id status direction body } } }
"""


async def _next_of(socket: GraphQLSocket, wanted: str, within: float = 10.0) -> dict:
    deadline = time.monotonic() + within
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {wanted} event within {within} s"
        _, event = await socket.next(within=remaining)
        if event["type"] == wanted:
            return event


async def test_inbound_reply_and_delivery_callback_live(
    inbox: Inbox, org: Org, provider: StandIn, state: AppState, settings: Settings, worker: Worker
) -> None:
    configured = await configure_exotel(inbox, provider)
    async with uvicorn_server(settings, state) as ws_url, GraphQLSocket.open(ws_url) as socket:
        base = ws_url.replace("ws://", "http://").removesuffix("/graphql")
        hook = base + "/webhooks/" + url_of(configured, "/whatsapp").split("/webhooks/", 1)[1]
        await socket.init(inbox.token)
        await socket.subscribe("events", EVENTS)
        await wait_subscribed(state, org.id, 1)
        async with httpx.AsyncClient() as http:
            # a customer writes on WhatsApp: a thread opens, live
            incoming = exotel_whatsapp_incoming(
                sid="wamid.in-1", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="Has MSCU1234565 sailed?"
            )
            started = time.monotonic()
            response = await post_json(http, hook, incoming)
            assert response.status_code == 200 and time.monotonic() - started < 2.0
            created = await _next_of(socket, "THREAD_CREATED")
            added = await _next_of(socket, "MESSAGE_ADDED")
            assert added["message"]["body"] == "Has MSCU1234565 sailed?"
            thread_id = created["thread"]["id"]
            # the agent replies; the worker sends it to the provider
            reply = (await send(inbox, thread_id, "WHATSAPP", "Yes, it sailed on 21 Nov."))["message"]
            [request] = await provider.wait_for("exotel_whatsapp", 1)
            assert request.json["whatsapp"]["messages"][0]["content"]["text"]["body"] == "Yes, it sailed on 21 Nov."
            deadline = time.monotonic() + 10
            while True:
                async with system_session(state.sessionmaker) as session:
                    row = await session.scalar(select(Message).where(Message.id == local_uuid(reply["id"])))
                if row is not None and row.status == MessageStatus.SENT:
                    break
                assert time.monotonic() < deadline, row.status if row else None
                await asyncio.sleep(0.05)
            # the provider's delivery receipt turns it DELIVERED in the subscription
            dlr = exotel_whatsapp_dlr(sid=row.provider_message_id, exo_status_code=30002, to=CUSTOMER_PHONE)
            assert (await post_json(http, hook, dlr)).status_code == 200
            while True:
                changed = await _next_of(socket, "MESSAGE_STATUS_CHANGED")
                if changed["message"]["id"] == reply["id"] and changed["message"]["status"] == "DELIVERED":
                    break


async def test_a_worker_killed_while_sending_never_sends_twice(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings, tmp_path
) -> None:
    configured = await configure_exotel(inbox, provider)
    incoming = exotel_whatsapp_incoming(sid="wamid.in-2", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="Rates?")
    assert (await post_json(inbox.api.http, url_of(configured, "/whatsapp"), incoming)).status_code == 200
    [edge] = (await inbox.gql("{ threads(first: 1) { edges { node { id } } } }"))["data"]["threads"]["edges"]
    provider.delay_next("exotel_whatsapp", 3.0)
    log = (tmp_path / "worker.log").open("wb")
    worker = worker_process(serve_env(settings, tmp_path / "worker-data"), log)
    try:
        reply = (await send(inbox, edge["node"]["id"], "WHATSAPP", "USD 2,150 per 40HC."))["message"]
        await provider.wait_for("exotel_whatsapp", 1, timeout=30)  # the request is in flight
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
        log.close()
    message_id = local_uuid(reply["id"])
    await asyncio.sleep(3.5)
    # the redelivered job sends nothing while the outcome is unknown, and fails the message once it is stuck
    assert await deliver(system_context(state, settings), message_id) == (MessageStatus.SENDING)
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(updated_at=Message.updated_at - timedelta(minutes=20))
        )
    assert await deliver(system_context(state, settings), message_id) == (MessageStatus.FAILED)
    assert len(provider.sent("exotel_whatsapp")) == 1
