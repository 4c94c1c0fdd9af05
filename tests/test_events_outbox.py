"""The outbox: every mutation appends its event rows to `events` in the transaction of its change,
with the organization, the actor and a payload that `banxway.events.parse` reads back; a mutation that
fails writes none; and every registered event type is produced by some mutation checked here."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from strawberry.relay import GlobalID
from strawberry.utils.str_converters import to_camel_case

from banxway.db.models import (
    AgentTask,
    ComposeSession,
    Contact,
    ContactMerge,
    Customer,
    Document,
    EmailAccount,
    Event,
    Integration,
    Invitation,
    Message,
    Note,
    Shipment,
    ShipmentMilestone,
    Thread,
    User,
    WebhookDelivery,
    WorkflowInstance,
)
from banxway.db.session import system_session
from banxway.events import EVENT_TYPES, parse
from banxway.resolvers.workflow_engine import workflow_run, workflows_start
from banxway.schema.actions import ActionMutation
from banxway.schema.contacts import ContactMutation
from banxway.schema.customers import CustomerMutation
from banxway.schema.ids import to_global_id
from banxway.schema.messages import MessageMutation
from banxway.schema.notes import NoteMutation
from banxway.schema.shipments import ShipmentMutation
from banxway.schema.threads import ThreadMutation
from tests.inbox_helpers import Inbox, system_context
from tests.seed_helpers import WEBHOOK_DELIVERIES, WEBHOOK_ENDPOINT_CREATE, WEBHOOK_ENDPOINT_REPLAY

ME_ID = "{ me { id } }"

THREAD_CREATE = """
mutation($input: ThreadCreateInput!) {
  threadCreate(input: $input) { thread { id } userErrors { field code message } }
}
"""

THREAD_UPDATE = """
mutation($input: ThreadUpdateInput!) {
  threadUpdate(input: $input) { thread { id } userErrors { field code message } }
}
"""

THREAD_ASSIGN = """
mutation($input: ThreadAssignInput!) {
  threadAssign(input: $input) { thread { id } userErrors { field code message } }
}
"""

MESSAGE_CANCEL_SCHEDULED = """
mutation($input: MessageCancelScheduledInput!) {
  messageCancelScheduled(input: $input) { message { id } userErrors { field code message } }
}
"""
MESSAGE_UPDATE_SCHEDULED = """
mutation($input: MessageUpdateScheduledInput!) {
  messageUpdateScheduled(input: $input) { message { id } userErrors { field code message } }
}
"""
ATTACHMENT_UPLOAD = """
mutation($input: AttachmentUploadInput!) {
  attachmentUpload(input: $input) { attachment { id } userErrors { field code message } }
}
"""
THREAD_ASSIGN_TEAM = """
mutation($input: ThreadAssignTeamInput!) { threadAssignTeam(input: $input) { thread { id } userErrors { field } } }
"""
TEAM_CREATE = """
mutation($input: TeamCreateInput!) { teamCreate(input: $input) { team { id } userErrors { field code message } } }
"""
THREAD_SNOOZE = """
mutation($input: ThreadSnoozeInput!) { threadSnooze(input: $input) { thread { id } userErrors { field } } }
"""

THREAD_ARCHIVE = """
mutation($input: ThreadArchiveInput!) {
  threadArchive(input: $input) { thread { id } userErrors { field code message } }
}
"""

THREAD_MARK_READ = """
mutation($input: ThreadMarkReadInput!) {
  threadMarkRead(input: $input) { thread { id } userErrors { field code message } }
}
"""

MESSAGE_SEND = """
mutation($input: MessageSendInput!) {
  messageSend(input: $input) { message { id } userErrors { field code message } }
}
"""

WORKFLOW_CREATE = """
mutation($input: WorkflowCreateInput!) { workflowCreate(input: $input) { workflow { id } userErrors { field message } } }
"""
AGENT_CONNECTION_CREATE = """
mutation($input: AgentConnectionCreateInput!) {
  agentConnectionCreate(input: $input) { agentConnection { id } userErrors { field code message } }
}
"""
AGENT_TASK_CREATE = """
mutation($input: AgentTaskCreateInput!) {
  agentTaskCreate(input: $input) { agentTask { id } userErrors { field code message } }
}
"""
AGENT_TASK_CANCEL = """
mutation($id: ID!) { agentTaskCancel(input: {id: $id}) { agentTask { id status } userErrors { field code message } } }
"""
WORKFLOW_INSTANCE_CANCEL = """
mutation($id: ID!) { workflowInstanceCancel(instanceId: $id) { instance { id status } userErrors { field message } } }
"""
NOTE_ADD = """
mutation($input: NoteAddInput!) {
  noteAdd(input: $input) { note { id } userErrors { field code message } }
}
"""

NOTE_UPDATE = """
mutation($input: NoteUpdateInput!) {
  noteUpdate(input: $input) { note { id } userErrors { field code message } }
}
"""

NOTE_DELETE = """
mutation($input: NoteDeleteInput!) {
  noteDelete(input: $input) { deletedId userErrors { field code message } }
}
"""

ACTION_CREATE = """
mutation($input: ActionCreateInput!) {
  actionCreate(input: $input) { action { id } userErrors { field code message } }
}
"""

ACTION_UPDATE = """
mutation($input: ActionUpdateInput!) {
  actionUpdate(input: $input) { action { id } userErrors { field code message } }
}
"""

CUSTOMER_CREATE = """
mutation($input: CustomerInput!) {
  customerCreate(input: $input) { customer { id } userErrors { field code message } }
}
"""

CUSTOMER_UPDATE = """
mutation($input: CustomerUpdateInput!) {
  customerUpdate(input: $input) { customer { id } userErrors { field code message } }
}
"""

CONTACT_CREATE = """
mutation($input: ContactInput!) {
  contactCreate(input: $input) { contact { id } userErrors { field code message } }
}
"""

CONTACT_UPDATE = """
mutation($input: ContactUpdateInput!) {
  contactUpdate(input: $input) { contact { id } userErrors { field code message } }
}
"""

CONTACT_MERGE = """
mutation($input: ContactMergeInput!) {
  contactMerge(input: $input) { keptContact { id } mergedContact { id } userErrors { field code message } }
}
"""

CONTACT_UNMERGE = """
mutation($input: ContactUnmergeInput!) {
  contactUnmerge(input: $input) { keptContact { id } mergedContact { id } userErrors { field code message } }
}
"""

SHIPMENT_CREATE = """
mutation($input: ShipmentInput!) {
  shipmentCreate(input: $input) { shipment { id } userErrors { field code message } }
}
"""

SHIPMENT_UPDATE = """
mutation($input: ShipmentUpdateInput!) {
  shipmentUpdate(input: $input) { shipment { id } userErrors { field code message } }
}
"""

SHIPMENT_MILESTONE_ADD = """
mutation($input: ShipmentMilestoneAddInput!) {
  shipmentMilestoneAdd(input: $input) { shipment { id status } userErrors { field code message } }
}
"""

USER_UPDATE = """
mutation($id: ID!, $active: Boolean) {
  userUpdate(input: {id: $id, active: $active}) { user { id } userErrors { field code message } }
}
"""

USER_CREATE = """
mutation($input: UserCreateInput!) {
  userCreate(input: $input) { user { id } userErrors { field code message } }
}
"""

USER_CHANGE = """
mutation($input: UserUpdateInput!) {
  userUpdate(input: $input) { user { id } userErrors { field code message } }
}
"""

INTEGRATION_CONFIGURE = """
mutation($input: IntegrationConfigureInput!) {
  integrationConfigure(input: $input) {
    integration { id phoneNumbers { id number } } userErrors { field code message }
  }
}
"""

INTEGRATION_ROTATE = """
mutation($input: IntegrationIdInput!) {
  integrationRotateWebhookToken(input: $input) { integration { id } userErrors { field code message } }
}
"""

INTEGRATION_TEST = """
mutation($input: IntegrationIdInput!) {
  integrationTest(input: $input) { ok detail userErrors { field code message } }
}
"""

PHONE_NUMBER_ASSIGN = """
mutation($input: PhoneNumberAssignInput!) {
  phoneNumberAssign(input: $input) { phoneNumber { id } userErrors { field code message } }
}
"""

EMAIL_ACCOUNT_CREATE = """
mutation($input: EmailAccountCreateInput!) {
  emailAccountCreate(input: $input) { emailAccount { id } userErrors { field code message } }
}
"""

EMAIL_ACCOUNT_UPDATE = """
mutation($input: EmailAccountUpdateInput!) {
  emailAccountUpdate(input: $input) { emailAccount { id } userErrors { field code message } }
}
"""

EMAIL_ACCOUNT_DELETE = """
mutation($input: EmailAccountIdInput!) {
  emailAccountDelete(input: $input) { deletedId userErrors { field code message } }
}
"""

# An integration's provider address where nothing listens: integrationTest fails, the same way each time.
UNREACHABLE = "http://127.0.0.1:9"


def integration_input(**fields: Any) -> dict[str, Any]:
    values = {
        "type": "EXOTEL",
        "accountSid": "acme1",
        "apiKey": "exo-key",
        "apiToken": "exo-token",
        "baseUrl": UNREACHABLE,
        "phoneNumbers": [{"number": "+912250001000", "channels": ["WHATSAPP"]}],
    }
    return {**values, **fields}


def email_account_input(**fields: Any) -> dict[str, Any]:
    values = {
        "name": "Operations",
        "email": "ops@acme.test",
        "imapHost": "imap.acme.test",
        "imapPort": 993,
        "imapSecurity": "TLS",
        "imapUsername": "ops",
        "imapPassword": "imap-secret",
        "smtpHost": "smtp.acme.test",
        "smtpPort": 465,
        "smtpSecurity": "TLS",
        "smtpUsername": "ops",
        "smtpPassword": "smtp-secret",
    }
    return {**values, **fields}


# Registered types that no mutation produces: SLA warnings and breaches come from the SLA timer (tests/test_sla.py),
# workflow steps and failures from the workflow engine (tests/test_workflows.py).
# (MESSAGE_UPDATED also comes from the delivery worker and the providers' webhooks: a call's callbacks, transcripts,
# media, tested in tests/test_messaging_*.py.) Anything else registered must be produced below.
NOT_PRODUCED_BY_MUTATIONS = {
    "SLA_WARNING",
    "SLA_BREACHED",
    "WORKFLOW_STEP_COMPLETED",
    "WORKFLOW_FAILED",
    "ANALYSIS_COMPLETED",  # the analyse_message actor's (tests/test_analysis.py)
    "AGENT_TASK_COMPLETED",  # the run_agent_task actor's (tests/test_agent_tasks.py)
    "CONTACT_MERGE_SUGGESTED",  # the inbound paths' contact resolver (tests/test_contact_resolver.py)
}


# -- helpers -----------------------------------------------------------------------------


def _uuid(global_id: str) -> uuid.UUID:
    return uuid.UUID(GlobalID.from_id(global_id).node_id)


class EventLog:
    """The `events` table, read across organizations; `mark()` sets where "new" starts."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.after = 0

    async def _session_scalar(self, statement: Any) -> Any:
        async with system_session(self.inbox.api.state.sessionmaker) as session:
            return await session.scalar(statement)

    async def mark(self) -> None:
        self.after = await self._session_scalar(select(func.coalesce(func.max(Event.id), 0)))

    async def new(self) -> list[Event]:
        async with system_session(self.inbox.api.state.sessionmaker) as session:
            return list(await session.scalars(select(Event).where(Event.id > self.after).order_by(Event.id)))

    async def timestamp(self, model: Any, row_id: uuid.UUID, attribute: str) -> datetime:
        return await self._session_scalar(select(getattr(model, attribute)).where(model.id == row_id))


@dataclass
class Expected:
    type: str
    fields: dict[str, Any]
    # (model, id, column) whose timestamp was written by the same transaction as the event
    same_transaction: tuple[Any, uuid.UUID, str] | None = None


@dataclass
class Setup:
    inbox: Inbox
    log: EventLog
    ids: dict[str, Any] = field(default_factory=dict)

    async def ok(self, query: str, variables: dict, name: str, token: str | None = None) -> dict:
        return await self.inbox.ok(query, variables, name, token)

    async def thread(self, **fields: Any) -> str:
        fields.setdefault("subject", "Quote for 2x40HC Nhava Sheva to Hamburg")
        return (await self.ok(THREAD_CREATE, {"input": fields}, "threadCreate"))["thread"]["id"]

    async def customer(self, name: str = "Acme Imports") -> str:
        return (await self.ok(CUSTOMER_CREATE, {"input": {"name": name}}, "customerCreate"))["customer"]["id"]

    async def contact(self, name: str = "Priya Shah", **fields: Any) -> str:
        payload = await self.ok(CONTACT_CREATE, {"input": {"name": name, **fields}}, "contactCreate")
        return payload["contact"]["id"]

    async def shipment(self, reference: str = "SHP-1") -> str:
        payload = await self.ok(
            SHIPMENT_CREATE, {"input": {"reference": reference, "direction": "IMPORT"}}, "shipmentCreate"
        )
        return payload["shipment"]["id"]

    async def integration(self, **fields: Any) -> dict[str, Any]:
        payload = await self.ok(INTEGRATION_CONFIGURE, {"input": integration_input(**fields)}, "integrationConfigure")
        return payload["integration"]

    async def email_account(self, **fields: Any) -> str:
        payload = await self.ok(EMAIL_ACCOUNT_CREATE, {"input": email_account_input(**fields)}, "emailAccountCreate")
        return payload["emailAccount"]["id"]

    async def member(self, role: str, email: str) -> str:
        await self.inbox.api.create_user(self.inbox.org, email, role)
        token = await self.inbox.api.token(email)
        return (await self.inbox.api.gql(ME_ID, token=token))["data"]["me"]["id"]


Case = Callable[[Setup], Awaitable[list[Expected]]]


# -- one case per mutation: set up, mark, mutate, say what must have been recorded ---------------


async def thread_create(s: Setup) -> list[Expected]:
    contact = await s.contact()
    await s.log.mark()
    thread = (await s.ok(THREAD_CREATE, {"input": {"subject": "New", "contactId": contact}}, "threadCreate"))["thread"]
    tid = _uuid(thread["id"])
    return [Expected("THREAD_CREATED", {"thread_id": tid}, (Thread, tid, "created_at"))]


async def thread_update(s: Setup) -> list[Expected]:
    thread = await s.thread()
    await s.log.mark()
    await s.ok(THREAD_UPDATE, {"input": {"id": thread, "priority": "URGENT", "tags": ["x"]}}, "threadUpdate")
    tid = _uuid(thread)
    return [
        Expected("THREAD_UPDATED", {"thread_id": tid, "changed": ["priority", "tags"]}, (Thread, tid, "updated_at"))
    ]


async def thread_assign(s: Setup) -> list[Expected]:
    thread = await s.thread()
    support = await s.member("support", "support@acme.test")
    await s.log.mark()
    await s.ok(THREAD_ASSIGN, {"input": {"threadId": thread, "assigneeId": support}}, "threadAssign")
    tid = _uuid(thread)
    return [
        Expected(
            "THREAD_ASSIGNED",
            {"thread_id": tid, "assignee_id": _uuid(support), "previous_assignee_id": None},
            (Thread, tid, "updated_at"),
        ),
        Expected("NOTIFICATION_CREATED", {"user_id": _uuid(support)}),
    ]


async def thread_assign_team(s: Setup) -> list[Expected]:
    thread = await s.thread()
    support = await s.member("support", "support@acme.test")
    team = await s.ok(TEAM_CREATE, {"input": {"name": "Sea Export", "memberIds": [support]}}, "teamCreate")
    await s.log.mark()
    variables = {"input": {"threadId": thread, "teamId": team["team"]["id"]}}
    await s.ok(THREAD_ASSIGN_TEAM, variables, "threadAssignTeam")
    tid = _uuid(thread)
    return [
        Expected("THREAD_UPDATED", {"thread_id": tid, "changed": ["team_id"]}, (Thread, tid, "updated_at")),
        Expected(
            "THREAD_ASSIGNED",
            {"thread_id": tid, "assignee_id": _uuid(support), "previous_assignee_id": None},
            (Thread, tid, "updated_at"),
        ),
        Expected("NOTIFICATION_CREATED", {"user_id": _uuid(support)}),
    ]


async def thread_snooze(s: Setup) -> list[Expected]:
    thread = await s.thread()
    await s.log.mark()
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await s.ok(THREAD_SNOOZE, {"input": {"threadId": thread, "until": until}}, "threadSnooze")
    tid = _uuid(thread)
    return [Expected("THREAD_UPDATED", {"thread_id": tid, "changed": ["snoozed_until"]}, (Thread, tid, "updated_at"))]


THREAD_BOT_RESUME = """
mutation($input: ThreadBotResumeInput!) { threadBotResume(input: $input) { thread { id } userErrors { field } } }
"""


async def thread_bot_resume(s: Setup) -> list[Expected]:
    thread = await s.thread()
    tid = _uuid(thread)
    async with system_session(s.inbox.api.state.sessionmaker) as session, session.begin():
        row = await session.get(Thread, tid)
        assert row is not None
        row.bot_suspended_until = datetime.now(UTC) + timedelta(days=1)  # as a person's reply leaves it
    await s.log.mark()
    await s.ok(THREAD_BOT_RESUME, {"input": {"threadId": thread}}, "threadBotResume")
    return [
        Expected("THREAD_UPDATED", {"thread_id": tid, "changed": ["bot_suspended_until"]}, (Thread, tid, "updated_at"))
    ]


async def workflow_instance_cancel(s: Setup) -> list[Expected]:
    definition = {"trigger": {"type": "THREAD_CREATED"}, "steps": [{"type": "WAIT", "minutes": 60}]}
    await s.ok(
        WORKFLOW_CREATE, {"input": {"name": "Later", "definition": definition, "active": True}}, "workflowCreate"
    )
    await s.log.mark()
    thread = await s.thread()
    [created] = await s.log.new()
    ctx = system_context(s.inbox.api.state)
    [instance_id] = await workflows_start(ctx, created.id)
    assert await workflow_run(ctx, instance_id) == "WAITING"
    await s.log.mark()
    gid = to_global_id("WorkflowInstance", instance_id)
    await s.ok(WORKFLOW_INSTANCE_CANCEL, {"id": gid}, "workflowInstanceCancel")
    fields = {"thread_id": _uuid(thread), "instance_id": instance_id}
    return [Expected("WORKFLOW_CANCELLED", fields, (WorkflowInstance, instance_id, "updated_at"))]


async def _agent_task(s: Setup, thread: str) -> str:
    values = {"name": "Tracker", "url": "https://agents.example.com/mcp"}
    connection = (await s.ok(AGENT_CONNECTION_CREATE, {"input": values}, "agentConnectionCreate"))["agentConnection"]
    values = {"threadId": thread, "connectionId": connection["id"], "tool": "track_container"}
    return (await s.ok(AGENT_TASK_CREATE, {"input": values}, "agentTaskCreate"))["agentTask"]["id"]


async def agent_task_create(s: Setup) -> list[Expected]:
    thread = await s.thread()
    await s.log.mark()
    task_id = _uuid(await _agent_task(s, thread))
    fields = {"thread_id": _uuid(thread), "task_id": task_id}
    return [Expected("AGENT_TASK_CREATED", fields, (AgentTask, task_id, "created_at"))]


async def agent_task_cancel(s: Setup) -> list[Expected]:
    thread = await s.thread()
    task = await _agent_task(s, thread)
    await s.log.mark()
    await s.ok(AGENT_TASK_CANCEL, {"id": task}, "agentTaskCancel")
    fields = {"thread_id": _uuid(thread), "task_id": _uuid(task), "cancelled": True}
    return [Expected("AGENT_TASK_FAILED", fields)]


async def thread_archive(s: Setup) -> list[Expected]:
    thread = await s.thread()
    await s.log.mark()
    await s.ok(THREAD_ARCHIVE, {"input": {"threadId": thread}}, "threadArchive")
    tid = _uuid(thread)
    return [Expected("THREAD_ARCHIVED", {"thread_id": tid}, (Thread, tid, "updated_at"))]


async def thread_mark_read(s: Setup) -> list[Expected]:
    thread = await s.thread()
    await s.log.mark()
    await s.ok(THREAD_MARK_READ, {"input": {"threadId": thread}}, "threadMarkRead")
    return [Expected("THREAD_READ", {"thread_id": _uuid(thread), "user_id": s.ids["me"]})]


THREAD_MARK_UNREAD = """
mutation($input: ThreadMarkUnreadInput!) { threadMarkUnread(input: $input) { thread { id } userErrors { field } } }
"""
THREADS_BULK_UPDATE = """
mutation($input: ThreadsBulkUpdateInput!) { threadsBulkUpdate(input: $input) { threads { id } userErrors { field } } }
"""


async def thread_mark_unread(s: Setup) -> list[Expected]:
    thread = await s.thread()
    await s.log.mark()
    await s.ok(THREAD_MARK_UNREAD, {"input": {"threadId": thread}}, "threadMarkUnread")
    return [Expected("THREAD_READ", {"thread_id": _uuid(thread), "user_id": s.ids["me"]})]


async def threads_bulk_update(s: Setup) -> list[Expected]:
    first, second = await s.thread(), await s.thread()
    support = await s.member("support", "support@acme.test")
    await s.log.mark()
    variables = {"input": {"threadIds": [first, second], "priority": "HIGH", "assigneeId": support, "archive": True}}
    await s.ok(THREADS_BULK_UPDATE, variables, "threadsBulkUpdate")
    expected = []
    for thread in (first, second):
        tid = _uuid(thread)
        expected += [
            Expected("THREAD_UPDATED", {"thread_id": tid, "changed": ["priority"]}, (Thread, tid, "updated_at")),
            Expected(
                "THREAD_ASSIGNED", {"thread_id": tid, "assignee_id": _uuid(support), "previous_assignee_id": None}
            ),
            Expected("NOTIFICATION_CREATED", {"user_id": _uuid(support)}),
            Expected("THREAD_ARCHIVED", {"thread_id": tid}, (Thread, tid, "updated_at")),
        ]
    return expected


async def message_send(s: Setup) -> list[Expected]:
    await s.email_account()  # EMAIL is configured (else CHANNEL_NOT_CONFIGURED)
    thread = await s.thread()
    await s.log.mark()
    payload = await s.ok(
        MESSAGE_SEND,
        {"input": {"threadId": thread, "channel": "EMAIL", "body": "Hi", "to": ["ops@acme.example"]}},
        "messageSend",
    )
    tid, mid = _uuid(thread), _uuid(payload["message"]["id"])
    return [
        Expected("MESSAGE_ADDED", {"thread_id": tid, "message_id": mid}, (Message, mid, "created_at")),
        Expected("THREAD_UPDATED", {"thread_id": tid, "changed": ["status"]}, (Thread, tid, "updated_at")),
    ]


async def message_cancel_scheduled(s: Setup) -> list[Expected]:
    await s.email_account()
    thread = await s.thread()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    values = {"threadId": thread, "channel": "EMAIL", "body": "Later", "to": ["ops@acme.example"], "sendAt": later}
    payload = await s.ok(MESSAGE_SEND, {"input": values}, "messageSend")
    await s.log.mark()
    mid = _uuid(payload["message"]["id"])
    await s.ok(MESSAGE_CANCEL_SCHEDULED, {"input": {"messageId": payload["message"]["id"]}}, "messageCancelScheduled")
    return [Expected("MESSAGE_STATUS_CHANGED", {"message_id": mid, "status": "CANCELLED", "released": False})]


MESSAGE_RETRY = """
mutation($input: MessageRetryInput!) { messageRetry(input: $input) { message { id } userErrors { field code message } } }
"""


async def message_retry(s: Setup) -> list[Expected]:
    from sqlalchemy import update

    from banxway.enums import MessageStatus

    await s.email_account()
    thread = await s.thread()
    values = {"threadId": thread, "channel": "EMAIL", "body": "Hi", "to": ["ops@acme.example"]}
    payload = await s.ok(MESSAGE_SEND, {"input": values}, "messageSend")
    mid = _uuid(payload["message"]["id"])
    async with system_session(s.inbox.api.state.sessionmaker) as session, session.begin():  # the delivery failed
        await session.execute(update(Message).where(Message.id == mid).values(status=MessageStatus.FAILED, error="x"))
    await s.log.mark()
    await s.ok(MESSAGE_RETRY, {"input": {"messageId": payload["message"]["id"]}}, "messageRetry")
    return [Expected("MESSAGE_STATUS_CHANGED", {"message_id": mid, "status": "QUEUED", "released": True})]


async def message_update_scheduled(s: Setup) -> list[Expected]:
    await s.email_account()
    thread = await s.thread()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    values = {"threadId": thread, "channel": "EMAIL", "body": "Later", "to": ["ops@acme.example"], "sendAt": later}
    payload = await s.ok(MESSAGE_SEND, {"input": values}, "messageSend")
    await s.log.mark()
    mid = _uuid(payload["message"]["id"])
    edit = {"messageId": payload["message"]["id"], "body": "Later, revised"}
    await s.ok(MESSAGE_UPDATE_SCHEDULED, {"input": edit}, "messageUpdateScheduled")
    return [
        Expected(
            "MESSAGE_UPDATED",
            {"thread_id": _uuid(thread), "message_id": mid, "changed": ["body"]},
            (Message, mid, "updated_at"),
        )
    ]


async def attachment_upload(s: Setup) -> list[Expected]:
    # a file to send later: stored, and no event (nothing happened in a thread yet)
    await s.log.mark()
    operations = {"query": ATTACHMENT_UPLOAD, "variables": {"input": {"file": None}}}
    response = await s.inbox.api.http.post(
        "/graphql",
        headers={"authorization": f"Bearer {s.inbox.token}"},
        data={"operations": orjson.dumps(operations).decode(), "map": '{"0": ["variables.input.file"]}'},
        files={"0": ("quote.pdf", b"%PDF quote", "application/pdf")},
    )
    assert response.json()["data"]["attachmentUpload"]["userErrors"] == [], response.text
    return []


async def message_send_internal(s: Setup) -> list[Expected]:
    thread = await s.thread()
    await s.log.mark()
    payload = await s.ok(
        MESSAGE_SEND, {"input": {"threadId": thread, "channel": "INTERNAL", "body": "Hi"}}, "messageSend"
    )
    tid, mid = _uuid(thread), _uuid(payload["message"]["id"])
    return [Expected("MESSAGE_ADDED", {"thread_id": tid, "message_id": mid}, (Message, mid, "created_at"))]


async def note_add(s: Setup) -> list[Expected]:
    thread = await s.thread()
    support = await s.member("support", "support@acme.test")
    await s.log.mark()
    payload = await s.ok(NOTE_ADD, {"input": {"threadId": thread, "body": "@support@acme.test have a look"}}, "noteAdd")
    nid = _uuid(payload["note"]["id"])
    return [
        Expected(
            "NOTE_ADDED",
            {"thread_id": _uuid(thread), "note_id": nid, "mentioned_user_ids": [_uuid(support)]},
            (Note, nid, "created_at"),
        ),
        Expected("NOTIFICATION_CREATED", {"user_id": _uuid(support)}),
    ]


async def _a_note(s: Setup, body: str = "Have a look") -> tuple[str, str]:
    thread = await s.thread()
    payload = await s.ok(NOTE_ADD, {"input": {"threadId": thread, "body": body}}, "noteAdd")
    return thread, payload["note"]["id"]


async def note_update(s: Setup) -> list[Expected]:
    thread, note = await _a_note(s)
    support = await s.member("support", "support@acme.test")
    await s.log.mark()
    await s.ok(NOTE_UPDATE, {"input": {"noteId": note, "body": "@support@acme.test have a look"}}, "noteUpdate")
    nid = _uuid(note)
    return [
        Expected(
            "NOTE_UPDATED",
            {"thread_id": _uuid(thread), "note_id": nid, "changed": ["body", "mentioned_user_ids"]},
            (Note, nid, "edited_at"),
        ),
        Expected("NOTIFICATION_CREATED", {"user_id": _uuid(support)}),
    ]


async def note_delete(s: Setup) -> list[Expected]:
    thread, note = await _a_note(s)
    await s.log.mark()
    await s.ok(NOTE_DELETE, {"input": {"noteId": note}}, "noteDelete")
    nid = _uuid(note)
    return [Expected("NOTE_DELETED", {"thread_id": _uuid(thread), "note_id": nid}, (Note, nid, "deleted_at"))]


async def compose_start(s: Setup) -> list[Expected]:
    thread = await s.thread()
    await s.log.mark()
    payload = await s.ok(
        "mutation($input: ComposeStartInput!) { composeStart(input: $input) { session { id } userErrors { code } } }",
        {"input": {"threadId": thread, "instructions": "tell them the ETA"}},
        "composeStart",
    )
    sid = _uuid(payload["session"]["id"])
    expected = {"thread_id": _uuid(thread), "user_id": s.ids["me"], "session_id": sid}
    return [Expected("COMPOSE_STARTED", expected, (ComposeSession, sid, "created_at"))]


async def notification_mark_all_read(s: Setup) -> list[Expected]:
    thread = await s.thread()
    await s.member("support", "support@acme.test")
    support_token = await s.inbox.api.token("support@acme.test")
    body = f"@{s.inbox.org.admin_email} please approve"
    await s.ok(NOTE_ADD, {"input": {"threadId": thread, "body": body}}, "noteAdd", support_token)
    await s.log.mark()
    payload = await s.ok(
        "mutation { notificationMarkAllRead { notifications { id } userErrors { code } } }",
        {},
        "notificationMarkAllRead",
    )
    [notification] = payload["notifications"]
    return [Expected("NOTIFICATIONS_READ", {"user_id": s.ids["me"], "notification_ids": [_uuid(notification["id"])]})]


async def action_create(s: Setup) -> list[Expected]:
    thread = await s.thread()
    await s.log.mark()
    payload = await s.ok(ACTION_CREATE, {"input": {"threadId": thread, "title": "Call back"}}, "actionCreate")
    return [Expected("ACTION_CREATED", {"thread_id": _uuid(thread), "action_id": _uuid(payload["action"]["id"])})]


async def action_update(s: Setup) -> list[Expected]:
    thread = await s.thread()
    action = (await s.ok(ACTION_CREATE, {"input": {"threadId": thread, "title": "Call"}}, "actionCreate"))["action"]
    await s.log.mark()
    await s.ok(ACTION_UPDATE, {"input": {"id": action["id"], "status": "DONE"}}, "actionUpdate")
    return [
        Expected(
            "ACTION_UPDATED", {"thread_id": _uuid(thread), "action_id": _uuid(action["id"]), "changed": ["status"]}
        )
    ]


async def customer_create(s: Setup) -> list[Expected]:
    await s.log.mark()
    payload = await s.ok(CUSTOMER_CREATE, {"input": {"name": "Globex Traders"}}, "customerCreate")
    cid = _uuid(payload["customer"]["id"])
    return [Expected("CUSTOMER_CREATED", {"customer_id": cid}, (Customer, cid, "created_at"))]


async def customer_update(s: Setup) -> list[Expected]:
    customer = await s.customer()
    await s.log.mark()
    await s.ok(CUSTOMER_UPDATE, {"input": {"id": customer, "name": "Acme Imports Ltd"}}, "customerUpdate")
    cid = _uuid(customer)
    return [Expected("CUSTOMER_UPDATED", {"customer_id": cid, "changed": ["name"]}, (Customer, cid, "updated_at"))]


async def contact_create(s: Setup) -> list[Expected]:
    await s.log.mark()
    payload = await s.ok(
        CONTACT_CREATE,
        {"input": {"name": "Priya", "identities": [{"channel": "EMAIL", "address": "priya@acme.example"}]}},
        "contactCreate",
    )
    cid = _uuid(payload["contact"]["id"])
    return [Expected("CONTACT_CREATED", {"contact_id": cid}, (Contact, cid, "created_at"))]


async def contact_update(s: Setup) -> list[Expected]:
    contact = await s.contact()
    await s.log.mark()
    await s.ok(CONTACT_UPDATE, {"input": {"id": contact, "title": "Logistics manager"}}, "contactUpdate")
    cid = _uuid(contact)
    return [Expected("CONTACT_UPDATED", {"contact_id": cid, "changed": ["title"]}, (Contact, cid, "updated_at"))]


async def _merge(s: Setup) -> tuple[str, str, str]:
    kept = await s.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya@acme.example"}])
    duplicate = await s.contact("P. Shah", identities=[{"channel": "EMAIL", "address": "p.shah@acme.example"}])
    thread = await s.thread(contactId=duplicate)
    return kept, duplicate, thread


async def contact_merge(s: Setup) -> list[Expected]:
    kept, duplicate, thread = await _merge(s)
    await s.log.mark()
    await s.ok(CONTACT_MERGE, {"input": {"keptContactId": kept, "mergedContactId": duplicate}}, "contactMerge")
    merge_id = await s.log._session_scalar(select(ContactMerge.id).where(ContactMerge.kept_contact_id == _uuid(kept)))
    return [
        Expected(
            "CONTACT_MERGED",
            {
                "merge_id": merge_id,
                "kept_contact_id": _uuid(kept),
                "merged_contact_id": _uuid(duplicate),
                "thread_ids": [_uuid(thread)],
            },
            (ContactMerge, merge_id, "created_at"),
        )
    ]


CONTACT_MERGE_SUGGESTION_ACCEPT = """
mutation($id: ID!) { contactMergeSuggestionAccept(input: {id: $id}) { userErrors { field code message } } }
"""
CONTACT_MERGE_SUGGESTION_DISMISS = """
mutation($id: ID!) { contactMergeSuggestionDismiss(input: {id: $id}) { userErrors { field code message } } }
"""


async def _merge_suggestion(s: Setup) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Two contacts with one number (WhatsApp, SMS); a call from it suggests merging them. (older, newer, id)"""
    from banxway.db.models import ContactMergeSuggestion
    from banxway.enums import Channel
    from banxway.resolvers.contact_resolver import resolve_contact

    older = await s.contact("Priya Shah", identities=[{"channel": "WHATSAPP", "address": "+919820054321"}])
    newer = await s.contact("P. Shah", identities=[{"channel": "SMS", "address": "+919820054321"}])
    org_id = s.inbox.org.id
    async with system_context(s.inbox.api.state).for_organization(org_id).transaction() as session:
        await resolve_contact(session, org_id, Channel.VOICE, "+919820054321")
    suggestion_id = await s.log._session_scalar(
        select(ContactMergeSuggestion.id).where(ContactMergeSuggestion.organization_id == org_id)
    )
    return _uuid(older), _uuid(newer), suggestion_id


async def contact_merge_suggestion_accept(s: Setup) -> list[Expected]:
    from banxway.db.models import ContactMergeSuggestion

    older, newer, suggestion_id = await _merge_suggestion(s)
    await s.log.mark()
    variables = {"id": to_global_id("ContactMergeSuggestion", suggestion_id)}
    await s.ok(CONTACT_MERGE_SUGGESTION_ACCEPT, variables, "contactMergeSuggestionAccept")
    merge_id = await s.log._session_scalar(select(ContactMerge.id).where(ContactMerge.kept_contact_id == older))
    low, high = sorted((older, newer))
    return [
        Expected(
            "CONTACT_MERGED",
            {"merge_id": merge_id, "kept_contact_id": older, "merged_contact_id": newer, "thread_ids": []},
            (ContactMerge, merge_id, "created_at"),
        ),
        Expected(
            "CONTACT_MERGE_SUGGESTION_RESOLVED",
            {"suggestion_id": suggestion_id, "contact_id": low, "other_contact_id": high, "status": "ACCEPTED"},
            (ContactMergeSuggestion, suggestion_id, "resolved_at"),
        ),
    ]


async def contact_merge_suggestion_dismiss(s: Setup) -> list[Expected]:
    from banxway.db.models import ContactMergeSuggestion

    older, newer, suggestion_id = await _merge_suggestion(s)
    await s.log.mark()
    variables = {"id": to_global_id("ContactMergeSuggestion", suggestion_id)}
    await s.ok(CONTACT_MERGE_SUGGESTION_DISMISS, variables, "contactMergeSuggestionDismiss")
    low, high = sorted((older, newer))
    return [
        Expected(
            "CONTACT_MERGE_SUGGESTION_RESOLVED",
            {"suggestion_id": suggestion_id, "contact_id": low, "other_contact_id": high, "status": "DISMISSED"},
            (ContactMergeSuggestion, suggestion_id, "resolved_at"),
        )
    ]


async def contact_unmerge(s: Setup) -> list[Expected]:
    kept, duplicate, thread = await _merge(s)
    await s.ok(CONTACT_MERGE, {"input": {"keptContactId": kept, "mergedContactId": duplicate}}, "contactMerge")
    merge_id = await s.log._session_scalar(select(ContactMerge.id).where(ContactMerge.kept_contact_id == _uuid(kept)))
    await s.log.mark()
    await s.ok(CONTACT_UNMERGE, {"input": {"contactId": duplicate}}, "contactUnmerge")
    return [
        Expected(
            "CONTACT_UNMERGED",
            {
                "merge_id": merge_id,
                "kept_contact_id": _uuid(kept),
                "merged_contact_id": _uuid(duplicate),
                "thread_ids": [_uuid(thread)],
            },
        )
    ]


async def shipment_create(s: Setup) -> list[Expected]:
    await s.log.mark()
    payload = await s.ok(SHIPMENT_CREATE, {"input": {"reference": "SHP-9", "direction": "EXPORT"}}, "shipmentCreate")
    sid = _uuid(payload["shipment"]["id"])
    return [Expected("SHIPMENT_CREATED", {"shipment_id": sid}, (Shipment, sid, "created_at"))]


async def shipment_update(s: Setup) -> list[Expected]:
    shipment = await s.shipment()
    await s.log.mark()
    await s.ok(SHIPMENT_UPDATE, {"input": {"id": shipment, "vessel": "MSC Aurora"}}, "shipmentUpdate")
    sid = _uuid(shipment)
    return [Expected("SHIPMENT_UPDATED", {"shipment_id": sid, "changed": ["vessel"]}, (Shipment, sid, "updated_at"))]


async def shipment_milestone_add(s: Setup) -> list[Expected]:
    shipment = await s.shipment()
    await s.log.mark()
    payload = await s.ok(
        SHIPMENT_MILESTONE_ADD,
        {
            "input": {
                "shipmentId": shipment,
                "type": "DEPARTED",
                "actualAt": datetime(2026, 3, 1, tzinfo=UTC).isoformat(),
            }
        },
        "shipmentMilestoneAdd",
    )
    assert payload["shipment"]["status"] == "IN_TRANSIT"
    sid = _uuid(shipment)
    milestone_id = await s.log._session_scalar(select(ShipmentMilestone.id).where(ShipmentMilestone.shipment_id == sid))
    return [
        Expected(
            "SHIPMENT_MILESTONE_ADDED",
            {"shipment_id": sid, "milestone_id": milestone_id},
            (ShipmentMilestone, milestone_id, "created_at"),
        ),
        Expected("SHIPMENT_UPDATED", {"shipment_id": sid, "changed": ["atd", "status"]}, (Shipment, sid, "updated_at")),
    ]


async def user_create(s: Setup) -> list[Expected]:
    await s.log.mark()
    variables = {"input": {"email": "new@acme.test", "name": "New", "role": "SUPPORT", "password": "long-enough"}}
    uid = _uuid((await s.ok(USER_CREATE, variables, "userCreate"))["user"]["id"])
    return [Expected("USER_CREATED", {"user_id": uid}, (User, uid, "created_at"))]


async def user_update(s: Setup) -> list[Expected]:
    support = await s.member("support", "support@acme.test")
    await s.log.mark()
    # the password changes too, but it is no event's business
    variables = {"input": {"id": support, "name": "Sam", "role": "MANAGER", "password": "another-one"}}
    await s.ok(USER_CHANGE, variables, "userUpdate")
    return [Expected("USER_UPDATED", {"user_id": _uuid(support), "changed": ["name", "role"]})]


async def user_deactivate(s: Setup) -> list[Expected]:
    support = await s.member("support", "support@acme.test")
    await s.log.mark()
    await s.ok(USER_UPDATE, {"id": support, "active": False}, "userUpdate")
    return [Expected("USER_UPDATED", {"user_id": _uuid(support), "changed": ["active"]})]


async def integration_configure(s: Setup) -> list[Expected]:
    await s.log.mark()
    iid = _uuid((await s.integration())["id"])
    return [Expected("INTEGRATION_CONFIGURED", {"integration_id": iid}, (Integration, iid, "created_at"))]


async def integration_reconfigure(s: Setup) -> list[Expected]:
    iid = _uuid((await s.integration())["id"])
    await s.log.mark()
    changes = {
        "type": "EXOTEL",
        "apiKey": "exo-key",  # as it was: not a change
        "apiToken": "rotated-token",
        "ipAllowlist": ["10.0.0.0/8"],
        "active": False,
        "phoneNumbers": [{"number": "+912250002000", "channels": ["SMS"]}],
    }
    await s.ok(INTEGRATION_CONFIGURE, {"input": changes}, "integrationConfigure")
    changed = ["api_token", "ip_allowlist", "active", "phone_numbers"]
    return [
        Expected("INTEGRATION_UPDATED", {"integration_id": iid, "changed": changed}, (Integration, iid, "updated_at"))
    ]


async def integration_rotate_webhook_token(s: Setup) -> list[Expected]:
    iid = _uuid((await s.integration())["id"])
    await s.log.mark()
    await s.ok(
        INTEGRATION_ROTATE, {"input": {"id": str(GlobalID("Integration", str(iid)))}}, "integrationRotateWebhookToken"
    )
    changed = ["webhook_urls", "previous_webhook_token_expires_at"]
    return [
        Expected("INTEGRATION_UPDATED", {"integration_id": iid, "changed": changed}, (Integration, iid, "updated_at"))
    ]


async def integration_test(s: Setup) -> list[Expected]:
    integration = await s.integration()
    await s.log.mark()
    result = await s.ok(INTEGRATION_TEST, {"input": {"id": integration["id"]}}, "integrationTest")
    assert result["ok"] is False, result
    iid = _uuid(integration["id"])
    changed = ["last_error", "last_tested_at"]
    return [
        Expected("INTEGRATION_UPDATED", {"integration_id": iid, "changed": changed}, (Integration, iid, "updated_at"))
    ]


async def phone_number_assign(s: Setup) -> list[Expected]:
    integration = await s.integration()
    await s.log.mark()
    [number] = integration["phoneNumbers"]
    me = str(GlobalID("User", str(s.ids["me"])))
    await s.ok(PHONE_NUMBER_ASSIGN, {"input": {"phoneNumberId": number["id"], "userId": me}}, "phoneNumberAssign")
    return [Expected("INTEGRATION_UPDATED", {"integration_id": _uuid(integration["id"]), "changed": ["phone_numbers"]})]


async def email_account_create(s: Setup) -> list[Expected]:
    await s.log.mark()
    aid = _uuid(await s.email_account())
    return [Expected("EMAIL_ACCOUNT_CREATED", {"email_account_id": aid}, (EmailAccount, aid, "created_at"))]


async def email_account_update(s: Setup) -> list[Expected]:
    account = await s.email_account()
    await s.log.mark()
    variables = {"input": {"id": account, "name": "Ops desk", "imapPassword": "imap-secret", "smtpPassword": "new"}}
    await s.ok(EMAIL_ACCOUNT_UPDATE, variables, "emailAccountUpdate")
    aid = _uuid(account)
    return [
        Expected(
            "EMAIL_ACCOUNT_UPDATED",
            {"email_account_id": aid, "changed": ["name", "smtp_password"]},  # the IMAP password is the same
            (EmailAccount, aid, "updated_at"),
        )
    ]


async def email_account_delete(s: Setup) -> list[Expected]:
    account = await s.email_account()
    await s.log.mark()
    await s.ok(EMAIL_ACCOUNT_DELETE, {"input": {"id": account}}, "emailAccountDelete")
    return [Expected("EMAIL_ACCOUNT_DELETED", {"email_account_id": _uuid(account)})]


# -- shipment documents (tests/test_documents.py has the rest; the text's DOCUMENT_UPDATED is the actor's) --------

DOCUMENT_UPLOAD = """
mutation($input: DocumentUploadInput!) {
  documentUpload(input: $input) { document { id } userErrors { field code message } }
}
"""
DOCUMENT_CLASSIFY = """
mutation($input: DocumentClassifyInput!) {
  documentClassify(input: $input) { document { id } userErrors { field code message } }
}
"""
DOCUMENT_APPROVE = """
mutation($input: DocumentApproveInput!) {
  documentApprove(input: $input) { document { id } userErrors { field code message } }
}
"""
DOCUMENT_REJECT = """
mutation($input: DocumentRejectInput!) {
  documentReject(input: $input) { document { id } userErrors { field code message } }
}
"""


async def _document(s: Setup, shipment: str, type: str = "BILL_OF_LADING", **fields: Any) -> str:
    uploaded = await s.inbox.api.http.post(
        f"/attachments?filename={uuid.uuid4().hex}.pdf",
        content=f"%PDF-1.4 {uuid.uuid4()}".encode(),
        headers={"authorization": f"Bearer {s.inbox.token}", "content-type": "application/pdf"},
    )
    assert uploaded.status_code == 201, uploaded.text
    variables = {"input": {"shipmentId": shipment, "attachmentId": uploaded.json()["id"], "type": type, **fields}}
    return (await s.ok(DOCUMENT_UPLOAD, variables, "documentUpload"))["document"]["id"]


async def document_upload(s: Setup) -> list[Expected]:
    shipment = await s.shipment()
    thread = await s.thread(shipmentId=shipment)
    await s.log.mark()
    document = _uuid(await _document(s, shipment, threadId=thread))
    fields = {
        "document_id": document,
        "shipment_id": _uuid(shipment),
        "thread_id": _uuid(thread),
        "document_type": "BILL_OF_LADING",
    }
    return [Expected("DOCUMENT_ADDED", fields, (Document, document, "created_at"))]


async def document_upload_version(s: Setup) -> list[Expected]:
    shipment = await s.shipment()
    first = _uuid(await _document(s, shipment))
    await s.log.mark()
    second = _uuid(await _document(s, shipment))
    sid = _uuid(shipment)
    return [
        Expected("DOCUMENT_ADDED", {"document_id": second, "thread_id": None}, (Document, second, "created_at")),
        Expected(
            "DOCUMENT_UPDATED",
            {"document_id": first, "shipment_id": sid, "changed": ["superseded_by_id"]},
            (Document, first, "updated_at"),
        ),
    ]


async def document_classify(s: Setup) -> list[Expected]:
    document = await _document(s, await s.shipment(), "OTHER")
    await s.log.mark()
    await s.ok(DOCUMENT_CLASSIFY, {"input": {"id": document, "type": "PACKING_LIST"}}, "documentClassify")
    did = _uuid(document)
    return [Expected("DOCUMENT_UPDATED", {"document_id": did, "changed": ["type"]}, (Document, did, "updated_at"))]


async def document_approve(s: Setup) -> list[Expected]:
    document = await _document(s, await s.shipment())
    await s.log.mark()
    await s.ok(DOCUMENT_APPROVE, {"input": {"id": document}}, "documentApprove")
    did = _uuid(document)
    changed = ["status", "reviewer_id"]
    return [Expected("DOCUMENT_UPDATED", {"document_id": did, "changed": changed}, (Document, did, "updated_at"))]


async def document_reject(s: Setup) -> list[Expected]:
    document = await _document(s, await s.shipment())
    await s.log.mark()
    await s.ok(DOCUMENT_REJECT, {"input": {"id": document, "reason": "Unsigned"}}, "documentReject")
    did = _uuid(document)
    changed = ["status", "reviewer_id", "rejection_reason"]
    return [Expected("DOCUMENT_UPDATED", {"document_id": did, "changed": changed}, (Document, did, "updated_at"))]


# -- outbound webhooks (tests/test_outbound_webhooks.py has the rest; deliveries themselves record no event) ------

WEBHOOK_DELIVERY_RETRY = """
mutation($id: ID!) {
  webhookDeliveryRetry(input: {id: $id}) { webhookDelivery { id } userErrors { field code message } }
}
"""


async def _webhook_endpoint(s: Setup) -> str:
    """An endpoint (nowhere: nothing runs the deliveries here) subscribed to new threads, after one was created."""
    await s.thread()
    values = {"url": "https://hooks.example.com/banxway", "eventTypes": ["THREAD_CREATED"]}
    return (await s.ok(WEBHOOK_ENDPOINT_CREATE, {"input": values}, "webhookEndpointCreate"))["webhookEndpoint"]["id"]


async def webhook_endpoint_replay(s: Setup) -> list[Expected]:
    endpoint = await _webhook_endpoint(s)
    await s.log.mark()
    await s.ok(WEBHOOK_ENDPOINT_REPLAY, {"input": {"endpointId": endpoint}}, "webhookEndpointReplay")
    return [Expected("WEBHOOK_DELIVERIES_QUEUED", {"webhook_endpoint_id": _uuid(endpoint), "count": 1})]


async def webhook_delivery_retry(s: Setup) -> list[Expected]:
    endpoint = await _webhook_endpoint(s)
    await s.ok(WEBHOOK_ENDPOINT_REPLAY, {"input": {"endpointId": endpoint}}, "webhookEndpointReplay")
    listed = await s.inbox.gql(WEBHOOK_DELIVERIES, {"id": endpoint})
    [delivery] = [edge["node"]["id"] for edge in listed["data"]["webhookDeliveries"]["edges"]]
    await s.log.mark()
    await s.ok(WEBHOOK_DELIVERY_RETRY, {"id": delivery}, "webhookDeliveryRetry")
    fields = {"webhook_endpoint_id": _uuid(endpoint), "count": 1}
    return [Expected("WEBHOOK_DELIVERIES_QUEUED", fields, (WebhookDelivery, _uuid(delivery), "updated_at"))]


# -- administration (tests/test_administration.py has the rest; invitationAccept's events are the new user's) ----

USER_INVITE = """
mutation($input: UserInviteInput!) {
  userInvite(input: $input) { invitation { id } token userErrors { field code message } }
}
"""
INVITATION_REVOKE = """
mutation($id: ID!) { invitationRevoke(input: {id: $id}) { invitation { id } userErrors { field code message } } }
"""
USER_DEACTIVATE = """
mutation($id: ID!) { userDeactivate(input: {id: $id}) { user { id } userErrors { field code message } } }
"""
ME_UPDATE = """
mutation($input: MeUpdateInput!) { meUpdate(input: $input) { user { id } userErrors { field code message } } }
"""


async def _invite(s: Setup, email: str = "new@acme.test") -> str:
    variables = {"input": {"email": email, "name": "New", "role": "SUPPORT"}}
    return (await s.ok(USER_INVITE, variables, "userInvite"))["invitation"]["id"]


async def user_invite(s: Setup) -> list[Expected]:
    await s.log.mark()
    iid = _uuid(await _invite(s))
    return [Expected("INVITATION_CREATED", {"invitation_id": iid}, (Invitation, iid, "created_at"))]


async def invitation_revoke(s: Setup) -> list[Expected]:
    invitation = await _invite(s)
    await s.log.mark()
    await s.ok(INVITATION_REVOKE, {"id": invitation}, "invitationRevoke")
    iid = _uuid(invitation)
    return [
        Expected("INVITATION_UPDATED", {"invitation_id": iid, "changed": ["status"]}, (Invitation, iid, "updated_at"))
    ]


async def user_deactivate_mutation(s: Setup) -> list[Expected]:
    support = await s.member("support", "support@acme.test")
    await s.log.mark()
    await s.ok(USER_DEACTIVATE, {"id": support}, "userDeactivate")
    return [Expected("USER_UPDATED", {"user_id": _uuid(support), "changed": ["active"]})]


async def me_update(s: Setup) -> list[Expected]:
    await s.log.mark()
    # the preferences change too, but they are the user's own (no one's view of the user changes)
    prefs = [{"type": "MENTION", "email": True}]
    await s.ok(ME_UPDATE, {"input": {"name": "Ada Admin", "notificationPreferences": prefs}}, "meUpdate")
    return [Expected("USER_UPDATED", {"user_id": s.ids["me"], "changed": ["name"]}, (User, s.ids["me"], "updated_at"))]


CASES: dict[str, tuple[Case, list[str]]] = {
    "threadCreate": (thread_create, ["THREAD_CREATED"]),
    "threadUpdate": (thread_update, ["THREAD_UPDATED"]),
    "threadAssign": (thread_assign, ["THREAD_ASSIGNED", "NOTIFICATION_CREATED"]),
    "threadAssignTeam": (thread_assign_team, ["THREAD_UPDATED", "THREAD_ASSIGNED", "NOTIFICATION_CREATED"]),
    "threadSnooze": (thread_snooze, ["THREAD_UPDATED"]),
    "threadBotResume": (thread_bot_resume, ["THREAD_UPDATED"]),
    "threadArchive": (thread_archive, ["THREAD_ARCHIVED"]),
    "workflowInstanceCancel": (workflow_instance_cancel, ["WORKFLOW_CANCELLED"]),
    "agentTaskCreate": (agent_task_create, ["AGENT_TASK_CREATED"]),
    "agentTaskCancel": (agent_task_cancel, ["AGENT_TASK_FAILED"]),
    "threadMarkRead": (thread_mark_read, ["THREAD_READ"]),
    "threadMarkUnread": (thread_mark_unread, ["THREAD_READ"]),
    "threadsBulkUpdate": (
        threads_bulk_update,
        ["THREAD_UPDATED", "THREAD_ASSIGNED", "NOTIFICATION_CREATED", "THREAD_ARCHIVED"] * 2,
    ),
    "messageSend": (message_send, ["MESSAGE_ADDED", "THREAD_UPDATED"]),
    "messageSend-internal": (message_send_internal, ["MESSAGE_ADDED"]),
    "messageCancelScheduled": (message_cancel_scheduled, ["MESSAGE_STATUS_CHANGED"]),
    "messageRetry": (message_retry, ["MESSAGE_STATUS_CHANGED"]),
    "messageUpdateScheduled": (message_update_scheduled, ["MESSAGE_UPDATED"]),
    "attachmentUpload": (attachment_upload, []),
    "noteAdd": (note_add, ["NOTE_ADDED", "NOTIFICATION_CREATED"]),
    "noteUpdate": (note_update, ["NOTE_UPDATED", "NOTIFICATION_CREATED"]),
    "noteDelete": (note_delete, ["NOTE_DELETED"]),
    "composeStart": (compose_start, ["COMPOSE_STARTED"]),
    "notificationMarkAllRead": (notification_mark_all_read, ["NOTIFICATIONS_READ"]),
    "actionCreate": (action_create, ["ACTION_CREATED"]),
    "actionUpdate": (action_update, ["ACTION_UPDATED"]),
    "customerCreate": (customer_create, ["CUSTOMER_CREATED"]),
    "customerUpdate": (customer_update, ["CUSTOMER_UPDATED"]),
    "contactCreate": (contact_create, ["CONTACT_CREATED"]),
    "contactUpdate": (contact_update, ["CONTACT_UPDATED"]),
    "contactMerge": (contact_merge, ["CONTACT_MERGED"]),
    "contactUnmerge": (contact_unmerge, ["CONTACT_UNMERGED"]),
    "contactMergeSuggestionAccept": (
        contact_merge_suggestion_accept,
        ["CONTACT_MERGED", "CONTACT_MERGE_SUGGESTION_RESOLVED"],
    ),
    "contactMergeSuggestionDismiss": (contact_merge_suggestion_dismiss, ["CONTACT_MERGE_SUGGESTION_RESOLVED"]),
    "shipmentCreate": (shipment_create, ["SHIPMENT_CREATED"]),
    "shipmentUpdate": (shipment_update, ["SHIPMENT_UPDATED"]),
    "shipmentMilestoneAdd": (shipment_milestone_add, ["SHIPMENT_MILESTONE_ADDED", "SHIPMENT_UPDATED"]),
    "documentUpload": (document_upload, ["DOCUMENT_ADDED"]),
    "documentUpload-version": (document_upload_version, ["DOCUMENT_ADDED", "DOCUMENT_UPDATED"]),
    "documentClassify": (document_classify, ["DOCUMENT_UPDATED"]),
    "documentApprove": (document_approve, ["DOCUMENT_UPDATED"]),
    "documentReject": (document_reject, ["DOCUMENT_UPDATED"]),
    "userCreate": (user_create, ["USER_CREATED"]),
    "userUpdate": (user_update, ["USER_UPDATED"]),
    "userUpdate-deactivate": (user_deactivate, ["USER_UPDATED"]),
    "userDeactivate": (user_deactivate_mutation, ["USER_UPDATED"]),
    "meUpdate": (me_update, ["USER_UPDATED"]),
    "userInvite": (user_invite, ["INVITATION_CREATED"]),
    "invitationRevoke": (invitation_revoke, ["INVITATION_UPDATED"]),
    "integrationConfigure": (integration_configure, ["INTEGRATION_CONFIGURED"]),
    "integrationConfigure-update": (integration_reconfigure, ["INTEGRATION_UPDATED"]),
    "integrationRotateWebhookToken": (integration_rotate_webhook_token, ["INTEGRATION_UPDATED"]),
    "integrationTest": (integration_test, ["INTEGRATION_UPDATED"]),
    "phoneNumberAssign": (phone_number_assign, ["INTEGRATION_UPDATED"]),
    "emailAccountCreate": (email_account_create, ["EMAIL_ACCOUNT_CREATED"]),
    "emailAccountUpdate": (email_account_update, ["EMAIL_ACCOUNT_UPDATED"]),
    "emailAccountDelete": (email_account_delete, ["EMAIL_ACCOUNT_DELETED"]),
    "webhookEndpointReplay": (webhook_endpoint_replay, ["WEBHOOK_DELIVERIES_QUEUED"]),
    "webhookDeliveryRetry": (webhook_delivery_retry, ["WEBHOOK_DELIVERIES_QUEUED"]),
}


@pytest.mark.parametrize(("case", "types"), CASES.values(), ids=CASES.keys())
async def test_a_mutation_appends_its_events(inbox: Inbox, case: Case, types: list[str]) -> None:
    # given
    log = EventLog(inbox)
    me = _uuid((await inbox.gql(ME_ID))["data"]["me"]["id"])
    setup = Setup(inbox, log, {"me": me})
    # when
    expected = await case(setup)
    # then
    rows = await log.new()
    assert [row.type for row in rows] == [e.type for e in expected] == types
    for row, wanted in zip(rows, expected, strict=True):
        assert row.organization_id == inbox.org.id
        assert row.actor_id == me
        event = parse(row.type, row.payload)
        assert type(event) is EVENT_TYPES[wanted.type]
        assert event.model_dump() == {**event.model_dump(), **wanted.fields}
        assert row.thread_id == getattr(event, "thread_id", None)
        if wanted.same_transaction is not None:
            model, row_id, column = wanted.same_transaction
            # now() is the transaction's start time: equal timestamps mean one transaction
            assert await log.timestamp(model, row_id, column) == row.created_at


async def test_the_actor_is_the_viewer_who_made_the_change(inbox: Inbox) -> None:
    # given
    log = EventLog(inbox)
    setup = Setup(inbox, log)
    support = await setup.member("support", "support@acme.test")
    token = await inbox.api.token("support@acme.test")
    thread = await setup.thread()
    await log.mark()
    # when
    await inbox.ok(THREAD_ASSIGN, {"input": {"threadId": thread, "assigneeId": support}}, "threadAssign", token)
    await inbox.ok(NOTE_ADD, {"input": {"threadId": thread, "body": "Mine now"}}, "noteAdd", token)
    # then
    rows = await log.new()
    assert [(row.type, row.actor_id) for row in rows] == [
        ("THREAD_ASSIGNED", _uuid(support)),
        ("NOTE_ADDED", _uuid(support)),
    ]


async def test_events_belong_to_the_organization_of_the_change(inbox: Inbox) -> None:
    # given
    org = await inbox.api.create_org("globex")
    globex = Inbox(inbox.api, org, await inbox.api.token(org.admin_email))
    log = EventLog(inbox)
    await log.mark()
    # when
    await Setup(globex, log).thread(subject="Globex")
    await Setup(inbox, log).thread(subject="Acme")
    # then
    rows = await log.new()
    assert [(row.type, row.organization_id) for row in rows] == [
        ("THREAD_CREATED", org.id),
        ("THREAD_CREATED", inbox.org.id),
    ]


# -- failures and no-ops write nothing -----------------------------------------------------------------

Failure = Callable[[Setup], Awaitable[tuple[str, dict, str, str | None]]]


async def _unknown_contact(s: Setup) -> tuple[str, dict, str, str | None]:
    unknown = str(GlobalID("Contact", str(uuid.uuid4())))
    return THREAD_CREATE, {"input": {"subject": "X", "contactId": unknown}}, "threadCreate", None


async def _back_to_new(s: Setup) -> tuple[str, dict, str, str | None]:
    thread = await s.thread()
    await s.ok(THREAD_UPDATE, {"input": {"id": thread, "status": "OPEN"}}, "threadUpdate")
    return THREAD_UPDATE, {"input": {"id": thread, "status": "NEW", "priority": "HIGH"}}, "threadUpdate", None


async def _deactivated_assignee(s: Setup) -> tuple[str, dict, str, str | None]:
    thread = await s.thread()
    gone = await s.member("support", "gone@acme.test")
    await s.ok(USER_UPDATE, {"id": gone, "active": False}, "userUpdate")
    return THREAD_ASSIGN, {"input": {"threadId": thread, "assigneeId": gone}}, "threadAssign", None


async def _message_too_long(s: Setup) -> tuple[str, dict, str, str | None]:
    thread = await s.thread()
    variables = {"input": {"threadId": thread, "channel": "SMS", "body": "x" * 1601, "to": ["+919820054321"]}}
    return MESSAGE_SEND, variables, "messageSend", None


async def _message_without_recipient(s: Setup) -> tuple[str, dict, str, str | None]:
    await s.email_account()
    thread = await s.thread()
    return MESSAGE_SEND, {"input": {"threadId": thread, "channel": "EMAIL", "body": "Hi"}}, "messageSend", None


async def _message_on_a_channel_not_configured(s: Setup) -> tuple[str, dict, str, str | None]:
    thread = await s.thread()
    variables = {"input": {"threadId": thread, "channel": "EMAIL", "body": "Hi", "to": ["ops@acme.example"]}}
    return MESSAGE_SEND, variables, "messageSend", None


async def _message_on_archived_thread(s: Setup) -> tuple[str, dict, str, str | None]:
    thread = await s.thread()
    await s.ok(THREAD_ARCHIVE, {"input": {"threadId": thread}}, "threadArchive")
    return MESSAGE_SEND, {"input": {"threadId": thread, "channel": "INTERNAL", "body": "Hi"}}, "messageSend", None


async def _note_with_foreign_mention(s: Setup) -> tuple[str, dict, str, str | None]:
    thread = await s.thread()
    stranger = str(GlobalID("User", str(uuid.uuid4())))
    variables = {"input": {"threadId": thread, "body": "Hi", "mentionedUserIds": [stranger]}}
    return NOTE_ADD, variables, "noteAdd", None


async def _note_emptied(s: Setup) -> tuple[str, dict, str, str | None]:
    _, note = await _a_note(s)
    return NOTE_UPDATE, {"input": {"noteId": note, "body": "  "}}, "noteUpdate", None


async def _note_deleted_twice(s: Setup) -> tuple[str, dict, str, str | None]:
    _, note = await _a_note(s)
    await s.ok(NOTE_DELETE, {"input": {"noteId": note}}, "noteDelete")
    return NOTE_DELETE, {"input": {"noteId": note}}, "noteDelete", None


async def _action_invalid_transition(s: Setup) -> tuple[str, dict, str, str | None]:
    thread = await s.thread()
    action = (await s.ok(ACTION_CREATE, {"input": {"threadId": thread, "title": "X"}}, "actionCreate"))["action"]
    await s.ok(ACTION_UPDATE, {"input": {"id": action["id"], "status": "DONE"}}, "actionUpdate")
    variables = {"input": {"id": action["id"], "status": "IN_PROGRESS", "title": "Renamed"}}
    return ACTION_UPDATE, variables, "actionUpdate", None


async def _customer_bad_email(s: Setup) -> tuple[str, dict, str, str | None]:
    return CUSTOMER_CREATE, {"input": {"name": "X", "email": "not-an-email"}}, "customerCreate", None


async def _contact_taken_identity(s: Setup) -> tuple[str, dict, str, str | None]:
    await s.contact("First", identities=[{"channel": "EMAIL", "address": "same@acme.example"}])
    variables = {"input": {"name": "Second", "identities": [{"channel": "EMAIL", "address": "SAME@acme.example"}]}}
    return CONTACT_CREATE, variables, "contactCreate", None


async def _merge_into_itself(s: Setup) -> tuple[str, dict, str, str | None]:
    contact = await s.contact()
    return CONTACT_MERGE, {"input": {"keptContactId": contact, "mergedContactId": contact}}, "contactMerge", None


async def _milestone_without_time(s: Setup) -> tuple[str, dict, str, str | None]:
    shipment = await s.shipment()
    return SHIPMENT_MILESTONE_ADD, {"input": {"shipmentId": shipment, "type": "LOADED"}}, "shipmentMilestoneAdd", None


async def _shipment_taken_reference(s: Setup) -> tuple[str, dict, str, str | None]:
    await s.shipment("SHP-1")
    other = await s.shipment("SHP-2")
    return SHIPMENT_UPDATE, {"input": {"id": other, "reference": "shp-1"}}, "shipmentUpdate", None


async def _document_rejected_without_reason(s: Setup) -> tuple[str, dict, str, str | None]:
    document = await _document(s, await s.shipment())
    return DOCUMENT_REJECT, {"input": {"id": document, "reason": " "}}, "documentReject", None


async def _document_approved_twice(s: Setup) -> tuple[str, dict, str]:
    document = await _document(s, await s.shipment())
    await s.ok(DOCUMENT_APPROVE, {"input": {"id": document}}, "documentApprove")
    return DOCUMENT_APPROVE, {"input": {"id": document}}, "documentApprove"


async def _invite_a_member(s: Setup) -> tuple[str, dict, str, str | None]:
    await s.member("support", "support@acme.test")
    variables = {"input": {"email": "support@acme.test", "name": "Again", "role": "SUPPORT"}}
    return USER_INVITE, variables, "userInvite", None


async def _rename_with_a_wrong_password(s: Setup) -> tuple[str, dict, str, str | None]:
    variables = {"input": {"name": "Renamed", "currentPassword": "wrong-password", "newPassword": "long-enough"}}
    return ME_UPDATE, variables, "meUpdate", None


async def _webhook_retry_on_a_disabled_endpoint(s: Setup) -> tuple[str, dict, str, str | None]:
    endpoint = await _webhook_endpoint(s)
    await s.ok(WEBHOOK_ENDPOINT_REPLAY, {"input": {"endpointId": endpoint}}, "webhookEndpointReplay")
    listed = await s.inbox.gql(WEBHOOK_DELIVERIES, {"id": endpoint})
    [delivery] = [edge["node"]["id"] for edge in listed["data"]["webhookDeliveries"]["edges"]]
    disable = "mutation($id: ID!) { webhookEndpointUpdate(input: {id: $id, enabled: false}) { userErrors { code } } }"
    await s.ok(disable, {"id": endpoint}, "webhookEndpointUpdate")
    return WEBHOOK_DELIVERY_RETRY, {"id": delivery}, "webhookDeliveryRetry", None


FAILURES: dict[str, Failure] = {
    "threadCreate-unknown-contact": _unknown_contact,
    "threadUpdate-back-to-new": _back_to_new,
    "threadAssign-deactivated": _deactivated_assignee,
    "messageSend-too-long": _message_too_long,
    "messageSend-no-recipient": _message_without_recipient,
    "messageSend-channel-not-configured": _message_on_a_channel_not_configured,
    "messageSend-archived": _message_on_archived_thread,
    "noteAdd-unknown-mention": _note_with_foreign_mention,
    "noteUpdate-empty": _note_emptied,
    "noteDelete-deleted": _note_deleted_twice,
    "actionUpdate-invalid-transition": _action_invalid_transition,
    "customerCreate-bad-email": _customer_bad_email,
    "contactCreate-taken": _contact_taken_identity,
    "contactMerge-itself": _merge_into_itself,
    "shipmentMilestoneAdd-no-time": _milestone_without_time,
    "shipmentUpdate-taken-reference": _shipment_taken_reference,
    "userInvite-existing-user": _invite_a_member,
    "meUpdate-wrong-password": _rename_with_a_wrong_password,
    "documentReject-no-reason": _document_rejected_without_reason,
    "webhookDeliveryRetry-disabled-endpoint": _webhook_retry_on_a_disabled_endpoint,
}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
async def test_a_mutation_that_fails_with_user_errors_writes_no_event(inbox: Inbox, failure: Failure) -> None:
    # given
    log = EventLog(inbox)
    query, variables, name, token = await failure(Setup(inbox, log))
    await log.mark()
    # when
    result = await inbox.gql(query, variables, token)
    # then
    assert "errors" not in result, result
    assert result["data"][name]["userErrors"] != []
    assert await log.new() == []


async def test_a_forbidden_mutation_writes_no_event(inbox: Inbox) -> None:
    # given
    log = EventLog(inbox)
    setup = Setup(inbox, log)
    thread = await setup.thread()
    await setup.member("support", "support@acme.test")
    token = await inbox.api.token("support@acme.test")
    await log.mark()
    # when
    archive = await inbox.gql(THREAD_ARCHIVE, {"input": {"threadId": thread}}, token)
    # then
    assert archive["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert await log.new() == []


NO_OPS: dict[str, Callable[[Setup], Awaitable[tuple[str, dict, str]]]] = {}


async def _same_priority(s: Setup) -> tuple[str, dict, str]:
    thread = await s.thread(priority="HIGH")
    return THREAD_UPDATE, {"input": {"id": thread, "priority": "HIGH"}}, "threadUpdate"


async def _same_note_text(s: Setup) -> tuple[str, dict, str]:
    _, note = await _a_note(s, "Have a look")
    return NOTE_UPDATE, {"input": {"noteId": note, "body": " Have a look "}}, "noteUpdate"


async def _same_assignee(s: Setup) -> tuple[str, dict, str]:
    thread = await s.thread()
    await s.ok(THREAD_ASSIGN, {"input": {"threadId": thread, "assigneeId": s.ids["me"]}}, "threadAssign")
    return THREAD_ASSIGN, {"input": {"threadId": thread, "assigneeId": s.ids["me"]}}, "threadAssign"


async def _archived_again(s: Setup) -> tuple[str, dict, str]:
    thread = await s.thread()
    await s.ok(THREAD_ARCHIVE, {"input": {"threadId": thread}}, "threadArchive")
    return THREAD_ARCHIVE, {"input": {"threadId": thread}}, "threadArchive"


async def _same_customer_name(s: Setup) -> tuple[str, dict, str]:
    customer = await s.customer("Acme Imports")
    return CUSTOMER_UPDATE, {"input": {"id": customer, "name": "Acme Imports"}}, "customerUpdate"


async def _idempotent_retry(s: Setup) -> tuple[str, dict, str]:
    thread = await s.thread()
    variables = {"input": {"threadId": thread, "channel": "INTERNAL", "body": "Hi", "idempotencyKey": "once"}}
    await s.ok(MESSAGE_SEND, variables, "messageSend")
    return MESSAGE_SEND, variables, "messageSend"


async def _same_scheduled_text(s: Setup) -> tuple[str, dict, str]:
    await s.email_account()
    thread = await s.thread()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    values = {"threadId": thread, "channel": "EMAIL", "body": "Later", "to": ["ops@acme.example"], "sendAt": later}
    message = (await s.ok(MESSAGE_SEND, {"input": values}, "messageSend"))["message"]["id"]
    return MESSAGE_UPDATE_SCHEDULED, {"input": {"messageId": message, "body": "Later"}}, "messageUpdateScheduled"


async def _same_user_fields(s: Setup) -> tuple[str, dict, str]:
    support = await s.member("support", "support@acme.test")
    # the same name and role, and a new password: nothing anyone is shown changes
    return (
        USER_CHANGE,
        {"input": {"id": support, "name": "support", "role": "SUPPORT", "password": "x" * 12}},
        "userUpdate",
    )


async def _same_integration_values(s: Setup) -> tuple[str, dict, str]:
    await s.integration()
    return INTEGRATION_CONFIGURE, {"input": integration_input()}, "integrationConfigure"


async def _same_test_result(s: Setup) -> tuple[str, dict, str]:
    integration = await s.integration()
    await s.ok(INTEGRATION_TEST, {"input": {"id": integration["id"]}}, "integrationTest")
    return INTEGRATION_TEST, {"input": {"id": integration["id"]}}, "integrationTest"


async def _same_email_account_values(s: Setup) -> tuple[str, dict, str]:
    account = await s.email_account()
    variables = {"input": {"id": account, "name": "Operations", "imapPassword": "imap-secret"}}
    return EMAIL_ACCOUNT_UPDATE, variables, "emailAccountUpdate"


NO_OPS.update(
    {
        "threadUpdate-same-priority": _same_priority,
        "threadAssign-same-assignee": _same_assignee,
        "noteUpdate-same-text": _same_note_text,
        "threadArchive-already-archived": _archived_again,
        "customerUpdate-same-name": _same_customer_name,
        "messageSend-idempotent-retry": _idempotent_retry,
        "messageUpdateScheduled-same-text": _same_scheduled_text,
        "userUpdate-same-fields-new-password": _same_user_fields,
        "integrationConfigure-same-values": _same_integration_values,
        "integrationTest-same-result": _same_test_result,
        "emailAccountUpdate-same-values": _same_email_account_values,
        "documentApprove-approved-already": _document_approved_twice,
    }
)


@pytest.mark.parametrize("no_op", NO_OPS.values(), ids=NO_OPS.keys())
async def test_a_mutation_that_changes_nothing_writes_no_event(
    inbox: Inbox, no_op: Callable[[Setup], Awaitable[tuple[str, dict, str]]]
) -> None:
    # given
    log = EventLog(inbox)
    me = _uuid((await inbox.gql(ME_ID))["data"]["me"]["id"])
    query, variables, name = await no_op(Setup(inbox, log, {"me": str(GlobalID("User", str(me)))}))
    await log.mark()
    # when
    result = await inbox.gql(query, variables)
    # then
    assert "errors" not in result, result
    assert result["data"][name]["userErrors"] == []
    assert await log.new() == []


# -- the registry ------------------------------------------------------------------------------------


def test_every_registered_event_type_is_produced_by_a_mutation_checked_here() -> None:
    # given
    produced = {event_type for _, types in CASES.values() for event_type in types}
    # then
    assert produced | NOT_PRODUCED_BY_MUTATIONS == set(EVENT_TYPES), (
        f"registered but not checked here: {set(EVENT_TYPES) - produced - NOT_PRODUCED_BY_MUTATIONS}; "
        f"checked but not registered: {produced - set(EVENT_TYPES)}"
    )
    assert not produced & NOT_PRODUCED_BY_MUTATIONS, "a type now produced here must leave NOT_PRODUCED_BY_MUTATIONS"


def test_every_inbox_mutation_has_a_case() -> None:
    # given: the mutations of the inbox schema (customers, contacts, shipments, threads, messages, …)
    inbox = (CustomerMutation, ContactMutation, ShipmentMutation, ThreadMutation, MessageMutation, NoteMutation)
    mutations = {
        to_camel_case(f.python_name) for m in (*inbox, ActionMutation) for f in m.__strawberry_definition__.fields
    }
    # then
    assert len(mutations) >= 18
    assert mutations - set(CASES) == set()


async def test_event_maintenance_stops_even_when_a_cancel_is_swallowed_on_the_way(
    state: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the maintenance loop, and a sweep during which a cancel is lost (as asyncio.wait_for in Python 3.11
    # can lose one inside a database driver)
    import asyncio
    import contextlib

    from banxway import app, events

    sweeping = asyncio.Event()

    async def sweep_losing_a_cancel(*args: Any, **kwargs: Any) -> int:
        sweeping.set()
        with contextlib.suppress(asyncio.CancelledError):  # swallowed, as the library would
            await asyncio.sleep(0.3)
        return 0

    monkeypatch.setattr(events, "sweep", sweep_losing_a_cancel)
    task = asyncio.create_task(app.run_event_maintenance(state))
    await sweeping.wait()
    # when the server shuts down and cancels it
    task.cancel()
    # then it stops within the second instead of looping on forever
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 3)
