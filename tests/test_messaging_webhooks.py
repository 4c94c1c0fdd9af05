"""The providers' webhooks (`/webhooks/{provider}/{token}/{kind}`): who may call them (token, provider path,
Twilio signature, IP allow-list, token rotation), what a bad payload gets, and what a good one stores —
inbound WhatsApp/SMS threads and contacts, idempotency under concurrent retries, delivery-status precedence
in every order (also before the provider id is known), live events, media downloads, and tenancy."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import func, select, update

from banxway.db.models import Attachment, Contact, ContactIdentity, Event, Integration, Message, PendingStatus, Thread
from banxway.db.session import system_session
from banxway.enums import Channel, MessageStatus
from banxway.integrations.messaging import Inbound
from banxway.resolvers.inbound import receive
from banxway.resolvers.media import fetch_media
from banxway.resolvers.receipts import apply_pending
from banxway.resolvers.sending import set_status
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import GraphQLSocket, local_uuid, uvicorn_server, wait_subscribed
from tests.messaging_helpers import (
    CUSTOMER_PHONE,
    SMS_NUMBER,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_NUMBER,
    configure_exotel,
    configure_twilio,
    deliver_now,
    message,
    message_global_id,
    post_form,
    post_json,
    send,
    url_of,
    whatsapp_thread,
)
from tests.standins.providers import (
    StandIn,
    exotel_sms_incoming,
    exotel_sms_status,
    exotel_whatsapp_dlr,
    exotel_whatsapp_incoming,
    twilio_inbound,
    twilio_signature,
    twilio_status,
)

OTHER_PHONE = "+919811122233"

THREAD_UPDATE = """
mutation($input: ThreadUpdateInput!) {
  threadUpdate(input: $input) { thread { id status } userErrors { field code message } }
}
"""
ROTATE = """
mutation($input: IntegrationIdInput!) {
  integrationRotateWebhookToken(input: $input) {
    integration { id } webhookUrls { purpose url } userErrors { code message }
  }
}
"""
NODE = """
query($id: ID!) {
  node(id: $id) {
    ... on Contact { id name verified identities { channel address } }
    ... on Thread { id status primaryChannel contact { id } }
  }
}
"""
VISIBLE = "{ threads(first: 50) { totalCount } contacts(first: 50) { totalCount } }"
LIVE_EVENTS = "subscription { inboxEvents { type message { id status } } }"

# Exotel WhatsApp delivery-report codes
SENT, DELIVERED, SEEN, FAILED = 30001, 30002, 30003, 30004


# -- helpers -------------------------------------------------------------------------------------------------


async def counts(state: AppState) -> dict[str, int]:
    """How many rows of what a webhook may write exist, in every organization."""
    models = {
        "messages": Message,
        "contacts": Contact,
        "identities": ContactIdentity,
        "threads": Thread,
        "pending": PendingStatus,
        "events": Event,
    }
    async with system_session(state.sessionmaker) as session:
        return {name: await session.scalar(select(func.count()).select_from(model)) for name, model in models.items()}


async def stored(state: AppState, provider_id: str) -> Message | None:
    async with system_session(state.sessionmaker) as session:
        return await session.scalar(select(Message).where(Message.provider_message_id == provider_id))


async def stored_headers(state: AppState, message_id: uuid.UUID) -> dict[str, Any]:
    async with system_session(state.sessionmaker) as session:
        return await session.scalar(select(Message.headers).where(Message.id == message_id)) or {}


async def status_of(state: AppState, message_id: uuid.UUID) -> tuple[MessageStatus, str | None]:
    async with system_session(state.sessionmaker) as session:
        row = (await session.execute(select(Message.status, Message.error).where(Message.id == message_id))).one()
    return row[0], row[1]


async def pending_for(state: AppState, provider_id: str) -> int:
    async with system_session(state.sessionmaker) as session:
        return await session.scalar(
            select(func.count()).select_from(PendingStatus).where(PendingStatus.provider_message_id == provider_id)
        )


async def node(inbox: Inbox, global_id: str) -> dict:
    result = await inbox.gql(NODE, {"id": global_id})
    assert "errors" not in result, result
    return result["data"]["node"]


def ok(response: Any) -> None:
    assert response.status_code == 200, response.text


async def incoming(inbox: Inbox, hook: str, sid: str, from_: str = CUSTOMER_PHONE, body: str = "Hello") -> None:
    payload = exotel_whatsapp_incoming(sid=sid, from_=from_, to=WHATSAPP_NUMBER, body=body)
    ok(await post_json(inbox.api.http, hook, payload))


async def inbound_node(inbox: Inbox, state: AppState, sid: str) -> dict:
    row = await stored(state, sid)
    assert row is not None, f"no message {sid} was stored"
    return await message(inbox, message_global_id(row.id))


async def sent_whatsapp(
    inbox: Inbox, state: AppState, settings: Settings, thread_id: str, body: str
) -> tuple[uuid.UUID, str]:
    """(id, provider id) of an outbound WhatsApp message sent through the stand-in."""
    payload = await send(inbox, thread_id, "WHATSAPP", body)
    assert payload["userErrors"] == [], payload
    assert await deliver_now(state, settings, payload["message"]["id"]) == MessageStatus.SENT
    row_id = local_uuid(payload["message"]["id"])
    async with system_session(state.sessionmaker) as session:
        sid = await session.scalar(select(Message.provider_message_id).where(Message.id == row_id))
    assert sid
    return row_id, sid


async def exotel_whatsapp_window(inbox: Inbox, provider: StandIn) -> tuple[str, str]:
    """(the /whatsapp hook, a WhatsApp thread whose customer wrote a moment ago: the 24-hour window is open)."""
    configured = await configure_exotel(inbox, provider)
    hook = url_of(configured, "/whatsapp")
    thread = await whatsapp_thread(inbox)
    await incoming(inbox, hook, "window-opener", body="Any news?")
    return hook, thread["id"]


async def _gets_provider_id(state: AppState, message_id: uuid.UUID, sid: str) -> None:
    """What the delivery does when the provider answers: store its id, mark SENT, apply early statuses."""
    async with system_session(state.sessionmaker) as session, session.begin():
        row = await session.get(Message, message_id, with_for_update=True)
        assert row is not None and row.integration_id is not None
        row.provider_message_id = sid
        set_status(session, row, MessageStatus.SENT)
        await apply_pending(session, row)


# -- who may call ----------------------------------------------------------------------------------------------


async def test_an_unknown_token_is_refused_and_nothing_is_written(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_exotel(inbox, provider)
    hook = url_of(configured, "/whatsapp")
    before = await counts(state)
    http = inbox.api.http
    forged = hook.replace(hook.split("/")[-2], "not-the-token")
    payload = exotel_whatsapp_incoming(sid="x1", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="hi")
    response = await post_json(http, forged, payload)
    assert response.status_code == 403, response.text
    assert "token" in response.json()["error"]
    form = exotel_sms_incoming(sms_sid="x2", from_=CUSTOMER_PHONE, to=SMS_NUMBER, body="hi")
    response = await post_form(http, forged.removesuffix("/whatsapp") + "/sms", form)
    assert response.status_code == 403, response.text
    assert await counts(state) == before


async def test_a_token_works_only_on_its_own_providers_path_and_unknown_kinds_are_404(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    exotel = await configure_exotel(inbox, provider)
    twilio = await configure_twilio(inbox, provider, phoneNumbers=[{"number": "+14155550100", "channels": ["SMS"]}])
    exotel_token = url_of(exotel, "/whatsapp").split("/")[-2]
    twilio_token = url_of(twilio, "/messages").split("/")[-2]
    http = inbox.api.http
    before = await counts(state)
    # an Exotel token on Twilio's paths, and the other way round
    form = twilio_inbound(sid="SMx", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="hi", account_sid=TWILIO_SID)
    url = f"http://testserver/webhooks/twilio/{exotel_token}/messages"
    assert (await post_form(http, url, form, twilio_token=TWILIO_TOKEN)).status_code == 403
    url = f"http://testserver/webhooks/exotel/{twilio_token}/whatsapp"
    payload = exotel_whatsapp_incoming(sid="x1", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="hi")
    assert (await post_json(http, url, payload)).status_code == 403
    # kinds a provider does not have, and providers there are not
    for url in (
        f"http://testserver/webhooks/exotel/{exotel_token}/messages",
        f"http://testserver/webhooks/twilio/{twilio_token}/whatsapp",
        f"http://testserver/webhooks/plivo/{exotel_token}/sms",
    ):
        response = await post_json(http, url, payload)
        assert response.status_code == 404, (url, response.text)
    assert await counts(state) == before


async def test_twilio_needs_its_signature_over_the_url_and_the_form(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_twilio(inbox, provider)
    hook = url_of(configured, "/messages")
    http = inbox.api.http
    form = twilio_inbound(sid="SM1", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="hi", account_sid=TWILIO_SID)
    before = await counts(state)
    headers = {"content-type": "application/x-www-form-urlencoded"}
    # missing
    assert (await http.post(hook, data=form, headers=headers)).status_code == 403
    # signed with another auth token
    assert (await post_form(http, hook, form, twilio_token="not-the-auth-token")).status_code == 403
    # signed over another URL
    wrong_url = {**headers, "x-twilio-signature": twilio_signature(TWILIO_TOKEN, hook + "?x=1", form)}
    assert (await http.post(hook, data=form, headers=wrong_url)).status_code == 403
    # signed, then the body was changed
    tampered = {**headers, "x-twilio-signature": twilio_signature(TWILIO_TOKEN, hook, form)}
    response = await http.post(hook, data={**form, "Body": "send the cargo elsewhere"}, headers=tampered)
    assert response.status_code == 403, response.text
    assert "X-Twilio-Signature" in response.json()["error"]
    assert await counts(state) == before
    # correct: 200 with empty TwiML, and the message is stored
    response = await post_form(http, hook, form, twilio_token=TWILIO_TOKEN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text.strip().endswith("<Response></Response>")
    assert await stored(state, "SM1") is not None


async def test_the_ip_allowlist_refuses_other_addresses(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    # httpx.ASGITransport presents the client as ("127.0.0.1", 123)
    configured = await configure_exotel(inbox, provider, ipAllowlist=["10.0.0.0/8"])
    assert configured["integration"]["ipAllowlist"] == ["10.0.0.0/8"]
    hook = url_of(configured, "/whatsapp")
    before = await counts(state)
    payload = exotel_whatsapp_incoming(sid="ip1", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="hi")
    response = await post_json(inbox.api.http, hook, payload)
    assert response.status_code == 403, response.text
    assert "address" in response.json()["error"]
    assert await counts(state) == before
    await configure_exotel(inbox, provider, ipAllowlist=["10.0.0.0/8", "127.0.0.1/32"])
    ok(await post_json(inbox.api.http, hook, payload))
    assert await stored(state, "ip1") is not None


async def test_after_a_rotation_old_and_new_urls_work_until_the_old_one_expires(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_exotel(inbox, provider)
    old = url_of(configured, "/whatsapp")
    rotated = await inbox.ok(
        ROTATE, {"input": {"id": configured["integration"]["id"]}}, "integrationRotateWebhookToken"
    )
    new = url_of(rotated, "/whatsapp")
    assert new != old
    await incoming(inbox, old, "r1")
    await incoming(inbox, new, "r2")
    assert await stored(state, "r1") is not None and await stored(state, "r2") is not None
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(Integration).values(previous_webhook_token_expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    before = await counts(state)
    payload = exotel_whatsapp_incoming(sid="r3", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="late")
    response = await post_json(inbox.api.http, old, payload)
    assert response.status_code == 403, response.text
    assert await counts(state) == before
    await incoming(inbox, new, "r4")
    assert await stored(state, "r4") is not None


# -- bad payloads ------------------------------------------------------------------------------------------------


def _wa(**item: Any) -> bytes:
    return orjson.dumps({"whatsapp": {"messages": [item]}})


async def test_a_bad_payload_is_400_naming_the_problem_and_writes_nothing(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_exotel(inbox, provider)
    whatsapp, sms = url_of(configured, "/whatsapp"), url_of(configured, "/sms")
    http = inbox.api.http
    before = await counts(state)
    json_cases = [
        (b"this is not json", "exotel whatsapp"),
        (b'{"messages": []}', '{"whatsapp": {"messages": [...]}}'),
        (b"[1, 2]", '{"whatsapp": {"messages": [...]}}'),
        (_wa(callback_type="incoming_message", **{"from": CUSTOMER_PHONE}), "sid"),
        (_wa(sid="b1", callback_type="reaction", **{"from": CUSTOMER_PHONE}), "unknown callback_type 'reaction'"),
        (_wa(sid="b2", callback_type="dlr", exo_status_code="soon"), "exo_status_code"),
        (_wa(sid="b3", callback_type="incoming_message", content={"type": "text", "text": {"body": "x"}}), "from"),
    ]
    for body, words in json_cases:
        response = await http.post(whatsapp, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, (body, response.status_code, response.text)
        assert words in response.json()["error"], (body, response.text)
    form_cases = [
        ({"From": CUSTOMER_PHONE, "To": SMS_NUMBER, "Body": "hi"}, "SmsSid is missing"),
        ({"SmsSid": "b5", "To": SMS_NUMBER, "Body": "hi"}, "From is missing"),
        (exotel_sms_status(sms_sid="b6", status="teleported"), "unknown SMS Status 'teleported'"),
    ]
    for form, words in form_cases:
        response = await post_form(http, sms, form)
        assert response.status_code == 400, (form, response.text)
        assert words in response.json()["error"], (form, response.text)
    assert await counts(state) == before


async def test_a_whatsapp_message_whose_parts_are_not_objects_is_400(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_exotel(inbox, provider)
    whatsapp = url_of(configured, "/whatsapp")
    before = await counts(state)
    for content in ("hello", {"type": "text", "text": "hello"}, {"type": "image", "image": "http://x/y.jpg"}):
        body = _wa(sid="b4", callback_type="incoming_message", content=content, **{"from": CUSTOMER_PHONE})
        response = await inbox.api.http.post(whatsapp, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, (content, response.status_code, response.text)
        assert "exotel whatsapp" in response.json()["error"], response.text
    assert await counts(state) == before


async def test_a_bad_twilio_payload_is_400_naming_the_problem(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    configured = await configure_twilio(inbox, provider)
    messages, status = url_of(configured, "/messages"), url_of(configured, "/status")
    http = inbox.api.http
    before = await counts(state)
    cases = [
        (messages, {"From": CUSTOMER_PHONE, "Body": "hi"}, "MessageSid is missing"),
        (messages, {"MessageSid": "SMb1", "Body": "hi"}, "From is missing"),
        (messages, {"MessageSid": "SMb2", "From": CUSTOMER_PHONE, "NumMedia": "many"}, "NumMedia"),
        (status, {"MessageSid": "SMb3", "MessageStatus": "exploded"}, "unknown MessageStatus 'exploded'"),
    ]
    for url, form, words in cases:
        response = await post_form(http, url, form, twilio_token=TWILIO_TOKEN)
        assert response.status_code == 400, (form, response.text)
        assert words in response.json()["error"], (form, response.text)
    assert await counts(state) == before


# -- inbound -----------------------------------------------------------------------------------------------------


async def test_whatsapp_from_an_unknown_number_opens_a_thread_and_later_messages_follow_the_open_one(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_exotel(inbox, provider)
    hook = url_of(configured, "/whatsapp")
    http = inbox.api.http
    # a customer nobody knows writes (the number spaced as people type it)
    payload = exotel_whatsapp_incoming(
        sid="w1", from_="+91 98200 54321", to=WHATSAPP_NUMBER, body="Where is BL 4471?", profile_name="Ravi Kumar"
    )
    ok(await post_json(http, hook, payload))
    first = await inbound_node(inbox, state, "w1")
    assert (first["status"], first["direction"], first["channel"]) == ("RECEIVED", "INBOUND", "WHATSAPP")
    assert first["sender"] == CUSTOMER_PHONE and first["recipients"] == [WHATSAPP_NUMBER]
    assert first["body"] == "Where is BL 4471?"
    contact = await node(inbox, first["contact"]["id"])
    assert contact["verified"] is False and contact["name"] == "Ravi Kumar"
    assert contact["identities"] == [{"channel": "WHATSAPP", "address": CUSTOMER_PHONE}]
    thread = first["thread"]
    assert (thread["status"], thread["primaryChannel"]) == ("NEW", "WHATSAPP")
    assert (await node(inbox, thread["id"]))["contact"]["id"] == contact["id"]
    # a second message joins the same thread and the same contact
    await incoming(inbox, hook, "w2", body="Also BL 4472")
    second = await inbound_node(inbox, state, "w2")
    assert second["thread"]["id"] == thread["id"] and second["contact"]["id"] == contact["id"]
    # a PENDING thread is still the conversation (and the reply reopens it)
    await inbox.ok(THREAD_UPDATE, {"input": {"id": thread["id"], "status": "PENDING"}}, "threadUpdate")
    await incoming(inbox, hook, "w3", body="Any update?")
    third = await inbound_node(inbox, state, "w3")
    assert third["thread"]["id"] == thread["id"] and third["thread"]["status"] == "OPEN"
    # a RESOLVED thread is finished: the next message starts a new thread for the same contact
    await inbox.ok(THREAD_UPDATE, {"input": {"id": thread["id"], "status": "RESOLVED"}}, "threadUpdate")
    await incoming(inbox, hook, "w4", body="New booking please")
    fourth = await inbound_node(inbox, state, "w4")
    assert fourth["thread"]["id"] != thread["id"]
    assert (fourth["thread"]["status"], fourth["thread"]["primaryChannel"]) == ("NEW", "WHATSAPP")
    assert fourth["contact"]["id"] == contact["id"]
    assert (await node(inbox, thread["id"]))["status"] == "RESOLVED"
    visible = (await inbox.gql(VISIBLE))["data"]
    assert visible["threads"]["totalCount"] == 2 and visible["contacts"]["totalCount"] == 1


async def test_exotel_sms_inbound_opens_an_sms_thread(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    configured = await configure_exotel(inbox, provider)
    form = exotel_sms_incoming(sms_sid="s1", from_=OTHER_PHONE, to=SMS_NUMBER, body="Container arrived?")
    response = await post_form(inbox.api.http, url_of(configured, "/sms"), form)
    assert response.status_code == 200 and response.json() == {"ok": True}, response.text
    got = await inbound_node(inbox, state, "s1")
    assert (got["status"], got["direction"], got["channel"]) == ("RECEIVED", "INBOUND", "SMS")
    assert got["sender"] == OTHER_PHONE and got["recipients"] == [SMS_NUMBER]
    assert got["thread"]["primaryChannel"] == "SMS" and got["thread"]["status"] == "NEW"
    contact = await node(inbox, got["contact"]["id"])
    assert contact["verified"] is False
    assert contact["identities"] == [{"channel": "SMS", "address": OTHER_PHONE}]


async def test_exotel_sms_from_a_number_in_indian_national_form_reaches_the_known_contact(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    # Exotel (an Indian provider) posts the numbers of an incoming SMS without the country code, as in its
    # documentation's "From=09052161119&To=08088919888" or "From=9052161119": they are +91 numbers
    configured = await configure_exotel(inbox, provider)
    contact = await inbox.contact("Priya Shah", identities=[{"channel": "SMS", "address": CUSTOMER_PHONE}])
    thread = await inbox.thread("Delivery order", contactId=contact["id"], primaryChannel="SMS")
    hook = url_of(configured, "/sms")
    for sid, sender, to in (("n1", "09820054321", SMS_NUMBER), ("n2", "9820054321", "02250002000")):
        form = exotel_sms_incoming(sms_sid=sid, from_=sender, to=to, body="hi")
        response = await post_form(inbox.api.http, hook, form)
        assert response.status_code == 200, (sender, response.text)
        got = await inbound_node(inbox, state, sid)
        assert (got["sender"], got["recipients"]) == (CUSTOMER_PHONE, [SMS_NUMBER]), got
        assert got["thread"]["id"] == thread["id"], got


async def test_twilio_inbound_sms_and_whatsapp(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    configured = await configure_twilio(inbox, provider)
    hook = url_of(configured, "/messages")
    http = inbox.api.http
    wa = twilio_inbound(
        sid="SMwa1", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="On WhatsApp", account_sid=TWILIO_SID, whatsapp=True
    )
    assert wa["From"] == f"whatsapp:{CUSTOMER_PHONE}"
    response = await post_form(http, hook, wa, twilio_token=TWILIO_TOKEN)
    assert response.status_code == 200 and "<Response>" in response.text, response.text
    got = await inbound_node(inbox, state, "SMwa1")
    assert (got["channel"], got["direction"], got["status"]) == ("WHATSAPP", "INBOUND", "RECEIVED")
    assert got["sender"] == CUSTOMER_PHONE and got["recipients"] == [WHATSAPP_NUMBER]
    assert got["thread"]["primaryChannel"] == "WHATSAPP"
    contact = await node(inbox, got["contact"]["id"])
    assert contact["identities"] == [{"channel": "WHATSAPP", "address": CUSTOMER_PHONE}]
    assert contact["name"] == "Priya" and contact["verified"] is False

    sms = twilio_inbound(sid="SMsms1", from_=OTHER_PHONE, to=WHATSAPP_NUMBER, body="By SMS", account_sid=TWILIO_SID)
    ok(await post_form(http, hook, sms, twilio_token=TWILIO_TOKEN))
    got = await inbound_node(inbox, state, "SMsms1")
    assert (got["channel"], got["sender"], got["body"]) == ("SMS", OTHER_PHONE, "By SMS")
    assert got["thread"]["primaryChannel"] == "SMS"
    contact = await node(inbox, got["contact"]["id"])
    assert contact["identities"] == [{"channel": "SMS", "address": OTHER_PHONE}]


async def test_a_known_contact_gets_the_message_on_their_existing_thread(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    before = await counts(state)
    await incoming(inbox, url_of(configured, "/whatsapp"), "k1", body="Is the truck booked?")
    got = await inbound_node(inbox, state, "k1")
    assert got["thread"]["id"] == thread["id"]
    assert got["contact"]["id"] == (await node(inbox, thread["id"]))["contact"]["id"]
    assert got["contact"]["name"] == "Priya Shah"
    after = await counts(state)
    assert (after["contacts"], after["threads"], after["messages"]) == (
        before["contacts"],
        before["threads"],
        before["messages"] + 1,
    )


# -- idempotency -------------------------------------------------------------------------------------------------


async def test_one_message_posted_five_times_at_once_is_stored_once(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_exotel(inbox, provider)
    hook = url_of(configured, "/whatsapp")
    payload = exotel_whatsapp_incoming(sid="dup1", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="Once")
    responses = await asyncio.gather(*(post_json(inbox.api.http, hook, payload) for _ in range(5)))
    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    after = await counts(state)
    assert (after["messages"], after["contacts"], after["threads"]) == (1, 1, 1)
    async with system_session(state.sessionmaker) as session:
        added = await session.scalar(select(func.count()).select_from(Event).where(Event.type == "MESSAGE_ADDED"))
    assert added == 1


async def test_first_messages_of_a_new_sender_arriving_together_share_one_contact_and_thread(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    # a customer sends a text and four photos; the provider posts the five callbacks at the same time
    configured = await configure_exotel(inbox, provider)
    hook = url_of(configured, "/whatsapp")
    payloads = [
        exotel_whatsapp_incoming(sid=f"burst{n}", from_=OTHER_PHONE, to=WHATSAPP_NUMBER, body=f"part {n}")
        for n in range(5)
    ]
    responses = await asyncio.gather(*(post_json(inbox.api.http, hook, p) for p in payloads))
    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    after = await counts(state)
    assert after["messages"] == 5
    assert (after["contacts"], after["threads"]) == (1, 1), after


async def test_two_messages_of_a_new_sender_in_one_callback_share_one_contact_and_thread(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    # given a callback that brings two messages of a sender nobody knows (stored in one transaction, as the
    # webhook stores its items): the contact is created by the first, unseen by anyone else until the commit
    await configure_exotel(inbox, provider)
    before = await counts(state)
    async with system_session(state.sessionmaker) as session:
        integration = await session.scalar(select(Integration))
    assert integration is not None
    ctx = system_context(state).for_organization(integration.organization_id)
    async with ctx.transaction() as session:
        for n in range(2):
            item = Inbound(
                provider_id=f"pair{n}", channel=Channel.WHATSAPP, sender=OTHER_PHONE, to=WHATSAPP_NUMBER, body=f"{n}"
            )
            _, new = await receive(session, integration, item)
            assert new
    # then one contact, one thread with both messages in it
    after = await counts(state)
    grown = {name: after[name] - before[name] for name in ("messages", "contacts", "identities", "threads")}
    assert grown == {"messages": 2, "contacts": 1, "identities": 1, "threads": 1}, grown
    async with system_session(state.sessionmaker) as session:
        threads = set(await session.scalars(select(Message.thread_id).where(Message.provider_message_id.like("pair%"))))
    assert len(threads) == 1


async def test_a_status_for_an_unknown_id_posted_five_times_at_once_is_applied_once_the_message_has_it(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_exotel(inbox, provider)
    hook = url_of(configured, "/whatsapp")
    payload = exotel_whatsapp_dlr(sid="early-dup", exo_status_code=DELIVERED, to=CUSTOMER_PHONE)
    responses = await asyncio.gather(*(post_json(inbox.api.http, hook, payload) for _ in range(5)))
    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    assert await pending_for(state, "early-dup") >= 1
    assert (await counts(state))["messages"] == 0
    thread = await whatsapp_thread(inbox)
    await incoming(inbox, hook, "opener")
    queued = await send(inbox, thread["id"], "WHATSAPP", "Booked.")
    message_id = local_uuid(queued["message"]["id"])
    await _gets_provider_id(state, message_id, "early-dup")
    assert await status_of(state, message_id) == (MessageStatus.DELIVERED, None)
    assert await pending_for(state, "early-dup") == 0
    async with system_session(state.sessionmaker) as session:
        changes = list(
            await session.scalars(
                select(Event.payload).where(Event.type == "MESSAGE_STATUS_CHANGED").order_by(Event.id)
            )
        )
    mine = [p["status"] for p in changes if p["message_id"] == str(message_id)]
    assert mine == ["SENT", "DELIVERED"], mine


# -- status precedence -------------------------------------------------------------------------------------------


EXPECTED = [
    ((SENT, DELIVERED, SEEN, FAILED), MessageStatus.READ),
    ((SENT, FAILED), MessageStatus.FAILED),
    ((SENT, DELIVERED), MessageStatus.DELIVERED),
]
ORDERS = [(order, final) for codes, final in EXPECTED for order in itertools.permutations(codes)]


async def _each_order(check: Any) -> None:
    """`check(n, order, final)` for every order, eight messages at a time (each message's callbacks in order)."""
    gate = asyncio.Semaphore(8)

    async def one(n: int, order: tuple[int, ...], final: MessageStatus) -> None:
        async with gate:
            await check(n, order, final)

    await asyncio.gather(*(one(n, order, final) for n, (order, final) in enumerate(ORDERS)))


async def _post_receipts(http: Any, hook: str, sid: str, order: tuple[int, ...], description: str) -> None:
    for code in order:
        words = description if code == FAILED else ""
        receipt = exotel_whatsapp_dlr(sid=sid, exo_status_code=code, to=CUSTOMER_PHONE, description=words)
        ok(await post_json(http, hook, receipt))


async def test_every_order_of_whatsapp_receipts_ends_in_the_same_status(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    hook, thread_id = await exotel_whatsapp_window(inbox, provider)
    http = inbox.api.http

    async def check(n: int, order: tuple[int, ...], final: MessageStatus) -> None:
        message_id, sid = await sent_whatsapp(inbox, state, settings, thread_id, f"order {order}")
        await _post_receipts(http, hook, sid, order, "Recipient is not on WhatsApp")
        status, error = await status_of(state, message_id)
        assert status == final, (order, status)
        assert error == ("Recipient is not on WhatsApp" if final == MessageStatus.FAILED else None), (order, error)

    await _each_order(check)
    assert len(provider.sent("exotel_whatsapp")) == len(ORDERS) == 28
    # as the API shows it
    message_id, sid = await sent_whatsapp(inbox, state, settings, thread_id, "last")
    await _post_receipts(http, hook, sid, (FAILED,), "Blocked")
    shown = await message(inbox, message_global_id(message_id))
    assert (shown["status"], shown["error"]) == ("FAILED", "Blocked")


async def test_receipts_that_arrive_before_the_provider_id_are_applied_in_every_order(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    hook, thread_id = await exotel_whatsapp_window(inbox, provider)
    http = inbox.api.http

    async def check(n: int, order: tuple[int, ...], final: MessageStatus) -> None:
        sid = f"early-sid-{n}"
        queued = await send(inbox, thread_id, "WHATSAPP", f"early {order}")
        assert queued["userErrors"] == [], queued
        message_id = local_uuid(queued["message"]["id"])
        await _post_receipts(http, hook, sid, order, "Undeliverable")
        assert await pending_for(state, sid) == len(order)
        assert (await status_of(state, message_id))[0] == MessageStatus.QUEUED
        await _gets_provider_id(state, message_id, sid)
        status, error = await status_of(state, message_id)
        assert status == final, (order, status)
        assert error == ("Undeliverable" if final == MessageStatus.FAILED else None), (order, error)
        assert await pending_for(state, sid) == 0

    await _each_order(check)


async def test_a_twilio_status_sequence(inbox: Inbox, provider: StandIn, state: AppState, settings: Settings) -> None:
    configured = await configure_twilio(inbox, provider)
    http = inbox.api.http
    thread = await whatsapp_thread(inbox)
    inbound = twilio_inbound(
        sid="SMin", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="Hi", account_sid=TWILIO_SID, whatsapp=True
    )
    ok(await post_form(http, url_of(configured, "/messages"), inbound, twilio_token=TWILIO_TOKEN))
    assert (await inbound_node(inbox, state, "SMin"))["thread"]["id"] == thread["id"]
    hook = url_of(configured, "/status")
    message_id, sid = await sent_whatsapp(inbox, state, settings, thread["id"], "Your cargo is loaded.")
    assert sid.startswith("SM")
    [request] = provider.sent("twilio_message")
    assert urlsplit(request.form["StatusCallback"]).path == urlsplit(hook).path
    assert request.form["To"] == f"whatsapp:{CUSTOMER_PHONE}"
    steps = [
        ("queued", "SENT"),
        ("sent", "SENT"),
        ("delivered", "DELIVERED"),
        ("read", "READ"),
        ("undelivered", "READ"),
    ]
    for word, expected in steps:
        form = twilio_status(
            sid=sid,
            status=word,
            account_sid=TWILIO_SID,
            to=f"whatsapp:{CUSTOMER_PHONE}",
            from_=f"whatsapp:{WHATSAPP_NUMBER}",
        )
        response = await post_form(http, hook, form, twilio_token=TWILIO_TOKEN)
        assert response.status_code == 200 and response.json() == {"ok": True}, response.text
        assert (await message(inbox, message_global_id(message_id)))["status"] == expected, word
    # a failure on another message keeps Twilio's error code
    other_id, other_sid = await sent_whatsapp(inbox, state, settings, thread["id"], "Second")
    form = twilio_status(
        sid=other_sid,
        status="failed",
        account_sid=TWILIO_SID,
        to=CUSTOMER_PHONE,
        from_=WHATSAPP_NUMBER,
        error_code="63016",
    )
    ok(await post_form(http, hook, form, twilio_token=TWILIO_TOKEN))
    status, error = await status_of(state, other_id)
    assert status == MessageStatus.FAILED and error is not None and "63016" in error


async def test_exotel_sms_status_callbacks(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    configured = await configure_exotel(inbox, provider)
    hook = url_of(configured, "/sms")
    thread = await whatsapp_thread(inbox)
    ids = []
    for body in ("Your invoice is ready.", "Your container is out."):
        payload = await send(inbox, thread["id"], "SMS", body)
        assert payload["userErrors"] == [], payload
        assert await deliver_now(state, settings, payload["message"]["id"]) == MessageStatus.SENT
        ids.append(local_uuid(payload["message"]["id"]))
    requests = provider.sent("exotel_sms")
    assert [urlsplit(r.form["StatusCallback"]).path for r in requests] == [urlsplit(hook).path] * 2
    async with system_session(state.sessionmaker) as session:
        sids = [await session.scalar(select(Message.provider_message_id).where(Message.id == i)) for i in ids]
    # Exotel's "sent" means delivered to the handset
    ok(await post_form(inbox.api.http, hook, exotel_sms_status(sms_sid=sids[0], status="sent", to=CUSTOMER_PHONE)))
    assert await status_of(state, ids[0]) == (MessageStatus.DELIVERED, None)
    failed = exotel_sms_status(sms_sid=sids[1], status="failed", detailed_status="FAILED_DND", to=CUSTOMER_PHONE)
    ok(await post_form(inbox.api.http, hook, failed))
    assert await status_of(state, ids[1]) == (MessageStatus.FAILED, "FAILED_DND")
    shown = await message(inbox, message_global_id(ids[1]))
    assert (shown["status"], shown["error"]) == ("FAILED", "FAILED_DND")


# -- live --------------------------------------------------------------------------------------------------------


async def test_a_subscriber_sees_the_delivery_receipt(
    inbox: Inbox, org: Org, provider: StandIn, state: AppState, settings: Settings
) -> None:
    hook, thread_id = await exotel_whatsapp_window(inbox, provider)
    message_id, sid = await sent_whatsapp(inbox, state, settings, thread_id, "On its way")
    async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(inbox.token)
        await socket.subscribe("inbox", LIVE_EVENTS)
        await wait_subscribed(state, org.id, 1)
        receipt = exotel_whatsapp_dlr(sid=sid, exo_status_code=DELIVERED, to=CUSTOMER_PHONE)
        ok(await post_json(inbox.api.http, hook, receipt))
        async with asyncio.timeout(10):
            while True:
                _, event = await socket.next()
                if event["type"] == "MESSAGE_STATUS_CHANGED":
                    break
    assert event["message"] == {"id": message_global_id(message_id), "status": "DELIVERED"}
    async with system_session(state.sessionmaker) as session:
        payloads = list(
            await session.scalars(
                select(Event.payload).where(Event.type == "MESSAGE_STATUS_CHANGED").order_by(Event.id)
            )
        )
    assert [p["status"] for p in payloads if p["message_id"] == str(message_id)][-1] == "DELIVERED"


# -- media -------------------------------------------------------------------------------------------------------


async def test_an_inbound_image_is_downloaded_into_an_attachment(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    configured = await configure_exotel(inbox, provider)
    data = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20
    url = provider.add_media("photo.jpg", "image/jpeg", data)
    payload = exotel_whatsapp_incoming(
        sid="img1", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, media=("image", url, "Damaged seal")
    )
    ok(await post_json(inbox.api.http, url_of(configured, "/whatsapp"), payload))
    row = await stored(state, "img1")
    assert row is not None and row.body == "Damaged seal"
    assert await fetch_media(system_context(state, settings), row.id) == 1
    [download] = provider.sent("media")
    assert download.auth == ("exo-key", "exo-token")
    shown = await message(inbox, message_global_id(row.id))
    [attachment] = shown["attachments"]
    assert attachment["contentType"] == "image/jpeg" and attachment["size"] == len(data)
    assert attachment["filename"].startswith("whatsapp-media-1")
    [item] = (await stored_headers(state, row.id))["media"]
    assert item["attachment_id"] and not item.get("error")
    # a second run downloads nothing again
    assert await fetch_media(system_context(state, settings), row.id) == 0
    assert len(provider.sent("media")) == 1


async def test_media_from_another_host_or_over_the_size_limit_is_not_downloaded(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    configured = await configure_exotel(inbox, provider)
    hook = url_of(configured, "/whatsapp")
    provider.add_media("secret.pdf", "application/pdf", b"%PDF-1.7 internal")
    elsewhere = provider.base_url.replace("127.0.0.1", "localhost") + "/media/secret.pdf"
    # the provider's host on another port is another server (the platform's own /metrics, say): refused too
    port = int(provider.base_url.rsplit(":", 1)[1].split("/")[0])
    other_port = provider.base_url.replace(f":{port}", f":{port + 1}") + "/media/secret.pdf"
    big = provider.add_media("big.jpg", "image/jpeg", b"x" * 2048)
    small_limit = settings.model_copy(update={"attachment_max_bytes": 1024})
    cases = (("far", elsewhere, settings), ("port", other_port, settings), ("big", big, small_limit))
    for sid, url, config in cases:
        payload = exotel_whatsapp_incoming(
            sid=sid, from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, media=("image", url, None)
        )
        ok(await post_json(inbox.api.http, hook, payload))
        row = await stored(state, sid)
        assert row is not None
        assert await fetch_media(system_context(state, config), row.id) == 0
        [item] = (await stored_headers(state, row.id))["media"]
        assert item.get("error") and not item.get("attachment_id"), item
        if sid == "far":
            assert "localhost" in item["error"]
        elif sid == "port":
            assert f":{port + 1}" in item["error"] and "not the provider's server" in item["error"]
        else:
            assert "1024" in item["error"]
        assert (await message(inbox, message_global_id(row.id)))["attachments"] == []
    assert [r.path for r in provider.sent("media")] == ["/media/big.jpg"]
    async with system_session(state.sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(Attachment)) == 0


# -- tenancy -----------------------------------------------------------------------------------------------------


async def test_a_webhook_with_one_organizations_token_writes_only_into_that_organization(
    api: Api, inbox: Inbox, org: Org, provider: StandIn, state: AppState
) -> None:
    beta_org = await api.create_org("beta")
    beta = Inbox(api, beta_org, await api.token(beta_org.admin_email))
    acme_hook = url_of(await configure_exotel(inbox, provider), "/whatsapp")
    beta_hook = url_of(await configure_exotel(beta, provider), "/whatsapp")
    assert acme_hook != beta_hook
    # the same customer, on the same number, writes to Acme
    await incoming(inbox, acme_hook, "t1", body="For Acme only")
    ok(
        await post_form(
            inbox.api.http,
            acme_hook.removesuffix("/whatsapp") + "/sms",
            exotel_sms_incoming(sms_sid="t2", from_=CUSTOMER_PHONE, to=SMS_NUMBER, body="Acme SMS"),
        )
    )
    assert (await beta.gql(VISIBLE))["data"] == {"threads": {"totalCount": 0}, "contacts": {"totalCount": 0}}
    acme_visible = (await inbox.gql(VISIBLE))["data"]
    assert acme_visible["threads"]["totalCount"] >= 1 and acme_visible["contacts"]["totalCount"] >= 1
    row = await stored(state, "t1")
    assert row is not None and row.organization_id == org.id
    assert (await beta.gql(NODE, {"id": message_global_id(row.id)}))["data"]["node"] is None
    # Beta's own message goes to Beta, and Acme's thread is untouched
    await incoming(beta, beta_hook, "t3", body="For Beta")
    async with system_session(state.sessionmaker) as session:
        owners = dict((await session.execute(select(Message.provider_message_id, Message.organization_id))).all())
        contact_owners = set(await session.scalars(select(Contact.organization_id)))
    assert owners == {"t1": org.id, "t2": org.id, "t3": beta_org.id}
    assert contact_owners == {org.id, beta_org.id}
    assert (await beta.gql(VISIBLE))["data"] == {"threads": {"totalCount": 1}, "contacts": {"totalCount": 1}}
    # the same sid in each organization is a different message
    await incoming(beta, beta_hook, "t1", body="Beta's own t1")
    async with system_session(state.sessionmaker) as session:
        bodies = set(await session.scalars(select(Message.body).where(Message.provider_message_id == "t1")))
    assert bodies == {"For Acme only", "Beta's own t1"}
