"""Actions on a thread: actionCreate (defaults, type, due date, assignee), actionUpdate (the status transitions
OPEN → IN_PROGRESS → DONE, reopening, cancelling, partial updates), approvals that only validators may complete,
who may create and update actions, and the thread's actions connection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from strawberry.relay import GlobalID

from banxway.db.models import Action
from tests.inbox_helpers import ME_ID, Inbox, _count, _errors, _foreign, _member, _thread

ACTION_FIELDS = """
id title type status dueAt completedAt createdAt
assignee { id } createdBy { id } completedBy { id } thread { id }
"""

ACTION_CREATE = f"""
mutation($input: ActionCreateInput!) {{
  actionCreate(input: $input) {{ action {{ {ACTION_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

ACTION_UPDATE = f"""
mutation($input: ActionUpdateInput!) {{
  actionUpdate(input: $input) {{ action {{ {ACTION_FIELDS} }} userErrors {{ field code message }} }}
}}
"""

THREAD_ACTIONS = """
query($id: ID!) { thread(id: $id) { actions(first: 50) { totalCount edges { node { title status type } } } } }
"""


# -- helpers ---------------------------------------------------------------------------------------


async def _my_id(inbox: Inbox) -> str:
    return (await inbox.gql(ME_ID))["data"]["me"]["id"]


async def _action(inbox: Inbox, thread_id: str, token: str | None = None, **fields: Any) -> dict:
    fields.setdefault("title", "Send the revised quote")
    payload = await inbox.ok(ACTION_CREATE, {"input": {"threadId": thread_id, **fields}}, "actionCreate", token)
    return payload["action"]


async def _action_update(inbox: Inbox, action_id: str, token: str | None = None, **fields: Any) -> dict:
    return await inbox.gql(ACTION_UPDATE, {"input": {"id": action_id, **fields}}, token)


# -- actions ---------------------------------------------------------------------------------------


async def test_action_create_with_defaults(inbox: Inbox) -> None:
    # given
    me = await _my_id(inbox)
    thread = await _thread(inbox)
    # when
    action = await _action(inbox, thread["id"], title="  Call the shipping line ")
    # then
    assert (action["title"], action["type"], action["status"]) == ("Call the shipping line", "TASK", "OPEN")
    assert action["createdBy"] == {"id": me}
    assert action["completedAt"] is None and action["completedBy"] is None
    assert action["assignee"] is None
    assert action["thread"] == {"id": thread["id"]}


async def test_action_create_with_type_due_date_and_assignee(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    due = datetime(2030, 1, 15, 9, 30, tzinfo=UTC)
    # when
    action = await _action(inbox, thread["id"], type="CALL_BACK", dueAt=due.isoformat(), assigneeId=support.id)
    # then
    assert action["type"] == "CALL_BACK"
    assert datetime.fromisoformat(action["dueAt"]) == due
    assert action["assignee"] == {"id": support.id}


async def test_action_create_for_a_foreign_assignee_is_not_found(inbox: Inbox) -> None:
    # given
    globex = await _foreign(inbox)
    stranger = (await globex.gql(ME_ID))["data"]["me"]["id"]
    thread = await _thread(inbox)
    # when
    result = await inbox.gql(ACTION_CREATE, {"input": {"threadId": thread["id"], "title": "X", "assigneeId": stranger}})
    # then
    assert _errors(result["data"]["actionCreate"]) == [("NOT_FOUND", ["assigneeId"])]
    assert await _count(inbox, Action) == 0


async def test_an_action_goes_open_in_progress_done(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"])
    # when
    started = await _action_update(inbox, action["id"], support.token, status="IN_PROGRESS")
    # then
    assert started["data"]["actionUpdate"]["userErrors"] == []
    assert started["data"]["actionUpdate"]["action"]["status"] == "IN_PROGRESS"
    assert started["data"]["actionUpdate"]["action"]["completedAt"] is None
    # when
    before = datetime.now(UTC) - timedelta(seconds=5)
    done = await _action_update(inbox, action["id"], support.token, status="DONE")
    # then
    finished = done["data"]["actionUpdate"]["action"]
    assert finished["status"] == "DONE"
    assert before <= datetime.fromisoformat(finished["completedAt"]) <= datetime.now(UTC) + timedelta(seconds=5)
    assert finished["completedBy"] == {"id": support.id}


async def test_a_done_action_cannot_go_back_in_progress(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"])
    await _action_update(inbox, action["id"], status="DONE")
    # when
    result = await _action_update(inbox, action["id"], status="IN_PROGRESS")
    # then
    payload = result["data"]["actionUpdate"]
    assert payload["action"] is None
    assert _errors(payload) == [("INVALID_TRANSITION", ["status"])]
    actions = (await inbox.gql(THREAD_ACTIONS, {"id": thread["id"]}))["data"]["thread"]["actions"]
    assert actions["edges"][0]["node"]["status"] == "DONE"


async def test_a_done_action_may_be_reopened_and_loses_its_completion(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"])
    await _action_update(inbox, action["id"], status="DONE")
    # when
    result = await _action_update(inbox, action["id"], status="OPEN")
    # then
    reopened = result["data"]["actionUpdate"]["action"]
    assert result["data"]["actionUpdate"]["userErrors"] == []
    assert reopened["status"] == "OPEN"
    assert reopened["completedAt"] is None
    assert reopened["completedBy"] is None


async def test_a_cancelled_action_cannot_be_done_directly(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"])
    await _action_update(inbox, action["id"], status="CANCELLED")
    # when
    result = await _action_update(inbox, action["id"], status="DONE")
    # then
    assert _errors(result["data"]["actionUpdate"]) == [("INVALID_TRANSITION", ["status"])]


async def test_action_update_changes_only_the_given_fields(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], title="Original", type="FOLLOW_UP")
    # when
    result = await _action_update(inbox, action["id"], title="Renamed")
    # then
    updated = result["data"]["actionUpdate"]["action"]
    assert (updated["title"], updated["type"], updated["status"]) == ("Renamed", "FOLLOW_UP", "OPEN")


@pytest.mark.parametrize("approval", ["QUOTE_APPROVAL", "DOCUMENT_APPROVAL"])
async def test_support_may_not_complete_an_approval(inbox: Inbox, approval: str) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], type=approval, title="Approve the quote")
    # when
    result = await _action_update(inbox, action["id"], support.token, status="DONE")
    # then
    assert result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    actions = (await inbox.gql(THREAD_ACTIONS, {"id": thread["id"]}))["data"]["thread"]["actions"]
    assert actions["edges"][0]["node"]["status"] == "OPEN"


async def test_support_may_not_complete_a_task_by_turning_it_into_an_approval(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], type="TASK")
    # when
    result = await _action_update(inbox, action["id"], support.token, status="DONE", type="QUOTE_APPROVAL")
    # then
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


async def test_support_may_work_on_an_approval_without_completing_it(inbox: Inbox) -> None:
    # given
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], support.token, type="QUOTE_APPROVAL")
    # when
    result = await _action_update(inbox, action["id"], support.token, status="IN_PROGRESS")
    # then
    assert "errors" not in result, result
    assert result["data"]["actionUpdate"]["action"]["status"] == "IN_PROGRESS"


async def test_a_validator_may_complete_a_quote_approval(inbox: Inbox) -> None:
    # given
    validator = await _member(inbox, "validator")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], type="QUOTE_APPROVAL", title="Approve the quote")
    # when
    result = await _action_update(inbox, action["id"], validator.token, status="DONE")
    # then
    assert "errors" not in result, result
    done = result["data"]["actionUpdate"]["action"]
    assert done["status"] == "DONE"
    assert done["completedBy"] == {"id": validator.id}
    assert done["completedAt"] is not None


async def test_a_viewer_may_not_create_actions(inbox: Inbox) -> None:
    # given
    viewer = await _member(inbox, "viewer")
    thread = await _thread(inbox)
    # when
    result = await inbox.gql(ACTION_CREATE, {"input": {"threadId": thread["id"], "title": "X"}}, viewer.token)
    # then
    assert result["data"] is None
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert await _count(inbox, Action) == 0


async def test_a_viewer_may_not_update_actions(inbox: Inbox) -> None:
    # given
    viewer = await _member(inbox, "viewer")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"])
    # when
    result = await _action_update(inbox, action["id"], viewer.token, status="DONE")
    # then
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


async def test_actions_are_listed_on_the_thread(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    await _action(inbox, thread["id"], title="One")
    await _action(inbox, thread["id"], title="Two", type="SEND_QUOTE")
    # when
    result = await inbox.gql(THREAD_ACTIONS, {"id": thread["id"]})
    # then
    actions = result["data"]["thread"]["actions"]
    assert actions["totalCount"] == 2
    assert [(e["node"]["title"], e["node"]["type"]) for e in actions["edges"]] == [
        ("One", "TASK"),
        ("Two", "SEND_QUOTE"),
    ]


async def test_action_update_of_an_unknown_action_is_not_found(inbox: Inbox) -> None:
    # when
    result = await _action_update(inbox, str(GlobalID("Action", str(uuid.uuid4()))), status="DONE")
    # then
    assert _errors(result["data"]["actionUpdate"]) == [("NOT_FOUND", ["id"])]


async def test_action_update_reports_the_new_updated_at(inbox: Inbox) -> None:
    # given
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"])
    # when
    result = await inbox.gql(
        'mutation($id: ID!) { actionUpdate(input: {id: $id, title: "Renamed"}) { action { title updatedAt } } }',
        {"id": action["id"]},
    )
    # then
    assert "errors" not in result, result
    assert datetime.fromisoformat(result["data"]["actionUpdate"]["action"]["updatedAt"]) >= datetime.fromisoformat(
        action["createdAt"]
    )


async def _stored(inbox: Inbox, thread_id: str) -> dict:
    actions = (await inbox.gql(THREAD_ACTIONS, {"id": thread_id}))["data"]["thread"]["actions"]
    return actions["edges"][0]["node"]


async def test_support_may_not_complete_an_approval_by_turning_it_into_a_task(inbox: Inbox) -> None:
    # given a quote approval (security review: SUPPORT completed it by changing its type in the same update)
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], type="QUOTE_APPROVAL", title="Approve the quote")
    # when support completes it as a task
    result = await _action_update(inbox, action["id"], support.token, status="DONE", type="TASK")
    # then it is refused and nothing changed
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert (await _stored(inbox, thread["id"]))["status"] == "OPEN"


async def test_support_may_not_change_the_type_of_an_approval(inbox: Inbox) -> None:
    # given a document approval
    support = await _member(inbox, "support")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], type="DOCUMENT_APPROVAL", title="Check the draft BL")
    # when support turns it into a task (to complete it afterwards)
    result = await _action_update(inbox, action["id"], support.token, type="TASK")
    # then it is refused
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


async def test_only_an_approver_may_reopen_a_completed_approval(inbox: Inbox) -> None:
    # given a quote approval a validator completed
    support = await _member(inbox, "support")
    validator = await _member(inbox, "validator")
    thread = await _thread(inbox)
    action = await _action(inbox, thread["id"], type="QUOTE_APPROVAL", title="Approve the quote")
    await _action_update(inbox, action["id"], validator.token, status="DONE")
    # when support reopens it
    refused = await _action_update(inbox, action["id"], support.token, status="OPEN")
    # then it is refused, and the approver may
    assert refused["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert (await _stored(inbox, thread["id"]))["status"] == "DONE"
    reopened = await _action_update(inbox, action["id"], validator.token, status="OPEN")
    assert reopened["data"]["actionUpdate"]["action"]["status"] == "OPEN"
