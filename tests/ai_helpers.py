"""Shared set-up of the AI tests (compose, analysis): a freight thread with a customer, a contact, a shipment with
milestones and the customer's question; GraphQL documents; readers of the compose stream (WebSocket and SSE)."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from banxway.db.session import tenant_session
from banxway.enums import Channel
from banxway.resolvers.inbound import message_receive
from banxway.schema.ids import local_id
from tests.inbox_helpers import Inbox
from tests.live_helpers import GraphQLSocket

CONTAINER = "MSCU1234566"
BL = "MAEU123456789"
PHONE = "+919820012345"
QUESTION = "Hi, when will container MSCU1234566 arrive in Hamburg? Please also share the BL copy."

COMPOSE_START = """
mutation($input: ComposeStartInput!) {
  composeStart(input: $input) {
    session { id status provider channel variants promptVersion }
    userErrors { field code message }
  }
}
"""

COMPOSE_CANCEL = """
mutation($input: ComposeSessionInput!) {
  composeCancel(input: $input) { session { id status errorCode } userErrors { field code message } }
}
"""

COMPOSE_FEEDBACK = """
mutation($input: ComposeFeedbackInput!) {
  composeFeedback(input: $input) {
    session { id feedbackVariant feedbackRating finalText editDistance }
    userErrors { field code message }
  }
}
"""

COMPOSE_STREAM = """
subscription($id: ID!) {
  composeStream(sessionId: $id) {
    __typename
    ... on ComposeDelta { variant text }
    ... on ComposeDone { variants { variant text } usage { promptTokens completionTokens totalTokens } }
    ... on ComposeFailure { code message }
  }
}
"""

SESSION = """
query($id: ID!) {
  node(id: $id) {
    ... on ComposeSession {
      id status drafts errorCode errorMessage promptTokens completionTokens provider finishedAt
      thread { id }
    }
  }
}
"""


@dataclass
class FreightThread:
    thread_id: str
    shipment_id: str
    contact_id: str


async def freight_thread(inbox: Inbox, *, question: str = QUESTION, shipment: bool = True) -> FreightThread:
    """A WhatsApp thread of Priya Shah (Acme Imports) about SHP-7, with her question as the last inbound message."""
    customer = await inbox.customer("Acme Imports")
    contact = await inbox.contact(
        "Priya Shah", customerId=customer["id"], identities=[{"channel": "WHATSAPP", "address": PHONE}]
    )
    linked: dict[str, Any] = {}
    shipment_id = ""
    if shipment:
        created = await inbox.shipment(
            "SHP-7",
            customerId=customer["id"],
            mode="SEA",
            origin={"code": "INNSA", "name": "Nhava Sheva"},
            destination={"code": "DEHAM", "name": "Hamburg"},
            carrier="Maersk",
            vessel="Maersk Essen",
            voyage="245W",
            containerNumbers=[CONTAINER],
            blNumber=BL,
            etd="2026-11-20T10:00:00+00:00",
            eta="2026-12-14T06:00:00+00:00",
        )
        shipment_id = created["id"]
        linked["shipmentId"] = shipment_id
    thread = await inbox.thread(
        "Where is my container?",
        customerId=customer["id"],
        contactId=contact["id"],
        primaryChannel="WHATSAPP",
        **linked,
    )
    state = inbox.api.state
    async with tenant_session(state.sessionmaker, inbox.org.id) as session, session.begin():
        await message_receive(
            session,
            inbox.org.id,
            thread_id=local_id(thread["id"], "Thread"),  # type: ignore[arg-type]
            channel=Channel.WHATSAPP,
            body=question,
            sender=PHONE,
            contact_id=local_id(contact["id"], "Contact"),
        )
    return FreightThread(thread["id"], shipment_id, contact["id"])


async def compose_start(inbox: Inbox, thread_id: str, token: str | None = None, **fields: Any) -> dict:
    result = await inbox.gql(COMPOSE_START, {"input": {"threadId": thread_id, **fields}}, token)
    assert "errors" not in result, result
    return result["data"]["composeStart"]


async def started(inbox: Inbox, thread_id: str, **fields: Any) -> str:
    payload = await compose_start(inbox, thread_id, **fields)
    assert payload["userErrors"] == [], payload
    return payload["session"]["id"]


async def read_socket(socket: GraphQLSocket, operation_id: str, within: float = 20.0) -> list[dict]:
    """The composeStream items until the first ComposeDone or ComposeFailure."""
    items: list[dict] = []
    async with asyncio.timeout(within):
        while True:
            _, item = await socket.next(within)
            items.append(item)
            if item["__typename"] != "ComposeDelta":
                return items


@dataclass
class SseEvent:
    event: str
    data: dict


async def read_sse(response: httpx.Response) -> list[SseEvent]:
    """Server-Sent Events of a streamed response until `done` or `error` (comments and pings skipped)."""
    events: list[SseEvent] = []
    name, data = "message", []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if line == "":
            if data:
                events.append(SseEvent(name, orjson.loads("\n".join(data))))
                if name in ("done", "error"):
                    return events
            name, data = "message", []
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    return events


@asynccontextmanager
async def sse(base_url: str, session_id: str, token: str | None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=20) as http,
        http.stream("GET", f"/compose/{session_id}/stream", headers=headers) as response,
    ):
        yield response


def joined(items: list[dict], variant: int = 0) -> str:
    return "".join(
        item["text"] for item in items if item["__typename"] == "ComposeDelta" and item["variant"] == variant
    )


def session_uuid(global_id: str) -> uuid.UUID:
    value = local_id(global_id, "ComposeSession")
    assert value is not None
    return value
