"""Shared GraphQL documents and helpers for the inbox tests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from banxway.context import SystemContext
from banxway.db.session import system_session
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org

CUSTOMER_CREATE = """
mutation($input: CustomerInput!) {
  customerCreate(input: $input) { customer { id name code email phone tags customFields } userErrors { field code message } }
}
"""

CONTACT_CREATE = """
mutation($input: ContactInput!) {
  contactCreate(input: $input) {
    contact { id name title customer { id name } identities { channel address } }
    userErrors { field code message }
  }
}
"""

SHIPMENT_CREATE = """
mutation($input: ShipmentInput!) {
  shipmentCreate(input: $input) {
    shipment { id reference mode direction status containerNumbers blNumber origin { code name } customer { name } }
    userErrors { field code message }
  }
}
"""

THREAD_CREATE = """
mutation($input: ThreadCreateInput!) {
  threadCreate(input: $input) {
    thread { id reference subject status priority type primaryChannel tags customer { id } contact { id } shipment { id } }
    userErrors { field code message }
  }
}
"""

MESSAGE_SEND = """
mutation($input: MessageSendInput!) {
  messageSend(input: $input) {
    message { id status channel direction body recipients author { email } thread { id status lastMessageAt } }
    userErrors { field code message }
  }
}
"""


class Inbox:
    """An organization with an admin token, and helpers that create inbox objects over GraphQL."""

    def __init__(self, api: Api, org: Org, token: str) -> None:
        self.api = api
        self.org = org
        self.token = token

    async def gql(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> dict:
        return await self.api.gql(query, variables, token=token or self.token)

    async def ok(self, query: str, variables: dict[str, Any], field: str, token: str | None = None) -> dict:
        result = await self.gql(query, variables, token)
        assert "errors" not in result, result
        payload = result["data"][field]
        assert payload["userErrors"] == [], payload
        return payload

    async def customer(self, name: str = "Acme Imports", **fields: Any) -> dict:
        payload = await self.ok(CUSTOMER_CREATE, {"input": {"name": name, **fields}}, "customerCreate")
        return payload["customer"]

    async def contact(self, name: str = "Priya Shah", **fields: Any) -> dict:
        payload = await self.ok(CONTACT_CREATE, {"input": {"name": name, **fields}}, "contactCreate")
        return payload["contact"]

    async def shipment(self, reference: str = "SHP-1", **fields: Any) -> dict:
        fields.setdefault("direction", "IMPORT")
        payload = await self.ok(SHIPMENT_CREATE, {"input": {"reference": reference, **fields}}, "shipmentCreate")
        return payload["shipment"]

    async def thread(self, subject: str = "Quote for 2x40HC Nhava Sheva to Hamburg", **fields: Any) -> dict:
        payload = await self.ok(THREAD_CREATE, {"input": {"subject": subject, **fields}}, "threadCreate")
        return payload["thread"]

    async def send(self, thread_id: str, body: str = "Hello", channel: str = "INTERNAL", **fields: Any) -> dict:
        payload = await self.ok(
            MESSAGE_SEND, {"input": {"threadId": thread_id, "channel": channel, "body": body, **fields}}, "messageSend"
        )
        return payload["message"]


async def open_whatsapp_window(inbox: Inbox, phone: str) -> None:
    """Record an inbound WhatsApp message from `phone` (on a thread of its own), as the provider's webhook
    would: free-form WhatsApp messages to that number are allowed for 24 hours."""
    from banxway.db.models import Channel
    from banxway.db.session import tenant_session
    from banxway.resolvers.inbound import message_receive
    from banxway.resolvers.threads import new_thread

    state = inbox.api.state
    async with tenant_session(state.sessionmaker, inbox.org.id) as session, session.begin():
        thread = await new_thread(session, inbox.org.id, subject="WhatsApp", primary_channel=Channel.WHATSAPP)
        await message_receive(
            session, inbox.org.id, thread_id=thread.id, channel=Channel.WHATSAPP, body="Hi", sender=phone
        )


def system_context(state: AppState, settings: Settings | None = None) -> SystemContext:
    """What an actor or a webhook acts through, on the test's state (with other settings when given)."""
    return SystemContext(state if settings is None else dataclasses.replace(state, settings=settings))


# -- members, threads and counts (test_messages, test_notes, test_actions) ------------------------------

ME_ID = "{ me { id } }"

THREAD_CREATE_SHORT = """
mutation($input: ThreadCreateInput!) {
  threadCreate(input: $input) { thread { id status lastMessageAt } userErrors { field code message } }
}
"""


@dataclass
class Member:
    email: str
    token: str
    id: str


async def _member(inbox: Inbox, role: str, email: str | None = None) -> Member:
    """A user of the inbox's organization with `role`, logged in."""
    email = email or f"{role}@acme.test"
    await inbox.api.create_user(inbox.org, email, role)
    token = await inbox.api.token(email)
    me = await inbox.api.gql(ME_ID, token=token)
    return Member(email, token, me["data"]["me"]["id"])


async def _foreign(inbox: Inbox) -> Inbox:
    org = await inbox.api.create_org("globex")
    return Inbox(inbox.api, org, await inbox.api.token(org.admin_email))


async def _thread(inbox: Inbox, **fields: Any) -> dict:
    fields.setdefault("subject", "Quote for 2x40HC Nhava Sheva to Hamburg")
    return (await inbox.ok(THREAD_CREATE_SHORT, {"input": fields}, "threadCreate"))["thread"]


def _errors(payload: dict) -> list[tuple[str, list[str] | None]]:
    return [(error["code"], error["field"]) for error in payload["userErrors"]]


async def _count(inbox: Inbox, model: Any) -> int:
    async with system_session(inbox.api.state.sessionmaker) as session:
        return await session.scalar(
            select(func.count()).select_from(model).where(model.organization_id == inbox.org.id)
        )


# -- configured channels (messageSend refuses a channel the organization has not configured) -------------------

EMAIL_ACCOUNT_CREATE = """
mutation($input: EmailAccountCreateInput!) {
  emailAccountCreate(input: $input) { emailAccount { id email } userErrors { field code message } }
}
"""
INTEGRATION_CONFIGURE = """
mutation($input: IntegrationConfigureInput!) {
  integrationConfigure(input: $input) { integration { id } userErrors { field code message } }
}
"""
OUR_NUMBERS = {"WHATSAPP": "+912250001000", "SMS": "+912250002000"}


async def configure_channels(inbox: Inbox, *channels: str) -> None:
    """Give the organization what sending on `channels` (default EMAIL, WHATSAPP and SMS) needs, as
    configurationStatus defines it: an email account, an Exotel integration with a WhatsApp and an SMS number
    (OUR_NUMBERS). Their servers are a closed port of 127.0.0.1: for tests of what messageSend stores, not of
    delivery (those use the stand-in servers)."""
    from tests.seed_helpers import closed_port

    wanted = set(channels or ("EMAIL", "WHATSAPP", "SMS"))
    port = closed_port()
    if "EMAIL" in wanted:
        account = {
            "name": "Ops",
            "email": f"ops@{inbox.org.slug}.test",
            "imapHost": "127.0.0.1",
            "imapPort": port,
            "imapSecurity": "NONE",
            "imapUsername": "ops",
            "imapPassword": "imap-secret",
            "smtpHost": "127.0.0.1",
            "smtpPort": port,
            "smtpSecurity": "NONE",
        }
        await inbox.ok(EMAIL_ACCOUNT_CREATE, {"input": account}, "emailAccountCreate")
    numbers = [{"number": OUR_NUMBERS[c], "channels": [c]} for c in ("WHATSAPP", "SMS") if c in wanted]
    if numbers:
        integration = {
            "type": "EXOTEL",
            "accountSid": f"{inbox.org.slug}-exotel",
            "apiKey": "exo-key",
            "apiToken": "exo-token",
            "baseUrl": f"http://127.0.0.1:{port}",
            "phoneNumbers": numbers,
        }
        await inbox.ok(INTEGRATION_CONFIGURE, {"input": integration}, "integrationConfigure")


async def upload(inbox: Inbox, filename: str, data: bytes, content_type: str, token: str | None = None) -> str:
    """POST /attachments as `inbox`'s user (or `token`): the new attachment's id."""
    response = await inbox.api.http.post(
        f"/attachments?filename={filename}",
        content=data,
        headers={"authorization": f"Bearer {token or inbox.token}", "content-type": content_type},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]
