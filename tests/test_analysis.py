"""Message analysis on the real path: an inbound WhatsApp message through the provider's webhook, the
MESSAGE_ADDED consequence, the analyse_message actor in a real worker; then the thread follows (intent, sentiment,
the shipment it names), suggestions when the numbers are ambiguous, and workflows triggered by the analysis."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import func, select

from banxway.db.models import Event, Message, MessageAnalysis
from banxway.db.session import system_session
from banxway.enums import Direction
from banxway.resolvers.analysis import analyse_message
from banxway.schema.ids import local_id
from tests.ai_helpers import BL, CONTAINER, freight_thread
from tests.inbox_helpers import Inbox, system_context
from tests.messaging_helpers import CUSTOMER_PHONE, WHATSAPP_NUMBER, configure_exotel, post_json, url_of
from tests.standins.providers import StandIn, exotel_whatsapp_incoming

THREAD = """
query($id: ID!) {
  node(id: $id) {
    ... on Thread {
      id intent sentiment shipment { id reference }
      shipmentSuggestions { id shipment { reference } evidence { kind value } message { id } }
      messages(last: 5) {
        edges { node { id direction analysis {
          language sentiment sentimentScore intent intentConfidence analyser
          entities { kind value text source start end }
        } } }
      }
    }
  }
}
"""
FILTERED = """
query($filter: ThreadFilter) { threads(first: 20, filter: $filter) { edges { node { id intent sentiment } } } }
"""
ACCEPT = """
mutation($input: ShipmentSuggestionInput!) {
  shipmentSuggestionAccept(input: $input) {
    thread { id shipment { reference } shipmentSuggestions { id } } userErrors { field code message }
  }
}
"""
DISMISS = """
mutation($input: ShipmentSuggestionInput!) {
  shipmentSuggestionDismiss(input: $input) { thread { id shipmentSuggestions { id } } userErrors { code } }
}
"""


async def _thread(inbox: Inbox, thread_id: str) -> dict:
    result = await inbox.gql(THREAD, {"id": thread_id})
    assert "errors" not in result, result
    return result["data"]["node"]


async def _inbound_whatsapp(inbox: Inbox, configured: dict, body: str, sid: str) -> None:
    payload = exotel_whatsapp_incoming(sid=sid, from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body=body)
    response = await post_json(inbox.api.http, url_of(configured, "/whatsapp"), payload)
    assert response.status_code == 200, response.text


async def _thread_of_sid(state: Any, sid: str) -> tuple[str, Any]:
    async with system_session(state.sessionmaker) as session:
        row = (
            await session.execute(select(Message.thread_id, Message.id).where(Message.provider_message_id == sid))
        ).one()
    from banxway.schema.ids import to_global_id

    return to_global_id("Thread", row[0]), row[1]


async def _events(state: Any, event_type: str) -> list[Event]:
    async with system_session(state.sessionmaker) as session:
        return list(await session.scalars(select(Event).where(Event.type == event_type).order_by(Event.seq)))


async def test_a_whatsapp_message_naming_a_container_links_its_thread_within_seconds(
    inbox: Inbox, provider: StandIn, state: Any, worker: Any
) -> None:
    configured = await configure_exotel(inbox, provider)
    shipment = await inbox.shipment("SHP-7", mode="SEA", containerNumbers=[CONTAINER], blNumber=BL)
    sent_at = time.monotonic()
    await _inbound_whatsapp(
        inbox, configured, f"hi, any update on container {CONTAINER[:4]} {CONTAINER[4:]}?? 🙏", "wa-1"
    )
    thread_id, message_id = await _thread_of_sid(state, "wa-1")
    deadline = time.monotonic() + 10
    while (thread := await _thread(inbox, thread_id))["shipment"] is None:
        assert time.monotonic() < deadline, thread
        await asyncio.sleep(0.1)
    linked_after = time.monotonic() - sent_at
    assert linked_after < 5, linked_after
    assert thread["shipment"] == {"id": shipment["id"], "reference": "SHP-7"}
    assert thread["intent"] == "TRACKING"
    analysis = thread["messages"]["edges"][-1]["node"]["analysis"]
    containers = [e for e in analysis["entities"] if e["kind"] == "CONTAINER"]
    assert containers == [
        {
            "kind": "CONTAINER",
            "value": CONTAINER,
            "text": f"{CONTAINER[:4]} {CONTAINER[4:]}",
            "source": "BODY",
            "start": 28,
            "end": 40,
        }
    ]
    assert analysis["intent"] == "TRACKING" and analysis["analyser"].startswith("rules-")
    # the audit trail: a THREAD_UPDATED by nobody, naming the evidence, and the analysis event workflows trigger on
    updates = [e for e in await _events(state, "THREAD_UPDATED") if "shipment_id" in e.payload["changed"]]
    assert len(updates) == 1 and updates[0].actor_id is None
    assert updates[0].payload["evidence"] == f"CONTAINER {CONTAINER} in message {message_id}"
    completed = await _events(state, "ANALYSIS_COMPLETED")
    assert [(e.payload["message_id"], e.payload["intent"]) for e in completed] == [(str(message_id), "TRACKING")]
    tracking = await inbox.gql(FILTERED, {"filter": {"intent": ["TRACKING"]}})
    assert [edge["node"]["id"] for edge in tracking["data"]["threads"]["edges"]] == [thread_id]
    quotes = await inbox.gql(FILTERED, {"filter": {"intent": ["QUOTE_REQUEST"]}})
    assert quotes["data"]["threads"]["edges"] == []


async def test_numbers_naming_two_shipments_make_suggestions_and_a_person_picks_one(inbox: Inbox, state: Any) -> None:
    thread = await freight_thread(inbox, shipment=False, question=f"Status of {CONTAINER} please, and BL {BL}?")
    await inbox.shipment("SHP-A", containerNumbers=[CONTAINER])
    await inbox.shipment("SHP-B", blNumber=BL)
    message_id = await _last_inbound(state, thread.thread_id)
    await analyse_message(system_context(state), message_id)
    shown = await _thread(inbox, thread.thread_id)
    assert shown["shipment"] is None
    suggestions = shown["shipmentSuggestions"]
    assert sorted((s["shipment"]["reference"], s["evidence"][0]["kind"]) for s in suggestions) == [
        ("SHP-A", "CONTAINER"),
        ("SHP-B", "BILL_OF_LADING"),
    ]
    dismissed = await inbox.gql(DISMISS, {"input": {"suggestionId": suggestions[0]["id"]}})
    assert len(dismissed["data"]["shipmentSuggestionDismiss"]["thread"]["shipmentSuggestions"]) == 1
    accepted = await inbox.gql(ACCEPT, {"input": {"suggestionId": suggestions[1]["id"]}})
    payload = accepted["data"]["shipmentSuggestionAccept"]
    assert payload["userErrors"] == []
    assert payload["thread"]["shipment"]["reference"] == suggestions[1]["shipment"]["reference"]
    assert payload["thread"]["shipmentSuggestions"] == []
    again = await inbox.gql(ACCEPT, {"input": {"suggestionId": suggestions[1]["id"]}})
    assert [e["code"] for e in again["data"]["shipmentSuggestionAccept"]["userErrors"]] == ["INVALID"]
    other = await inbox.api.create_org("globex")
    stranger = await inbox.api.token(other.admin_email)
    foreign = await inbox.gql(ACCEPT, {"input": {"suggestionId": suggestions[0]["id"]}}, stranger)
    assert [e["code"] for e in foreign["data"]["shipmentSuggestionAccept"]["userErrors"]] == ["NOT_FOUND"]


async def test_a_thread_a_person_linked_is_not_relinked_and_analysis_happens_once(inbox: Inbox, state: Any) -> None:
    thread = await freight_thread(inbox, question=f"Container MSKU9070323 and {CONTAINER} both arrived?")
    await inbox.shipment("SHP-9", containerNumbers=["MSKU9070323"])
    message_id = await _last_inbound(state, thread.thread_id)
    ctx = system_context(state)
    first = await analyse_message(ctx, message_id)
    assert first is not None
    assert await analyse_message(ctx, message_id) is None  # a redelivered job finds the analysis and stops
    shown = await _thread(inbox, thread.thread_id)
    assert shown["shipment"]["reference"] == "SHP-7"  # still the one the thread was linked to
    assert [s["shipment"]["reference"] for s in shown["shipmentSuggestions"]] == ["SHP-9"]
    async with system_session(state.sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(MessageAnalysis)) == 1
    assert len(await _events(state, "ANALYSIS_COMPLETED")) == 1


async def test_outbound_messages_are_not_analysed_and_an_invalid_container_links_nothing(
    inbox: Inbox, state: Any
) -> None:
    thread = await freight_thread(inbox, shipment=False, question="Is MSCU1234565 on board? Very disappointed!!")
    await inbox.shipment("SHP-X", containerNumbers=[CONTAINER])
    sent = await inbox.send(thread.thread_id, body=f"Container {CONTAINER} sailed.", channel="INTERNAL")
    ctx = system_context(state)
    assert await analyse_message(ctx, local_id(sent["id"], "Message")) is None
    analysed = await analyse_message(ctx, await _last_inbound(state, thread.thread_id))
    assert analysed is not None
    assert [e for e in analysed.entities if e["kind"] == "CONTAINER"] == []  # wrong check digit: not a container
    shown = await _thread(inbox, thread.thread_id)
    assert shown["shipment"] is None and shown["shipmentSuggestions"] == []
    assert shown["sentiment"] == "NEGATIVE"


async def test_a_workflow_triggers_on_the_analysed_intent(inbox: Inbox, state: Any, worker: Any) -> None:
    from tests.test_workflows import _create

    await _create(
        inbox,
        "Complaints go urgent",
        {
            "trigger": {"type": "ANALYSIS_COMPLETED", "intent": "COMPLAINT"},
            "steps": [{"type": "SET", "priority": "URGENT"}],
        },
    )
    calm = await freight_thread(inbox, question="Could you send me a quote for 2x40HC Mundra to Jebel Ali?")
    angry = await inbox.thread("Damaged cargo")
    async with system_session(state.sessionmaker) as session:
        org = await session.scalar(select(Message.organization_id).limit(1))
    from banxway.db.session import tenant_session
    from banxway.enums import Channel
    from banxway.resolvers.inbound import message_receive

    async with tenant_session(state.sessionmaker, org) as session, session.begin():
        await message_receive(
            session,
            org,
            thread_id=local_id(angry["id"], "Thread"),  # type: ignore[arg-type]
            channel=Channel.WHATSAPP,
            body="This is unacceptable! The cargo arrived damaged and nobody answers. I want a refund.",
            sender=CUSTOMER_PHONE,
        )
    for thread_id in (calm.thread_id, angry["id"]):
        await analyse_message(system_context(state), await _last_inbound(state, thread_id))
    query = "query($id: ID!) { node(id: $id) { ... on Thread { priority intent } } }"
    deadline = time.monotonic() + 10
    while (result := await inbox.gql(query, {"id": angry["id"]}))["data"]["node"]["priority"] != "URGENT":
        assert time.monotonic() < deadline, result
        await asyncio.sleep(0.1)
    assert result["data"]["node"]["intent"] == "COMPLAINT"
    calm_now = (await inbox.gql(query, {"id": calm.thread_id}))["data"]["node"]
    assert calm_now == {"priority": "NORMAL", "intent": "QUOTE_REQUEST"}


async def _last_inbound(state: Any, thread_id: str) -> Any:
    async with system_session(state.sessionmaker) as session:
        return await session.scalar(
            select(Message.id)
            .where(Message.thread_id == local_id(thread_id, "Thread"), Message.direction == Direction.INBOUND)
            .order_by(Message.created_at.desc())
            .limit(1)
        )
