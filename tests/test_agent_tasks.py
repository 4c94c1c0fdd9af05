"""Banxway as an MCP client (issue 20): agent connections to an external MCP server and agent tasks whose answer is
posted on the thread as a note, tested against a local stand-in MCP server written with the same SDK."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from banxway.context import SystemContext
from banxway.db.models import AgentConnection, AgentTask, Event, Note
from banxway.db.session import system_session
from banxway.integrations.agents import RESULT_LIMIT
from banxway.resolvers.agents import MAX_ATTEMPTS, RetryAgentTask, agent_task_run, agent_tasks_to_requeue
from banxway.schema.ids import local_id
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org, http_client
from tests.inbox_helpers import Inbox, _foreign, _member
from tests.standins.mcp_server import HUGE_SIZE, AgentStandIn, agent_standin

SECRET_HEADER = "Bearer agent-platform-s3cret"

CONNECTION_CREATE = """
mutation($input: AgentConnectionCreateInput!) {
  agentConnectionCreate(input: $input) {
    agentConnection { id name url authHeaderName hasAuthHeader allowedTools active lastTestedAt lastError }
    userErrors { field code message }
  }
}
"""
CONNECTION_UPDATE = """
mutation($input: AgentConnectionUpdateInput!) {
  agentConnectionUpdate(input: $input) { agentConnection { id name allowedTools } userErrors { field code message } }
}
"""
CONNECTION_DELETE = """
mutation($id: ID!) { agentConnectionDelete(input: {id: $id}) { deletedId userErrors { field code message } } }
"""
CONNECTION_TEST = """
mutation($id: ID!) {
  agentConnectionTest(input: {id: $id}) {
    ok detail tools { name description } agentConnection { lastTestedAt lastError }
    userErrors { field code message }
  }
}
"""
CONNECTIONS = """
query { agentConnections { id name url authHeaderName hasAuthHeader allowedTools active lastTestedAt lastError } }
"""
TASK_CREATE = """
mutation($input: AgentTaskCreateInput!) {
  agentTaskCreate(input: $input) {
    agentTask { id status tool arguments thread { id } connection { id } createdBy { email } }
    userErrors { field code message }
  }
}
"""
TASK_CANCEL = """
mutation($id: ID!) { agentTaskCancel(input: {id: $id}) { agentTask { id status error } userErrors { field code } } }
"""
TASKS = """
query($threadId: ID) {
  agentTasks(threadId: $threadId, first: 10) {
    edges { node { id status attempts result truncated error note { body author { email } } } }
  }
}
"""
THREAD_NOTES = """
query($id: ID!) { thread(id: $id) { notes { edges { node { body author { email } } } } } }
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # the stand-in is on 127.0.0.1; a tool that hangs gives up after 1.5 s
    return settings.model_copy(update={"allow_private_webhooks": True, "provider_timeout_seconds": 1.5})


@pytest.fixture
async def standin() -> AsyncIterator[tuple[AgentStandIn, str]]:
    async with agent_standin() as found:
        found[0].hang_seconds = 4.0
        yield found


def forbidden(result: dict) -> bool:
    return bool(result.get("errors")) and result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


def errors(payload: dict) -> list[tuple[str, list[str] | None]]:
    return [(error["code"], error["field"]) for error in payload["userErrors"]]


async def connect(inbox: Inbox, url: str, **fields: Any) -> dict:
    values = {"name": "Tracker", "url": url, "authHeader": SECRET_HEADER, **fields}
    payload = await inbox.ok(CONNECTION_CREATE, {"input": values}, "agentConnectionCreate")
    return payload["agentConnection"]


async def create_task(
    inbox: Inbox, thread_id: str, connection_id: str, tool: str, token: str | None = None, **a: Any
) -> dict:
    values = {"threadId": thread_id, "connectionId": connection_id, "tool": tool, "arguments": a or None}
    result = await inbox.gql(TASK_CREATE, {"input": values}, token)
    assert "errors" not in result, result
    return result["data"]["agentTaskCreate"]


async def run(state: AppState, task_id: str) -> Any:
    return await agent_task_run(SystemContext(state), local_id(task_id, "AgentTask"))  # type: ignore[arg-type]


async def row(state: AppState, task_id: str) -> AgentTask:
    async with system_session(state.sessionmaker) as session:
        found = await session.get(AgentTask, local_id(task_id, "AgentTask"))
        assert found is not None
        return found


async def event_types(state: AppState, task_id: str) -> list[str]:
    async with system_session(state.sessionmaker) as session:
        rows = await session.scalars(select(Event).order_by(Event.id))
        return [r.type for r in rows if r.payload.get("task_id") == str(local_id(task_id, "AgentTask"))]


async def note_count(state: AppState) -> int:
    async with system_session(state.sessionmaker) as session:
        return int(await session.scalar(select(func.count()).select_from(Note)) or 0)


# -- connections ---------------------------------------------------------------------------------------------------


async def test_a_connection_test_lists_the_tools_with_the_auth_header_which_the_api_never_returns(
    inbox: Inbox, state: AppState, standin: tuple[AgentStandIn, str]
) -> None:
    # given a connection with an auth header
    server, url = standin
    connection = await connect(inbox, url)
    # when it is tested
    tested = await inbox.ok(CONNECTION_TEST, {"id": connection["id"]}, "agentConnectionTest")
    # then the stand-in's tools are listed, and the header reached it
    assert tested["ok"] is True, tested
    assert {tool["name"] for tool in tested["tools"]} == {"track_container", "echo", "broken", "slow", "huge"}
    assert tested["agentConnection"]["lastTestedAt"] is not None and tested["agentConnection"]["lastError"] is None
    assert any(h.get("authorization") == SECRET_HEADER for h in server.headers)
    # and the API says a header is stored, never which: not in any answer, not in clear in the database
    listed = await inbox.gql(CONNECTIONS)
    assert listed["data"]["agentConnections"][0]["hasAuthHeader"] is True
    assert "s3cret" not in str(listed) and "s3cret" not in str(connection) and "s3cret" not in str(tested)
    async with system_session(state.sessionmaker) as session:
        stored = await session.scalar(select(AgentConnection.auth_header))
    assert stored and "s3cret" not in stored


async def test_a_failed_test_is_recorded_on_the_connection(inbox: Inbox) -> None:
    connection = await connect(inbox, "http://127.0.0.1:1/mcp", name="Down")
    tested = await inbox.ok(CONNECTION_TEST, {"id": connection["id"]}, "agentConnectionTest")
    assert tested["ok"] is False and tested["tools"] == []
    assert "could not be reached" in tested["agentConnection"]["lastError"]


async def test_a_private_url_is_refused_unless_allowed(settings: Settings, state: AppState, org: Org) -> None:
    # given the production setting (private addresses refused)
    strict = dataclasses.replace(state, settings=settings.model_copy(update={"allow_private_webhooks": False}))
    async with http_client(strict.settings, strict) as http:
        inbox = Inbox(Api(http, strict), org, await Api(http, strict).token(org.admin_email))
        # when an admin connects a server on a loopback or cloud-metadata address
        for url in ("http://127.0.0.1:8000/mcp", "http://169.254.169.254/latest"):
            result = await inbox.gql(CONNECTION_CREATE, {"input": {"name": "Evil", "url": url}})
            payload = result["data"]["agentConnectionCreate"]
            # then it is refused, naming the url
            assert errors(payload) == [("INVALID", ["url"])], payload
            assert "private or reserved" in payload["userErrors"][0]["message"]


async def test_names_are_unique_and_a_new_url_needs_the_header_again(
    inbox: Inbox, standin: tuple[AgentStandIn, str]
) -> None:
    _, url = standin
    connection = await connect(inbox, url)
    again = await inbox.gql(CONNECTION_CREATE, {"input": {"name": "Tracker", "url": url}})
    assert errors(again["data"]["agentConnectionCreate"]) == [("TAKEN", ["name"])]
    moved = await inbox.gql(CONNECTION_UPDATE, {"input": {"id": connection["id"], "url": url + "/elsewhere"}})
    assert errors(moved["data"]["agentConnectionUpdate"]) == [("INVALID", ["authHeader"])]
    changed = await inbox.ok(
        CONNECTION_UPDATE, {"input": {"id": connection["id"], "allowedTools": ["echo"]}}, "agentConnectionUpdate"
    )
    assert changed["agentConnection"]["allowedTools"] == ["echo"]


# -- tasks ---------------------------------------------------------------------------------------------------------


async def test_an_agent_task_posts_its_answer_on_the_thread_through_the_worker(
    inbox: Inbox, state: AppState, standin: tuple[AgentStandIn, str], worker: Any
) -> None:
    # given a thread about a shipment with a container, and a connection
    server, url = standin
    shipment = await inbox.shipment("SHP-77", containerNumbers=["MSCU1234566"])
    thread = await inbox.thread("Where is my container?", shipmentId=shipment["id"])
    connection = await connect(inbox, url)
    # when someone asks the tracking tool to work on the thread
    created = await create_task(inbox, thread["id"], connection["id"], "track_container")
    assert created["userErrors"] == [] and created["agentTask"]["status"] == "QUEUED"
    task_id = created["agentTask"]["id"]
    # then the worker runs it: the tool got the thread's context, and its answer is a note on the thread
    deadline = time.monotonic() + 20
    while (await row(state, task_id)).status != "COMPLETED":
        assert time.monotonic() < deadline, await row(state, task_id)
        await asyncio.sleep(0.1)
    [(tool, arguments)] = server.calls
    assert tool == "track_container"
    assert arguments == {
        "reference": arguments["reference"],
        "subject": "Where is my container?",
        "shipment_reference": "SHP-77",
        "containers": ["MSCU1234566"],
    }
    assert server.calls[0][1]["reference"].startswith("BX-")
    notes = await inbox.gql(THREAD_NOTES, {"id": thread["id"]})
    [note] = [edge["node"] for edge in notes["data"]["thread"]["notes"]["edges"]]
    assert "MSCU1234566 of SHP-77: discharged at Rotterdam" in note["body"]
    assert note["author"]["email"] == inbox.org.admin_email  # the task's creator
    tasks = await inbox.gql(TASKS, {"threadId": thread["id"]})
    [listed] = [edge["node"] for edge in tasks["data"]["agentTasks"]["edges"]]
    assert (listed["status"], listed["attempts"], listed["truncated"]) == ("COMPLETED", 1, False)
    assert listed["note"]["body"] == note["body"]
    assert await event_types(state, task_id) == ["AGENT_TASK_CREATED", "AGENT_TASK_COMPLETED"]


async def test_a_redelivered_task_runs_once(inbox: Inbox, state: AppState, standin: tuple[AgentStandIn, str]) -> None:
    server, url = standin
    thread = await inbox.thread()
    connection = await connect(inbox, url)
    task_id = (await create_task(inbox, thread["id"], connection["id"], "echo", text="hello"))["agentTask"]["id"]
    # when the job is delivered twice
    first = await run(state, task_id)
    second = await run(state, task_id)
    # then the tool was called once and one note posted
    assert (first.name, second.name) == ("COMPLETED", "COMPLETED")
    assert server.calls == [("echo", {"text": "hello", "count": 1})]  # no thread context: echo declares none
    assert await note_count(state) == 1
    assert await event_types(state, task_id) == ["AGENT_TASK_CREATED", "AGENT_TASK_COMPLETED"]


async def test_a_tool_that_errors_fails_the_task_at_once(
    inbox: Inbox, state: AppState, standin: tuple[AgentStandIn, str]
) -> None:
    _, url = standin
    thread = await inbox.thread()
    connection = await connect(inbox, url)
    task_id = (await create_task(inbox, thread["id"], connection["id"], "broken"))["agentTask"]["id"]
    assert (await run(state, task_id)).name == "FAILED"
    task = await row(state, task_id)
    assert task.attempts == 1 and "The tool broken answered with an error" in (task.error or "")
    assert await note_count(state) == 0
    assert await event_types(state, task_id) == ["AGENT_TASK_CREATED", "AGENT_TASK_FAILED"]


async def test_a_tool_that_hangs_times_out_is_retried_then_fails(
    inbox: Inbox, state: AppState, standin: tuple[AgentStandIn, str]
) -> None:
    _, url = standin
    thread = await inbox.thread()
    connection = await connect(inbox, url)
    task_id = (await create_task(inbox, thread["id"], connection["id"], "slow"))["agentTask"]["id"]
    # the first three attempts time out and ask for a retry (the task is queued again)
    for attempt in (1, 2, 3):
        started = time.monotonic()
        with pytest.raises(RetryAgentTask, match=r"did not answer within 1\.5 s"):
            await run(state, task_id)
        assert time.monotonic() - started < 4
        task = await row(state, task_id)
        assert (task.status, task.attempts) == ("QUEUED", attempt)
    # the last one fails it
    assert (await run(state, task_id)).name == "FAILED"
    task = await row(state, task_id)
    assert "after 4 attempts" in (task.error or "")
    assert await event_types(state, task_id) == ["AGENT_TASK_CREATED", "AGENT_TASK_FAILED"]


async def test_a_huge_answer_is_truncated_and_the_note_says_so(
    inbox: Inbox, state: AppState, standin: tuple[AgentStandIn, str]
) -> None:
    _, url = standin
    thread = await inbox.thread()
    connection = await connect(inbox, url)
    task_id = (await create_task(inbox, thread["id"], connection["id"], "huge"))["agentTask"]["id"]
    assert (await run(state, task_id)).name == "COMPLETED"
    tasks = await inbox.gql(TASKS, {"threadId": thread["id"]})
    [listed] = [edge["node"] for edge in tasks["data"]["agentTasks"]["edges"]]
    assert HUGE_SIZE > RESULT_LIMIT
    assert listed["truncated"] is True and len(listed["result"]) == RESULT_LIMIT
    assert "[Truncated: the answer was longer than 20,000 characters.]" in listed["note"]["body"]


async def test_a_cancelled_task_does_not_run(inbox: Inbox, state: AppState, standin: tuple[AgentStandIn, str]) -> None:
    server, url = standin
    thread = await inbox.thread()
    connection = await connect(inbox, url)
    task_id = (await create_task(inbox, thread["id"], connection["id"], "echo", text="x"))["agentTask"]["id"]
    cancelled = await inbox.ok(TASK_CANCEL, {"id": task_id}, "agentTaskCancel")
    assert cancelled["agentTask"]["status"] == "CANCELLED"
    assert (await run(state, task_id)).name == "CANCELLED"
    assert server.calls == []
    again = await inbox.gql(TASK_CANCEL, {"id": task_id})
    assert errors(again["data"]["agentTaskCancel"]) == [("INVALID_TRANSITION", ["id"])]


async def test_only_allowed_tools_may_be_asked_for(inbox: Inbox, standin: tuple[AgentStandIn, str]) -> None:
    _, url = standin
    thread = await inbox.thread()
    connection = await connect(inbox, url, allowedTools=["track_container"])
    refused = await create_task(inbox, thread["id"], connection["id"], "echo", text="x")
    assert errors(refused) == [("TOOL_NOT_ALLOWED", ["tool"])]
    allowed = await create_task(inbox, thread["id"], connection["id"], "track_container")
    assert allowed["userErrors"] == []


# -- roles and tenancy ----------------------------------------------------------------------------------------------


async def test_support_may_ask_an_agent_but_not_connect_one(inbox: Inbox, standin: tuple[AgentStandIn, str]) -> None:
    _, url = standin
    support = await _member(inbox, "support")
    viewer = await _member(inbox, "viewer")
    thread = await inbox.thread()
    connection = await connect(inbox, url)
    refused = await inbox.gql(CONNECTION_CREATE, {"input": {"name": "Mine", "url": url}}, support.token)
    assert forbidden(refused), refused
    assert forbidden(await inbox.gql(CONNECTION_TEST, {"id": connection["id"]}, support.token))
    created = await create_task(inbox, thread["id"], connection["id"], "echo", token=support.token, text="hi")
    assert created["userErrors"] == [] and created["agentTask"]["createdBy"]["email"] == support.email
    values = {"threadId": thread["id"], "connectionId": connection["id"], "tool": "echo"}
    assert forbidden(await inbox.gql(TASK_CREATE, {"input": values}, viewer.token))


async def test_another_organizations_connection_and_thread_are_not_found(
    inbox: Inbox, standin: tuple[AgentStandIn, str]
) -> None:
    _, url = standin
    other = await _foreign(inbox)
    theirs = await connect(other, url, name="Theirs")
    their_thread = await other.thread()
    mine = await connect(inbox, url)
    my_thread = await inbox.thread()
    assert errors(await create_task(inbox, my_thread["id"], theirs["id"], "echo")) == [("NOT_FOUND", ["connectionId"])]
    assert errors(await create_task(inbox, their_thread["id"], mine["id"], "echo")) == [("NOT_FOUND", ["threadId"])]
    tested = await inbox.gql(CONNECTION_TEST, {"id": theirs["id"]})
    assert errors(tested["data"]["agentConnectionTest"]) == [("NOT_FOUND", ["id"])]
    deleted = await inbox.gql(CONNECTION_DELETE, {"id": theirs["id"]})
    assert errors(deleted["data"]["agentConnectionDelete"]) == [("NOT_FOUND", ["id"])]
    assert [c["name"] for c in (await inbox.gql(CONNECTIONS))["data"]["agentConnections"]] == ["Tracker"]


async def test_the_connection_itself_is_refused_on_a_private_address_and_not_retried(
    inbox: Inbox, settings: Settings, state: AppState, standin: tuple[AgentStandIn, str]
) -> None:
    # given a connection saved while private addresses were allowed, then run with them refused (DNS rebinding)
    server, url = standin
    thread = await inbox.thread()
    connection = await connect(inbox, url)
    task_id = (await create_task(inbox, thread["id"], connection["id"], "echo", text="x"))["agentTask"]["id"]
    strict = dataclasses.replace(state, settings=settings.model_copy(update={"allow_private_webhooks": False}))
    # when the task runs
    status = await agent_task_run(SystemContext(strict), local_id(task_id, "AgentTask"))  # type: ignore[arg-type]
    # then nothing reached the stand-in, and the task failed at once
    assert status is not None and status.name == "FAILED"
    task = await row(state, task_id)
    assert task.attempts == 1 and "resolves to 127.0.0.1, a private or reserved address" in (task.error or "")
    assert server.calls == [] and server.headers == []


async def test_a_task_cancelled_while_running_posts_nothing(
    inbox: Inbox, state: AppState, standin: tuple[AgentStandIn, str]
) -> None:
    # given a task whose tool is slow, running
    _, url = standin
    thread = await inbox.thread()
    connection = await connect(inbox, url)
    task_id = (await create_task(inbox, thread["id"], connection["id"], "slow"))["agentTask"]["id"]
    running = asyncio.create_task(run(state, task_id))
    deadline = time.monotonic() + 5
    while (await row(state, task_id)).status != "RUNNING":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    # when it is cancelled meanwhile
    cancelled = await inbox.ok(TASK_CANCEL, {"id": task_id}, "agentTaskCancel")
    assert cancelled["agentTask"]["status"] == "CANCELLED"
    # then the run ends without retrying or posting, and the task stays cancelled
    assert (await running).name == "CANCELLED"
    assert (await row(state, task_id)).status == "CANCELLED"
    assert await note_count(state) == 0
    assert await event_types(state, task_id) == ["AGENT_TASK_CREATED", "AGENT_TASK_FAILED"]


WORKFLOW_CREATE = """
mutation($input: WorkflowCreateInput!) {
  workflowCreate(input: $input) { workflow { id } userErrors { field code message } }
}
"""


async def test_a_workflow_step_asks_an_agent_and_its_answer_lands_on_the_new_thread(
    inbox: Inbox, state: AppState, standin: tuple[AgentStandIn, str], worker: Any
) -> None:
    # given a workflow that asks the tracking tool about every new thread
    server, url = standin
    connection = await connect(inbox, url)
    definition = {
        "trigger": {"type": "THREAD_CREATED"},
        "steps": [{"type": "CALL_AGENT", "connection": connection["id"], "tool": "track_container"}],
    }
    variables = {"input": {"name": "Track new threads", "definition": definition, "active": True}}
    created = await inbox.gql(WORKFLOW_CREATE, variables)
    assert created["data"]["workflowCreate"]["userErrors"] == [], created
    # and a definition naming a connection of nobody's is refused with its path
    broken = {**definition, "steps": [{**definition["steps"][0], "connection": local_id_of_nothing()}]}
    refused = await inbox.gql(WORKFLOW_CREATE, {"input": {"name": "Broken", "definition": broken}})
    assert [e["field"] for e in refused["data"]["workflowCreate"]["userErrors"]] == [
        ["definition", "steps", "0", "connection"]
    ]
    # when a thread is created
    shipment = await inbox.shipment("SHP-78", containerNumbers=["MSCU1234566"])
    thread = await inbox.thread("Status of SHP-78?", shipmentId=shipment["id"])
    # then the workflow queues an agent task, the worker runs it, and its answer is a note on the thread
    deadline = time.monotonic() + 20
    while not (notes := (await inbox.gql(THREAD_NOTES, {"id": thread["id"]}))["data"]["thread"]["notes"]["edges"]):
        assert time.monotonic() < deadline, "no note from the agent"
        await asyncio.sleep(0.1)
    assert "discharged at Rotterdam" in notes[0]["node"]["body"]
    assert [tool for tool, _ in server.calls] == ["track_container"]
    assert server.calls[0][1]["shipment_reference"] == "SHP-78"


def local_id_of_nothing() -> str:
    import base64
    import uuid

    return base64.b64encode(f"AgentConnection:{uuid.uuid4()}".encode()).decode()


async def test_a_task_whose_worker_died_mid_call_is_asked_again_then_failed(
    inbox: Inbox, state: AppState, standin: tuple[AgentStandIn, str]
) -> None:
    # given a task claimed by a worker that then died (RUNNING, started long ago), and one whose job was lost
    server, url = standin
    thread = await inbox.thread()
    connection = await connect(inbox, url)
    stuck = (await create_task(inbox, thread["id"], connection["id"], "echo", text="a"))["agentTask"]["id"]
    lost = (await create_task(inbox, thread["id"], connection["id"], "echo", text="b"))["agentTask"]["id"]
    long_ago = datetime.now(UTC) - timedelta(minutes=30)
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(AgentTask)
            .where(AgentTask.id == local_id(stuck, "AgentTask"))
            .values(status="RUNNING", attempts=1, started_at=long_ago)
        )
        await session.execute(
            update(AgentTask).where(AgentTask.id == local_id(lost, "AgentTask")).values(created_at=long_ago)
        )
    # when the sweep runs
    ids = await agent_tasks_to_requeue(SystemContext(state))
    # then both are enqueued again, the stuck one QUEUED with an attempt spent, and they run once each
    assert sorted(ids) == sorted(local_id(t, "AgentTask") for t in (stuck, lost))
    assert (await row(state, stuck)).status == "QUEUED"
    assert [(await run(state, t)).name for t in (stuck, lost)] == ["COMPLETED", "COMPLETED"]
    assert sorted(text for _, arguments in server.calls for text in [arguments["text"]]) == ["a", "b"]
    # and a task stuck on its last attempt fails, with AGENT_TASK_FAILED
    last = (await create_task(inbox, thread["id"], connection["id"], "echo", text="c"))["agentTask"]["id"]
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(AgentTask)
            .where(AgentTask.id == local_id(last, "AgentTask"))
            .values(status="RUNNING", attempts=MAX_ATTEMPTS, started_at=long_ago)
        )
    assert await agent_tasks_to_requeue(SystemContext(state)) == []
    failed = await row(state, last)
    assert failed.status == "FAILED" and "worker stopped" in (failed.error or "")
    assert await event_types(state, last) == ["AGENT_TASK_CREATED", "AGENT_TASK_FAILED"]
