"""Outbound WhatsApp and SMS through Exotel and Twilio against the stand-in provider: the wire formats, the
delivery state machine's error classes and at-most-once claim, the Dramatiq actor's Retry-After, body limits and
SMS segments, the 24-hour WhatsApp window and templates, integration configuration, and permissions."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import pytest
from sqlalchemy import func, select, text, update

from banxway.db.models import Integration, Message
from banxway.db.session import system_session
from banxway.enums import Direction, MessageStatus
from banxway.resolvers.sending import RetryLater
from banxway.secrets import SecretBox
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox
from tests.live_helpers import local_uuid
from tests.messaging_helpers import (
    CONFIGURE,
    CUSTOMER_PHONE,
    EXOTEL_KEY,
    EXOTEL_SID,
    EXOTEL_TOKEN,
    SMS_NUMBER,
    TEMPLATE,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_NUMBER,
    configure_exotel,
    configure_twilio,
    deliver_now,
    post_form,
    post_json,
    send,
    url_of,
    whatsapp_thread,
)
from tests.providers import StandIn, exotel_whatsapp_dlr, exotel_whatsapp_incoming, twilio_inbound

PUBLIC_URL = "https://bx.example.com"
SECOND_NUMBER = "+912250003000"
RENDERED = "Hello Priya, your shipment SHP-1 has departed."
SHIPMENT_TEMPLATE = {"name": "shipment_update", "language": "en", "parameters": ["Priya", "SHP-1"]}

INTEGRATIONS = """
{ integrations { id type accountSid apiKey baseUrl active ipAllowlist lastError lastTestedAt createdAt
                 previousWebhookTokenExpiresAt webhookUrls { purpose url }
                 phoneNumbers { id number channels label assignee { id } }
                 whatsappTemplates { name language body category parameterCount provider } } }
"""
INTEGRATION_TEST = """
mutation($input: IntegrationIdInput!) {
  integrationTest(input: $input) { ok detail integration { id lastError lastTestedAt } userErrors { field code message } }
}
"""
ASSIGN = """
mutation($input: PhoneNumberAssignInput!) {
  phoneNumberAssign(input: $input) { phoneNumber { id number assignee { id } } userErrors { field code message } }
}
"""
TEMPLATES = "{ whatsappTemplates { name language body category parameterCount provider } }"
STATUS = "{ configurationStatus { channel ready missing } }"


# -- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture
def public(settings: Settings) -> Settings:
    """The settings with BANXWAY_PUBLIC_URL, for delivery runs whose callback URLs we check."""
    return settings.model_copy(update={"public_url": PUBLIC_URL})


def webhook_token(configured: dict) -> str:
    return url_of(configured, "/whatsapp" if configured["integration"]["type"] == "EXOTEL" else "/status").split("/")[
        -2
    ]


async def stored(state: AppState, message_id: str) -> Any:
    """The message's row (status, error, provider id, segments, body, sender, created_at)."""
    async with system_session(state.sessionmaker) as session:
        result = await session.execute(
            select(
                Message.status,
                Message.error,
                Message.provider_message_id,
                Message.segments,
                Message.body,
                Message.sender,
                Message.created_at,
            ).where(Message.id == local_uuid(message_id))
        )
        return result.one()


async def set_message(state: AppState, message_id: str, **values: Any) -> None:
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(update(Message).where(Message.id == local_uuid(message_id)).values(**values))


async def outbound_count(state: AppState) -> int:
    async with system_session(state.sessionmaker) as session:
        return await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == Direction.OUTBOUND)
        )


async def exotel_inbound(inbox: Inbox, configured: dict, sid: str = "in-1", to: str = WHATSAPP_NUMBER) -> None:
    """The customer writes on WhatsApp (opens the 24-hour window)."""
    payload = exotel_whatsapp_incoming(sid=sid, from_=CUSTOMER_PHONE, to=to, body="Where is my container?")
    response = await post_json(inbox.api.http, url_of(configured, "/whatsapp"), payload)
    assert response.status_code == 200, response.text


async def sent_ok(inbox: Inbox, thread_id: str, channel: str, body: str = "", **fields: Any) -> dict:
    payload = await send(inbox, thread_id, channel, body, **fields)
    assert payload["userErrors"] == [], payload
    assert payload["message"]["status"] == "QUEUED", payload
    return payload["message"]


async def user_id(api: Api, email: str) -> str:
    return (await api.login(email))["user"]["id"]


def forbidden(result: dict) -> bool:
    return bool(result.get("errors")) and result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


# -- 1. wire formats -----------------------------------------------------------------------------------------


async def test_exotel_sms_wire_format(inbox: Inbox, provider: StandIn, state: AppState, public: Settings) -> None:
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container CMAU1234567 is out of the port.")
    assert message["sender"] == SMS_NUMBER and message["recipients"] == [CUSTOMER_PHONE]

    assert await deliver_now(state, public, message["id"]) == MessageStatus.SENT

    [request] = provider.sent("exotel_sms")
    assert request.method == "POST" and request.path == f"/v1/Accounts/{EXOTEL_SID}/Sms/send.json"
    assert request.auth == (EXOTEL_KEY, EXOTEL_TOKEN)
    assert request.form == {
        "From": SMS_NUMBER,
        "To": CUSTOMER_PHONE,
        "Body": "Your container CMAU1234567 is out of the port.",
        "StatusCallback": f"{PUBLIC_URL}/webhooks/exotel/{webhook_token(configured)}/sms",
        "CustomField": str(local_uuid(message["id"])),
    }
    row = await stored(state, message["id"])
    assert row.status == MessageStatus.SENT and row.error is None
    assert row.provider_message_id and re.fullmatch(r"[0-9a-f]{32}", row.provider_message_id)


async def test_exotel_whatsapp_text_wire_format(
    inbox: Inbox, provider: StandIn, state: AppState, public: Settings
) -> None:
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    await exotel_inbound(inbox, configured)
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", "It sailed yesterday.")

    assert await deliver_now(state, public, message["id"]) == MessageStatus.SENT

    [request] = provider.sent("exotel_whatsapp")
    assert request.path == f"/v2/accounts/{EXOTEL_SID}/messages"
    assert request.auth == (EXOTEL_KEY, EXOTEL_TOKEN)
    assert request.json == {
        "custom_data": str(local_uuid(message["id"])),
        "status_callback": f"{PUBLIC_URL}/webhooks/exotel/{webhook_token(configured)}/whatsapp",
        "whatsapp": {
            "messages": [
                {
                    "from": WHATSAPP_NUMBER,
                    "to": CUSTOMER_PHONE,
                    "content": {"type": "text", "text": {"body": "It sailed yesterday."}},
                }
            ]
        },
    }
    row = await stored(state, message["id"])
    assert row.status == MessageStatus.SENT
    assert row.provider_message_id and re.fullmatch(r"[0-9a-f]{32}", row.provider_message_id)


async def test_exotel_whatsapp_template_wire_format(
    inbox: Inbox, provider: StandIn, state: AppState, public: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", template=SHIPMENT_TEMPLATE)
    assert message["body"] == RENDERED

    assert await deliver_now(state, public, message["id"]) == MessageStatus.SENT

    [request] = provider.sent("exotel_whatsapp")
    [out] = request.json["whatsapp"]["messages"]
    assert (out["from"], out["to"]) == (WHATSAPP_NUMBER, CUSTOMER_PHONE)
    assert out["content"] == {
        "type": "template",
        "template": {
            "name": "shipment_update",
            "language": {"code": "en"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Priya"}, {"type": "text", "text": "SHP-1"}]}
            ],
        },
    }
    assert (await stored(state, message["id"])).provider_message_id


async def test_twilio_sms_and_whatsapp_wire_format(
    inbox: Inbox, provider: StandIn, state: AppState, public: Settings
) -> None:
    configured = await configure_twilio(inbox, provider)
    token = webhook_token(configured)
    thread = await whatsapp_thread(inbox)
    form = twilio_inbound(
        sid="SMin1", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="Hi", account_sid=TWILIO_SID, whatsapp=True
    )
    response = await post_form(inbox.api.http, url_of(configured, "/messages"), form, twilio_token=TWILIO_TOKEN)
    assert response.status_code == 200, response.text

    sms = await sent_ok(inbox, thread["id"], "SMS", "Your B/L is ready.")
    whatsapp = await sent_ok(inbox, thread["id"], "WHATSAPP", "Your B/L is attached.")
    assert await deliver_now(state, public, sms["id"]) == MessageStatus.SENT
    assert await deliver_now(state, public, whatsapp["id"]) == MessageStatus.SENT

    first, second = provider.sent("twilio_message")
    for request in (first, second):
        assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
        assert request.auth == (TWILIO_SID, TWILIO_TOKEN)
    status_callback = f"{PUBLIC_URL}/webhooks/twilio/{token}/status"
    assert first.form == {
        "To": CUSTOMER_PHONE,
        "From": WHATSAPP_NUMBER,
        "Body": "Your B/L is ready.",
        "StatusCallback": status_callback,
    }
    assert second.form == {
        "To": f"whatsapp:{CUSTOMER_PHONE}",
        "From": f"whatsapp:{WHATSAPP_NUMBER}",
        "Body": "Your B/L is attached.",
        "StatusCallback": status_callback,
    }
    for message in (sms, whatsapp):
        row = await stored(state, message["id"])
        assert row.status == MessageStatus.SENT
        assert row.provider_message_id and re.fullmatch(r"SM[0-9a-f]{32}", row.provider_message_id)


async def test_twilio_template_is_sent_by_content_sid(
    inbox: Inbox, provider: StandIn, state: AppState, public: Settings
) -> None:
    await configure_twilio(inbox, provider, whatsappTemplates=[{**TEMPLATE, "contentSid": "HX" + "a" * 32}])
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", template=SHIPMENT_TEMPLATE)
    assert message["body"] == RENDERED

    assert await deliver_now(state, public, message["id"]) == MessageStatus.SENT

    [request] = provider.sent("twilio_message")
    assert request.form is not None
    assert request.form["ContentSid"] == "HX" + "a" * 32
    assert json.loads(request.form["ContentVariables"]) == {"1": "Priya", "2": "SHP-1"}
    assert "Body" not in request.form
    assert request.form["To"] == f"whatsapp:{CUSTOMER_PHONE}"
    assert request.form["From"] == f"whatsapp:{WHATSAPP_NUMBER}"
    assert (await stored(state, message["id"])).status == MessageStatus.SENT


# -- 2. error classes ----------------------------------------------------------------------------------------


async def test_a_refusal_fails_the_message_at_once(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    cases = [
        ("exotel_sms", 400, "Bad request (code 40001)"),
        ("exotel_sms", 401, "Authentication failed (code 40101)"),
        ("exotel_sms", 403, "Forbidden (code 40301)"),
        ("exotel_whatsapp", 400, "Bad request (code 4001)"),
        ("exotel_whatsapp", 403, "Forbidden (code 4031)"),
    ]
    for kind, status, words in cases:
        before = len(provider.sent(kind))
        if kind == "exotel_whatsapp":
            message = await sent_ok(inbox, thread["id"], "WHATSAPP", template=SHIPMENT_TEMPLATE)
        else:
            message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
        provider.fail_next(kind, status)

        assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED, (kind, status)

        row = await stored(state, message["id"])
        assert row.status == MessageStatus.FAILED
        assert row.error and f"answered {status}" in row.error and words in row.error, row.error
        assert len(provider.sent(kind)) == before + 1
        # a redelivered job sends nothing more
        assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED
        assert len(provider.sent(kind)) == before + 1

    # Exotel accepts the request but refuses the message inside its reply
    refused = {
        "request_id": "r1",
        "method": "POST",
        "http_code": 202,
        "response": {
            "whatsapp": {
                "messages": [
                    {
                        "code": 400,
                        "status": "failure",
                        "data": None,
                        "error_data": {"code": 1009, "message": "Template not approved", "description": "Not approved"},
                    }
                ]
            }
        },
    }
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", template=SHIPMENT_TEMPLATE)
    provider.fail_next("exotel_whatsapp", 202, body=refused)
    assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED
    row = await stored(state, message["id"])
    assert row.error and "Not approved (code 1009)" in row.error, row.error


async def test_a_twilio_refusal_fails_the_message_with_twilios_words(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_twilio(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    provider.fail_next(
        "twilio_message", 400, body={"code": 21211, "message": "The 'To' number is not valid.", "status": 400}
    )

    assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED

    row = await stored(state, message["id"])
    assert row.error == "TWILIO answered 400: The 'To' number is not valid. (code 21211)"
    assert len(provider.sent("twilio_message")) == 1


async def test_rate_limit_retries_after_the_providers_retry_after(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    provider.fail_next("exotel_sms", 429, headers={"Retry-After": "7"})

    with pytest.raises(RetryLater) as raised:
        await deliver_now(state, settings, message["id"])

    assert raised.value.retry_after == 7
    row = await stored(state, message["id"])
    assert row.status == MessageStatus.QUEUED
    assert row.error and "429" in row.error and "Too many requests" in row.error
    assert len(provider.sent("exotel_sms")) == 1


async def test_server_error_then_success_sends_once_more(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    provider.fail_next("exotel_sms", 500)

    with pytest.raises(RetryLater) as raised:
        await deliver_now(state, settings, message["id"])
    assert raised.value.retry_after is None
    row = await stored(state, message["id"])
    assert row.status == MessageStatus.QUEUED and row.error and "500" in row.error

    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT
    row = await stored(state, message["id"])
    assert row.status == MessageStatus.SENT and row.error is None and row.provider_message_id
    assert len(provider.sent("exotel_sms")) == 2


async def test_a_provider_that_cannot_be_reached_is_retried_later(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    # nothing was sent (connection refused): safe to try again
    await configure_exotel(inbox, provider, baseUrl="http://127.0.0.1:9")
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    with pytest.raises(RetryLater):
        await deliver_now(state, settings, message["id"])
    row = await stored(state, message["id"])
    assert row.status == MessageStatus.QUEUED
    assert row.error and "could not be reached" in row.error


async def test_a_provider_that_takes_the_request_but_does_not_answer_is_not_sent_again(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    # the request went out and no answer came in time: the provider may have taken it
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    await post_json(
        inbox.api.http,
        url_of(configured, "/whatsapp"),
        exotel_whatsapp_incoming(sid="in-slow", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="Status?"),
    )
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", "Your container is out.")
    provider.delay_next("exotel_whatsapp", 1.5)
    impatient = settings.model_copy(update={"provider_timeout_seconds": 0.3})
    started = asyncio.get_running_loop().time()
    assert await deliver_now(state, impatient, message["id"]) == MessageStatus.SENDING
    assert asyncio.get_running_loop().time() - started < 1.4
    row = await stored(state, message["id"])
    assert row.status == MessageStatus.SENDING
    assert row.error and "may have accepted" in row.error
    # a redelivery sends nothing
    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENDING
    await asyncio.sleep(1.5)
    assert len(provider.sent("exotel_whatsapp")) == 1
    # the provider's receipt, which carries our id as custom_data, settles it
    dlr = exotel_whatsapp_dlr(sid="late-sid", exo_status_code=30002, to=CUSTOMER_PHONE)
    dlr["whatsapp"]["messages"][0]["custom_data"] = str(local_uuid(message["id"]))
    assert (await post_json(inbox.api.http, url_of(configured, "/whatsapp"), dlr)).status_code == 200
    row = await stored(state, message["id"])
    assert (row.status, row.provider_message_id, row.error) == (MessageStatus.DELIVERED, "late-sid", None)


async def test_a_transient_failure_of_an_old_message_fails_it(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    await set_message(state, message["id"], created_at=datetime.now(UTC) - timedelta(hours=2))
    provider.fail_next("exotel_sms", 503)

    assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED

    row = await stored(state, message["id"])
    assert row.status == MessageStatus.FAILED and row.error and "503" in row.error
    assert len(provider.sent("exotel_sms")) == 1


# -- 3. at most once -----------------------------------------------------------------------------------------


async def test_delivering_twice_sends_once(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")

    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT
    first_id = (await stored(state, message["id"])).provider_message_id
    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT

    assert len(provider.sent("exotel_sms")) == 1
    assert (await stored(state, message["id"])).provider_message_id == first_id


async def test_a_message_stuck_in_sending_fails_without_a_request(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    await set_message(
        state, message["id"], status=MessageStatus.SENDING, updated_at=datetime.now(UTC) - timedelta(minutes=11)
    )

    recent = await sent_ok(inbox, thread["id"], "SMS", "In flight.")
    await set_message(
        state, recent["id"], status=MessageStatus.SENDING, updated_at=datetime.now(UTC) - timedelta(minutes=9)
    )

    assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED
    assert await deliver_now(state, settings, recent["id"]) == MessageStatus.SENDING

    row = await stored(state, message["id"])
    assert row.status == MessageStatus.FAILED and row.error and "interrupted" in row.error
    assert (await stored(state, recent["id"])).status == MessageStatus.SENDING
    assert provider.requests == []


async def test_concurrent_deliveries_send_once(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    provider.delay_next("exotel_sms", 0.3)

    results = await asyncio.gather(*(deliver_now(state, settings, message["id"]) for _ in range(3)))

    assert MessageStatus.SENT in results
    assert set(results) <= {MessageStatus.SENT, MessageStatus.SENDING}, results
    assert len(provider.sent("exotel_sms")) == 1
    assert (await stored(state, message["id"])).status == MessageStatus.SENT


# -- 4. the Dramatiq actor -----------------------------------------------------------------------------------


async def test_the_actor_retries_after_the_providers_retry_after(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from banxway.tasks import broker as broker_module
    from banxway.tasks.actors import deliver_message
    from banxway.tasks.consequences import new_worker_state

    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    provider.fail_next("exotel_sms", 429, headers={"Retry-After": "7"})
    monkeypatch.setattr(broker_module, "_state", None)  # restored afterwards
    worker = new_worker_state(settings)
    broker_module.set_state(worker)
    try:
        # the actor's own coroutine function (Actor.fn wraps it for the worker's event loop thread)
        with pytest.raises(dramatiq.Retry) as raised:
            await deliver_message.fn.__wrapped__(str(local_uuid(message["id"])))
        assert raised.value.delay == 7000
        assert (await stored(state, message["id"])).status == MessageStatus.QUEUED

        # and the next run sends it
        await deliver_message.fn.__wrapped__(str(local_uuid(message["id"])))
    finally:
        await worker.broadcast.disconnect()
        await worker.engine.dispose()
    assert (await stored(state, message["id"])).status == MessageStatus.SENT
    assert len(provider.sent("exotel_sms")) == 2


# -- 5. limits -----------------------------------------------------------------------------------------------


async def test_a_whatsapp_body_over_4096_characters_is_too_long(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    await exotel_inbound(inbox, configured)

    payload = await send(inbox, thread["id"], "WHATSAPP", "x" * 4097)
    assert payload["message"] is None
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("TOO_LONG", ["body"])
    assert await outbound_count(state) == 0

    # exactly 4,096 goes, whole
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", "x" * 4096)
    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT
    [request] = provider.sent("exotel_whatsapp")
    assert request.json["whatsapp"]["messages"][0]["content"]["text"]["body"] == "x" * 4096


async def test_sms_segments_and_the_whole_body_in_one_request(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    cases = [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("ą" * 70, 1),
        ("ą" * 71, 2),
        ("a" * 158 + "€", 1),  # € takes two septets: 160
        ("a" * 159 + "€", 2),  # 161
        ("€" * 80, 1),
        ("a" * 306, 2),  # 153 + 153
        ("a" * 307, 3),
    ]
    for body, segments in cases:
        message = await sent_ok(inbox, thread["id"], "SMS", body)
        assert message["segments"] == segments, (body, message["segments"])

    body = "Your container CMAU1234567 has left Nhava Sheva. " * 8 + "Charges: €120 {THC}."
    message = await sent_ok(inbox, thread["id"], "SMS", body)
    assert message["segments"] == 3
    assert (await stored(state, message["id"])).segments == 3

    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT

    [request] = provider.sent("exotel_sms")
    assert request.form is not None and request.form["Body"] == body


# -- 6. the 24-hour window and templates ---------------------------------------------------------------------


async def test_the_whatsapp_window(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)

    # the contact never wrote: closed
    payload = await send(inbox, thread["id"], "WHATSAPP", "Following up on your booking.")
    assert payload["message"] is None
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("WINDOW_CLOSED", ["body"])
    assert "template" in error["message"]
    assert await outbound_count(state) == 0

    # they wrote: open
    await exotel_inbound(inbox, configured)
    allowed = await sent_ok(inbox, thread["id"], "WHATSAPP", "Following up on your booking.")
    assert allowed["body"] == "Following up on your booking."

    # their last message is 25 hours old: closed again
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.direction == Direction.INBOUND)
            .values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )
    payload = await send(inbox, thread["id"], "WHATSAPP", "Are you there?")
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("WINDOW_CLOSED", ["body"])]
    assert payload["message"] is None
    assert await outbound_count(state) == 1

    # SMS has no window
    await sent_ok(inbox, thread["id"], "SMS", "Are you there?")
    assert await outbound_count(state) == 2


async def test_templates(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)

    listed = await inbox.gql(TEMPLATES)
    assert "errors" not in listed, listed
    assert listed["data"]["whatsappTemplates"] == [
        {
            "name": "shipment_update",
            "language": "en",
            "body": TEMPLATE["body"],
            "category": "UTILITY",
            "parameterCount": 2,
            "provider": "EXOTEL",
        }
    ]

    # outside the window, a template goes, rendered
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", template=SHIPMENT_TEMPLATE)
    assert message["body"] == RENDERED
    assert (await stored(state, message["id"])).body == RENDERED

    wrong_count = await send(inbox, thread["id"], "WHATSAPP", template={**SHIPMENT_TEMPLATE, "parameters": ["Priya"]})
    assert [(e["code"], e["field"]) for e in wrong_count["userErrors"]] == [("INVALID", ["template", "parameters"])]
    unknown = await send(inbox, thread["id"], "WHATSAPP", template={**SHIPMENT_TEMPLATE, "name": "no_such_template"})
    assert [(e["code"], e["field"]) for e in unknown["userErrors"]] == [("NOT_FOUND", ["template", "name"])]
    other_language = await send(inbox, thread["id"], "WHATSAPP", template={**SHIPMENT_TEMPLATE, "language": "hi"})
    assert [e["code"] for e in other_language["userErrors"]] == ["NOT_FOUND"]
    on_sms = await send(inbox, thread["id"], "SMS", template=SHIPMENT_TEMPLATE)
    assert [(e["code"], e["field"]) for e in on_sms["userErrors"]] == [("INVALID", ["template"])]
    assert await outbound_count(state) == 1


# -- 7. configuration ----------------------------------------------------------------------------------------


async def _configure(inbox: Inbox, values: dict) -> dict:
    result = await inbox.gql(CONFIGURE, {"input": values})
    assert "errors" not in result, result
    return result["data"]["integrationConfigure"]


def _exotel(provider: StandIn, **fields: Any) -> dict:
    values = {
        "type": "EXOTEL",
        "accountSid": EXOTEL_SID,
        "apiKey": EXOTEL_KEY,
        "apiToken": EXOTEL_TOKEN,
        "baseUrl": provider.base_url,
        "phoneNumbers": [{"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP"]}],
    }
    values.update(fields)
    return {k: v for k, v in values.items() if v is not None}


async def test_configure_validation(inbox: Inbox, provider: StandIn) -> None:
    cases: list[tuple[dict, str, list[str]]] = [
        (_exotel(provider, apiToken=None), "INVALID", ["apiToken"]),
        (_exotel(provider, apiToken="   "), "INVALID", ["apiToken"]),
        (_exotel(provider, apiKey=None), "INVALID", ["apiKey"]),
        ({"type": "TWILIO", "apiToken": TWILIO_TOKEN}, "INVALID", ["accountSid"]),
        (_exotel(provider, baseUrl="ftp://api.exotel.com"), "INVALID", ["baseUrl"]),
        (_exotel(provider, baseUrl="not a url"), "INVALID", ["baseUrl"]),
        (_exotel(provider, ipAllowlist=["10.0.0.0/8", "not-an-ip"]), "INVALID", ["ipAllowlist", "1"]),
        (
            _exotel(provider, phoneNumbers=[{"number": WHATSAPP_NUMBER, "channels": []}]),
            "INVALID",
            ["phoneNumbers", "0", "channels"],
        ),
        (
            _exotel(provider, phoneNumbers=[{"number": WHATSAPP_NUMBER, "channels": ["EMAIL"]}]),
            "INVALID",
            ["phoneNumbers", "0", "channels"],
        ),
        (
            _exotel(
                provider,
                phoneNumbers=[
                    {"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP"]},
                    {"number": WHATSAPP_NUMBER, "channels": ["SMS"]},
                ],
            ),
            "TAKEN",
            ["phoneNumbers", "1", "number"],
        ),
        (
            _exotel(provider, whatsappTemplates=[{"name": "x", "language": "en", "body": "Hi {{2}}"}]),
            "INVALID",
            ["whatsappTemplates", "0", "body"],
        ),
    ]
    for values, code, field in cases:
        payload = await _configure(inbox, values)
        assert payload["integration"] is None, (values, payload)
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, field)], (values, payload)
    listed = await inbox.gql(INTEGRATIONS)
    assert listed["data"]["integrations"] == []

    # a number of another integration of the organization
    await configure_exotel(inbox, provider)
    taken = await _configure(
        inbox,
        {
            "type": "TWILIO",
            "accountSid": TWILIO_SID,
            "apiToken": TWILIO_TOKEN,
            "phoneNumbers": [{"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP"]}],
        },
    )
    assert [(e["code"], e["field"]) for e in taken["userErrors"]] == [("TAKEN", ["phoneNumbers"])]
    assert [i["type"] for i in (await inbox.gql(INTEGRATIONS))["data"]["integrations"]] == ["EXOTEL"]


async def test_the_api_token_is_stored_encrypted_and_never_shown(
    inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_exotel(inbox, provider)
    async with system_session(state.sessionmaker) as session:
        column = await session.scalar(text("SELECT api_token FROM integrations"))
    assert column and EXOTEL_TOKEN not in column
    assert SecretBox(state.secret_key).decrypt(column) == EXOTEL_TOKEN

    listed = await inbox.gql(INTEGRATIONS)
    assert "errors" not in listed, listed
    assert EXOTEL_TOKEN not in json.dumps(listed) and EXOTEL_TOKEN not in json.dumps(configured)
    fields = await inbox.gql('{ __type(name: "Integration") { fields { name } } }')
    names = {f["name"] for f in fields["data"]["__type"]["fields"]}
    assert "apiToken" not in names and not any("secret" in n.lower() for n in names)


async def test_updating_one_field_keeps_the_rest(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    configured = (await configure_exotel(inbox, provider, ipAllowlist=["10.1.2.3"]))["integration"]
    assert configured["active"] is True and configured["ipAllowlist"] == ["10.1.2.3/32"]

    updated = (await inbox.ok(CONFIGURE, {"input": {"type": "EXOTEL", "active": False}}, "integrationConfigure"))[
        "integration"
    ]

    assert updated["active"] is False
    assert {k: v for k, v in updated.items() if k != "active"} == {k: v for k, v in configured.items() if k != "active"}
    async with system_session(state.sessionmaker) as session:
        column = await session.scalar(select(Integration.api_token))
    assert SecretBox(state.secret_key).decrypt(column) == EXOTEL_TOKEN


async def test_replacing_numbers_keeps_the_assignee_of_a_number_that_stays(
    api: Api, org: Org, inbox: Inbox, provider: StandIn
) -> None:
    configured = (await configure_exotel(inbox, provider))["integration"]
    [whatsapp] = [n for n in configured["phoneNumbers"] if n["number"] == WHATSAPP_NUMBER]
    admin = await user_id(api, org.admin_email)
    await inbox.ok(ASSIGN, {"input": {"phoneNumberId": whatsapp["id"], "userId": admin}}, "phoneNumberAssign")

    payload = await inbox.ok(
        CONFIGURE,
        {
            "input": {
                "type": "EXOTEL",
                "phoneNumbers": [
                    {"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP"], "label": "Ops"},
                    {"number": SECOND_NUMBER, "channels": ["SMS"]},
                ],
            }
        },
        "integrationConfigure",
    )

    numbers = {n["number"]: n for n in payload["integration"]["phoneNumbers"]}
    assert set(numbers) == {WHATSAPP_NUMBER, SECOND_NUMBER}  # SMS_NUMBER is gone
    kept = numbers[WHATSAPP_NUMBER]
    assert kept["id"] == whatsapp["id"] and kept["assignee"] == {"id": admin}
    assert (kept["channels"], kept["label"]) == (["WHATSAPP"], "Ops")
    assert numbers[SECOND_NUMBER]["assignee"] is None
    listed = await inbox.gql("{ phoneNumbers { number assignee { id } } }")
    assert listed["data"]["phoneNumbers"] == [
        {"number": WHATSAPP_NUMBER, "assignee": {"id": admin}},
        {"number": SECOND_NUMBER, "assignee": None},
    ]


async def test_integration_test_with_good_and_wrong_credentials(inbox: Inbox, provider: StandIn) -> None:
    configured = (await configure_exotel(inbox, provider))["integration"]

    good = await inbox.ok(INTEGRATION_TEST, {"input": {"id": configured["id"]}}, "integrationTest")
    assert good["ok"] is True
    assert "1523.50 INR" in good["detail"]
    assert good["integration"]["lastError"] is None and good["integration"]["lastTestedAt"]
    [balance] = provider.sent("exotel_balance")
    assert balance.auth == (EXOTEL_KEY, EXOTEL_TOKEN)

    await inbox.ok(CONFIGURE, {"input": {"type": "EXOTEL", "apiToken": "not-the-token"}}, "integrationConfigure")
    bad = await inbox.ok(INTEGRATION_TEST, {"input": {"id": configured["id"]}}, "integrationTest")
    assert bad["ok"] is False
    assert "401" in bad["detail"] and "Authentication failed" in bad["detail"]
    assert bad["integration"]["lastError"] == bad["detail"]
    assert provider.sent("exotel_balance")[-1].auth == (EXOTEL_KEY, "not-the-token")
    status = {s["channel"]: s for s in (await inbox.gql(STATUS))["data"]["configurationStatus"]}
    assert status["WHATSAPP"]["ready"] is False
    assert any("Authentication failed" in m for m in status["WHATSAPP"]["missing"])


async def test_the_senders_assigned_number_is_preferred(
    api: Api, org: Org, inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    payload = await configure_exotel(
        inbox,
        provider,
        phoneNumbers=[
            {"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP"]},
            {"number": SECOND_NUMBER, "channels": ["WHATSAPP"]},
        ],
    )
    configured, hooks = payload["integration"], payload["webhookUrls"]
    ids = {n["number"]: n["id"] for n in configured["phoneNumbers"]}
    admin = await user_id(api, org.admin_email)
    thread = await whatsapp_thread(inbox)

    await inbox.ok(ASSIGN, {"input": {"phoneNumberId": ids[SECOND_NUMBER], "userId": admin}}, "phoneNumberAssign")
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", template=SHIPMENT_TEMPLATE)
    assert message["sender"] == SECOND_NUMBER
    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT
    [request] = provider.sent("exotel_whatsapp")
    assert request.json["whatsapp"]["messages"][0]["from"] == SECOND_NUMBER

    # reassigned: the other number
    unassigned = await inbox.ok(
        ASSIGN, {"input": {"phoneNumberId": ids[SECOND_NUMBER], "userId": None}}, "phoneNumberAssign"
    )
    assert unassigned["phoneNumber"]["assignee"] is None
    await inbox.ok(ASSIGN, {"input": {"phoneNumberId": ids[WHATSAPP_NUMBER], "userId": admin}}, "phoneNumberAssign")
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", template=SHIPMENT_TEMPLATE)
    assert message["sender"] == WHATSAPP_NUMBER

    # the number the customer wrote to on the thread outranks the sender's own
    await exotel_inbound(inbox, {"webhookUrls": hooks}, to=SECOND_NUMBER)
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", "Yes, it sailed.")
    assert message["sender"] == SECOND_NUMBER


async def test_configuration_status(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    async def status() -> dict[str, dict]:
        result = await inbox.gql(STATUS)
        assert "errors" not in result, result
        return {s["channel"]: s for s in result["data"]["configurationStatus"]}

    before = await status()
    for channel in ("WHATSAPP", "SMS", "VOICE"):
        assert before[channel]["ready"] is False
        assert any("integrationConfigure" in m for m in before[channel]["missing"]), before[channel]

    # a WhatsApp number only: WhatsApp lacks only the public URL, SMS its number too
    await configure_exotel(inbox, provider, phoneNumbers=[{"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP"]}])
    after = await status()
    [missing] = after["WHATSAPP"]["missing"]
    assert after["WHATSAPP"]["ready"] is False and "BANXWAY_PUBLIC_URL" in missing
    assert after["SMS"]["ready"] is False
    assert any("SMS" in m and "phoneNumbers" in m for m in after["SMS"]["missing"]), after["SMS"]
    assert any("BANXWAY_PUBLIC_URL" in m for m in after["SMS"]["missing"])
    assert not any("integrationConfigure (" in m or "integration (integrationConfigure)" in m for m in missing)

    # with BANXWAY_PUBLIC_URL (the app reads the settings of its state)
    state.settings = state.settings.model_copy(update={"public_url": PUBLIC_URL})
    public = await status()
    assert (public["WHATSAPP"]["ready"], public["WHATSAPP"]["missing"]) == (True, [])
    assert public["SMS"]["ready"] is False and not any("BANXWAY_PUBLIC_URL" in m for m in public["SMS"]["missing"])

    payload = await configure_exotel(inbox, provider)  # adds the SMS and voice numbers
    ready = await status()
    for channel in ("WHATSAPP", "SMS", "VOICE"):
        assert (ready[channel]["ready"], ready[channel]["missing"]) == (True, []), ready[channel]
    for urls in (payload["webhookUrls"], (await inbox.gql(INTEGRATIONS))["data"]["integrations"][0]["webhookUrls"]):
        assert len(urls) == 3
        assert all(u["url"].startswith(f"{PUBLIC_URL}/webhooks/exotel/") for u in urls), urls


# -- 8. permissions and no integration -----------------------------------------------------------------------


async def test_support_cannot_configure_but_can_send_and_read_templates(
    api: Api, org: Org, inbox: Inbox, provider: StandIn, state: AppState
) -> None:
    configured = await configure_exotel(inbox, provider)
    integration = configured["integration"]
    await api.create_user(org, "agent@acme.test", "support")
    agent = await api.token("agent@acme.test")

    result = await inbox.gql(CONFIGURE, {"input": {"type": "EXOTEL", "active": False}}, token=agent)
    assert forbidden(result), result
    result = await inbox.gql(INTEGRATION_TEST, {"input": {"id": integration["id"]}}, token=agent)
    assert forbidden(result), result
    assert provider.sent("exotel_balance") == []
    number = integration["phoneNumbers"][0]["id"]
    result = await inbox.gql(ASSIGN, {"input": {"phoneNumberId": number, "userId": None}}, token=agent)
    assert forbidden(result), result
    [still] = (await inbox.gql(INTEGRATIONS))["data"]["integrations"]
    assert still["active"] is True

    templates = await inbox.gql(TEMPLATES, token=agent)
    assert "errors" not in templates, templates
    assert [t["name"] for t in templates["data"]["whatsappTemplates"]] == ["shipment_update"]

    thread = await whatsapp_thread(inbox)
    await exotel_inbound(inbox, configured)
    payload = await inbox.gql(
        """mutation($input: MessageSendInput!) { messageSend(input: $input) {
             message { id status sender } userErrors { code field } } }""",
        {"input": {"threadId": thread["id"], "channel": "WHATSAPP", "body": "On it."}},
        token=agent,
    )
    assert payload["data"]["messageSend"]["userErrors"] == [], payload
    assert payload["data"]["messageSend"]["message"]["status"] == "QUEUED"
    assert payload["data"]["messageSend"]["message"]["sender"] == WHATSAPP_NUMBER


async def test_without_an_integration_the_delivery_fails_naming_integration_configure(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    thread = await whatsapp_thread(inbox)
    sms = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    assert await deliver_now(state, settings, sms["id"]) == MessageStatus.FAILED
    row = await stored(state, sms["id"])
    assert row.status == MessageStatus.FAILED and row.error and "integrationConfigure" in row.error

    # an integration switched off after the customer wrote: a message queued before, and one sent after
    configured = await configure_exotel(inbox, provider)
    await exotel_inbound(inbox, configured)
    queued = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    assert queued["sender"] == SMS_NUMBER
    await inbox.ok(CONFIGURE, {"input": {"type": "EXOTEL", "active": False}}, "integrationConfigure")
    whatsapp = await sent_ok(inbox, thread["id"], "WHATSAPP", "Following up.")
    for message in (queued, whatsapp):
        assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED
        row = await stored(state, message["id"])
        assert row.status == MessageStatus.FAILED and row.error and "integrationConfigure" in row.error
    assert provider.sent("exotel_whatsapp") == [] and provider.sent("exotel_sms") == []
