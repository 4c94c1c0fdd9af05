"""A small client for the apply-events check (tests/test_apply_events.py): the state a client shows, fetched
in one GraphQL query and kept normalized, and a generic reducer that applies `inboxEvents` to it.

The reducer uses only what an event carries (`thread`, `message`, `node`, `related`), never a refetch: each object
is put in its list by id (replaced, or inserted where the list's order places it), or taken out where the
list's filter leaves it out (an archived thread, a merged-away contact).
"""

from __future__ import annotations

import base64
import copy
import uuid
from datetime import datetime
from typing import Any

from graphql import build_schema

from banxway.schema import schema_sdl
from tests.live_helpers import GraphQLSocket

# The fields a client shows, the same in the state query and in the events (links as `{ id }`, as a
# normalized client cache keeps them).
FIELDS = {
    "Thread": "id reference subject type status priority primaryChannel tags lastMessageAt firstResponseAt slaDueAt "
    "slaStatus snoozedUntil botSuspendedUntil intent sentiment createdAt updatedAt unreadCount assignee { id } customer { id } "
    "contact { id } "
    "shipment { id } team { id } slaPolicy { id }",
    "Message": "id channel direction status body subject sender recipients error createdAt "
    "author { id } contact { id } thread { id } analysis { intent sentiment language entities { kind value } }",
    "Note": "id body createdAt editedAt author { id } mentions { id } thread { id }",
    "Action": "id title type status dueAt completedAt createdAt updatedAt "
    "assignee { id } createdBy { id } completedBy { id } thread { id }",
    "Customer": "id name code email phone address tags customFields createdAt updatedAt",
    "Contact": "id name title verified createdAt updatedAt customer { id } identities { channel address } "
    "mergedInto { id }",
    "Shipment": "id reference mode direction status carrier vessel voyage flightNumber containerNumbers blNumber "
    "awbNumber bookingNumber etd eta atd ata createdAt updatedAt customer { id } origin { code name } "
    "destination { code name } milestones { type plannedAt actualAt note createdAt location { code name } }",
    "Notification": "id type summary read readAt createdAt thread { id } message { id } note { id } actor { id }",
    # (not a user's email: it never changes, and the subscription's aliases would pass the server's limit)
    "User": "id name role active createdAt",
    # (not webhookUrls: their host is the request's, and the client fetches over HTTP but subscribes elsewhere)
    "Integration": "id type accountSid apiKey baseUrl active ipAllowlist previousWebhookTokenExpiresAt lastTestedAt "
    "lastError createdAt phoneNumbers { id number channels label assignee { id } } "
    "whatsappTemplates { name language body category parameterCount provider }",
    "EmailAccount": "id name email fromName signature imapHost imapPort imapSecurity imapUsername imapFolder "
    "smtpHost smtpPort smtpSecurity smtpUsername active lastPolledAt lastError createdAt",
    "ComposeSession": "id status channel variants instructions provider createdAt thread { id }",
    "WorkflowInstance": "id status stepIndex waitingFor dueAt error depth triggerType createdAt finishedAt "
    "workflow { id } thread { id } steps { stepIndex stepType attempt status outcome error }",
    "AgentTask": "id tool arguments status attempts result truncated error createdAt startedAt finishedAt "
    "thread { id } connection { id } note { id } createdBy { id }",
    "Invitation": "id email name role status expiresAt emailedAt acceptedAt revokedAt createdAt invitedBy { id } "
    "user { id }",
    "WebhookEndpoint": "id url description eventTypes enabled disabledReason failingSince createdAt pendingDeliveries",
    "Document": "id type status version isCurrent textState textError pages text rejectionReason reviewedAt "
    "createdAt updatedAt entities { kind value } shipment { id } thread { id } message { id } reviewer { id } "
    "uploadedBy { id } supersededBy { id }",
}


def _plain(kind: str) -> str:
    return f"__typename {FIELDS[kind]}"


def _top_level(kind: str) -> list[tuple[str, str]]:
    """(field name, the selection's text from it) for each field selected directly on the type."""
    tokens = FIELDS[kind].replace("{", " { ").replace("}", " } ").split()
    depth, parts = 0, []
    for token in tokens:
        if depth == 0 and token not in "{}":
            parts.append([token, token])
        else:
            parts[-1][1] += f" {token}"
        depth += {"{": 1, "}": -1}.get(token, 0)
    return [(name, text) for name, text in parts]


def _clashing() -> set[str]:
    """Fields selected on several node types with different types (ThreadStatus! and MessageStatus!, Thread! and
    Thread): under `node` they may not share a response name (GraphQL's "fields in set can merge")."""
    # the running schema (the committed schema.graphql may lag behind a type being added; test_schema_file checks it)
    schema = build_schema(schema_sdl())
    types: dict[str, set[str]] = {}
    for kind in FIELDS:
        for name, _ in _top_level(kind):
            types.setdefault(name, set()).add(str(schema.get_type(kind).fields[name].type))  # type: ignore[union-attr]
    return {name for name, found in types.items() if len(found) > 1}


CLASHING = _clashing()


def _under_node(kind: str) -> str:
    """The type's fields for `node { ... on Kind { } }`: the clashing ones aliased `Kind__field` (see `unalias`)."""
    return " ".join(f"{kind}__{name}: {text}" if name in CLASHING else text for name, text in _top_level(kind))


def unalias(node: dict[str, Any] | None) -> dict[str, Any] | None:
    """An event's `node` with its fields under their own names, as in the state."""
    if node is None:
        return None
    prefix = f"{node['__typename']}__"
    return {key.removeprefix(prefix): value for key, value in node.items()}


# What the client shows: the inbox (threads, and each thread's messages, notes and actions), the
# customers, contacts, shipments and users lists, and the viewer's notifications with their unread count;
# for an admin also the integrations (with their numbers) and the email accounts (ADMIN_STATE).
STATE = f"""
query ClientState {{
  threads(first: 100) {{
    edges {{
      node {{
        {_plain("Thread")}
        messages(first: 100) {{ edges {{ node {{ {_plain("Message")} }} }} }}
        notes(first: 100) {{ edges {{ node {{ {_plain("Note")} }} }} }}
        actions(first: 100) {{ edges {{ node {{ {_plain("Action")} }} }} }}
      }}
    }}
  }}
  customers(first: 100) {{ edges {{ node {{ {_plain("Customer")} }} }} }}
  contacts(first: 100) {{ edges {{ node {{ {_plain("Contact")} }} }} }}
  shipments(first: 100) {{ edges {{ node {{ {_plain("Shipment")} }} }} }}
  notifications(first: 100) {{ edges {{ node {{ {_plain("Notification")} }} }} }}
  notificationUnreadCount
  users(first: 100) {{ edges {{ node {{ {_plain("User")} }} }} }}
  workflowInstances(first: 100) {{ edges {{ node {{ {_plain("WorkflowInstance")} }} }} }}
  composeSessions(first: 100) {{ {_plain("ComposeSession")} }}
  agentTasks(first: 100) {{ edges {{ node {{ {_plain("AgentTask")} }} }} }}
  documents(first: 100) {{ edges {{ node {{ {_plain("Document")} }} }} }}
}}
"""
ADMIN_STATE = f"""
query AdminState {{
  integrations {{ {_plain("Integration")} }}
  emailAccounts {{ {_plain("EmailAccount")} }}
  invitations {{ {_plain("Invitation")} }}
  webhookEndpoints {{ {_plain("WebhookEndpoint")} }}
}}
"""

RELATED_KINDS = (
    "Contact",
    "Thread",
    "Message",
    "Notification",
)  # what `related` holds besides threads (within the alias limit)
INBOX_EVENTS = f"""
subscription {{
  inboxEvents {{
    cursor type occurredAt changed nodeId actor {{ id }}
    thread {{ {_plain("Thread")} }}
    message {{ {_plain("Message")} }}
    node {{ __typename id {" ".join(f"... on {kind} {{ {_under_node(kind)} }}" for kind in FIELDS)} }}
    related {{ __typename id {" ".join(f"... on {kind} {{ {_under_node(kind)} }}" for kind in RELATED_KINDS)} }}
  }}
}}
"""

THREAD_CHILDREN = {"Message": "messages", "Note": "notes", "Action": "actions"}
TOP_LISTS = {
    "Customer": "customers",
    "Contact": "contacts",
    "Shipment": "shipments",
    "Notification": "notifications",
    "User": "users",
    "Integration": "integrations",
    "EmailAccount": "emailAccounts",
    "WorkflowInstance": "workflowInstances",
    "ComposeSession": "composeSessions",
    "AgentTask": "agentTasks",
    "Invitation": "invitations",
    "WebhookEndpoint": "webhookEndpoints",
    "Document": "documents",
}


# -- the state ------------------------------------------------------------------------------------


def local_uuid(global_id: str) -> uuid.UUID:
    return uuid.UUID(base64.b64decode(global_id).decode().split(":", 1)[1])


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


# Each list in the order the server gives it (ties broken by id, as the keyset pagination does).
def _thread_order(thread: dict[str, Any]) -> tuple[datetime, uuid.UUID]:
    # The inbox is ordered by last activity, which the schema does not expose; a message's time is the
    # thread's last activity when it has messages, its creation otherwise (true for every change here).
    return _time(thread["lastMessageAt"] or thread["createdAt"]), local_uuid(thread["id"])


def _created_order(row: dict[str, Any]) -> tuple[datetime, uuid.UUID]:
    return _time(row["createdAt"]), local_uuid(row["id"])


def _name_order(row: dict[str, Any]) -> tuple[str, uuid.UUID]:
    return row["name"], local_uuid(row["id"])


ORDER = {
    "threads": (_thread_order, True),
    "messages": (_created_order, False),
    "notes": (_created_order, False),
    "actions": (_created_order, False),
    "customers": (_name_order, False),
    "contacts": (_name_order, False),
    "shipments": (_created_order, True),
    "notifications": (_created_order, True),
    "users": (_created_order, False),
    "integrations": (_created_order, False),
    "emailAccounts": (_created_order, False),
    "workflowInstances": (_created_order, True),
    "composeSessions": (_created_order, True),
    "agentTasks": (_created_order, True),
    "invitations": (_created_order, True),
    "webhookEndpoints": (_created_order, False),
    "documents": (_created_order, True),
}


def normalize(data: dict[str, Any]) -> dict[str, Any]:
    """The state query's answer as a client keeps it: flat lists, each thread's children by thread id."""
    state: dict[str, Any] = {name: {} for name in THREAD_CHILDREN.values()}
    state["threads"] = []
    for edge in data["threads"]["edges"]:
        thread = dict(edge["node"])
        for name in THREAD_CHILDREN.values():
            state[name][thread["id"]] = [child["node"] for child in thread.pop(name)["edges"]]
        state["threads"].append(thread)
    for name in TOP_LISTS.values():
        if name in data:  # the admin's lists are in ADMIN_STATE's answer
            rows = data[name]
            state[name] = [edge["node"] for edge in rows["edges"]] if isinstance(rows, dict) else list(rows)
    state["notificationUnreadCount"] = data["notificationUnreadCount"]
    return state


# -- the reducer ----------------------------------------------------------------------------------


def _put(rows: list[dict[str, Any]], row: dict[str, Any] | None, row_id: str, order: str) -> None:
    """Replace or insert `row` (None: remove `row_id`), keeping the list's order."""
    rows[:] = [r for r in rows if r["id"] != row_id]
    if row is not None:
        rows.append(row)
        key, descending = ORDER[order]
        rows.sort(key=key, reverse=descending)


def put_object(state: dict[str, Any], obj: dict[str, Any]) -> None:
    """Put one object an event carries where the client keeps it."""
    kind = obj["__typename"]
    if kind == "Thread":
        if obj["status"] == "ARCHIVED":  # the inbox leaves archived threads out, and so their children
            _put(state["threads"], None, obj["id"], "threads")
            for name in THREAD_CHILDREN.values():
                state[name].pop(obj["id"], None)
        else:
            _put(state["threads"], obj, obj["id"], "threads")
            for name in THREAD_CHILDREN.values():
                state[name].setdefault(obj["id"], [])
    elif kind in THREAD_CHILDREN:
        name = THREAD_CHILDREN[kind]
        siblings = state[name].get(obj["thread"]["id"])
        if siblings is not None:  # only for threads the inbox shows
            _put(siblings, obj, obj["id"], name)
    elif kind == "Contact":  # a merged-away contact leaves the list
        _put(state["contacts"], None if obj["mergedInto"] else obj, obj["id"], "contacts")
    elif kind == "Document":  # the list shows current versions: a superseded one leaves it
        _put(state["documents"], None if obj["supersededBy"] else obj, obj["id"], "documents")
    elif kind in TOP_LISTS:
        _put(state[TOP_LISTS[kind]], obj, obj["id"], TOP_LISTS[kind])
        if kind == "Notification":
            state["notificationUnreadCount"] = sum(not n["read"] for n in state["notifications"])
    else:
        raise AssertionError(f"the client does not know what to do with a {kind}: teach put_object")


def remove_object(state: dict[str, Any], node_id: str) -> None:
    """Take an object that no longer exists out of every list the client keeps it in."""
    for name in ("threads", *TOP_LISTS.values()):
        if name in state:
            _put(state[name], None, node_id, name)
    for name in THREAD_CHILDREN.values():  # a deleted note
        for siblings in state[name].values():
            _put(siblings, None, node_id, name)


def apply_events(state: dict[str, Any], received: list[dict[str, Any]]) -> dict[str, Any]:
    """The state after the events, from what they carry only."""
    reduced = copy.deepcopy(state)
    for event in received:
        if event["node"] is None and event.get("nodeId"):  # what the event is about is gone
            remove_object(reduced, event["nodeId"])
        related = [unalias(node) for node in event.get("related") or []]
        for obj in (event["thread"], event["message"], unalias(event["node"]), *related):
            if obj is not None:
                put_object(reduced, obj)
    return reduced


# -- comparing ------------------------------------------------------------------------------------


def _describe(row: dict[str, Any]) -> str:
    label = next((row[k] for k in ("name", "subject", "reference", "title", "body", "summary") if row.get(k)), None)
    return f"{row['__typename']} {label!r} ({local_uuid(row['id'])})"


def _list_differences(where: str, reduced: list[dict[str, Any]], fetched: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    mine = {row["id"]: row for row in reduced}
    theirs = {row["id"]: row for row in fetched}
    for row_id, row in theirs.items():
        if row_id not in mine:
            found.append(f"{where}: {_describe(row)} is fetched but missing from the reduced state")
    for row_id, row in mine.items():
        if row_id not in theirs:
            found.append(f"{where}: {_describe(row)} is in the reduced state but no longer fetched")
    for row_id in mine.keys() & theirs.keys():
        for field in sorted(mine[row_id].keys() | theirs[row_id].keys()):
            if mine[row_id].get(field) != theirs[row_id].get(field):
                found.append(
                    f"{where}: {_describe(theirs[row_id])}.{field} is {mine[row_id].get(field)!r} in the reduced "
                    f"state, {theirs[row_id].get(field)!r} fetched"
                )
    if not found and [r["id"] for r in reduced] != [r["id"] for r in fetched]:
        found.append(
            f"{where}: order {[_describe(r) for r in reduced]} reduced, {[_describe(r) for r in fetched]} fetched"
        )
    return found


def differences(reduced: dict[str, Any], fetched: dict[str, Any]) -> list[str]:
    """What a client that applied the events shows differently from a fresh fetch (empty when equal)."""
    found: list[str] = []
    for name in sorted(fetched.keys() | reduced.keys()):
        mine, theirs = reduced.get(name), fetched.get(name)
        if mine == theirs:
            continue
        if name in THREAD_CHILDREN.values():
            for thread_id in sorted((mine or {}).keys() | (theirs or {}).keys()):
                where = f"{name} of thread {local_uuid(thread_id)}"
                found += _list_differences(where, (mine or {}).get(thread_id, []), (theirs or {}).get(thread_id, []))
        elif isinstance(theirs, list):
            found += _list_differences(name, mine or [], theirs)
        else:
            found.append(f"{name}: {mine!r} in the reduced state, {theirs!r} fetched")
    return found


# -- receiving ------------------------------------------------------------------------------------


async def receive_events(socket: GraphQLSocket, count: int, within: float = 10.0) -> list[dict[str, Any]]:
    """`count` events, then whatever else arrives within a short while (so that an extra event shows)."""
    received: list[dict[str, Any]] = []
    try:
        while len(received) < count:
            _, event = await socket.next(within)
            received.append(event)
    except TimeoutError:
        raise AssertionError(
            f"expected {count} events, received {[e['type'] for e in received]} and then nothing for {within} s"
        ) from None
    try:
        while True:
            _, event = await socket.next(0.3)
            received.append(event)
    except TimeoutError:
        pass
    return received
