"""WhatsApp end to end against the stand-in: configure, inbound webhook opens a thread, reply, delivery callback."""

from __future__ import annotations

from sqlalchemy import select

from banxway.db.models import Message
from banxway.db.session import system_session
from banxway.settings import Settings
from banxway.state import AppState
from tests.inbox_helpers import Inbox
from tests.live_helpers import local_uuid
from tests.messaging_helpers import (
    CUSTOMER_PHONE,
    WHATSAPP_NUMBER,
    configure_exotel,
    deliver_now,
    message,
    post_json,
    send,
    url_of,
)
from tests.standins.providers import StandIn, exotel_whatsapp_dlr, exotel_whatsapp_incoming


async def test_whatsapp_round_trip(inbox: Inbox, provider: StandIn, state: AppState, settings: Settings) -> None:
    configured = await configure_exotel(inbox, provider)
    hook = url_of(configured, "/whatsapp")
    http = inbox.api.http
    response = await post_json(
        http,
        hook,
        exotel_whatsapp_incoming(sid="in1", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="Is my container out?"),
    )
    assert response.status_code == 200, response.text
    threads = await inbox.gql("{ threads(first: 5) { edges { node { id subject primaryChannel } } } }")
    [edge] = threads["data"]["threads"]["edges"]
    thread = edge["node"]
    reply = await send(inbox, thread["id"], "WHATSAPP", "It sailed yesterday.")
    assert reply["userErrors"] == [], reply
    sent = reply["message"]
    assert sent["status"] == "QUEUED" and sent["sender"] == WHATSAPP_NUMBER
    assert (await deliver_now(state, settings, sent["id"])).name == "SENT"
    [request] = provider.sent("exotel_whatsapp")
    out = request.json["whatsapp"]["messages"][0]
    assert out["to"] == CUSTOMER_PHONE and out["content"]["text"]["body"] == "It sailed yesterday."
    assert (await message(inbox, sent["id"]))["status"] == "SENT"
    async with system_session(state.sessionmaker) as session:
        provider_sid = await session.scalar(
            select(Message.provider_message_id).where(Message.id == local_uuid(sent["id"]))
        )
    assert provider_sid
    response = await post_json(
        http, hook, exotel_whatsapp_dlr(sid=provider_sid, exo_status_code=30002, to=CUSTOMER_PHONE)
    )
    assert response.status_code == 200, response.text
    assert (await message(inbox, sent["id"]))["status"] == "DELIVERED"
