"""An organization with one object of every node type and a user of every role, for the fuzz run and the IDOR
matrix (tests/test_fuzz_graphql.py, tests/test_idor_matrix.py).

Every text the seed writes carries the organization's marker (its name, e.g. "Globex"), so that a response that
shows another organization's data can be recognised by that word alone. Nothing reaches out of the machine:
email accounts and integrations point at a closed port on 127.0.0.1.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from banxway import events
from banxway.db.models import EmailAccount, Event, ShipmentSuggestion
from banxway.db.session import tenant_session
from banxway.enums import Channel, Role
from banxway.extraction import container_check_digit
from banxway.resolvers.analysis import analyse_message
from banxway.resolvers.email_ingest import quarantine
from banxway.resolvers.inbound import message_receive
from banxway.resolvers.workflow_engine import workflow_run, workflows_start
from banxway.schema.ids import to_global_id
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import local_uuid

NOTE_ADD = """
mutation($input: NoteAddInput!) { noteAdd(input: $input) { note { id } userErrors { field code message } } }
"""
TEAM_CREATE = """
mutation($input: TeamCreateInput!) { teamCreate(input: $input) { team { id } userErrors { field code message } } }
"""
SLA_POLICY_CREATE = """
mutation($input: SlaPolicyCreateInput!) { slaPolicyCreate(input: $input) { slaPolicy { id } userErrors { field code message } } }
"""
ACTION_CREATE = """
mutation($input: ActionCreateInput!) { actionCreate(input: $input) { action { id } userErrors { field code message } } }
"""
EMAIL_ACCOUNT_CREATE = """
mutation($input: EmailAccountCreateInput!) {
  emailAccountCreate(input: $input) { emailAccount { id } userErrors { field code message } }
}
"""
INTEGRATION_CONFIGURE = """
mutation($input: IntegrationConfigureInput!) {
  integrationConfigure(input: $input) {
    integration { id phoneNumbers { id } } userErrors { field code message }
  }
}
"""
SHIPMENT_MILESTONE_ADD = """
mutation($input: ShipmentMilestoneAddInput!) {
  shipmentMilestoneAdd(input: $input) { userErrors { field code message } }
}
"""
CANNED_RESPONSE_CREATE = """
mutation($input: CannedResponseCreateInput!) {
  cannedResponseCreate(input: $input) { cannedResponse { id } userErrors { field code message } }
}
"""
API_TOKEN_CREATE = """
mutation($input: ApiTokenCreateInput!) { apiTokenCreate(input: $input) { apiToken { id } userErrors { field code message } } }
"""
USERS = "{ users(first: 50) { edges { node { id email } } } }"
WORKFLOW_CREATE = """
mutation($input: WorkflowCreateInput!) { workflowCreate(input: $input) { workflow { id } userErrors { field message } } }
"""
COMPOSE_START = """
mutation($input: ComposeStartInput!) { composeStart(input: $input) { session { id } userErrors { field code message } } }
"""
WORKFLOW_DEACTIVATE = """
mutation($id: ID!) { workflowDeactivate(workflowId: $id) { workflow { id } userErrors { field message } } }
"""
NOTIFICATIONS = "{ notifications(first: 10) { edges { node { id } } } }"
DOCUMENT_UPLOAD = """
mutation($input: DocumentUploadInput!) { documentUpload(input: $input) { document { id } userErrors { field code message } } }
"""


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once by us, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Seeded:
    """An organization, a token per role (and the emails behind them), and its objects' global ids by type."""

    org: Org
    marker: str
    tokens: dict[str, str]
    emails: dict[str, str]
    ids: dict[str, list[str]] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # the global id of each role's user

    def add(self, type_name: str, global_id: str) -> str:
        self.ids.setdefault(type_name, []).append(global_id)
        return global_id

    def one(self, type_name: str) -> str:
        return self.ids[type_name][0]

    def all_ids(self) -> set[str]:
        return {global_id for ids in self.ids.values() for global_id in ids}


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
WEBHOOK_DELIVERIES = """
query($id: ID!) { webhookDeliveries(endpointId: $id, first: 50) { edges { node { id } } } }
"""


async def seed_organization(api: Api, slug: str, *, port: int | None = None) -> Seeded:
    """Create organization `slug` with a user of every role, a colleague (mentioned, assigned, notified), and at
    least one object of every type that has an id: customer, two contacts, shipment (with a milestone), SLA policy, team,
    canned response, workflow, thread (under it, with the workflow's instance),
    message, note, action, notification, attachment, email account, quarantined mail, integrations and their
    phone numbers, and an API token."""
    port = port or closed_port()
    marker = slug.title()
    org = await api.create_org(slug, admin_email=f"admin@{slug}.test")
    emails = {"ADMIN": org.admin_email}
    for role in Role:
        if role is not Role.ADMIN:
            emails[role.name] = f"{role.value}@{slug}.test"
            await api.create_user(org, emails[role.name], role.value)
    colleague = f"colleague@{slug}.test"
    await api.create_user(org, colleague, Role.SUPPORT.value)
    tokens = {role: await api.token(email) for role, email in emails.items()}
    seeded = Seeded(org, marker, tokens, emails)
    inbox = Inbox(api, org, tokens["ADMIN"])

    seeded.add("Organization", to_global_id("Organization", org.id))
    users = (await inbox.gql(USERS))["data"]["users"]["edges"]
    user_ids = {edge["node"]["email"]: edge["node"]["id"] for edge in users}
    colleague_id = seeded.add("User", user_ids[colleague])
    for role, email in emails.items():
        seeded.users[role] = seeded.add("User", user_ids[email])

    customer = await inbox.customer(f"{marker} Customer", code=f"{slug.upper()}-1", email=f"ops@{slug}.test")
    seeded.add("Customer", customer["id"])
    for n in (1, 2):
        contact = await inbox.contact(
            f"{marker} Contact {n}",
            customerId=customer["id"],
            identities=[{"channel": "EMAIL", "address": f"contact{n}@{slug}.test"}],
        )
        seeded.add("Contact", contact["id"])
    shipment = await inbox.shipment(f"{slug.upper()}-SHP-1", customerId=customer["id"], carrier=f"{marker} Lines")
    seeded.add("Shipment", shipment["id"])
    await inbox.ok(
        SHIPMENT_MILESTONE_ADD,
        {
            "input": {
                "shipmentId": shipment["id"],
                "type": "BOOKED",
                "plannedAt": "2026-01-02T03:04:05+00:00",
                "note": f"{marker} booked",
            }
        },
        "shipmentMilestoneAdd",
    )
    policy = await inbox.ok(
        SLA_POLICY_CREATE,
        {
            "input": {
                "name": f"{marker} SLA",
                "firstResponseMinutes": 30,
                "resolutionMinutes": 480,
                "breachActions": {"reassignToId": colleague_id, "notifyAssignee": True},
            }
        },
        "slaPolicyCreate",
    )
    seeded.add("SlaPolicy", policy["slaPolicy"]["id"])
    team = await inbox.ok(
        TEAM_CREATE, {"input": {"name": f"{marker} Sea Export", "memberIds": [colleague_id]}}, "teamCreate"
    )
    seeded.add("Team", team["team"]["id"])
    canned = await inbox.ok(
        CANNED_RESPONSE_CREATE,
        {"input": {"name": f"{marker} quote", "shortcut": "/quote", "body": f"{marker}: {{{{contact.name}}}}"}},
        "cannedResponseCreate",
    )
    seeded.add("CannedResponse", canned["cannedResponse"]["id"])
    definition = {"trigger": {"type": "THREAD_CREATED"}, "steps": [{"type": "WAIT", "minutes": 60}]}
    workflow = await inbox.ok(
        WORKFLOW_CREATE,
        {"input": {"name": f"{marker} workflow", "definition": definition, "active": True}},
        "workflowCreate",
    )
    seeded.add("Workflow", workflow["workflow"]["id"])
    thread = await inbox.thread(
        f"{marker} quote 2x40HC",
        customerId=customer["id"],
        contactId=seeded.one("Contact"),
        shipmentId=shipment["id"],
    )
    seeded.add("Thread", thread["id"])
    # the workflow's instance on the thread, waiting (the engine run as the worker would); then deactivated, so
    # that the organization's later threads start nothing
    ctx = system_context(api.state)
    async with tenant_session(api.state.sessionmaker, org.id) as session:
        created = await session.scalar(
            select(Event.id).where(Event.type == "THREAD_CREATED", Event.thread_id == local_uuid(thread["id"]))
        )
    [instance_id] = await workflows_start(ctx, created)
    assert await workflow_run(ctx, instance_id) == "WAITING"
    seeded.add("WorkflowInstance", to_global_id("WorkflowInstance", instance_id))
    await inbox.ok(WORKFLOW_DEACTIVATE, {"id": workflow["workflow"]["id"]}, "workflowDeactivate")

    uploaded = await api.http.post(
        f"/attachments?filename={slug}-invoice.pdf",
        content=f"%PDF {marker} invoice".encode(),
        headers={"authorization": f"Bearer {tokens['ADMIN']}", "content-type": "application/pdf"},
    )
    assert uploaded.status_code == 201, uploaded.text
    seeded.add("Attachment", uploaded.json()["id"])
    # a shipment document: a file of its own, filed on the shipment with the thread
    filed = await api.http.post(
        f"/attachments?filename={slug}-bl.pdf",
        content=f"%PDF {marker} bill of lading".encode(),
        headers={"authorization": f"Bearer {tokens['ADMIN']}", "content-type": "application/pdf"},
    )
    assert filed.status_code == 201, filed.text
    seeded.add("Attachment", filed.json()["id"])
    document = await inbox.ok(
        DOCUMENT_UPLOAD,
        {
            "input": {
                "shipmentId": shipment["id"],
                "attachmentId": filed.json()["id"],
                "type": "BILL_OF_LADING",
                "threadId": thread["id"],
            }
        },
        "documentUpload",
    )
    seeded.add("Document", document["document"]["id"])
    message = await inbox.send(thread["id"], f"{marker} internal message")
    seeded.add("Message", message["id"])
    note = await inbox.ok(
        NOTE_ADD,
        {"input": {"threadId": thread["id"], "body": f"{marker} note", "mentionedUserIds": [colleague_id]}},
        "noteAdd",
    )
    seeded.add("Note", note["note"]["id"])
    action = await inbox.ok(
        ACTION_CREATE,
        {"input": {"threadId": thread["id"], "title": f"{marker} action", "assigneeId": colleague_id}},
        "actionCreate",
    )
    seeded.add("Action", action["action"]["id"])
    # an AI draft session of the admin (composeStart; nothing streams it here), and a shipment suggestion: the
    # customer names the container of another shipment than the one the thread is linked to
    composed = await inbox.ok(COMPOSE_START, {"input": {"threadId": thread["id"]}}, "composeStart")
    seeded.add("ComposeSession", composed["session"]["id"])
    container = "".join(ch for ch in slug.upper() if ch.isalpha())[:3].ljust(3, "X") + "U" + "5" * 6
    container += str(container_check_digit(container))
    await inbox.shipment(f"{slug.upper()}-SHP-2", customerId=customer["id"], containerNumbers=[container])
    async with tenant_session(api.state.sessionmaker, org.id) as session:
        async with session.begin():
            inbound = await message_receive(
                session,
                org.id,
                thread_id=local_uuid(thread["id"]),
                channel=Channel.EMAIL,
                body=f"{marker}: is {container} on the same vessel?",
                sender=f"contact1@{slug}.test",
            )
        # relayed now, as a webhook's are (left to the sweeper, they would change the events table mid-test)
        await events.relay(api.state.broadcast, api.state.sessionmaker, events.take_recorded(session))
    await analyse_message(system_context(api.state), inbound.id)
    async with tenant_session(api.state.sessionmaker, org.id) as session:
        suggestion = await session.scalar(select(ShipmentSuggestion.id))
    assert suggestion is not None
    seeded.add("ShipmentSuggestion", to_global_id("ShipmentSuggestion", suggestion))
    notifications = await api.gql(NOTIFICATIONS, token=await api.token(colleague))
    for edge in notifications["data"]["notifications"]["edges"]:
        seeded.add("Notification", edge["node"]["id"])
    assert seeded.ids.get("Notification"), notifications

    account = await inbox.ok(
        EMAIL_ACCOUNT_CREATE,
        {
            "input": {
                "name": f"{marker} Ops",
                "email": f"ops@{slug}.test",
                "imapHost": "127.0.0.1",
                "imapPort": port,
                "imapSecurity": "NONE",
                "imapUsername": f"ops-{slug}",
                "imapPassword": f"{slug}-imap-secret",
                "smtpHost": "127.0.0.1",
                "smtpPort": port,
                "smtpSecurity": "NONE",
            }
        },
        "emailAccountCreate",
    )
    seeded.add("EmailAccount", account["emailAccount"]["id"])
    async with tenant_session(api.state.sessionmaker, org.id) as session, session.begin():
        row = await session.scalar(
            select(EmailAccount).where(EmailAccount.id == local_uuid(account["emailAccount"]["id"]))
        )
        assert row is not None
        raw = f"Subject: {marker} broken mail\r\n\r\nno sender".encode()
        assert await quarantine(session, row, uid=1, raw=raw, size=len(raw), error=f"{marker}: no From header")
    quarantined = await inbox.gql("{ emailQuarantine(first: 5) { edges { node { id } } } }")
    for edge in quarantined["data"]["emailQuarantine"]["edges"]:
        seeded.add("QuarantinedEmail", edge["node"]["id"])
    assert seeded.ids.get("QuarantinedEmail"), quarantined

    base = 100 + sum(map(ord, slug)) % 800  # numbers of their own per organization
    for kind, numbers in (("EXOTEL", [f"+91225000{base}0", f"+91225000{base}1"]), ("TWILIO", [f"+1415555{base}0"])):
        values: dict[str, Any] = {
            "type": kind,
            "accountSid": f"{slug}-{kind.lower()}",
            "apiToken": f"{slug}-{kind.lower()}-token",
            "baseUrl": f"http://127.0.0.1:{port}",
            "phoneNumbers": [
                {"number": number, "channels": ["WHATSAPP", "SMS", "VOICE"], "label": f"{marker} line"}
                for number in numbers
            ],
        }
        if kind == "EXOTEL":
            values["apiKey"] = f"{slug}-exotel-key"
        configured = await inbox.ok(INTEGRATION_CONFIGURE, {"input": values}, "integrationConfigure")
        seeded.add("Integration", configured["integration"]["id"])
        for number in configured["integration"]["phoneNumbers"]:
            seeded.add("PhoneNumber", number["id"])

    # an agent connection (an MCP server on the closed port) and an agent task on the thread (nothing runs it here)
    connection = await inbox.ok(
        AGENT_CONNECTION_CREATE,
        {
            "input": {
                "name": f"{marker} agents",
                "url": f"http://127.0.0.1:{port}/mcp",
                "authHeader": f"Bearer {slug}-agent-secret",
            }
        },
        "agentConnectionCreate",
    )
    seeded.add("AgentConnection", connection["agentConnection"]["id"])
    task = await inbox.ok(
        AGENT_TASK_CREATE,
        {
            "input": {
                "threadId": thread["id"],
                "connectionId": connection["agentConnection"]["id"],
                "tool": "track_container",
                "arguments": {"note": f"{marker} task"},
            }
        },
        "agentTaskCreate",
    )
    seeded.add("AgentTask", task["agentTask"]["id"])

    # an outbound webhook endpoint (an internet address nothing here calls: no worker runs) and its deliveries of the
    # organization's thread events, written by a replay
    endpoint = await inbox.ok(
        WEBHOOK_ENDPOINT_CREATE,
        {
            "input": {
                "url": f"https://93.184.216.34/{slug}/hooks",
                "eventTypes": ["THREAD_CREATED"],
                "description": f"{marker} hooks",
            }
        },
        "webhookEndpointCreate",
    )
    endpoint_id = seeded.add("WebhookEndpoint", endpoint["webhookEndpoint"]["id"])
    await inbox.ok(WEBHOOK_ENDPOINT_REPLAY, {"input": {"endpointId": endpoint_id}}, "webhookEndpointReplay")
    logged = await inbox.gql(WEBHOOK_DELIVERIES, {"id": endpoint_id})
    for edge in logged["data"]["webhookDeliveries"]["edges"]:
        seeded.add("WebhookDelivery", edge["node"]["id"])
    assert seeded.ids.get("WebhookDelivery"), logged

    # a pending invitation (the id invitationRevoke takes; no worker runs, so it is not mailed)
    invitation = await inbox.ok(
        "mutation($input: UserInviteInput!) { userInvite(input: $input) { invitation { id } userErrors { code } } }",
        {"input": {"email": f"invited@{slug}.test", "name": f"{marker} Invitee", "role": "SUPPORT"}},
        "userInvite",
    )
    seeded.add("Invitation", invitation["invitation"]["id"])

    # a personal API token of the admin (the id apiTokenRevoke takes)
    api_token = await inbox.ok(
        API_TOKEN_CREATE, {"input": {"name": f"{marker} script", "scopes": ["READ"]}}, "apiTokenCreate"
    )
    seeded.add("ApiToken", api_token["apiToken"]["id"])

    # a web chat widget (the id chatWidgetUpdate/Delete take)
    chat_widget = await inbox.ok(
        "mutation($input: ChatWidgetCreateInput!) { chatWidgetCreate(input: $input) { chatWidget { id } "
        "userErrors { code } } }",
        {"input": {"name": f"{marker} website chat", "allowedOrigins": [f"https://{slug}.example"]}},
        "chatWidgetCreate",
    )
    seeded.add("ChatWidget", chat_widget["chatWidget"]["id"])
    # a visitor's view of a message carries the message's own global id (it is no object of its own)
    for message_id in seeded.ids["Message"]:
        seeded.add("VisitorMessage", message_id)
    # and a visitor's view of an agent's file carries the attachment's own global id
    for attachment_id in seeded.ids["Attachment"]:
        seeded.add("VisitorAttachment", attachment_id)

    # a merge suggestion of the contact resolver between the two contacts (the id contactMergeSuggestion* take)
    from banxway.resolvers.contact_resolver import suggest_merge

    first, second = (local_uuid(c) for c in seeded.ids["Contact"][:2])
    async with tenant_session(api.state.sessionmaker, org.id) as session:
        async with session.begin():
            merge = await suggest_merge(session, org.id, first, second, f"contact1@{slug}.test")
            assert merge is not None
            merge_id = merge.id
        await events.relay(api.state.broadcast, api.state.sessionmaker, events.take_recorded(session))
    seeded.add("ContactMergeSuggestion", to_global_id("ContactMergeSuggestion", merge_id))

    # a knowledge source and an AI agent (the ids knowledgeSourceDelete and aiAgentUpdate/Delete take)
    source = await inbox.ok(
        "mutation($input: KnowledgeSourceCreateInput!) { knowledgeSourceCreate(input: $input) { "
        "knowledgeSource { id } userErrors { field code message } } }",
        {"input": {"kind": "TEXT", "title": f"{marker} FAQ", "text": f"{marker} is open Monday to Friday."}},
        "knowledgeSourceCreate",
    )
    seeded.add("KnowledgeSource", source["knowledgeSource"]["id"])
    ai_agent = await inbox.ok(
        "mutation($input: AiAgentCreateInput!) { aiAgentCreate(input: $input) { aiAgent { id } "
        "userErrors { field code message } } }",
        {"input": {"name": f"{marker} assistant", "channels": ["WHATSAPP"]}},
        "aiAgentCreate",
    )
    seeded.add("AiAgent", ai_agent["aiAgent"]["id"])
    return seeded
