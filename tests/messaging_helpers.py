"""Helpers for the WhatsApp/SMS/voice tests: integrations pointing at the stand-in provider (tests/standins/providers.py),
webhook posts through the app, and delivery runs."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from banxway.db.models import Message
from banxway.db.session import system_session
from banxway.enums import MessageStatus
from banxway.resolvers.delivery import deliver
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import local_uuid
from tests.standins.providers import StandIn, exotel_whatsapp_incoming, twilio_signature

EXOTEL_SID = "acme1"
EXOTEL_KEY = "exo-key"
EXOTEL_TOKEN = "exo-token"
TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "twilio-auth-token"
WHATSAPP_NUMBER = "+912250001000"
SMS_NUMBER = "+912250002000"
CUSTOMER_PHONE = "+919820054321"

CONFIGURE = """
mutation($input: IntegrationConfigureInput!) {
  integrationConfigure(input: $input) {
    integration { id type accountSid apiKey baseUrl active ipAllowlist lastError
                  phoneNumbers { id number channels label assignee { id } }
                  whatsappTemplates { name language body parameterCount } }
    webhookUrls { purpose url }
    userErrors { field code message }
  }
}
"""
SEND = """
mutation($input: MessageSendInput!) {
  messageSend(input: $input) {
    message { id status channel direction body sender recipients segments error }
    userErrors { field code message }
  }
}
"""
MESSAGE = """
query($id: ID!) { node(id: $id) { ... on Message { id status body error segments sender recipients direction
  channel contact { id name } thread { id reference status primaryChannel }
  attachments { filename contentType size } call { status durationSeconds recorded transcript transcriptError } } } }
"""

TEMPLATE = {"name": "shipment_update", "language": "en", "body": "Hello {{1}}, your shipment {{2}} has departed."}


async def configure_exotel(inbox: Inbox, provider: StandIn, **fields: Any) -> dict:
    provider.add_account(EXOTEL_SID, EXOTEL_KEY, EXOTEL_TOKEN)
    values = {
        "type": "EXOTEL",
        "accountSid": EXOTEL_SID,
        "apiKey": EXOTEL_KEY,
        "apiToken": EXOTEL_TOKEN,
        "baseUrl": provider.base_url,
        "phoneNumbers": [
            {"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP", "VOICE"], "label": "Ops WhatsApp"},
            {"number": SMS_NUMBER, "channels": ["SMS"]},
        ],
        "whatsappTemplates": [TEMPLATE],
        **fields,
    }
    return await inbox.ok(CONFIGURE, {"input": values}, "integrationConfigure")


async def configure_twilio(inbox: Inbox, provider: StandIn, **fields: Any) -> dict:
    provider.add_account(TWILIO_SID, TWILIO_SID, TWILIO_TOKEN)
    values = {
        "type": "TWILIO",
        "accountSid": TWILIO_SID,
        "apiToken": TWILIO_TOKEN,
        "baseUrl": provider.base_url,
        "phoneNumbers": [{"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP", "SMS"]}],
        **fields,
    }
    return await inbox.ok(CONFIGURE, {"input": values}, "integrationConfigure")


def url_of(payload: dict, suffix: str) -> str:
    """The webhook URL of a configure payload that ends in `suffix` (/whatsapp, /sms, /voice, /status…)."""
    [url] = [u["url"] for u in payload["webhookUrls"] if u["url"].endswith(suffix)]
    return url


async def post_json(http: httpx.AsyncClient, url: str, body: Any) -> httpx.Response:
    return await http.post(url, content=orjson.dumps(body), headers={"content-type": "application/json"})


async def post_form(
    http: httpx.AsyncClient, url: str, form: dict[str, str], *, twilio_token: str | None = None
) -> httpx.Response:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if twilio_token is not None:
        headers["x-twilio-signature"] = twilio_signature(twilio_token, url, form)
    return await http.post(url, data=form, headers=headers)


async def whatsapp_thread(inbox: Inbox, phone: str = CUSTOMER_PHONE) -> dict:
    contact = await inbox.contact(
        "Priya Shah", identities=[{"channel": "WHATSAPP", "address": phone}, {"channel": "SMS", "address": phone}]
    )
    return await inbox.thread("Booking 2x40HC", contactId=contact["id"], primaryChannel="WHATSAPP")


async def send(inbox: Inbox, thread_id: str, channel: str, body: str = "", **fields: Any) -> dict:
    result = await inbox.gql(SEND, {"input": {"threadId": thread_id, "channel": channel, "body": body, **fields}})
    assert "errors" not in result, result
    return result["data"]["messageSend"]


async def deliver_now(state: AppState, settings: Settings, message_id: str) -> MessageStatus | None:
    return await deliver(system_context(state, settings), local_uuid(message_id))


async def message(inbox: Inbox, message_id: str) -> dict:
    result = await inbox.gql(MESSAGE, {"id": message_id})
    assert "errors" not in result, result
    return result["data"]["node"]


def message_global_id(message_id: uuid.UUID) -> str:
    from banxway.schema.ids import to_global_id

    return to_global_id("Message", message_id)


# -- outbound, delivery and integration tests (test_messaging_outbound, test_delivery, test_integrations) -----

PUBLIC_URL = "https://bx.example.com"
SECOND_NUMBER = "+912250003000"
SHIPMENT_TEMPLATE = {"name": "shipment_update", "language": "en", "parameters": ["Priya", "SHP-1"]}
ASSIGN = """
mutation($input: PhoneNumberAssignInput!) {
  phoneNumberAssign(input: $input) { phoneNumber { id number assignee { id } } userErrors { field code message } }
}
"""
TEMPLATES = "{ whatsappTemplates { name language body category parameterCount provider } }"


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
