"""threadsBulkUpdate (the single-thread write paths applied to up to 100 threads in one transaction, with
per-thread errors) and threadMarkUnread."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from banxway.db.models import Event
from banxway.db.session import system_session
from banxway.schema.ids import local_id, to_global_id
from tests.inbox_helpers import MESSAGE_SEND, Inbox, _foreign, _member

BULK = """
mutation($input: ThreadsBulkUpdateInput!) {
  threadsBulkUpdate(input: $input) {
    threads { id status priority tags assignee { id } }
    userErrors { field code message }
  }
}
"""
UPDATE = """
mutation($input: ThreadUpdateInput!) { threadUpdate(input: $input) { thread { id } userErrors { field code } } }
"""
ASSIGN = """
mutation($input: ThreadAssignInput!) { threadAssign(input: $input) { thread { id } userErrors { field code } } }
"""
ARCHIVE = """
mutation($input: ThreadArchiveInput!) { threadArchive(input: $input) { thread { id } userErrors { field code } } }
"""
MARK_READ = """
mutation($input: ThreadMarkReadInput!) { threadMarkRead(input: $input) { thread { unreadCount } userErrors { field code } } }
"""
MARK_UNREAD = """
mutation($input: ThreadMarkUnreadInput!) {
  threadMarkUnread(input: $input) { thread { id unreadCount } userErrors { field code } }
}
"""
UNREAD = "query($id: ID!) { thread(id: $id) { unreadCount } }"


async def _bulk(inbox: Inbox, token: str | None = None, **values: Any) -> dict:
    result = await inbox.gql(BULK, {"input": values}, token)
    assert "errors" not in result, result
    return result["data"]["threadsBulkUpdate"]


def _errors(payload: dict) -> list[tuple[str, list[str] | None]]:
    return [(error["code"], error["field"]) for error in payload["userErrors"]]


async def _last_event_id(inbox: Inbox) -> int:
    async with system_session(inbox.api.state.sessionmaker) as session:
        return await session.scalar(select(func.coalesce(func.max(Event.id), 0)))


async def _events_since(inbox: Inbox, after: int) -> list[tuple[str, uuid.UUID | None, dict]]:
    """(type, thread, payload without ids of threads) of the events after `after`, in order."""
    async with system_session(inbox.api.state.sessionmaker) as session:
        rows = await session.scalars(select(Event).where(Event.id > after).order_by(Event.id))
        found = []
        for row in rows:
            payload = {k: v for k, v in row.payload.items() if k not in ("thread_id", "notification_id")}
            found.append((row.type, row.thread_id, payload))
        return found


async def test_a_batch_changes_the_threads_it_can_and_names_the_others(inbox: Inbox) -> None:
    # given two open threads, an archived one, another organization's thread and an id that is nobody's
    support = await _member(inbox, "support", "sam@acme.test")
    first, second, archived = [await inbox.thread(s) for s in ("One", "Two", "Archived")]
    await inbox.ok(ARCHIVE, {"input": {"threadId": archived["id"]}}, "threadArchive")
    theirs = await (await _foreign(inbox)).thread("Theirs")
    unknown = to_global_id("Thread", uuid.uuid4())
    ids = [first["id"], theirs["id"], second["id"], archived["id"], unknown, "not-an-id"]
    # when one batch sets priority, tags and the assignee of all of them
    payload = await _bulk(
        inbox, threadIds=ids, priority="URGENT", addTags=["VIP", "hamburg"], removeTags=["none"], assigneeId=support.id
    )
    # then the two open threads changed
    assert [t["id"] for t in payload["threads"]] == [first["id"], second["id"]]
    for thread in payload["threads"]:
        assert (thread["priority"], thread["tags"], thread["assignee"]) == (
            "URGENT",
            ["vip", "hamburg"],
            {"id": support.id},
        )
    # and each other one is named by its index
    assert _errors(payload) == [
        ("NOT_FOUND", ["threadIds", "1"]),
        ("INVALID_TRANSITION", ["threadIds", "3"]),
        ("NOT_FOUND", ["threadIds", "4"]),
        ("NOT_FOUND", ["threadIds", "5"]),
    ]
    assert archived["reference"] in payload["userErrors"][1]["message"]
    after = await inbox.gql(
        "query($id: ID!) { thread(id: $id) { priority tags assignee { id } } }", {"id": archived["id"]}
    )
    assert after["data"]["thread"] == {"priority": "NORMAL", "tags": [], "assignee": None}


async def test_a_batch_records_what_the_single_mutations_record(inbox: Inbox) -> None:
    support = await _member(inbox, "support", "sam@acme.test")
    single, bulk = await inbox.thread("Single"), await inbox.thread("Bulk")
    # when one thread is changed by the single mutations, the other by a batch
    mark = await _last_event_id(inbox)
    await inbox.ok(
        UPDATE, {"input": {"id": single["id"], "status": "CLOSED", "priority": "HIGH", "tags": ["vip"]}}, "threadUpdate"
    )
    await inbox.ok(ASSIGN, {"input": {"threadId": single["id"], "assigneeId": support.id}}, "threadAssign")
    await inbox.ok(ARCHIVE, {"input": {"threadId": single["id"]}}, "threadArchive")
    singles = await _events_since(inbox, mark)
    mark = await _last_event_id(inbox)
    payload = await _bulk(
        inbox,
        threadIds=[bulk["id"]],
        status="CLOSED",
        priority="HIGH",
        addTags=["vip"],
        assigneeId=support.id,
        archive=True,
    )
    assert payload["userErrors"] == []
    batch = await _events_since(inbox, mark)
    # then the events are the same, but for the thread
    assert [(t, p) for t, _, p in batch] == [(t, p) for t, _, p in singles]
    assert [t for t, _, _ in batch] == ["THREAD_UPDATED", "THREAD_ASSIGNED", "NOTIFICATION_CREATED", "THREAD_ARCHIVED"]
    assert {thread for _, thread, _ in batch} - {None} == {local_id(bulk["id"], "Thread")}


async def test_assignee_left_out_stays_and_null_unassigns(inbox: Inbox) -> None:
    support = await _member(inbox, "support", "sam@acme.test")
    thread = await inbox.thread("x")
    await inbox.ok(ASSIGN, {"input": {"threadId": thread["id"], "assigneeId": support.id}}, "threadAssign")
    payload = await _bulk(inbox, threadIds=[thread["id"]], priority="LOW")
    assert payload["threads"][0]["assignee"] == {"id": support.id}
    payload = await _bulk(inbox, threadIds=[thread["id"]], assigneeId=None)
    assert payload["threads"][0]["assignee"] is None


async def test_the_batch_size_and_its_input_are_checked_first(inbox: Inbox) -> None:
    thread = await inbox.thread("x")
    payload = await _bulk(inbox, threadIds=[thread["id"]] * 101, priority="LOW")
    assert (payload["threads"], _errors(payload)) == ([], [("INVALID", ["threadIds"])])
    payload = await _bulk(inbox, threadIds=[], priority="LOW")
    assert _errors(payload) == [("INVALID", ["threadIds"])]
    payload = await _bulk(inbox, threadIds=[thread["id"]], addTags=["no tabs\t!"])
    assert _errors(payload) == [("INVALID", ["addTags", "0"])]
    assert (await _bulk(inbox, threadIds=[thread["id"]], status="OPEN"))["userErrors"] == []
    payload = await _bulk(inbox, threadIds=[thread["id"]], status="NEW")
    assert _errors(payload) == [("INVALID_TRANSITION", ["threadIds", "0"])]
    globex = await _foreign(inbox)
    their_user = (await globex.gql("{ me { id } }"))["data"]["me"]["id"]
    payload = await _bulk(inbox, threadIds=[thread["id"]], assigneeId=their_user)
    assert (payload["threads"], _errors(payload)) == ([], [("NOT_FOUND", ["assigneeId"])])


async def test_roles_are_checked_once_for_the_batch(inbox: Inbox) -> None:
    viewer = await _member(inbox, "viewer")
    support = await _member(inbox, "support", "sam@acme.test")
    colleague = await _member(inbox, "support", "ola@acme.test")
    free, taken = await inbox.thread("Free"), await inbox.thread("Taken")
    await inbox.ok(ASSIGN, {"input": {"threadId": taken["id"], "assigneeId": colleague.id}}, "threadAssign")
    ids = [free["id"], taken["id"]]
    for token, values in (
        (viewer.token, {"priority": "LOW"}),
        (support.token, {"archive": True}),
        (support.token, {"assigneeId": colleague.id}),
    ):
        result = await inbox.gql(BULK, {"input": {"threadIds": ids, **values}}, token)
        assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN", result
    # a support agent takes the free thread, not the colleague's
    payload = await _bulk(inbox, support.token, threadIds=ids, assigneeId=support.id, priority="HIGH")
    assert [t["id"] for t in payload["threads"]] == [free["id"]]
    assert _errors(payload) == [("FORBIDDEN", ["threadIds", "1"])]
    assert payload["threads"][0]["priority"] == "HIGH"
    # and changes priority and tags of both
    payload = await _bulk(inbox, support.token, threadIds=ids, removeTags=["x"], priority="LOW")
    assert len(payload["threads"]) == 2 and payload["userErrors"] == []


async def test_mark_unread_moves_the_read_position_before_the_last_message_of_someone_else(inbox: Inbox) -> None:
    support = await _member(inbox, "support", "sam@acme.test")
    thread = await inbox.thread("x")
    # without a message of someone else, nothing is unread
    await inbox.send(thread["id"], "mine")
    payload = await inbox.ok(MARK_UNREAD, {"input": {"threadId": thread["id"]}}, "threadMarkUnread")
    assert payload["thread"]["unreadCount"] == 0
    # with messages of a colleague, read, then marked unread
    for body in ("theirs 1", "theirs 2"):
        variables = {"input": {"threadId": thread["id"], "channel": "INTERNAL", "body": body}}
        await inbox.ok(MESSAGE_SEND, variables, "messageSend", support.token)
    await inbox.send(thread["id"], "mine again")
    read = await inbox.ok(MARK_READ, {"input": {"threadId": thread["id"]}}, "threadMarkRead")
    assert read["thread"]["unreadCount"] == 0
    mark = await _last_event_id(inbox)
    payload = await inbox.ok(MARK_UNREAD, {"input": {"threadId": thread["id"]}}, "threadMarkUnread")
    # then the last one counts as unread, for the viewer only
    assert payload["thread"]["unreadCount"] == 1
    assert (await inbox.gql(UNREAD, {"id": thread["id"]}))["data"]["thread"]["unreadCount"] == 1
    assert [t for t, _, _ in await _events_since(inbox, mark)] == ["THREAD_READ"]
    assert (await inbox.gql(UNREAD, {"id": thread["id"]}, support.token))["data"]["thread"]["unreadCount"] == 2
    # another organization's thread is not found
    theirs = await (await _foreign(inbox)).thread("Theirs")
    result = await inbox.gql(MARK_UNREAD, {"input": {"threadId": theirs["id"]}})
    assert _errors(result["data"]["threadMarkUnread"]) == [("NOT_FOUND", ["threadId"])]
