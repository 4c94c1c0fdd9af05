"""Threads: creation and references, updates and transitions, assignment, archiving, read state,
lookups, and the inbox list (filters, orders, keyset pagination)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from strawberry.relay import GlobalID

from banxway.db.models import Thread
from banxway.db.session import system_session
from tests.conftest import http_client
from tests.inbox_helpers import ME_ID, Inbox, Member, _member

THREAD_FIELDS = """
id reference subject status priority type primaryChannel tags unreadCount lastMessageAt createdAt updatedAt
customer { id } contact { id } shipment { id } assignee { id email }
"""

THREAD_CREATE = f"""
mutation($input: ThreadCreateInput!) {{
  threadCreate(input: $input) {{ thread {{ {THREAD_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

THREAD_UPDATE = f"""
mutation($input: ThreadUpdateInput!) {{
  threadUpdate(input: $input) {{ thread {{ {THREAD_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

THREAD_ASSIGN = f"""
mutation($input: ThreadAssignInput!) {{
  threadAssign(input: $input) {{ thread {{ {THREAD_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

THREAD_ARCHIVE = f"""
mutation($input: ThreadArchiveInput!) {{
  threadArchive(input: $input) {{ thread {{ {THREAD_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

THREAD_MARK_READ = f"""
mutation($input: ThreadMarkReadInput!) {{
  threadMarkRead(input: $input) {{ thread {{ {THREAD_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

THREAD = f"""
query($id: ID!) {{ thread(id: $id) {{ {THREAD_FIELDS} }} }}
"""

THREAD_BY_REFERENCE = """
query($reference: String!) { threadByReference(reference: $reference) { id reference subject } }
"""

THREADS = """
query($first: Int, $after: String, $last: Int, $before: String, $filter: ThreadFilter, $orderBy: ThreadOrder) {
  threads(first: $first, after: $after, last: $last, before: $before, filter: $filter, orderBy: $orderBy) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id reference subject status priority } }
  }
}
"""


USER_UPDATE = """
mutation($id: ID!, $active: Boolean) {
  userUpdate(input: {id: $id, active: $active}) { user { id active } userErrors { field code message } }
}
"""

MESSAGE_SEND = """
mutation($input: MessageSendInput!) {
  messageSend(input: $input) { message { id createdAt } userErrors { field code message } }
}
"""


# -- helpers -----------------------------------------------------------------------------


async def _my_id(inbox: Inbox, token: str | None = None) -> str:
    result = await inbox.gql(ME_ID, token=token)
    return result["data"]["me"]["id"]


async def _foreign(inbox: Inbox) -> Inbox:
    """A second organization, "globex", with its admin's token."""
    org = await inbox.api.create_org("globex")
    return Inbox(inbox.api, org, await inbox.api.token(org.admin_email))


async def _create(inbox: Inbox, token: str | None = None, **fields: Any) -> dict:
    fields.setdefault("subject", "Quote for 2x40HC Nhava Sheva to Hamburg")
    return (await inbox.ok(THREAD_CREATE, {"input": fields}, "threadCreate", token))["thread"]


async def _update(inbox: Inbox, thread_id: str, token: str | None = None, **fields: Any) -> dict:
    result = await inbox.gql(THREAD_UPDATE, {"input": {"id": thread_id, **fields}}, token)
    assert "errors" not in result, result
    return result["data"]["threadUpdate"]


async def _assign(inbox: Inbox, thread_id: str, assignee_id: str | None, token: str | None = None) -> dict:
    return await inbox.gql(THREAD_ASSIGN, {"input": {"threadId": thread_id, "assigneeId": assignee_id}}, token)


async def _archive(inbox: Inbox, thread_id: str, token: str | None = None) -> dict:
    return await inbox.gql(THREAD_ARCHIVE, {"input": {"threadId": thread_id}}, token)


async def _read(inbox: Inbox, thread_id: str, token: str | None = None) -> dict | None:
    result = await inbox.gql(THREAD, {"id": thread_id}, token)
    assert "errors" not in result, result
    return result["data"]["thread"]


async def _list(inbox: Inbox, token: str | None = None, **variables: Any) -> dict:
    variables.setdefault("first", 100)
    result = await inbox.gql(THREADS, variables, token)
    assert "errors" not in result, result
    return result["data"]["threads"]


async def _subjects(inbox: Inbox, token: str | None = None, **variables: Any) -> list[str]:
    page = await _list(inbox, token, **variables)
    return [edge["node"]["subject"] for edge in page["edges"]]


async def _send(inbox: Inbox, thread_id: str, body: str, token: str | None = None, **fields: Any) -> dict:
    fields.setdefault("channel", "INTERNAL")
    payload = await inbox.ok(
        MESSAGE_SEND, {"input": {"threadId": thread_id, "body": body, **fields}}, "messageSend", token
    )
    return payload["message"]


def _year() -> int:
    return datetime.now(UTC).year


def _cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


# -- threadCreate -------------------------------------------------------------------------


async def test_thread_create_gives_the_first_reference_of_the_year_and_the_defaults(inbox: Inbox) -> None:
    # given an organization without threads
    # when
    thread = await _create(inbox, subject="  Rates for 1x20GP  ")
    # then
    assert thread["reference"] == f"BX-{_year()}-0001"
    assert thread["subject"] == "Rates for 1x20GP"
    assert (thread["status"], thread["priority"], thread["type"], thread["primaryChannel"]) == (
        "NEW",
        "NORMAL",
        "GENERAL",
        "EMAIL",
    )
    assert thread["tags"] == []
    assert thread["assignee"] is None
    assert thread["lastMessageAt"] is None


async def test_thread_create_numbers_references_consecutively(inbox: Inbox) -> None:
    # given
    first = await _create(inbox, subject="First")
    # when
    second = await _create(inbox, subject="Second")
    third = await _create(inbox, subject="Third")
    # then
    assert [first["reference"], second["reference"], third["reference"]] == [
        f"BX-{_year()}-0001",
        f"BX-{_year()}-0002",
        f"BX-{_year()}-0003",
    ]


async def test_thread_create_takes_the_given_type_priority_channel_and_tags(inbox: Inbox) -> None:
    # when
    thread = await _create(
        inbox, type="CUSTOMS", priority="URGENT", primaryChannel="WHATSAPP", tags=["Customs", " hold ", "customs"]
    )
    # then
    assert (thread["type"], thread["priority"], thread["primaryChannel"]) == ("CUSTOMS", "URGENT", "WHATSAPP")
    assert thread["tags"] == ["customs", "hold"]


async def test_a_contact_brings_its_customer(inbox: Inbox) -> None:
    # given
    customer = await inbox.customer("Acme Imports")
    contact = await inbox.contact("Priya Shah", customerId=customer["id"])
    # when
    thread = await _create(inbox, contactId=contact["id"])
    # then
    assert thread["contact"] == {"id": contact["id"]}
    assert thread["customer"] == {"id": customer["id"]}


async def test_a_shipment_brings_its_customer(inbox: Inbox) -> None:
    # given
    customer = await inbox.customer("Acme Imports")
    shipment = await inbox.shipment("SHP-7", customerId=customer["id"])
    # when
    thread = await _create(inbox, shipmentId=shipment["id"])
    # then
    assert thread["shipment"] == {"id": shipment["id"]}
    assert thread["customer"] == {"id": customer["id"]}


async def test_thread_create_refuses_an_unknown_contact(inbox: Inbox) -> None:
    # given
    unknown = str(GlobalID("Contact", str(uuid.uuid4())))
    # when
    result = await inbox.gql(THREAD_CREATE, {"input": {"subject": "Hello", "contactId": unknown}})
    # then
    assert result["data"]["threadCreate"]["thread"] is None
    assert [(e["code"], e["field"]) for e in result["data"]["threadCreate"]["userErrors"]] == [
        ("NOT_FOUND", ["contactId"])
    ]
    assert (await _list(inbox))["totalCount"] == 0


async def test_concurrent_thread_creates_get_distinct_consecutive_references(inbox: Inbox) -> None:
    # given
    subjects = [f"Concurrent {n}" for n in range(20)]
    # when: 20 separate requests at once
    results = await asyncio.gather(*(inbox.gql(THREAD_CREATE, {"input": {"subject": s}}) for s in subjects))
    # then
    for result in results:
        assert "errors" not in result, result
        assert result["data"]["threadCreate"]["userErrors"] == []
    references = [result["data"]["threadCreate"]["thread"]["reference"] for result in results]
    assert sorted(references) == [f"BX-{_year()}-{n:04d}" for n in range(1, 21)]
    assert (await _list(inbox))["totalCount"] == 20


async def test_each_organization_numbers_its_own_threads(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    await _create(inbox, subject="Acme one")
    # when
    globex_first = await _create(globex, subject="Globex one")
    acme_second = await _create(inbox, subject="Acme two")
    # then
    assert globex_first["reference"] == f"BX-{_year()}-0001"
    assert acme_second["reference"] == f"BX-{_year()}-0002"


# -- threadUpdate -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "PENDING"),
        ("priority", "HIGH"),
        ("type", "BOOKING"),
        ("subject", "Booking 2x40HC"),
        ("tags", ["booking", "hamburg"]),
    ],
)
async def test_thread_update_changes_only_the_given_field(inbox: Inbox, field: str, value: Any) -> None:
    # given
    thread = await _create(inbox, subject="Original subject", tags=["original"], priority="LOW", type="QUOTE_REQUEST")
    before = await _read(inbox, thread["id"])
    # when
    payload = await _update(inbox, thread["id"], **{field: value})
    # then
    assert payload["userErrors"] == []
    assert payload["thread"][field] == value
    after = await _read(inbox, thread["id"])
    assert after is not None and before is not None
    expected = {**before, field: value}
    for name in ("updatedAt", "unreadCount"):
        expected.pop(name)
        after.pop(name)
    assert after == expected


async def test_thread_update_links_a_shipment_and_unlinks_it(inbox: Inbox) -> None:
    # given
    customer = await inbox.customer("Acme Imports")
    shipment = await inbox.shipment("SHP-9", customerId=customer["id"])
    thread = await _create(inbox)
    # when
    linked = await _update(inbox, thread["id"], shipmentId=shipment["id"])
    # then
    assert linked["userErrors"] == []
    assert linked["thread"]["shipment"] == {"id": shipment["id"]}
    assert linked["thread"]["customer"] == {"id": customer["id"]}
    # when
    unlinked = await _update(inbox, thread["id"], shipmentId=None)
    # then
    assert unlinked["userErrors"] == []
    assert unlinked["thread"]["shipment"] is None
    assert (await _read(inbox, thread["id"]))["shipment"] is None


async def test_thread_update_moves_the_updated_at(inbox: Inbox) -> None:
    # given
    thread = await _create(inbox)
    before = await _read(inbox, thread["id"])
    # when
    await _update(inbox, thread["id"], priority="URGENT")
    # then
    after = await _read(inbox, thread["id"])
    assert datetime.fromisoformat(after["updatedAt"]) > datetime.fromisoformat(before["updatedAt"])


async def test_thread_update_cannot_go_back_to_new(inbox: Inbox) -> None:
    # given
    thread = await _create(inbox)
    await _update(inbox, thread["id"], status="OPEN")
    # when
    payload = await _update(inbox, thread["id"], status="NEW")
    # then
    assert payload["thread"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID_TRANSITION", ["status"])]
    assert (await _read(inbox, thread["id"]))["status"] == "OPEN"


async def test_thread_update_refuses_a_subject_over_998_characters(inbox: Inbox) -> None:
    # given
    thread = await _create(inbox, subject="Short")
    # when
    too_long = await _update(inbox, thread["id"], subject="x" * 999)
    just_right = await _update(inbox, thread["id"], subject="y" * 998)
    # then
    assert [(e["code"], e["field"]) for e in too_long["userErrors"]] == [("TOO_LONG", ["subject"])]
    assert just_right["userErrors"] == []
    assert (await _read(inbox, thread["id"]))["subject"] == "y" * 998


async def test_thread_update_refuses_an_empty_subject(inbox: Inbox) -> None:
    # given
    thread = await _create(inbox, subject="Keep me")
    # when
    payload = await _update(inbox, thread["id"], subject="   ")
    # then
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID", ["subject"])]
    assert (await _read(inbox, thread["id"]))["subject"] == "Keep me"


async def test_support_may_not_reopen_an_archived_thread(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _create(inbox)
    await _archive(inbox, thread["id"])
    # when
    payload = await _update(inbox, thread["id"], token=support.token, status="OPEN")
    # then
    assert payload["thread"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID_TRANSITION", ["status"])]
    assert (await _read(inbox, thread["id"]))["status"] == "ARCHIVED"


async def test_a_manager_may_reopen_an_archived_thread(inbox: Inbox) -> None:
    # given
    manager = await _member(inbox, "manager")
    thread = await _create(inbox)
    await _archive(inbox, thread["id"])
    # when
    payload = await _update(inbox, thread["id"], token=manager.token, status="OPEN")
    # then
    assert payload["userErrors"] == []
    assert payload["thread"]["status"] == "OPEN"
    assert (await _read(inbox, thread["id"]))["status"] == "OPEN"


async def test_an_archived_thread_cannot_be_changed_without_reopening_it(inbox: Inbox) -> None:
    # given
    thread = await _create(inbox, priority="LOW")
    await _archive(inbox, thread["id"])
    # when
    payload = await _update(inbox, thread["id"], priority="HIGH")
    # then
    assert [e["code"] for e in payload["userErrors"]] == ["INVALID_TRANSITION"]
    assert (await _read(inbox, thread["id"]))["priority"] == "LOW"


async def test_a_viewer_may_not_update_a_thread(inbox: Inbox) -> None:
    # given
    viewer = await _member(inbox, "viewer")
    thread = await _create(inbox, priority="LOW")
    # when
    result = await inbox.gql(THREAD_UPDATE, {"input": {"id": thread["id"], "priority": "HIGH"}}, viewer.token)
    # then
    assert result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert (await _read(inbox, thread["id"]))["priority"] == "LOW"


async def test_thread_update_of_a_foreign_thread_is_not_found(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    theirs = await _create(globex, subject="Globex secret", priority="LOW")
    # when
    payload = await _update(inbox, theirs["id"], priority="URGENT")
    # then
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("NOT_FOUND", ["id"])]
    assert (await _read(globex, theirs["id"]))["priority"] == "LOW"


# -- threadAssign -------------------------------------------------------------------------


async def test_support_may_assign_a_thread_to_themselves_and_unassign_it(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _create(inbox)
    # when
    assigned = await _assign(inbox, thread["id"], support.id, support.token)
    # then
    assert "errors" not in assigned, assigned
    assert assigned["data"]["threadAssign"]["userErrors"] == []
    assert assigned["data"]["threadAssign"]["thread"]["assignee"] == {"id": support.id, "email": support.email}
    # when
    unassigned = await _assign(inbox, thread["id"], None, support.token)
    # then
    assert "errors" not in unassigned, unassigned
    assert unassigned["data"]["threadAssign"]["thread"]["assignee"] is None
    assert (await _read(inbox, thread["id"]))["assignee"] is None


async def test_support_may_not_assign_a_thread_to_someone_else(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    colleague = await _member(inbox, "support", "colleague@acme.test")
    thread = await _create(inbox)
    # when
    result = await _assign(inbox, thread["id"], colleague.id, support.token)
    # then
    assert result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert result["errors"][0]["path"] == ["threadAssign"]
    assert (await _read(inbox, thread["id"]))["assignee"] is None


async def test_support_may_not_take_over_a_thread_assigned_to_someone_else(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    colleague = await _member(inbox, "support", "colleague@acme.test")
    thread = await _create(inbox)
    await _assign(inbox, thread["id"], colleague.id)
    # when
    take_over = await _assign(inbox, thread["id"], support.id, support.token)
    unassign = await _assign(inbox, thread["id"], None, support.token)
    # then
    assert take_over["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert unassign["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert (await _read(inbox, thread["id"]))["assignee"]["id"] == colleague.id


async def test_a_manager_may_assign_anyone(inbox: Inbox) -> None:
    # given
    manager = await _member(inbox, "manager")
    support = await _member(inbox, "support")
    thread = await _create(inbox)
    # when
    result = await _assign(inbox, thread["id"], support.id, manager.token)
    # then
    assert "errors" not in result, result
    assert result["data"]["threadAssign"]["thread"]["assignee"]["id"] == support.id
    # when: and reassign to someone else
    result = await _assign(inbox, thread["id"], await _my_id(inbox), manager.token)
    # then
    assert result["data"]["threadAssign"]["thread"]["assignee"]["id"] == await _my_id(inbox)


async def test_assigning_a_deactivated_user_is_invalid(inbox: Inbox) -> None:
    # given
    gone = await _member(inbox, "support", "gone@acme.test")
    deactivated = await inbox.gql(USER_UPDATE, {"id": gone.id, "active": False})
    assert deactivated["data"]["userUpdate"]["userErrors"] == []
    thread = await _create(inbox)
    # when
    result = await _assign(inbox, thread["id"], gone.id)
    # then
    assert "errors" not in result, result
    payload = result["data"]["threadAssign"]
    assert payload["thread"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID", ["assigneeId"])]
    assert (await _read(inbox, thread["id"]))["assignee"] is None


async def test_assigning_a_user_of_another_organization_is_not_found(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    stranger = await _my_id(globex)
    thread = await _create(inbox)
    # when
    result = await _assign(inbox, thread["id"], stranger)
    # then
    assert "errors" not in result, result
    payload = result["data"]["threadAssign"]
    assert payload["thread"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("NOT_FOUND", ["assigneeId"])]
    assert (await _read(inbox, thread["id"]))["assignee"] is None


async def test_a_viewer_may_not_assign_even_themselves(inbox: Inbox) -> None:
    # given
    viewer = await _member(inbox, "viewer")
    thread = await _create(inbox)
    # when
    result = await _assign(inbox, thread["id"], viewer.id, viewer.token)
    # then
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert (await _read(inbox, thread["id"]))["assignee"] is None


async def test_a_viewer_assigning_an_unknown_thread_is_forbidden_not_told_it_is_missing(inbox: Inbox) -> None:
    # given a viewer, and an id of no thread (security review: the thread was looked up before the role)
    viewer = await _member(inbox, "viewer")
    unknown = str(GlobalID("Thread", str(uuid.uuid4())))
    # when
    result = await _assign(inbox, unknown, viewer.id, viewer.token)
    # then the role is checked first, as for every other mutation
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


# -- threadArchive ------------------------------------------------------------------------


async def test_a_manager_may_archive_a_thread(inbox: Inbox) -> None:
    # given
    manager = await _member(inbox, "manager")
    thread = await _create(inbox)
    # when
    result = await _archive(inbox, thread["id"], manager.token)
    # then
    assert "errors" not in result, result
    assert result["data"]["threadArchive"]["userErrors"] == []
    assert result["data"]["threadArchive"]["thread"]["status"] == "ARCHIVED"
    assert (await _read(inbox, thread["id"]))["status"] == "ARCHIVED"


async def test_support_may_not_archive_a_thread(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _create(inbox)
    # when
    result = await _archive(inbox, thread["id"], support.token)
    # then
    assert result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert (await _read(inbox, thread["id"]))["status"] == "NEW"


async def test_support_may_not_archive_through_thread_update_either(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _create(inbox)
    # when
    payload = await _update(inbox, thread["id"], token=support.token, status="ARCHIVED")
    # then
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID_TRANSITION", ["status"])]
    assert (await _read(inbox, thread["id"]))["status"] == "NEW"


async def test_archived_threads_are_left_out_of_the_inbox_unless_asked_for(inbox: Inbox) -> None:
    # given
    kept = await _create(inbox, subject="Kept")
    archived = await _create(inbox, subject="Archived")
    # when
    await _archive(inbox, archived["id"])
    # then
    assert await _subjects(inbox) == ["Kept"]
    assert (await _list(inbox))["totalCount"] == 1
    assert await _subjects(inbox, filter={"status": ["ARCHIVED"]}) == ["Archived"]
    assert set(await _subjects(inbox, filter={"status": ["NEW", "ARCHIVED"]})) == {"Kept", "Archived"}
    assert (await _read(inbox, archived["id"]))["id"] == archived["id"]
    assert kept["id"] != archived["id"]


# -- threadMarkRead and unreadCount ----------------------------------------------------------------


async def test_messages_of_another_user_are_unread_until_the_thread_is_marked_read(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _create(inbox)
    await _send(inbox, thread["id"], "My own note")
    await _send(inbox, thread["id"], "From support 1", support.token)
    await _send(inbox, thread["id"], "From support 2", support.token)
    # then: the viewer's own messages are not unread; the colleague's are
    assert (await _read(inbox, thread["id"]))["unreadCount"] == 2
    assert (await _read(inbox, thread["id"], support.token))["unreadCount"] == 1
    # when
    result = await inbox.gql(THREAD_MARK_READ, {"input": {"threadId": thread["id"]}})
    # then
    assert "errors" not in result, result
    assert result["data"]["threadMarkRead"]["userErrors"] == []
    assert result["data"]["threadMarkRead"]["thread"]["unreadCount"] == 0
    assert (await _read(inbox, thread["id"]))["unreadCount"] == 0
    assert (await _read(inbox, thread["id"], support.token))["unreadCount"] == 1  # only the viewer's read state


async def test_a_message_after_marking_read_is_unread_again(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _create(inbox)
    await _send(inbox, thread["id"], "Before", support.token)
    await inbox.ok(THREAD_MARK_READ, {"input": {"threadId": thread["id"]}}, "threadMarkRead")
    # when
    await _send(inbox, thread["id"], "After", support.token)
    # then
    assert (await _read(inbox, thread["id"]))["unreadCount"] == 1


async def test_unread_counts_in_the_inbox_list(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    busy = await _create(inbox, subject="Busy")
    quiet = await _create(inbox, subject="Quiet")
    for n in range(3):
        await _send(inbox, busy["id"], f"Update {n}", support.token)
    # when
    result = await inbox.gql("{ threads { edges { node { subject unreadCount } } } }")
    # then
    counts = {edge["node"]["subject"]: edge["node"]["unreadCount"] for edge in result["data"]["threads"]["edges"]}
    assert counts == {"Busy": 3, "Quiet": 0}
    assert quiet["id"] != busy["id"]


async def test_mark_read_of_a_foreign_thread_is_not_found(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    theirs = await _create(globex)
    # when
    result = await inbox.gql(THREAD_MARK_READ, {"input": {"threadId": theirs["id"]}})
    # then
    payload = result["data"]["threadMarkRead"]
    assert payload["thread"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("NOT_FOUND", ["threadId"])]


# -- thread(id:) and threadByReference ------------------------------------------------------------


async def test_thread_by_id(inbox: Inbox) -> None:
    # given
    thread = await _create(inbox, subject="Find me")
    # when
    found = await _read(inbox, thread["id"])
    # then
    assert found is not None
    assert (found["id"], found["subject"], found["reference"]) == (thread["id"], "Find me", thread["reference"])


@pytest.mark.parametrize(
    "make_id",
    [
        lambda thread_id: str(GlobalID("Thread", str(uuid.uuid4()))),
        lambda thread_id: "not-a-global-id",
        lambda thread_id: str(GlobalID("Customer", GlobalID.from_id(thread_id).node_id)),
    ],
    ids=["unknown", "garbage", "the-thread-as-another-type"],
)
async def test_thread_by_an_id_that_is_no_thread_is_null(inbox: Inbox, make_id: Callable[[str], str]) -> None:
    # given
    thread = await _create(inbox)
    # when
    found = await _read(inbox, make_id(thread["id"]))
    # then
    assert found is None


async def test_a_foreign_thread_id_is_null(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    theirs = await _create(globex, subject="Globex secret")
    # when
    found = await _read(inbox, theirs["id"])
    # then
    assert found is None
    assert (await _read(globex, theirs["id"]))["subject"] == "Globex secret"


async def test_thread_by_reference(inbox: Inbox) -> None:
    # given
    await _create(inbox, subject="One")
    two = await _create(inbox, subject="Two")
    # when
    result = await inbox.gql(THREAD_BY_REFERENCE, {"reference": f"  {two['reference'].lower()} "})
    # then
    assert result["data"]["threadByReference"] == {"id": two["id"], "reference": two["reference"], "subject": "Two"}


async def test_thread_by_reference_of_another_organization_is_null(inbox: Inbox) -> None:
    # given: acme has BX-…-0001, globex has BX-…-0001 and BX-…-0002
    globex = await _foreign(inbox)
    ours = await _create(inbox, subject="Ours")
    await _create(globex, subject="Theirs 1")
    theirs = await _create(globex, subject="Theirs 2")
    # when
    foreign = await inbox.gql(THREAD_BY_REFERENCE, {"reference": theirs["reference"]})
    same_number = await inbox.gql(THREAD_BY_REFERENCE, {"reference": ours["reference"]})
    # then
    assert foreign["data"]["threadByReference"] is None
    assert same_number["data"]["threadByReference"]["id"] == ours["id"]


# -- filters ---------------------------------------------------------------------------------------


@dataclass
class Dataset:
    ids: dict[str, str]
    support: Member


async def _dataset(inbox: Inbox) -> Dataset:
    """Five threads that differ in every filtered attribute."""
    support = await _member(inbox, "support")
    me = await _my_id(inbox)
    acme = await inbox.customer("Acme Imports")
    globex = await inbox.customer("Globex Traders")
    shipment = await inbox.shipment("SHP-1", customerId=acme["id"])
    reefer = await _create(
        inbox,
        subject="Reefer rates Mundra to Rotterdam",
        type="QUOTE_REQUEST",
        priority="URGENT",
        primaryChannel="EMAIL",
        customerId=acme["id"],
        tags=["quote"],
    )
    await _assign(inbox, reefer["id"], me)
    booking = await _create(
        inbox,
        subject="Booking confirmation",
        type="BOOKING",
        priority="HIGH",
        primaryChannel="WHATSAPP",
        shipmentId=shipment["id"],
    )
    await _assign(inbox, booking["id"], support.id)
    invoice = await _create(
        inbox,
        subject="Invoice query",
        type="INVOICE",
        priority="LOW",
        primaryChannel="SMS",
        customerId=globex["id"],
        tags=["billing"],
    )
    await _send(inbox, invoice["id"], "The demurrage charges look wrong")
    customs = await _create(inbox, subject="Customs hold", type="CUSTOMS")
    await _update(inbox, customs["id"], status="PENDING")
    archived = await _create(inbox, subject="Old archived", customerId=acme["id"], tags=["quote"])
    await _archive(inbox, archived["id"])
    ids = {
        "me": me,
        "acme": acme["id"],
        "globex": globex["id"],
        "shipment": shipment["id"],
        "support": support.id,
    }
    return Dataset(ids, support)


FILTERS: list[tuple[str, Callable[[Dataset], dict], set[str]]] = [
    (
        "no-filter",
        lambda d: {},
        {"Reefer rates Mundra to Rotterdam", "Booking confirmation", "Invoice query", "Customs hold"},
    ),
    ("status-one", lambda d: {"status": ["PENDING"]}, {"Customs hold"}),
    (
        "status-list",
        lambda d: {"status": ["PENDING", "ARCHIVED"]},
        {"Customs hold", "Old archived"},
    ),
    ("assigned-to-me", lambda d: {"assignedToMe": True}, {"Reefer rates Mundra to Rotterdam"}),
    ("assignee-id", lambda d: {"assigneeId": d.ids["support"]}, {"Booking confirmation"}),
    ("unassigned", lambda d: {"unassigned": True}, {"Invoice query", "Customs hold"}),
    (
        "customer-id",
        lambda d: {"customerId": d.ids["acme"]},
        {"Reefer rates Mundra to Rotterdam", "Booking confirmation"},
    ),
    ("shipment-id", lambda d: {"shipmentId": d.ids["shipment"]}, {"Booking confirmation"}),
    ("channel", lambda d: {"channel": "WHATSAPP"}, {"Booking confirmation"}),
    ("type", lambda d: {"type": "INVOICE"}, {"Invoice query"}),
    ("priority", lambda d: {"priority": "URGENT"}, {"Reefer rates Mundra to Rotterdam"}),
    ("tag", lambda d: {"tag": "Quote"}, {"Reefer rates Mundra to Rotterdam"}),
    ("search-subject", lambda d: {"search": "rotterdam"}, {"Reefer rates Mundra to Rotterdam"}),
    ("search-body", lambda d: {"search": "Demurrage"}, {"Invoice query"}),
    ("search-nothing", lambda d: {"search": "zanzibar"}, set()),
    (
        "combined",
        lambda d: {"customerId": d.ids["acme"], "priority": "HIGH"},
        {"Booking confirmation"},
    ),
    ("foreign-customer-id", lambda d: {"customerId": str(GlobalID("Customer", str(uuid.uuid4())))}, set()),
]


@pytest.mark.parametrize(("name", "make_filter", "expected"), FILTERS, ids=[f[0] for f in FILTERS])
async def test_threads_filter(
    inbox: Inbox, name: str, make_filter: Callable[[Dataset], dict], expected: set[str]
) -> None:
    # given
    dataset = await _dataset(inbox)
    # when
    page = await _list(inbox, filter=make_filter(dataset))
    # then
    assert {edge["node"]["subject"] for edge in page["edges"]} == expected
    assert page["totalCount"] == len(expected)


async def test_assigned_to_me_is_the_viewers_own(inbox: Inbox) -> None:
    # given
    dataset = await _dataset(inbox)
    # when
    subjects = await _subjects(inbox, dataset.support.token, filter={"assignedToMe": True})
    # then
    assert subjects == ["Booking confirmation"]


async def test_search_matches_words_of_the_subject_and_of_message_bodies_together(inbox: Inbox) -> None:
    # given
    subject_hit = await _create(inbox, subject="Hamburg reefer booking")
    body_hit = await _create(inbox, subject="Question")
    await _send(inbox, body_hit["id"], "Can you ship two reefers… the reefer plugs must be checked")
    await _create(inbox, subject="Unrelated")
    # when
    subjects = await _subjects(inbox, filter={"search": "reefer"})
    # then
    assert set(subjects) == {"Hamburg reefer booking", "Question"}
    assert subject_hit["id"] != body_hit["id"]


async def test_updated_since(inbox: Inbox) -> None:
    # given
    await _create(inbox, subject="Stale")
    fresh = await _create(inbox, subject="Fresh")
    await asyncio.sleep(0.01)
    await _update(inbox, fresh["id"], priority="HIGH")
    since = (await _read(inbox, fresh["id"]))["updatedAt"]
    # when
    subjects = await _subjects(inbox, filter={"updatedSince": since})
    later = await _subjects(
        inbox, filter={"updatedSince": (datetime.fromisoformat(since) + timedelta(seconds=1)).isoformat()}
    )
    # then
    assert subjects == ["Fresh"]
    assert later == []


# -- orders ----------------------------------------------------------------------------------------


async def test_last_activity_order_puts_the_thread_with_a_new_message_first(inbox: Inbox) -> None:
    # given
    a = await _create(inbox, subject="A")
    await _create(inbox, subject="B")
    await _create(inbox, subject="C")
    assert await _subjects(inbox) == ["C", "B", "A"]
    # when
    await _send(inbox, a["id"], "News on A")
    # then
    assert await _subjects(inbox) == ["A", "C", "B"]
    assert await _subjects(inbox, orderBy="LAST_ACTIVITY_DESC") == ["A", "C", "B"]


async def test_created_order_ignores_new_messages(inbox: Inbox) -> None:
    # given
    a = await _create(inbox, subject="A")
    await _create(inbox, subject="B")
    await _create(inbox, subject="C")
    # when
    await _send(inbox, a["id"], "News on A")
    # then
    assert await _subjects(inbox, orderBy="CREATED_DESC") == ["C", "B", "A"]


async def test_priority_order_puts_urgent_first(inbox: Inbox) -> None:
    # given
    for priority in ("LOW", "URGENT", "NORMAL", "HIGH"):
        await _create(inbox, subject=priority, priority=priority)
    # when
    subjects = await _subjects(inbox, orderBy="PRIORITY")
    # then
    assert subjects == ["URGENT", "HIGH", "NORMAL", "LOW"]


async def _set_sla(inbox: Inbox, thread_id: str, due: datetime | None) -> None:
    """There is no mutation for the SLA yet: set it in the database."""
    local = uuid.UUID(GlobalID.from_id(thread_id).node_id)
    async with system_session(inbox.api.state.sessionmaker) as session, session.begin():
        await session.execute(update(Thread).where(Thread.id == local).values(sla_due_at=due))


async def test_sla_due_order_puts_the_soonest_due_first_and_threads_without_sla_last(inbox: Inbox) -> None:
    # given
    now = datetime.now(UTC)
    none = await _create(inbox, subject="No SLA")
    late = await _create(inbox, subject="Due tomorrow")
    soon = await _create(inbox, subject="Due in an hour")
    overdue = await _create(inbox, subject="Overdue")
    await _set_sla(inbox, late["id"], now + timedelta(days=1))
    await _set_sla(inbox, soon["id"], now + timedelta(hours=1))
    await _set_sla(inbox, overdue["id"], now - timedelta(hours=1))
    # when
    subjects = await _subjects(inbox, orderBy="SLA_DUE")
    # then
    assert subjects == ["Overdue", "Due in an hour", "Due tomorrow", "No SLA"]
    assert none["id"] not in (late["id"], soon["id"])


async def _mixed_threads(inbox: Inbox, count: int) -> None:
    now = datetime.now(UTC)
    priorities = ["LOW", "NORMAL", "HIGH", "URGENT"]
    for n in range(count):
        thread = await _create(inbox, subject=f"T{n:02d}", priority=priorities[n % 4])
        if n % 3:
            await _set_sla(inbox, thread["id"], now + timedelta(minutes=(n * 7) % 11))


async def _walk_forward(inbox: Inbox, size: int, **variables: Any) -> tuple[list[str], list[dict]]:
    subjects: list[str] = []
    pages: list[dict] = []
    after = None
    while True:
        page = await _list(inbox, first=size, after=after, **variables)
        pages.append(page)
        subjects += [edge["node"]["subject"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return subjects, pages
        after = page["pageInfo"]["endCursor"]
        assert len(pages) < 50, "pagination does not end"


async def _walk_backward(inbox: Inbox, size: int, **variables: Any) -> tuple[list[str], list[dict]]:
    subjects: list[str] = []
    pages: list[dict] = []
    before = None
    while True:
        variables["first"] = None
        page = await _list(inbox, last=size, before=before, **variables)
        pages.append(page)
        subjects = [edge["node"]["subject"] for edge in page["edges"]] + subjects
        if not page["pageInfo"]["hasPreviousPage"]:
            return subjects, pages
        before = page["pageInfo"]["startCursor"]
        assert len(pages) < 50, "pagination does not end"


@pytest.mark.parametrize(
    "order",
    [
        "LAST_ACTIVITY_DESC",
        "CREATED_DESC",
        "PRIORITY",
        "SLA_DUE",
    ],
)
async def test_paging_through_each_order_gives_the_same_sequence_as_one_page(inbox: Inbox, order: str) -> None:
    # given
    await _mixed_threads(inbox, 11)
    whole = await _subjects(inbox, orderBy=order)
    # when
    forward, _ = await _walk_forward(inbox, 3, orderBy=order)
    backward, _ = await _walk_backward(inbox, 3, orderBy=order)
    # then
    assert len(whole) == 11
    assert forward == whole
    assert backward == whole


# -- keyset pagination ----------------------------------------------------------------------------


async def _many_threads(inbox: Inbox, count: int) -> list[str]:
    subjects = [f"Thread {n:03d}" for n in range(count)]
    for start in range(0, count, 20):
        results = await asyncio.gather(
            *(inbox.gql(THREAD_CREATE, {"input": {"subject": s}}) for s in subjects[start : start + 20])
        )
        for result in results:
            assert result["data"]["threadCreate"]["userErrors"] == [], result
    return subjects


async def test_forward_pagination_sees_every_thread_exactly_once(inbox: Inbox) -> None:
    # given
    created = await _many_threads(inbox, 25)
    # when
    seen, pages = await _walk_forward(inbox, 10)
    # then
    assert [len(page["edges"]) for page in pages] == [10, 10, 5]
    assert sorted(seen) == sorted(created)
    assert len(set(seen)) == 25
    assert [page["pageInfo"]["hasNextPage"] for page in pages] == [True, True, False]
    assert [page["pageInfo"]["hasPreviousPage"] for page in pages] == [False, True, True]
    assert all(page["totalCount"] == 25 for page in pages)
    assert seen == await _subjects(inbox)


async def test_backward_pagination_sees_every_thread_exactly_once(inbox: Inbox) -> None:
    # given
    created = await _many_threads(inbox, 25)
    # when
    seen, pages = await _walk_backward(inbox, 10)
    # then
    assert [len(page["edges"]) for page in pages] == [10, 10, 5]
    assert sorted(seen) == sorted(created)
    assert len(set(seen)) == 25
    assert [page["pageInfo"]["hasPreviousPage"] for page in pages] == [True, True, False]
    assert seen == await _subjects(inbox)


async def test_edge_cursors_resume_after_that_edge(inbox: Inbox) -> None:
    # given
    await _many_threads(inbox, 6)
    whole = await _list(inbox)
    third = whole["edges"][2]["cursor"]
    # when
    rest = await _list(inbox, first=10, after=third)
    # then
    assert [e["node"]["id"] for e in rest["edges"]] == [e["node"]["id"] for e in whole["edges"][3:]]


async def test_first_is_capped_at_100(inbox: Inbox) -> None:
    # given
    await _many_threads(inbox, 103)
    # when
    page = await _list(inbox, first=500)
    # then
    assert len(page["edges"]) == 100
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["totalCount"] == 103
    rest = await _list(inbox, first=500, after=page["pageInfo"]["endCursor"])
    assert len(rest["edges"]) == 3


async def test_a_negative_first_is_an_error(inbox: Inbox) -> None:
    # given
    await _create(inbox)
    # when
    result = await inbox.gql(THREADS, {"first": -1})
    # then
    assert result["data"] is None
    assert "first" in result["errors"][0]["message"]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "bm90IGpzb24",  # base64 of "not json"
        _cursor(["only-one-value"]),
        _cursor({"t": "x"}),
    ],
    ids=["not-base64", "not-json", "wrong-width", "not-a-list"],
)
async def test_a_garbage_after_cursor_is_an_error_not_a_crash(inbox: Inbox, cursor: str) -> None:
    # given
    await _create(inbox)
    # when
    result = await inbox.gql(THREADS, {"first": 5, "after": cursor})
    # then
    assert result["data"] is None
    assert result["errors"][0]["path"] == ["threads"]
    assert "not a valid cursor" in result["errors"][0]["message"]
    assert (await _list(inbox))["totalCount"] == 1  # and the API still works


async def test_a_cursor_with_values_of_the_wrong_type_is_an_error_not_a_crash(inbox: Inbox) -> None:
    # given: a well-formed cursor whose values are not a timestamp and an id
    await _create(inbox)
    # when
    result = await inbox.gql(THREADS, {"first": 5, "after": _cursor(["yesterday", "not-a-uuid"])})
    # then
    assert result["data"] is None
    assert "not a valid cursor" in result["errors"][0]["message"]


async def test_a_garbage_cursor_is_reported_as_such_in_production(inbox: Inbox) -> None:
    # given: production masks faults, but a bad cursor is the client's mistake
    settings = inbox.api.state.settings.model_copy(update={"env": "production"})
    await _create(inbox)
    # when
    async with http_client(settings, inbox.api.state) as http:
        response = await http.post(
            "/graphql",
            json={"query": THREADS, "variables": {"first": 5, "after": "garbage!!"}},
            headers={"authorization": f"Bearer {inbox.token}"},
        )
    # then
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert "not a valid cursor" in errors[0]["message"]


CONTACT_MERGE = """
mutation($kept: ID!, $merged: ID!) {
  contactMerge(input: {keptContactId: $kept, mergedContactId: $merged}) { userErrors { field code message } }
}
"""


@pytest.mark.parametrize("mutation", ["threadCreate", "threadUpdate"])
async def test_a_merged_away_contact_cannot_be_linked(inbox: Inbox, mutation: str) -> None:
    # given two contacts, the second merged into the first (security review: it was accepted as contactId)
    kept = await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya@acme.test"}])
    merged = await inbox.contact("P. Shah", identities=[{"channel": "EMAIL", "address": "p.shah@acme.test"}])
    await inbox.ok(CONTACT_MERGE, {"kept": kept["id"], "merged": merged["id"]}, "contactMerge")
    # when a thread is linked to the merged-away one
    if mutation == "threadCreate":
        result = await inbox.gql(THREAD_CREATE, {"input": {"subject": "Booking", "contactId": merged["id"]}})
    else:
        thread = await _create(inbox)
        result = await inbox.gql(THREAD_UPDATE, {"input": {"id": thread["id"], "contactId": merged["id"]}})
    # then it is refused, naming the contact to use
    [error] = result["data"][mutation]["userErrors"]
    assert error["field"] == ["contactId"]
    assert error["code"] == "INVALID"
    assert "merged into Priya Shah" in error["message"]
