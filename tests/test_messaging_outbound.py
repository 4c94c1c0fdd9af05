"""Composing outbound WhatsApp and SMS through Exotel and Twilio against the stand-in provider: the wire
formats, body limits and SMS segments, the 24-hour WhatsApp window and templates, and which of the
organization's numbers a message is sent from. The delivery state machine (error classes, retries,
at-most-once) is in test_delivery.py, integration configuration in test_integrations.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from banxway.db.models import Message
from banxway.db.session import system_session
from banxway.enums import Direction, MessageStatus
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox
from tests.live_helpers import local_uuid
from tests.messaging_helpers import (
    ASSIGN,
    CUSTOMER_PHONE,
    EXOTEL_KEY,
    EXOTEL_SID,
    EXOTEL_TOKEN,
    PUBLIC_URL,
    SECOND_NUMBER,
    SHIPMENT_TEMPLATE,
    SMS_NUMBER,
    TEMPLATE,
    TEMPLATES,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_NUMBER,
    configure_exotel,
    configure_twilio,
    deliver_now,
    exotel_inbound,
    post_form,
    send,
    sent_ok,
    stored,
    url_of,
    user_id,
    whatsapp_thread,
)
from tests.standins.providers import StandIn, twilio_inbound

RENDERED = "Hello Priya, your shipment SHP-1 has departed."


# -- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture
def public(settings: Settings) -> Settings:
    """The settings with BANXWAY_PUBLIC_URL, for delivery runs whose callback URLs we check."""
    return settings.model_copy(update={"public_url": PUBLIC_URL})


def webhook_token(configured: dict) -> str:
    return url_of(configured, "/whatsapp" if configured["integration"]["type"] == "EXOTEL" else "/status").split("/")[
        -2
    ]


async def outbound_count(state: AppState) -> int:
    async with system_session(state.sessionmaker) as session:
        return await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == Direction.OUTBOUND)
        )


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


# -- 2. limits -----------------------------------------------------------------------------------------------


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


# -- 3. the 24-hour window and templates ---------------------------------------------------------------------


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


# -- 4. the sender's number ------------------------------------------------------------------------------------


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
