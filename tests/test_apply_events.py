"""Apply events (as Zulip checks its `apply_events`): for every registered event type, a client that fetched
its state, subscribed to `inboxEvents` and applied what it received with a small generic reducer
(tests/apply_events_helpers.py) holds exactly what a fresh fetch returns. An event type whose events do not
carry enough for that fails here; a registered type without a case fails too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from banxway import events
from banxway.db.models import Message
from banxway.db.session import tenant_session
from banxway.enums import Channel, MessageStatus
from banxway.events import EVENT_TYPES, MessageStatusChanged, MessageUpdated
from banxway.resolvers import sla
from banxway.resolvers.analysis import analyse_message
from banxway.resolvers.inbound import message_receive
from banxway.settings import Settings
from banxway.state import AppState
from tests.apply_events_helpers import (
    ADMIN_STATE,
    INBOX_EVENTS,
    STATE,
    apply_events,
    differences,
    local_uuid,
    normalize,
    receive_events,
)
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import GraphQLSocket, uvicorn_server, wait_subscribed
from tests.test_events_outbox import (
    ACTION_CREATE,
    ACTION_UPDATE,
    CONTACT_CREATE,
    CONTACT_MERGE,
    CONTACT_UNMERGE,
    CONTACT_UPDATE,
    CUSTOMER_CREATE,
    CUSTOMER_UPDATE,
    DOCUMENT_UPLOAD,
    EMAIL_ACCOUNT_CREATE,
    EMAIL_ACCOUNT_DELETE,
    EMAIL_ACCOUNT_UPDATE,
    INTEGRATION_CONFIGURE,
    INTEGRATION_ROTATE,
    ME_ID,
    MESSAGE_SEND,
    NOTE_ADD,
    NOTE_DELETE,
    NOTE_UPDATE,
    PHONE_NUMBER_ASSIGN,
    SHIPMENT_CREATE,
    SHIPMENT_MILESTONE_ADD,
    SHIPMENT_UPDATE,
    THREAD_ARCHIVE,
    THREAD_ASSIGN,
    THREAD_CREATE,
    THREAD_MARK_READ,
    THREAD_UPDATE,
    USER_CHANGE,
    USER_CREATE,
    USER_UPDATE,
    email_account_input,
    integration_input,
)

NOTIFICATION_IDS = "{ notifications(first: 100) { edges { node { id } } } }"
NOTIFICATION_MARK_READ = """
mutation($input: NotificationMarkReadInput!) {
  notificationMarkRead(input: $input) { notifications { id } userErrors { field code message } }
}
"""


@dataclass
class World:
    """The organization: its admin subscribes and fetches (the client); `manager` and `support` are colleagues."""

    inbox: Inbox
    tokens: dict[str, str]
    users: dict[str, str]
    ids: dict[str, Any] = field(default_factory=dict)

    async def ok(self, query: str, variables: dict[str, Any], name: str, by: str = "manager") -> dict:
        return await self.inbox.ok(query, variables, name, self.tokens[by])

    async def thread(self, subject: str, **fields: Any) -> str:
        payload = await self.ok(THREAD_CREATE, {"input": {"subject": subject, **fields}}, "threadCreate")
        return payload["thread"]["id"]

    async def customer(self, name: str, **fields: Any) -> str:
        payload = await self.ok(CUSTOMER_CREATE, {"input": {"name": name, **fields}}, "customerCreate")
        return payload["customer"]["id"]

    async def contact(self, name: str, email: str | None = None, **fields: Any) -> str:
        if email:
            fields["identities"] = [{"channel": "EMAIL", "address": email}]
        payload = await self.ok(CONTACT_CREATE, {"input": {"name": name, **fields}}, "contactCreate")
        return payload["contact"]["id"]

    async def shipment(self, reference: str, **fields: Any) -> str:
        fields.setdefault("direction", "IMPORT")
        payload = await self.ok(SHIPMENT_CREATE, {"input": {"reference": reference, **fields}}, "shipmentCreate")
        return payload["shipment"]["id"]

    async def message(self, thread: str, body: str, channel: str = "INTERNAL", **fields: Any) -> str:
        variables = {"input": {"threadId": thread, "channel": channel, "body": body, **fields}}
        return (await self.ok(MESSAGE_SEND, variables, "messageSend"))["message"]["id"]

    async def note(self, thread: str, body: str) -> str:
        return (await self.ok(NOTE_ADD, {"input": {"threadId": thread, "body": body}}, "noteAdd"))["note"]["id"]

    async def action(self, thread: str, title: str, **fields: Any) -> str:
        variables = {"input": {"threadId": thread, "title": title, **fields}}
        return (await self.ok(ACTION_CREATE, variables, "actionCreate"))["action"]["id"]


Step = Callable[[World], Awaitable[None]]


async def _nothing(w: World) -> None:
    return None


@dataclass(frozen=True)
class Case:
    """`setup` runs before the client fetches its state, `act` (the mutation) while it is subscribed;
    `expect` is the event types the client then receives, in order, all by `actor` (None: the system)."""

    act: Step
    expect: tuple[str, ...]
    setup: Step = _nothing
    actor: str | None = "manager"


# -- threads -------------------------------------------------------------------------------------------


async def _inbox_with_a_contact(w: World) -> None:
    w.ids["customer"] = await w.customer("Acme Imports")
    w.ids["contact"] = await w.contact("Priya Shah", "priya@acme.example", customerId=w.ids["customer"])
    w.ids["older"] = await w.thread("Customs query for BL MAEU123")
    w.ids["newer"] = await w.thread("Reefer booking Mundra to Jebel Ali")


async def _thread_create(w: World) -> None:
    variables = {
        "input": {
            "subject": "Quote for 2x40HC Nhava Sheva to Hamburg",
            "contactId": w.ids["contact"],
            "priority": "HIGH",
            "type": "QUOTE_REQUEST",
            "tags": ["quote", "sea"],
        }
    }
    await w.ok(THREAD_CREATE, variables, "threadCreate")


async def _thread_update_setup(w: World) -> None:
    await _inbox_with_a_contact(w)
    w.ids["shipment"] = await w.shipment("SHP-1", customerId=w.ids["customer"])


async def _thread_update(w: World) -> None:
    changes = {
        "id": w.ids["older"],
        "subject": "Customs hold on BL MAEU123",
        "status": "PENDING",
        "priority": "URGENT",
        "tags": ["customs"],
        "contactId": w.ids["contact"],
        "shipmentId": w.ids["shipment"],
    }
    await w.ok(THREAD_UPDATE, {"input": changes}, "threadUpdate")


async def _thread_assign(w: World) -> None:
    await w.ok(THREAD_ASSIGN, {"input": {"threadId": w.ids["older"], "assigneeId": w.users["support"]}}, "threadAssign")


async def _busy_thread(w: World) -> None:
    await _inbox_with_a_contact(w)
    await w.message(w.ids["older"], "Documents attached")
    await w.note(w.ids["older"], "Waiting on the broker")
    await w.action(w.ids["older"], "Send the invoice")


async def _thread_archive(w: World) -> None:
    await w.ok(THREAD_ARCHIVE, {"input": {"threadId": w.ids["older"]}}, "threadArchive")


async def _unread_messages(w: World) -> None:
    await _inbox_with_a_contact(w)
    await w.message(w.ids["older"], "Broker called")
    await w.message(w.ids["older"], "Broker called again")


async def _thread_mark_read(w: World) -> None:
    await w.ok(THREAD_MARK_READ, {"input": {"threadId": w.ids["older"]}}, "threadMarkRead", by="admin")


# -- messages, notes, actions ------------------------------------------------------------------------------


async def _an_email_account(w: World) -> None:
    """An account to send emails from (messageSend refuses EMAIL without one: CHANNEL_NOT_CONFIGURED)."""
    await w.ok(EMAIL_ACCOUNT_CREATE, {"input": email_account_input()}, "emailAccountCreate", by="admin")


async def _thread_with_a_contact(w: World) -> None:
    await _an_email_account(w)
    await _inbox_with_a_contact(w)
    await w.ok(THREAD_UPDATE, {"input": {"id": w.ids["older"], "contactId": w.ids["contact"]}}, "threadUpdate")


async def _message_send(w: World) -> None:
    # an email by a colleague to the thread's contact: the thread opens, moves up, and is unread for the client
    await w.message(w.ids["older"], "Please find the draft BL attached.", channel="EMAIL", subject="Draft BL")


async def _queued_email(w: World) -> None:
    await _thread_with_a_contact(w)
    w.ids["message"] = await w.message(w.ids["older"], "Your container is released.", channel="EMAIL")


async def _provider_reports_delivery(w: World) -> None:
    # No mutation changes a message's status: the channel providers will (a worker or a webhook). As they
    # would, the change and its event are written in one transaction and relayed after the commit.
    state = w.inbox.api.state
    message_id = local_uuid(w.ids["message"])
    async with tenant_session(state.sessionmaker, w.inbox.org.id) as session:
        async with session.begin():
            message = await session.get(Message, message_id)
            assert message is not None and message.status == MessageStatus.QUEUED
            message.status = MessageStatus.DELIVERED
            event = MessageStatusChanged(thread_id=message.thread_id, message_id=message.id, status="DELIVERED")
            events.record(session, event, organization_id=w.inbox.org.id, actor_id=None)
        await events.relay(state.broadcast, state.sessionmaker, events.take_recorded(session))


async def _provider_reports_a_call(w: World) -> None:
    # A message's content changes after it was added only through the providers (a call's status callback,
    # a transcript, downloaded media): written with its MESSAGE_UPDATED event in one transaction, as they do.
    state = w.inbox.api.state
    message_id = local_uuid(w.ids["message"])
    async with tenant_session(state.sessionmaker, w.inbox.org.id) as session:
        async with session.begin():
            message = await session.get(Message, message_id)
            assert message is not None
            message.body = "Call to Priya (2:31).\n\nTranscript:\nThe container is released."
            event = MessageUpdated(thread_id=message.thread_id, message_id=message.id, changed=["body"])
            events.record(session, event, organization_id=w.inbox.org.id, actor_id=None)
        await events.relay(state.broadcast, state.sessionmaker, events.take_recorded(session))


SLA_POLICY_CREATE = """
mutation($input: SlaPolicyCreateInput!) { slaPolicyCreate(input: $input) { slaPolicy { id } userErrors { field } } }
"""


def _sla_policy(**fields: Any) -> Step:
    async def setup(w: World) -> None:
        values = {"name": "Quotes", "firstResponseMinutes": 30, **fields}
        await w.ok(SLA_POLICY_CREATE, {"input": values}, "slaPolicyCreate", by="admin")
        await _inbox_with_a_contact(w)

    return setup


def _sla_timer(minutes: int) -> Step:
    # The SLA timer (the check_sla actor) runs `minutes` after the thread's creation.
    async def act(w: World) -> None:
        at = datetime.now(UTC) + timedelta(minutes=minutes)
        await sla.sla_check(system_context(w.inbox.api.state), local_uuid(w.ids["older"]), at)

    return act


WORKFLOW_CREATE = """
mutation($input: WorkflowCreateInput!) { workflowCreate(input: $input) { workflow { id } userErrors { field message } } }
"""
WORKFLOW_INSTANCE_CANCEL = """
mutation($id: ID!) { workflowInstanceCancel(instanceId: $id) { instance { id } userErrors { field message } } }
"""


def _workflow(*steps: dict[str, Any], before: Step | None = None) -> Step:
    # A workflow on THREAD_CREATED with `steps`, the threads of _inbox_with_a_contact (after `before`).
    async def setup(w: World) -> None:
        if before is not None:
            await before(w)
        definition = {"trigger": {"type": "THREAD_CREATED"}, "steps": list(steps)}
        variables = {"input": {"name": "On new threads", "definition": definition, "active": True}}
        await w.ok(WORKFLOW_CREATE, variables, "workflowCreate", by="admin")
        await _inbox_with_a_contact(w)

    return setup


async def _workflow_engine(w: World) -> list[str]:
    # The start_workflows and run_workflow actors on the older thread's THREAD_CREATED event.
    from sqlalchemy import select

    from banxway.db.models import Event
    from banxway.resolvers.workflow_engine import workflow_run, workflows_start

    state = w.inbox.api.state
    async with tenant_session(state.sessionmaker, w.inbox.org.id) as session:
        created = await session.scalar(
            select(Event.id).where(Event.type == "THREAD_CREATED", Event.thread_id == local_uuid(w.ids["older"]))
        )
    ctx = system_context(state)
    return [await workflow_run(ctx, instance_id) for instance_id in await workflows_start(ctx, created)]


async def _workflow_runs(w: World) -> None:
    w.ids["statuses"] = await _workflow_engine(w)


async def _workflow_failing(w: World) -> None:
    # A workflow assigning new threads to the support colleague, who is then deactivated: its step fails.
    await _workflow({"type": "ASSIGN", "user": w.users["support"]})(w)
    await w.ok(USER_UPDATE, {"id": w.users["support"], "active": False}, "userUpdate", by="admin")


async def _waiting_workflow(w: World) -> None:
    await _workflow({"type": "WAIT", "minutes": 60})(w)
    assert await _workflow_engine(w) == ["WAITING"]


async def _workflow_cancel(w: World) -> None:
    from sqlalchemy import select

    from banxway.db.models import WorkflowInstance
    from banxway.schema.ids import to_global_id

    async with tenant_session(w.inbox.api.state.sessionmaker, w.inbox.org.id) as session:
        instance_id = await session.scalar(select(WorkflowInstance.id))
    await w.ok(
        WORKFLOW_INSTANCE_CANCEL,
        {"id": to_global_id("WorkflowInstance", instance_id)},
        "workflowInstanceCancel",
        by="admin",
    )


async def _thread_with_a_note(w: World) -> None:
    await _inbox_with_a_contact(w)
    await w.note(w.ids["older"], "Customer prefers Maersk")


async def _note_add(w: World) -> None:
    await w.note(w.ids["older"], "@support@acme.test can you chase the broker?")


async def _thread_with_two_notes(w: World) -> None:
    await _inbox_with_a_contact(w)
    w.ids["note"] = await w.note(w.ids["older"], "Customer prefers Maersk")
    await w.note(w.ids["older"], "Rates expire Friday")


async def _note_update(w: World) -> None:
    # the author mentions the client's user: it is told (NOTIFICATION_CREATED), the note shows the new text
    body = "Customer prefers Maersk, @admin@acme.test please confirm"
    await w.ok(NOTE_UPDATE, {"input": {"noteId": w.ids["note"], "body": body}}, "noteUpdate")


async def _note_delete(w: World) -> None:
    # an admin deletes the manager's note (NOTE_MODERATE): it leaves the thread's notes, the other one stays
    await w.ok(NOTE_DELETE, {"input": {"noteId": w.ids["note"]}}, "noteDelete", by="admin")


async def _action_create(w: World) -> None:
    due = datetime(2026, 3, 2, 9, tzinfo=UTC).isoformat()
    variables = {
        "input": {
            "threadId": w.ids["older"],
            "title": "Approve the quote",
            "type": "QUOTE_APPROVAL",
            "dueAt": due,
            "assigneeId": w.users["support"],
        }
    }
    await w.ok(ACTION_CREATE, variables, "actionCreate")


async def _thread_with_an_action(w: World) -> None:
    await _inbox_with_a_contact(w)
    w.ids["action"] = await w.action(w.ids["older"], "Call the broker")
    await w.action(w.ids["older"], "Send the invoice")


async def _action_update(w: World) -> None:
    variables = {"input": {"id": w.ids["action"], "title": "Called the broker", "status": "DONE"}}
    await w.ok(ACTION_UPDATE, variables, "actionUpdate")


# -- customers, contacts --------------------------------------------------------------------------------------


async def _two_customers(w: World) -> None:
    w.ids["acme"] = await w.customer("Acme Imports")
    w.ids["zenith"] = await w.customer("Zenith Freight")


async def _customer_create(w: World) -> None:
    variables = {"input": {"name": "Globex Traders", "code": "glx", "email": "ops@globex.example", "tags": ["vip"]}}
    await w.ok(CUSTOMER_CREATE, variables, "customerCreate")


async def _customer_update(w: World) -> None:
    # renamed past the other one: the list's order changes too
    variables = {"input": {"id": w.ids["acme"], "name": "Zeta Imports", "phone": "+919820054321"}}
    await w.ok(CUSTOMER_UPDATE, variables, "customerUpdate")


async def _customer_and_contacts(w: World) -> None:
    w.ids["customer"] = await w.customer("Acme Imports")
    w.ids["arjun"] = await w.contact("Arjun Mehta", "arjun@acme.example")
    w.ids["priya"] = await w.contact("Priya Shah", "priya@acme.example")


async def _contact_create(w: World) -> None:
    variables = {
        "input": {
            "name": "Meera Iyer",
            "title": "Logistics manager",
            "customerId": w.ids["customer"],
            "identities": [{"channel": "EMAIL", "address": "meera@acme.example"}],
        }
    }
    await w.ok(CONTACT_CREATE, variables, "contactCreate")


async def _contact_update(w: World) -> None:
    variables = {
        "input": {
            "id": w.ids["arjun"],
            "name": "Zara Khan",
            "title": "Import desk",
            "customerId": w.ids["customer"],
            "identities": [{"channel": "EMAIL", "address": "zara@acme.example"}],
        }
    }
    await w.ok(CONTACT_UPDATE, variables, "contactUpdate")


async def _duplicate_contacts(w: World) -> None:
    # a thread (with a message) on the duplicate: merging moves both to the kept contact
    await _an_email_account(w)
    w.ids["kept"] = await w.contact("Priya Shah", "priya@acme.example")
    w.ids["duplicate"] = await w.contact("Priya Shah (Gmail)", "priya.shah@gmail.example")
    w.ids["thread"] = await w.thread("Booking for Priya", contactId=w.ids["duplicate"])
    await w.message(w.ids["thread"], "Booking confirmed.", channel="EMAIL")


async def _contact_merge(w: World) -> None:
    variables = {"input": {"keptContactId": w.ids["kept"], "mergedContactId": w.ids["duplicate"]}}
    await w.ok(CONTACT_MERGE, variables, "contactMerge")


async def _merged_contacts(w: World) -> None:
    await _duplicate_contacts(w)
    await _contact_merge(w)


async def _contact_unmerge(w: World) -> None:
    await w.ok(CONTACT_UNMERGE, {"input": {"contactId": w.ids["duplicate"]}}, "contactUnmerge")


# the contact resolver (tests/test_contact_resolver.py): one number on two contacts, a call from it
SHARED_NUMBER = "+919820054321"
MERGE_SUGGESTIONS = "{ contactMergeSuggestions { id } }"
MERGE_SUGGESTION_ACCEPT = """
mutation($id: ID!) { contactMergeSuggestionAccept(input: {id: $id}) { userErrors { field code message } } }
"""


async def _contacts_sharing_a_number(w: World) -> None:
    w.ids["older"] = await w.contact("Priya Shah", identities=[{"channel": "WHATSAPP", "address": SHARED_NUMBER}])
    w.ids["newer"] = await w.contact("P. Shah", identities=[{"channel": "SMS", "address": SHARED_NUMBER}])


async def _a_call_from_the_shared_number(w: World) -> None:
    from banxway.resolvers.contact_resolver import resolve_contact

    org_id = w.inbox.org.id
    async with system_context(w.inbox.api.state).for_organization(org_id).transaction() as session:
        await resolve_contact(session, org_id, Channel.VOICE, SHARED_NUMBER)


async def _a_merge_suggestion(w: World) -> None:
    await _contacts_sharing_a_number(w)
    await _a_call_from_the_shared_number(w)
    result = await w.inbox.gql(MERGE_SUGGESTIONS, token=w.tokens["manager"])
    [suggestion] = result["data"]["contactMergeSuggestions"]
    w.ids["suggestion"] = suggestion["id"]


async def _merge_suggestion_accept(w: World) -> None:
    await w.ok(MERGE_SUGGESTION_ACCEPT, {"id": w.ids["suggestion"]}, "contactMergeSuggestionAccept")


# -- shipments ------------------------------------------------------------------------------------------------


async def _a_shipment(w: World) -> None:
    w.ids["customer"] = await w.customer("Acme Imports")
    w.ids["shipment"] = await w.shipment("SHP-1", customerId=w.ids["customer"])


async def _shipment_create(w: World) -> None:
    await w.shipment(
        "SHP-2",
        direction="EXPORT",
        customerId=w.ids["customer"],
        origin={"code": "INNSA", "name": "Nhava Sheva"},
        destination={"code": "DEHAM", "name": "Hamburg"},
        etd=datetime(2026, 3, 1, tzinfo=UTC).isoformat(),
    )


async def _two_shipments(w: World) -> None:
    await _a_shipment(w)
    await w.shipment("SHP-2")


async def _shipment_update(w: World) -> None:
    variables = {
        "input": {
            "id": w.ids["shipment"],
            "vessel": "MSC Aurora",
            "voyage": "FA612E",
            "eta": datetime(2026, 4, 2, tzinfo=UTC).isoformat(),
        }
    }
    await w.ok(SHIPMENT_UPDATE, variables, "shipmentUpdate")


async def _shipment_milestone_add(w: World) -> None:
    variables = {
        "input": {
            "shipmentId": w.ids["shipment"],
            "type": "DEPARTED",
            "actualAt": datetime(2026, 3, 1, 6, tzinfo=UTC).isoformat(),
            "location": {"code": "INNSA"},
            "note": "Sailed on time",
        }
    }
    await w.ok(SHIPMENT_MILESTONE_ADD, variables, "shipmentMilestoneAdd")


# -- shipment documents ---------------------------------------------------------------------------------------


async def _a_shipment_thread(w: World) -> None:
    await _a_shipment(w)
    w.ids["thread"] = await w.thread("Draft BL for SHP-1", shipmentId=w.ids["shipment"])


async def _file_a_bill_of_lading(w: World) -> None:
    uploaded = await w.inbox.api.http.post(
        "/attachments?filename=bl.pdf",
        content=f"%PDF-1.4 bill of lading {len(w.ids)}".encode(),
        headers={"authorization": f"Bearer {w.tokens['manager']}", "content-type": "application/pdf"},
    )
    assert uploaded.status_code == 201, uploaded.text
    variables = {
        "input": {
            "shipmentId": w.ids["shipment"],
            "attachmentId": uploaded.json()["id"],
            "type": "BILL_OF_LADING",
            "threadId": w.ids["thread"],
        }
    }
    w.ids[f"document{len(w.ids)}"] = (await w.ok(DOCUMENT_UPLOAD, variables, "documentUpload"))["document"]["id"]


async def _a_filed_bill_of_lading(w: World) -> None:
    await _a_shipment_thread(w)
    await _file_a_bill_of_lading(w)


# -- notifications --------------------------------------------------------------------------------------------


async def _mention_the_client(w: World) -> None:
    await w.note(w.ids["older"], "@admin@acme.test please approve the rate")


async def _two_notifications(w: World) -> None:
    await _inbox_with_a_contact(w)
    await w.note(w.ids["older"], "@admin@acme.test first")
    await w.note(w.ids["newer"], "@admin@acme.test second")
    edges = (await w.inbox.gql(NOTIFICATION_IDS, token=w.tokens["admin"]))["data"]["notifications"]["edges"]
    assert len(edges) == 2, edges
    w.ids["notification"] = edges[0]["node"]["id"]


async def _notification_mark_read(w: World) -> None:
    # one of the two: a client cannot tell which from "all of them"
    await w.ok(NOTIFICATION_MARK_READ, {"input": {"ids": [w.ids["notification"]]}}, "notificationMarkRead", by="admin")


# -- administration: users, integrations, email accounts (the admin's client shows them) -----------------------


async def _user_create(w: World) -> None:
    variables = {"input": {"email": "meera@acme.test", "name": "Meera", "role": "VALIDATOR", "password": "long-enough"}}
    await w.ok(USER_CREATE, variables, "userCreate", by="admin")


async def _user_update(w: World) -> None:
    variables = {"input": {"id": w.users["support"], "name": "Sam Support", "role": "MANAGER"}}
    await w.ok(USER_CHANGE, variables, "userUpdate", by="admin")


async def _integration_configure(w: World) -> None:
    numbers = [
        {"number": "+912250001000", "channels": ["WHATSAPP", "VOICE"], "label": "Ops"},
        {"number": "+912250002000", "channels": ["SMS"]},
    ]
    template = {"name": "shipment_update", "language": "en", "body": "Hello {{1}}, {{2}} has departed."}
    values = integration_input(phoneNumbers=numbers, whatsappTemplates=[template], ipAllowlist=["10.0.0.0/8"])
    await w.ok(INTEGRATION_CONFIGURE, {"input": values}, "integrationConfigure", by="admin")


async def _an_integration(w: World) -> None:
    await _integration_configure(w)
    [integration] = (await w.inbox.gql("{ integrations { id } }", token=w.tokens["admin"]))["data"]["integrations"]
    w.ids["integration"] = integration["id"]


async def _integration_update(w: World) -> None:
    # reconfigured (a number goes, one comes), the webhook token rotated, a number given to a colleague
    changes = {
        "type": "EXOTEL",
        "active": False,
        "phoneNumbers": [
            {"number": "+912250001000", "channels": ["WHATSAPP"], "label": "WhatsApp"},
            {"number": "+912250003000", "channels": ["VOICE"]},
        ],
    }
    payload = await w.ok(INTEGRATION_CONFIGURE, {"input": changes}, "integrationConfigure", by="admin")
    await w.ok(INTEGRATION_ROTATE, {"input": {"id": w.ids["integration"]}}, "integrationRotateWebhookToken", by="admin")
    number = next(n for n in payload["integration"]["phoneNumbers"] if n["number"] == "+912250003000")
    variables = {"input": {"phoneNumberId": number["id"], "userId": w.users["support"]}}
    await w.ok(PHONE_NUMBER_ASSIGN, variables, "phoneNumberAssign", by="admin")


async def _email_account_create(w: World) -> None:
    values = email_account_input(fromName="Acme Ops", signature="-- Acme")
    await w.ok(EMAIL_ACCOUNT_CREATE, {"input": values}, "emailAccountCreate", by="admin")


async def _two_email_accounts(w: World) -> None:
    for key, email in (("ops", "ops@acme.test"), ("sales", "sales@acme.test")):
        payload = await w.ok(
            EMAIL_ACCOUNT_CREATE, {"input": email_account_input(email=email)}, "emailAccountCreate", by="admin"
        )
        w.ids[key] = payload["emailAccount"]["id"]


async def _email_account_update(w: World) -> None:
    changes = {"id": w.ids["ops"], "name": "Ops desk", "imapFolder": "Shipments", "active": False, "smtpPassword": "x"}
    await w.ok(EMAIL_ACCOUNT_UPDATE, {"input": changes}, "emailAccountUpdate", by="admin")


async def _email_account_delete(w: World) -> None:
    await w.ok(EMAIL_ACCOUNT_DELETE, {"input": {"id": w.ids["sales"]}}, "emailAccountDelete", by="admin")


async def _an_inbound_message_naming_a_container(w: World) -> None:
    # a shipment with a container, and the customer's WhatsApp message naming it, received (and relayed) as a
    # provider's webhook does; the analysis then runs while the client is subscribed
    await _inbox_with_a_contact(w)
    w.ids["shipment"] = await w.shipment("SHP-1", containerNumbers=["MSCU1234566"])
    state = w.inbox.api.state
    async with tenant_session(state.sessionmaker, w.inbox.org.id) as session:
        async with session.begin():
            message = await message_receive(
                session,
                w.inbox.org.id,
                thread_id=local_uuid(w.ids["older"]),
                channel=Channel.WHATSAPP,
                body="Where is container MSCU 1234566? This delay is unacceptable!",
                sender="+919820012345",
            )
        await events.relay(state.broadcast, state.sessionmaker, events.take_recorded(session))
    w.ids["inbound"] = str(message.id)


async def _analysis_runs(w: World) -> None:
    import uuid

    await analyse_message(system_context(w.inbox.api.state), uuid.UUID(w.ids["inbound"]))


async def _compose_start(w: World) -> None:
    variables = {"input": {"threadId": w.ids["older"], "instructions": "the ETA moved", "variants": 2}}
    await w.ok(
        "mutation($input: ComposeStartInput!) { composeStart(input: $input) { session { id } userErrors { code } } }",
        variables,
        "composeStart",
        by="admin",
    )


AGENT_CONNECTION = """
mutation($input: AgentConnectionCreateInput!) {
  agentConnectionCreate(input: $input) { agentConnection { id } userErrors { code } }
}
"""
AGENT_CONNECTION_UPDATE = """
mutation($input: AgentConnectionUpdateInput!) {
  agentConnectionUpdate(input: $input) { agentConnection { id } userErrors { code } }
}
"""
AGENT_TASK_CREATE = """
mutation($input: AgentTaskCreateInput!) { agentTaskCreate(input: $input) { agentTask { id } userErrors { code } } }
"""
AGENT_TASK_CANCEL = """
mutation($id: ID!) { agentTaskCancel(input: {id: $id}) { agentTask { id } userErrors { code } } }
"""


async def _an_agent_connection(w: World) -> None:
    await _inbox_with_a_contact(w)
    values = {"name": "Tracker", "url": "https://agents.example.com/mcp"}
    payload = await w.ok(AGENT_CONNECTION, {"input": values}, "agentConnectionCreate", by="admin")
    w.ids["connection"] = payload["agentConnection"]["id"]


async def _agent_task_create(w: World) -> None:
    values = {"threadId": w.ids["older"], "connectionId": w.ids["connection"], "tool": "track_container"}
    w.ids["task"] = (await w.ok(AGENT_TASK_CREATE, {"input": values}, "agentTaskCreate"))["agentTask"]["id"]


async def _a_queued_agent_task(w: World) -> None:
    await _an_agent_connection(w)
    await _agent_task_create(w)


async def _agent_task_cancel(w: World) -> None:
    await w.ok(AGENT_TASK_CANCEL, {"id": w.ids["task"]}, "agentTaskCancel")


async def _agent_task_runs(w: World) -> None:
    # the connection is pointed at a local stand-in (no event: connections are administration), then the actor runs
    from banxway.resolvers.agents import agent_task_run
    from tests.standins.mcp_server import agent_standin

    async with agent_standin() as (_, url):
        values = {"id": w.ids["connection"], "url": url}
        await w.ok(AGENT_CONNECTION_UPDATE, {"input": values}, "agentConnectionUpdate", by="admin")
        status = await agent_task_run(system_context(w.inbox.api.state), local_uuid(w.ids["task"]))
    tasks = await w.inbox.gql("{ agentTasks(first: 1) { edges { node { error } } } }")
    assert status is not None and status.name == "COMPLETED", tasks


WEBHOOK_ENDPOINT_CREATE = """
mutation($input: WebhookEndpointCreateInput!) {
  webhookEndpointCreate(input: $input) { webhookEndpoint { id } userErrors { field code message } }
}
"""
WEBHOOK_ENDPOINT_REPLAY = """
mutation($input: WebhookEndpointReplayInput!) {
  webhookEndpointReplay(input: $input) { queued userErrors { field code message } }
}
"""


async def _a_webhook_endpoint(w: World) -> None:
    """Two threads, then an endpoint for new threads (created after them: nothing was delivered to it yet)."""
    for subject in ("Rates for May", "Rates for June"):
        await w.thread(subject)
    values = {"url": "https://hooks.example.com/banxway", "eventTypes": ["THREAD_CREATED"]}
    payload = await w.ok(WEBHOOK_ENDPOINT_CREATE, {"input": values}, "webhookEndpointCreate", by="admin")
    w.ids["endpoint"] = payload["webhookEndpoint"]["id"]


async def _webhook_endpoint_replay(w: World) -> None:
    # the endpoint's pending deliveries go from none to both threads' events
    replay = {"input": {"endpointId": w.ids["endpoint"]}}
    payload = await w.ok(WEBHOOK_ENDPOINT_REPLAY, replay, "webhookEndpointReplay", by="admin")
    assert payload["queued"] == 2, payload


# -- administration (invitations; tests/test_administration.py has the rest) ------------------------------------

USER_INVITE = """
mutation($input: UserInviteInput!) { userInvite(input: $input) { invitation { id } userErrors { code } } }
"""
INVITATION_REVOKE = """
mutation($id: ID!) { invitationRevoke(input: {id: $id}) { invitation { id } userErrors { code } } }
"""


async def _user_invite(w: World) -> None:
    variables = {"input": {"email": f"invited{len(w.ids)}@acme.test", "name": "Invited", "role": "SUPPORT"}}
    w.ids["invitation"] = (await w.ok(USER_INVITE, variables, "userInvite", by="admin"))["invitation"]["id"]


async def _invitation_revoke(w: World) -> None:
    await w.ok(INVITATION_REVOKE, {"id": w.ids["invitation"]}, "invitationRevoke", by="admin")


CASES: dict[str, Case] = {
    "ACTION_CREATED": Case(_action_create, ("ACTION_CREATED",), _inbox_with_a_contact),
    "ACTION_UPDATED": Case(_action_update, ("ACTION_UPDATED",), _thread_with_an_action),
    "CONTACT_CREATED": Case(_contact_create, ("CONTACT_CREATED",), _customer_and_contacts),
    "CONTACT_MERGED": Case(_contact_merge, ("CONTACT_MERGED",), _duplicate_contacts),
    "CONTACT_UNMERGED": Case(_contact_unmerge, ("CONTACT_UNMERGED",), _merged_contacts),
    "CONTACT_UPDATED": Case(_contact_update, ("CONTACT_UPDATED",), _customer_and_contacts),
    # the call's VOICE identity goes to the older contact; the other one is suggested, not merged
    "CONTACT_MERGE_SUGGESTED": Case(
        _a_call_from_the_shared_number,
        ("CONTACT_UPDATED", "CONTACT_MERGE_SUGGESTED"),
        _contacts_sharing_a_number,
        actor=None,
    ),
    "CONTACT_MERGE_SUGGESTION_RESOLVED": Case(
        _merge_suggestion_accept, ("CONTACT_MERGED", "CONTACT_MERGE_SUGGESTION_RESOLVED"), _a_merge_suggestion
    ),
    "CUSTOMER_CREATED": Case(_customer_create, ("CUSTOMER_CREATED",), _two_customers),
    "CUSTOMER_UPDATED": Case(_customer_update, ("CUSTOMER_UPDATED",), _two_customers),
    "MESSAGE_ADDED": Case(_message_send, ("MESSAGE_ADDED", "THREAD_UPDATED"), _thread_with_a_contact),
    "MESSAGE_STATUS_CHANGED": Case(_provider_reports_delivery, ("MESSAGE_STATUS_CHANGED",), _queued_email, actor=None),
    "MESSAGE_UPDATED": Case(_provider_reports_a_call, ("MESSAGE_UPDATED",), _queued_email, actor=None),
    "NOTE_ADDED": Case(_note_add, ("NOTE_ADDED",), _thread_with_a_note),
    "NOTE_UPDATED": Case(_note_update, ("NOTE_UPDATED", "NOTIFICATION_CREATED"), _thread_with_two_notes),
    "NOTE_DELETED": Case(_note_delete, ("NOTE_DELETED",), _thread_with_two_notes, actor="admin"),
    "SLA_WARNING": Case(
        _sla_timer(25), ("SLA_WARNING", "THREAD_UPDATED"), _sla_policy(warnBeforeMinutes=10), actor=None
    ),
    "SLA_BREACHED": Case(
        _sla_timer(31),
        ("SLA_BREACHED", "THREAD_UPDATED", "THREAD_UPDATED"),
        _sla_policy(breachActions={"raisePriority": True}),
        actor=None,
    ),
    "WORKFLOW_STEP_COMPLETED": Case(
        _workflow_runs,
        ("THREAD_UPDATED", "WORKFLOW_STEP_COMPLETED"),
        _workflow({"type": "SET", "priority": "HIGH", "addTags": ["hot"]}),
        actor=None,
    ),
    "WORKFLOW_FAILED": Case(_workflow_runs, ("WORKFLOW_FAILED",), _workflow_failing, actor=None),
    "WORKFLOW_CANCELLED": Case(_workflow_cancel, ("WORKFLOW_CANCELLED",), _waiting_workflow, actor="admin"),
    "ANALYSIS_COMPLETED": Case(
        _analysis_runs,
        ("THREAD_UPDATED", "THREAD_UPDATED", "ANALYSIS_COMPLETED"),
        _an_inbound_message_naming_a_container,
        actor=None,
    ),
    "COMPOSE_STARTED": Case(_compose_start, ("COMPOSE_STARTED",), _inbox_with_a_contact, actor="admin"),
    "NOTIFICATION_CREATED": Case(_mention_the_client, ("NOTE_ADDED", "NOTIFICATION_CREATED"), _inbox_with_a_contact),
    "NOTIFICATIONS_READ": Case(_notification_mark_read, ("NOTIFICATIONS_READ",), _two_notifications, actor="admin"),
    "SHIPMENT_CREATED": Case(_shipment_create, ("SHIPMENT_CREATED",), _a_shipment),
    "SHIPMENT_MILESTONE_ADDED": Case(
        _shipment_milestone_add, ("SHIPMENT_MILESTONE_ADDED", "SHIPMENT_UPDATED"), _a_shipment
    ),
    "SHIPMENT_UPDATED": Case(_shipment_update, ("SHIPMENT_UPDATED",), _two_shipments),
    "THREAD_ARCHIVED": Case(_thread_archive, ("THREAD_ARCHIVED",), _busy_thread),
    "THREAD_ASSIGNED": Case(_thread_assign, ("THREAD_ASSIGNED",), _inbox_with_a_contact),
    "THREAD_CREATED": Case(_thread_create, ("THREAD_CREATED",), _inbox_with_a_contact),
    "THREAD_READ": Case(_thread_mark_read, ("THREAD_READ",), _unread_messages, actor="admin"),
    "THREAD_UPDATED": Case(_thread_update, ("THREAD_UPDATED",), _thread_update_setup),
    "USER_CREATED": Case(_user_create, ("USER_CREATED",), actor="admin"),
    "USER_UPDATED": Case(_user_update, ("USER_UPDATED",), actor="admin"),
    "INTEGRATION_CONFIGURED": Case(_integration_configure, ("INTEGRATION_CONFIGURED",), actor="admin"),
    "INTEGRATION_UPDATED": Case(_integration_update, ("INTEGRATION_UPDATED",) * 3, _an_integration, actor="admin"),
    "EMAIL_ACCOUNT_CREATED": Case(_email_account_create, ("EMAIL_ACCOUNT_CREATED",), actor="admin"),
    "EMAIL_ACCOUNT_UPDATED": Case(
        _email_account_update, ("EMAIL_ACCOUNT_UPDATED",), _two_email_accounts, actor="admin"
    ),
    "EMAIL_ACCOUNT_DELETED": Case(
        _email_account_delete, ("EMAIL_ACCOUNT_DELETED",), _two_email_accounts, actor="admin"
    ),
    "AGENT_TASK_CREATED": Case(_agent_task_create, ("AGENT_TASK_CREATED",), _an_agent_connection),
    "INVITATION_CREATED": Case(_user_invite, ("INVITATION_CREATED",), actor="admin"),
    "INVITATION_UPDATED": Case(_invitation_revoke, ("INVITATION_UPDATED",), _user_invite, actor="admin"),
    "AGENT_TASK_FAILED": Case(_agent_task_cancel, ("AGENT_TASK_FAILED",), _a_queued_agent_task),
    # the note and the completion are by the task's creator (the manager), as the note is
    "AGENT_TASK_COMPLETED": Case(_agent_task_runs, ("NOTE_ADDED", "AGENT_TASK_COMPLETED"), _a_queued_agent_task),
    "WEBHOOK_DELIVERIES_QUEUED": Case(
        _webhook_endpoint_replay, ("WEBHOOK_DELIVERIES_QUEUED",), _a_webhook_endpoint, actor="admin"
    ),
    "DOCUMENT_ADDED": Case(_file_a_bill_of_lading, ("DOCUMENT_ADDED",), _a_shipment_thread),
    # a second BL: the new version, then the first one superseded (it leaves the list of current documents)
    "DOCUMENT_UPDATED": Case(_file_a_bill_of_lading, ("DOCUMENT_ADDED", "DOCUMENT_UPDATED"), _a_filed_bill_of_lading),
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # the agent task cases call a local stand-in MCP server
    return settings.model_copy(update={"allow_private_webhooks": True})


# -- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture
async def world(inbox: Inbox, api: Api) -> World:
    tokens, users = {"admin": inbox.token}, {}
    for role in ("manager", "support"):
        email = f"{role}@acme.test"
        await api.create_user(inbox.org, email, role)
        tokens[role] = await api.token(email)
    for role, token in tokens.items():
        users[role] = (await inbox.gql(ME_ID, token=token))["data"]["me"]["id"]
    return World(inbox, tokens, users)


@pytest.fixture
async def server(settings: Settings, state: AppState, api: Api, org: Org) -> AsyncIterator[str]:
    # The client's subscription selects every kind of node at once, with an alias for each field whose type
    # differs between kinds: more than the default limit of 30 (a real client selects what it shows).
    wide = settings.model_copy(update={"graphql_max_aliases": 50})
    async with uvicorn_server(wide, state) as url:
        yield url


async def fetch_state(w: World, by: str = "admin") -> dict[str, Any]:
    result = await w.inbox.gql(STATE, token=w.tokens[by])
    assert "errors" not in result, result
    data = result["data"]
    if by == "admin":  # what only an admin's client shows
        admin = await w.inbox.gql(ADMIN_STATE, token=w.tokens[by])
        assert "errors" not in admin, admin
        data = {**data, **admin["data"]}
    return normalize(data)


# -- the check ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
async def test_a_client_that_applies_the_events_holds_what_a_fresh_fetch_returns(
    event_type: str, world: World, server: str, state: AppState, org: Org
) -> None:
    case = CASES.get(event_type)
    assert case is not None, f"no apply-events case for {event_type}: add one to CASES"
    # given the client's state, fetched
    await case.setup(world)
    before = await fetch_state(world)
    async with GraphQLSocket.open(server) as socket:
        # and its subscription to the inbox's events
        await socket.init(world.tokens["admin"])
        await socket.subscribe("inbox", INBOX_EVENTS)
        await wait_subscribed(state, org.id, 1)
        # when the mutation runs
        await case.act(world)
        received = await receive_events(socket, len(case.expect))
    # then the client receives the case's events, by whoever made the change
    assert [event["type"] for event in received] == list(case.expect)
    actor = {"id": world.users[case.actor]} if case.actor else None
    assert [event["actor"] for event in received] == [actor] * len(received)
    # and applying them to what it had gives what it would fetch now
    after = await fetch_state(world)
    assert after != before, "the mutation changed nothing the client shows: the case checks nothing"
    found = differences(apply_events(before, received), after)
    assert not found, "the events do not carry what changed:\n" + "\n".join(found)


async def test_clients_of_different_users_apply_the_same_events_each_to_its_own_state(
    world: World, server: str, state: AppState, org: Org
) -> None:
    # given two clients, the admin's and support's, who has read the thread (their unread counts differ)
    await _inbox_with_a_contact(world)
    thread = world.ids["older"]
    await world.message(thread, "Broker called")
    await world.ok(THREAD_MARK_READ, {"input": {"threadId": thread}}, "threadMarkRead", by="support")
    clients = ("admin", "support")
    before = {client: await fetch_state(world, client) for client in clients}
    async with GraphQLSocket.open(server) as admin, GraphQLSocket.open(server) as support:
        sockets = {"admin": admin, "support": support}
        for client, socket in sockets.items():
            await socket.init(world.tokens[client])
            await socket.subscribe("inbox", INBOX_EVENTS)
        await wait_subscribed(state, org.id, len(sockets))
        # when a colleague writes in the thread, and support reads it again
        await world.message(thread, "Broker called again")
        await world.ok(THREAD_MARK_READ, {"input": {"threadId": thread}}, "threadMarkRead", by="support")
        received = {"admin": await receive_events(admin, 1), "support": await receive_events(support, 2)}
    # then each client gets the message, and only support its own read
    assert [e["type"] for e in received["admin"]] == ["MESSAGE_ADDED"]
    assert [e["type"] for e in received["support"]] == ["MESSAGE_ADDED", "THREAD_READ"]
    # and each, applying them to its own state, holds what it would fetch now
    after = {client: await fetch_state(world, client) for client in clients}
    unread = {
        client: next(t["unreadCount"] for t in after[client]["threads"] if t["id"] == thread) for client in clients
    }
    assert unread == {"admin": 2, "support": 0}
    for client in clients:
        found = differences(apply_events(before[client], received[client]), after[client])
        assert not found, f"{client}'s client:\n" + "\n".join(found)


def test_every_registered_event_type_has_an_apply_events_case() -> None:
    # given the event registry and the cases
    registered, checked = set(EVENT_TYPES), set(CASES)
    # then each registered type has a case that receives it, and no case names an unregistered type
    assert registered - checked == set(), f"registered without an apply-events case: {sorted(registered - checked)}"
    assert checked - registered == set(), f"cases for types no longer registered: {sorted(checked - registered)}"
    for event_type, case in CASES.items():
        assert event_type in case.expect, f"the {event_type} case does not receive a {event_type} event"
        assert set(case.expect) <= registered, case.expect
