"""The web chat widget: widgets (ADMIN), visitor sessions (Origin allow-list, visitor tokens), what a visitor may do
and see, agents' replies delivered live over the GraphQL WebSocket, acks, rate limits, and the served script."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import re
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from websockets.exceptions import InvalidStatus

from banxway.context import SystemContext
from banxway.db.models import AuditEntry, ChatVisitor, ContactIdentity, ContactMergeSuggestion, Message
from banxway.db.session import system_session
from banxway.enums import Channel, MessageStatus
from banxway.events import MessageAdded
from banxway.resolvers.delivery import deliver
from banxway.resolvers.web_chat import (
    InvalidVisitorToken,
    chat_transcript_send,
    chat_transcripts_due,
    clean_origin,
    origin_allowed,
    visitor_claims_of,
    visitor_events,
)
from banxway.settings import Settings
from banxway.state import AppState
from banxway.tasks import actors
from banxway.tasks.consequences import jobs
from tests.conftest import Api, http_client
from tests.inbox_helpers import Inbox
from tests.live_helpers import GraphQLSocket, local_uuid, uvicorn_server
from tests.standins.mailservers import SmtpServer
from tests.test_email_delivery import create_account

CHAT_WIDGET_CREATE = """
mutation($input: ChatWidgetCreateInput!) {
  chatWidgetCreate(input: $input) {
    chatWidget { id name widgetKey allowedOrigins greeting primaryColor aiAgentFirst snippet
                 preChatFields { name email } }
    userErrors { field code message }
  }
}
"""
CHAT_WIDGET_UPDATE = """
mutation($input: ChatWidgetUpdateInput!) {
  chatWidgetUpdate(input: $input) { chatWidget { id greeting allowedOrigins } userErrors { field code message } }
}
"""
CHAT_WIDGET_DELETE = """
mutation($id: ID!) { chatWidgetDelete(input: {id: $id}) { deletedId userErrors { field code message } } }
"""
CHAT_WIDGETS = "query { chatWidgets { id name greeting } }"
VISITOR_SEND = """
mutation($body: String!) {
  visitorMessageSend(input: {body: $body}) { message { id body author status } userErrors { field code message } }
}
"""
VISITOR_MESSAGES = """
query($first: Int, $after: String) {
  visitorMessages(first: $first, after: $after) { nodes { id body author status } pageInfo { hasNextPage endCursor } }
}
"""
VISITOR_ACK = """
mutation($ids: [ID!]!, $read: Boolean!) {
  visitorMessageAck(input: {messageIds: $ids, read: $read}) { messages { id status } userErrors { code message } }
}
"""
VISITOR_EVENTS = "subscription { visitorEvents { type status message { id body author status } } }"
THREAD_OF_MESSAGE = """
query($id: ID!) {
  node(id: $id) { ... on Message { body channel direction thread { id primaryChannel subject
    contact { identities { channel address } } } } }
}
"""
THREADS = "query { threads(first: 10) { edges { node { id subject } } } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
AGENT_SEND = """
mutation($threadId: ID!, $body: String!) {
  messageSend(input: {threadId: $threadId, channel: WEB_CHAT, body: $body}) {
    message { id status recipients } userErrors { field code message }
  }
}
"""
MESSAGE_STATUS = "query($id: ID!) { node(id: $id) { ... on Message { status } } }"
SHOP = "https://shop.example.com"


async def _widget(inbox: Inbox, **fields: Any) -> dict:
    fields.setdefault("name", "Website")
    fields.setdefault("allowedOrigins", [SHOP, "https://*.brand.example"])
    payload = await inbox.ok(CHAT_WIDGET_CREATE, {"input": fields}, "chatWidgetCreate")
    return payload["chatWidget"]


async def _session(http: httpx.AsyncClient, key: str, origin: str | None = SHOP, **body: Any) -> httpx.Response:
    headers = {"content-type": "text/plain"}
    if origin is not None:
        headers["origin"] = origin
    return await http.post(f"/widget/{key}/session", json=body, headers=headers)


async def _visitor(http: httpx.AsyncClient, key: str, **body: Any) -> dict:
    response = await _session(http, key, **body)
    assert response.status_code == 200, response.text
    return response.json()


async def _visitor_says(api: Api, token: str, body: str) -> dict:
    result = await api.gql(VISITOR_SEND, {"body": body}, token=token)
    assert "errors" not in result, result
    payload = result["data"]["visitorMessageSend"]
    assert payload["userErrors"] == [], payload
    return payload["message"]


async def _thread_of(inbox: Inbox, message_id: str) -> dict:
    result = await inbox.gql(THREAD_OF_MESSAGE, {"id": message_id})
    assert "errors" not in result, result
    return result["data"]["node"]


async def _agent_reply(inbox: Inbox, thread_id: str, body: str) -> dict:
    return (await inbox.ok(AGENT_SEND, {"threadId": thread_id, "body": body}, "messageSend"))["message"]


def _code(result: dict) -> str:
    return result["errors"][0]["extensions"]["code"]


# -- widgets (ADMIN) ----------------------------------------------------------------------------------------------


async def test_an_admin_creates_updates_and_deletes_widgets_each_change_audited(inbox: Inbox, api: Api) -> None:
    # when
    widget = await _widget(
        inbox,
        greeting="Hi! How can we help?",
        primaryColor="#FF8800",
        aiAgentFirst=True,
        preChatFields={"name": "REQUIRED", "email": "OFF"},
    )
    # then
    assert widget["widgetKey"].startswith("wk_") and len(widget["widgetKey"]) > 20
    assert widget["allowedOrigins"] == [SHOP, "https://*.brand.example"]
    assert widget["primaryColor"] == "#ff8800" and widget["aiAgentFirst"] is True
    assert widget["preChatFields"] == {"name": "REQUIRED", "email": "OFF"}
    assert f'data-widget-key="{widget["widgetKey"]}"' in widget["snippet"] and 'integrity="sha384-' in widget["snippet"]
    # when
    updated = await inbox.ok(
        CHAT_WIDGET_UPDATE, {"input": {"id": widget["id"], "greeting": "Hello"}}, "chatWidgetUpdate"
    )
    # then
    assert updated["chatWidget"]["greeting"] == "Hello"
    assert (await inbox.gql(CHAT_WIDGETS))["data"]["chatWidgets"] == [
        {"id": widget["id"], "name": "Website", "greeting": "Hello"}
    ]
    await inbox.ok(CHAT_WIDGET_DELETE, {"id": widget["id"]}, "chatWidgetDelete")
    assert (await inbox.gql(CHAT_WIDGETS))["data"]["chatWidgets"] == []
    async with system_session(api.state.sessionmaker) as session:
        entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.created_at)))
    assert [entry.action for entry in entries] == ["chatWidgetCreate", "chatWidgetUpdate", "chatWidgetDelete"]
    assert entries[1].details == {"before": {"greeting": "Hi! How can we help?"}, "after": {"greeting": "Hello"}}


async def test_only_admins_manage_widgets(inbox: Inbox, api: Api) -> None:
    # given
    await api.create_user(inbox.org, "manager@acme.test", "manager")
    token = await api.token("manager@acme.test")
    # when
    listed = await inbox.gql(CHAT_WIDGETS, token=token)
    created = await inbox.gql(CHAT_WIDGET_CREATE, {"input": {"name": "X", "allowedOrigins": [SHOP]}}, token=token)
    # then
    assert _code(listed) == "FORBIDDEN" and _code(created) == "FORBIDDEN"
    assert (await inbox.gql(CHAT_WIDGETS))["data"]["chatWidgets"] == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"allowedOrigins": ["shop.example.com"]}, ["allowedOrigins", "0"]),
        ({"allowedOrigins": [SHOP, "https://shop.example.com/path"]}, ["allowedOrigins", "1"]),
        ({"allowedOrigins": ["https://*.com"]}, ["allowedOrigins", "0"]),
        ({"allowedOrigins": ["ftp://shop.example.com"]}, ["allowedOrigins", "0"]),
        ({"allowedOrigins": ["https://user@shop.example.com"]}, ["allowedOrigins", "0"]),
        ({"allowedOrigins": []}, ["allowedOrigins"]),
        ({"primaryColor": "red"}, ["primaryColor"]),
        ({"name": "  "}, ["name"]),
    ],
)
async def test_bad_widget_input_is_a_user_error_naming_the_field(inbox: Inbox, fields: dict, field: list) -> None:
    # when
    values = {"name": "Website", "allowedOrigins": [SHOP], **fields}
    result = await inbox.gql(CHAT_WIDGET_CREATE, {"input": values})
    # then
    errors = result["data"]["chatWidgetCreate"]["userErrors"]
    assert [(error["field"], error["code"]) for error in errors] == [(field, "INVALID")]
    assert (await inbox.gql(CHAT_WIDGETS))["data"]["chatWidgets"] == []


def test_origins_match_exactly_or_as_subdomains_of_a_wildcard() -> None:
    allowed = [clean_origin(SHOP, "o"), clean_origin("https://*.brand.example", "o"), "http://localhost:8080"]
    assert origin_allowed(SHOP, allowed)
    assert origin_allowed("https://eu.brand.example", allowed)
    assert origin_allowed("https://a.b.brand.example", allowed)
    assert origin_allowed("http://localhost:8080", allowed)
    for refused in [
        "http://shop.example.com",  # another scheme
        "https://shop.example.com:8443",  # another port
        "https://brand.example",  # the wildcard is for subdomains only
        "https://evilbrand.example",
        "https://brand.example.evil.test",
        "https://evil.test",
        "null",
        None,
    ]:
        assert not origin_allowed(refused, allowed), refused


# -- visitor sessions -------------------------------------------------------------------------------------------


async def test_a_session_is_given_only_to_an_allowed_origin(inbox: Inbox, client: httpx.AsyncClient) -> None:
    # given
    widget = await _widget(inbox, greeting="Hello there")
    key = widget["widgetKey"]
    # when
    allowed = await _session(client, key)
    subdomain = await _session(client, key, origin="https://eu.brand.example")
    other = await _session(client, key, origin="https://evil.example")
    parent = await _session(client, key, origin="https://brand.example")
    none = await _session(client, key, origin=None)
    unknown = await _session(client, "wk_nope")
    # then
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == SHOP
    body = allowed.json()
    assert body["visitorId"].startswith("v_") and body["expiresIn"] == 3600 and body["token"]
    assert body["widget"]["greeting"] == "Hello there" and body["widget"]["colors"] == {"primary": "#1f6feb"}
    assert subdomain.status_code == 200
    assert [other.status_code, parent.status_code, none.status_code, unknown.status_code] == [403, 403, 403, 404]
    assert "access-control-allow-origin" not in other.headers


async def test_a_returning_visitor_renews_with_the_old_token_and_a_visitor_id_alone_proves_nothing(
    inbox: Inbox, client: httpx.AsyncClient
) -> None:
    # given
    key = (await _widget(inbox))["widgetKey"]
    first = await _visitor(client, key)
    # when
    renewed = await _visitor(client, key, token=first["token"], name="Priya")
    claimed = await _visitor(client, key, visitorId=first["visitorId"])
    # then
    assert renewed["visitorId"] == first["visitorId"]
    assert claimed["visitorId"] != first["visitorId"]
    async with system_session(inbox.api.state.sessionmaker) as session:
        visitor = await session.scalar(select(ChatVisitor).where(ChatVisitor.public_id == first["visitorId"]))
    assert visitor is not None and visitor.name == "Priya"


async def test_a_visitor_token_opens_nothing_else_and_a_user_token_is_no_visitor_token(
    inbox: Inbox, client: httpx.AsyncClient, api: Api
) -> None:
    # given a visitor with a thread
    key = (await _widget(inbox))["widgetKey"]
    visitor = await _visitor(client, key)
    message = await _visitor_says(api, visitor["token"], "Hello")
    thread_id = (await _thread_of(inbox, message["id"]))["thread"]["id"]
    # when the visitor token is used as an access token
    refused = [
        await api.gql(THREADS, token=visitor["token"]),
        await api.gql(NODE, {"id": thread_id}, token=visitor["token"]),
        await api.gql(NODE, {"id": message["id"]}, token=visitor["token"]),
        await api.gql(CHAT_WIDGETS, token=visitor["token"]),
        await api.gql(AGENT_SEND, {"threadId": thread_id, "body": "x"}, token=visitor["token"]),
    ]
    # then
    for result in refused:
        assert result.get("data") in (None, {}) or all(value is None for value in result["data"].values()), result
        assert _code(result) == "UNAUTHENTICATED", result
    # when a user's access token is used as a visitor token
    as_visitor = await api.gql(VISITOR_MESSAGES, {"first": 10}, token=inbox.token)
    sends = await api.gql(VISITOR_SEND, {"body": "x"}, token=inbox.token)
    # then
    assert _code(as_visitor) == "FORBIDDEN" and _code(sends) == "FORBIDDEN"
    assert _code(await api.gql(VISITOR_SEND, {"body": "x"})) == "UNAUTHENTICATED"  # no token at all


# -- conversations ------------------------------------------------------------------------------------------------


async def test_a_visitor_message_opens_a_web_chat_thread_with_its_contact_in_the_inbox(
    inbox: Inbox, client: httpx.AsyncClient, api: Api
) -> None:
    # given
    key = (await _widget(inbox))["widgetKey"]
    visitor = await _visitor(client, key, name="Priya Shah")
    # when
    first = await _visitor_says(api, visitor["token"], "Where is my container MSKU1234565?")
    second = await _visitor_says(api, visitor["token"], "It was due Monday.")
    # then the agents see one thread with both, from a WEB_CHAT contact
    one, two = await _thread_of(inbox, first["id"]), await _thread_of(inbox, second["id"])
    assert one["thread"]["id"] == two["thread"]["id"]
    assert one["channel"] == "WEB_CHAT" and one["direction"] == "INBOUND"
    assert one["thread"]["primaryChannel"] == "WEB_CHAT"
    assert one["thread"]["subject"] == "Web chat: Where is my container MSKU1234565?"
    assert one["thread"]["contact"]["identities"] == [{"channel": "WEB_CHAT", "address": visitor["visitorId"]}]
    listed = await inbox.gql(THREADS)
    assert [edge["node"]["id"] for edge in listed["data"]["threads"]["edges"]] == [one["thread"]["id"]]
    # and the visitor sees their conversation
    mine = await api.gql(VISITOR_MESSAGES, {"first": 1}, token=visitor["token"])
    page = mine["data"]["visitorMessages"]
    assert [node["body"] for node in page["nodes"]] == ["Where is my container MSKU1234565?"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await api.gql(
        VISITOR_MESSAGES, {"first": 10, "after": page["pageInfo"]["endCursor"]}, token=visitor["token"]
    )
    assert [node["body"] for node in rest["data"]["visitorMessages"]["nodes"]] == ["It was due Monday."]


async def test_an_agent_reply_is_delivered_live_then_acked_delivered_and_read(
    inbox: Inbox, client: httpx.AsyncClient, api: Api, state: AppState, settings: Settings
) -> None:
    # given a visitor with a conversation, subscribed over a real WebSocket with their token
    key = (await _widget(inbox))["widgetKey"]
    visitor = await _visitor(client, key)
    asked = await _visitor_says(api, visitor["token"], "Do you ship to Hamburg?")
    thread_id = (await _thread_of(inbox, asked["id"]))["thread"]["id"]
    async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(visitor["token"])
        await socket.subscribe("events", VISITOR_EVENTS)
        await _wait_listening(state, inbox.org.id)
        # when an agent replies on WEB_CHAT, and the delivery consequence runs
        reply = await _agent_reply(inbox, thread_id, "Yes, weekly from Nhava Sheva.")
        assert reply["status"] == "QUEUED" and reply["recipients"] == [visitor["visitorId"]]
        rows = await _events_of(state, local_uuid(reply["id"]))
        assert (actors.deliver_message, str(local_uuid(reply["id"]))) in jobs(rows)
        assert await deliver(SystemContext(state), local_uuid(reply["id"])) == MessageStatus.SENT
        # then the visitor receives it live
        operation, event = await socket.next()
        if event["type"] == "THREAD_STATUS":  # the reply opened the NEW thread first
            assert event["status"] == "OPEN"
            operation, event = await socket.next()
        assert operation == "events"
        assert event["type"] == "MESSAGE"
        assert event["message"] == {
            "id": reply["id"],
            "body": "Yes, weekly from Nhava Sheva.",
            "author": "AGENT",
            "status": "SENT",
        }
        # and the claim's SENDING status change, read late (after the reply went out), says nothing to the visitor
        await _publish_again(state, local_uuid(reply["id"]), "SENDING")
        # when the client acks it, then displays it
        await socket.send(
            {
                "id": "ack",
                "type": "subscribe",
                "payload": {"query": VISITOR_ACK, "variables": {"ids": [reply["id"]], "read": False}},
            }
        )
        statuses = await _until_status(socket, "DELIVERED")
        assert statuses == {"visitorMessageAck": [reply["id"], "DELIVERED"], "events": "DELIVERED"}
    # then the agents see it
    assert (await inbox.gql(MESSAGE_STATUS, {"id": reply["id"]}))["data"]["node"]["status"] == "DELIVERED"
    read = await api.gql(VISITOR_ACK, {"ids": [reply["id"]], "read": True}, token=visitor["token"])
    assert read["data"]["visitorMessageAck"]["messages"] == [{"id": reply["id"], "status": "READ"}]
    # and a late "delivered" never moves it back
    await api.gql(VISITOR_ACK, {"ids": [reply["id"]], "read": False}, token=visitor["token"])
    assert (await inbox.gql(MESSAGE_STATUS, {"id": reply["id"]}))["data"]["node"]["status"] == "READ"


async def _until_status(socket: GraphQLSocket, status: str) -> dict:
    """The ack's answer and the subscription's STATUS event, in whichever order they come."""
    seen: dict[str, Any] = {}
    while len(seen) < 2:
        message = await socket.receive()
        if message["type"] != "next":
            continue
        data = message["payload"]["data"]
        if message["id"] == "ack":
            acked = data["visitorMessageAck"]["messages"]
            seen["visitorMessageAck"] = [acked[0]["id"], acked[0]["status"]]
        elif data["visitorEvents"]["type"] == "STATUS":
            seen["events"] = data["visitorEvents"]["status"]
    return seen


async def _publish_again(state: AppState, message_id: uuid.UUID, status: str) -> None:
    """Publish the message's stored status-change event once more, as a subscriber that reads late receives it."""
    from banxway import events
    from banxway.db.models import Event

    async with system_session(state.sessionmaker) as session:
        rows = list(await session.scalars(select(Event).where(Event.type == "MESSAGE_STATUS_CHANGED")))
    [row] = [r for r in rows if r.payload.get("message_id") == str(message_id) and r.payload["status"] == status]
    await state.broadcast.publish(events.channel(row.organization_id), events.envelope(row))


async def _wait_listening(state: AppState, organization_id: uuid.UUID) -> None:
    from banxway import events

    for _ in range(500):
        if events.channel(organization_id) in state.broadcast._subscribers:
            await asyncio.sleep(0.05)
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the visitor's subscription never listened")


async def _events_of(state: AppState, message_id: uuid.UUID) -> list:
    from banxway.db.models import Event

    async with system_session(state.sessionmaker) as session:
        rows = list(await session.scalars(select(Event).where(Event.type == MessageAdded.type)))
    return [row for row in rows if row.payload.get("message_id") == str(message_id)]


async def test_a_visitor_never_sees_another_visitors_conversation_nor_internal_notes(
    inbox: Inbox, client: httpx.AsyncClient, api: Api, state: AppState
) -> None:
    # given two visitors, an agent reply and an internal note on the first one's thread
    key = (await _widget(inbox))["widgetKey"]
    alice, bob = await _visitor(client, key), await _visitor(client, key)
    said = await _visitor_says(api, alice["token"], "Alice's secret booking")
    thread_id = (await _thread_of(inbox, said["id"]))["thread"]["id"]
    reply = await _agent_reply(inbox, thread_id, "For Alice only")
    await deliver(SystemContext(state), local_uuid(reply["id"]))
    await inbox.send(thread_id, "internal: check credit", channel="INTERNAL")
    queued = await _agent_reply(inbox, thread_id, "Not sent yet")
    # when
    bobs = await api.gql(VISITOR_MESSAGES, {"first": 50}, token=bob["token"])
    bob_acks = await api.gql(VISITOR_ACK, {"ids": [reply["id"]], "read": True}, token=bob["token"])
    alices = await api.gql(VISITOR_MESSAGES, {"first": 50}, token=alice["token"])
    # then
    assert bobs["data"]["visitorMessages"]["nodes"] == []
    assert bob_acks["data"]["visitorMessageAck"]["messages"] == []
    assert (await inbox.gql(MESSAGE_STATUS, {"id": reply["id"]}))["data"]["node"]["status"] == "SENT"
    bodies = [node["body"] for node in alices["data"]["visitorMessages"]["nodes"]]
    assert bodies == ["Alice's secret booking", "For Alice only"]
    assert queued["id"] not in {node["id"] for node in alices["data"]["visitorMessages"]["nodes"]}


async def test_a_deleted_widget_refuses_its_visitors_tokens(inbox: Inbox, client: httpx.AsyncClient, api: Api) -> None:
    # given
    widget = await _widget(inbox)
    visitor = await _visitor(client, widget["widgetKey"])
    # when
    await inbox.ok(CHAT_WIDGET_DELETE, {"id": widget["id"]}, "chatWidgetDelete")
    result = await api.gql(VISITOR_SEND, {"body": "anyone?"}, token=visitor["token"])
    # then
    assert _code(result) == "UNAUTHENTICATED"
    assert (await _session(client, widget["widgetKey"])).status_code == 404


async def test_a_deleted_widgets_open_visitor_subscription_hears_nothing_more(
    inbox: Inbox, client: httpx.AsyncClient, api: Api, state: AppState
) -> None:
    # given a visitor with a conversation, listening to its events
    widget = await _widget(inbox)
    visitor = await _visitor(client, widget["widgetKey"])
    said = await _visitor_says(api, visitor["token"], "Is anyone there?")
    thread = await _thread_of(inbox, said["id"])
    claims = visitor_claims_of(state.secret_key, f"Bearer {visitor['token']}")
    assert claims is not None
    listening = asyncio.create_task(anext(aiter(visitor_events(state, claims))))
    await _wait_listening(state, inbox.org.id)
    # when the admin deletes the widget, and something happens on the visitor's thread
    await inbox.ok(CHAT_WIDGET_DELETE, {"id": widget["id"]}, "chatWidgetDelete")
    await inbox.send(thread["thread"]["id"], "Internal: close this one", channel="INTERNAL")
    # then the subscription ends refusing the token, telling nothing
    with pytest.raises(InvalidVisitorToken):
        await asyncio.wait_for(listening, 10)


async def test_a_visitor_sending_too_fast_gets_a_clear_error(inbox: Inbox, settings: Settings, state: AppState) -> None:
    # given at most 2 messages a minute per visitor
    strict = settings.model_copy(update={"webchat_messages_per_minute": 2})
    strict_state = dataclasses.replace(state, settings=strict)
    key = (await _widget(inbox))["widgetKey"]
    async with http_client(strict, strict_state) as http:
        api = Api(http, strict_state)
        visitor = await _visitor(http, key)
        # when
        for body in ("one", "two"):
            await _visitor_says(api, visitor["token"], body)
        third = await api.gql(VISITOR_SEND, {"body": "three"}, token=visitor["token"])
        # then
        errors = third["data"]["visitorMessageSend"]["userErrors"]
        assert errors[0]["code"] == "RATE_LIMITED" and "too fast" in errors[0]["message"]
        bodies = [
            n["body"]
            for n in (await api.gql(VISITOR_MESSAGES, {}, token=visitor["token"]))["data"]["visitorMessages"]["nodes"]
        ]
        assert bodies == ["one", "two"]


async def test_a_reply_to_a_web_chat_contact_is_sent_not_left_queued(
    inbox: Inbox, client: httpx.AsyncClient, api: Api, state: AppState
) -> None:
    # given
    key = (await _widget(inbox))["widgetKey"]
    visitor = await _visitor(client, key)
    said = await _visitor_says(api, visitor["token"], "Hello")
    thread_id = (await _thread_of(inbox, said["id"]))["thread"]["id"]
    # when
    reply = await _agent_reply(inbox, thread_id, "Hi!")
    rows = await _events_of(state, local_uuid(reply["id"]))
    # then the consequence asks for delivery, and delivery marks it SENT
    assert [job for job in jobs(rows) if job[0] is actors.deliver_message] == [
        (actors.deliver_message, str(local_uuid(reply["id"])))
    ]
    assert await deliver(SystemContext(state), local_uuid(reply["id"])) == MessageStatus.SENT
    assert await deliver(SystemContext(state), local_uuid(reply["id"])) == MessageStatus.SENT  # idempotent
    async with system_session(state.sessionmaker) as session:
        stored = await session.get(Message, local_uuid(reply["id"]))
        identities = list(await session.scalars(select(ContactIdentity.channel)))
    assert stored is not None and stored.status == MessageStatus.SENT
    assert identities == [Channel.WEB_CHAT]


# -- the script ---------------------------------------------------------------------------------------------------

README = Path(__file__).parent.parent / "README.md"


async def test_widget_js_is_served_with_the_documented_sri_hash(client: httpx.AsyncClient) -> None:
    # when
    response = await client.get("/widget.js?v=2")
    info = (await client.get("/widget.js.json")).json()
    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["access-control-allow-origin"] == "*"  # SRI on another origin needs CORS
    digest = "sha384-" + base64.b64encode(hashlib.sha384(response.content).digest()).decode()
    assert info == {"version": 2, "integrity": digest, "path": "/widget.js?v=2"}
    # the README's command gives the same hash for the file the server serves
    ran = await asyncio.to_thread(
        subprocess.run,
        "openssl dgst -sha384 -binary banxway/static/widget.js | openssl base64 -A",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    assert "sha384-" + ran.stdout.strip() == digest
    if "/widget.js" in README.read_text():  # (once the widget's section is merged into the README)
        assert "openssl dgst -sha384 -binary banxway/static/widget.js | openssl base64 -A" in README.read_text()
    assert re.search(r"document\.currentScript", response.text)
    cached = await client.get("/widget.js?v=2", headers={"if-none-match": response.headers["etag"]})
    assert cached.status_code == 304


async def test_cross_origin_websockets_only_for_a_widgets_allowed_pages_and_visitors_reach_no_other_field(
    inbox: Inbox, client: httpx.AsyncClient, api: Api, state: AppState, settings: Settings
) -> None:
    # given
    key = (await _widget(inbox))["widgetKey"]
    visitor = await _visitor(client, key)
    said = await _visitor_says(api, visitor["token"], "Hello")
    thread_id = (await _thread_of(inbox, said["id"]))["thread"]["id"]
    async with uvicorn_server(settings, state) as url:
        # when pages of other origins open the GraphQL WebSocket, then the handshake is refused
        for target, origin in [
            (url, SHOP),
            (f"{url}?widget={key}", "https://evil.example"),
            (f"{url}?widget=wk_x", SHOP),
        ]:
            with pytest.raises(InvalidStatus) as refused:
                async with GraphQLSocket.open(target, origin=origin):
                    pass
            assert refused.value.response.status_code == 403, (target, origin)
        # when the widget's page opens it with the visitor token
        async with GraphQLSocket.open(f"{url}?widget={key}", origin=SHOP) as socket:
            await socket.init(visitor["token"])
            answers = {}
            for operation, query, variables in [
                ("threads", THREADS, {}),
                ("node", NODE, {"id": thread_id}),
                ("mine", VISITOR_MESSAGES, {"first": 5}),
            ]:
                await socket.subscribe(operation, query, variables)
                while operation not in answers:
                    message = await socket.receive()
                    if message["type"] == "next":
                        answers[message["id"]] = message["payload"]
        # then only the visitor's own fields answer
        for name in ("threads", "node"):
            assert not any((answers[name].get("data") or {}).values()), answers[name]
            assert answers[name]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        mine = answers["mine"]["data"]["visitorMessages"]
        assert [message["body"] for message in mine["nodes"]] == ["Hello"]


# -- transcripts by email -------------------------------------------------------------------------------------------


async def test_a_visitor_who_left_replies_unseen_gets_the_transcript_by_email_once(
    inbox: Inbox, client: httpx.AsyncClient, api: Api, state: AppState, smtp_server: SmtpServer
) -> None:
    # given an email account to send from, a visitor who gave an email and one who did not, both answered
    await create_account(inbox, smtp_server)
    key = (await _widget(inbox, name="Acme Website"))["widgetKey"]
    gone = await _visitor(client, key, email="Priya@Customer.test")
    anonymous = await _visitor(client, key)
    replies = []
    for visitor, text in ((gone, "Can you quote 2x40HC to Hamburg?"), (anonymous, "Hello?")):
        said = await _visitor_says(api, visitor["token"], text)
        thread_id = (await _thread_of(inbox, said["id"]))["thread"]["id"]
        reply = await _agent_reply(inbox, thread_id, "USD 2,150 per container.")
        await deliver(SystemContext(state), local_uuid(reply["id"]))
        replies.append(local_uuid(reply["id"]))
    ctx = SystemContext(state)
    # when the replies are fresh, then nobody is due (the visitor may still be reading)
    assert await chat_transcripts_due(ctx) == []
    # when they stayed unseen (never acked) past OFFLINE_AFTER
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(Message).where(Message.id.in_(replies)).values(updated_at=datetime.now(UTC) - timedelta(minutes=10))
        )
        visitor_id = await session.scalar(select(ChatVisitor.id).where(ChatVisitor.public_id == gone["visitorId"]))
    # then the visitor with an email is due, and mailed once
    assert await chat_transcripts_due(ctx) == [visitor_id]
    assert await chat_transcript_send(ctx, visitor_id) is True
    assert await chat_transcript_send(ctx, visitor_id) is False
    assert await chat_transcripts_due(ctx) == []
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["priya@customer.test"]
    mail = BytesParser(policy=default_policy).parsebytes(received.raw)
    assert mail["Subject"] == "Your chat transcript: Acme Website"
    text = mail.get_content()
    # our replies only: the visitor's own (unverified) words are never mailed under the organization's name
    assert "USD 2,150 per container." in text and "Can you quote 2x40HC to Hamburg?" not in text
    assert "Hello?" not in text  # the other visitor's conversation


async def test_a_visitor_who_saw_the_reply_gets_no_transcript(
    inbox: Inbox, client: httpx.AsyncClient, api: Api, state: AppState
) -> None:
    # given a visitor with an email whose client acked the reply
    key = (await _widget(inbox))["widgetKey"]
    visitor = await _visitor(client, key, email="seen@customer.test")
    said = await _visitor_says(api, visitor["token"], "Hi")
    reply = await _agent_reply(inbox, (await _thread_of(inbox, said["id"]))["thread"]["id"], "Hello!")
    await deliver(SystemContext(state), local_uuid(reply["id"]))
    await api.gql(VISITOR_ACK, {"ids": [reply["id"]], "read": False}, token=visitor["token"])
    # when an hour passes
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id == local_uuid(reply["id"]))
            .values(updated_at=datetime.now(UTC) - timedelta(hours=1))
        )
    # then no transcript is due
    assert await chat_transcripts_due(SystemContext(state)) == []


async def test_a_visitors_email_joins_their_contact_or_suggests_a_merge_with_its_owner(
    inbox: Inbox, client: httpx.AsyncClient, api: Api, state: AppState
) -> None:
    # given a known customer contact with an email, and a widget
    known = await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya@customer.test"}])
    key = (await _widget(inbox))["widgetKey"]
    # when a visitor gives that email, and another visitor a new one
    priya = await _visitor(client, key, email="Priya@Customer.test")
    await _visitor_says(api, priya["token"], "Hello, it's Priya")
    newcomer = await _visitor(client, key, email="new@customer.test")
    said = await _visitor_says(api, newcomer["token"], "Hi")
    # then the new email became an identity of the newcomer's contact
    identities = (await _thread_of(inbox, said["id"]))["thread"]["contact"]["identities"]
    assert sorted((i["channel"], i["address"]) for i in identities) == [
        ("EMAIL", "new@customer.test"),
        ("WEB_CHAT", newcomer["visitorId"]),
    ]
    # and the known one is suggested as a merge with the visitor's contact (never merged automatically)
    async with system_session(state.sessionmaker) as session:
        suggestions = list(await session.scalars(select(ContactMergeSuggestion)))
    assert len(suggestions) == 1
    assert local_uuid(known["id"]) in (suggestions[0].contact_id, suggestions[0].other_contact_id)
