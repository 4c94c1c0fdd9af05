"""Workflows (banxway.resolvers.workflows, workflow_engine, workflow_spec): definitions with versions and every
problem's path, the dry run, the engine on real events (the provider stand-in's webhook through the relay and a
real worker), exactly-once steps, waits with a timeout branch, approvals, loops, schedules, HTTP steps."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from banxway import events
from banxway.db.models import Action, Event, Message, Thread, Workflow, WorkflowInstance, WorkflowStepRun
from banxway.db.session import system_session
from banxway.enums import ActionType, ThreadStatus
from banxway.resolvers.workflow_engine import (
    RetryStep,
    workflow_run,
    workflow_timers_due,
    workflows_scheduled,
    workflows_start,
)
from banxway.schema.ids import local_id
from banxway.state import AppState
from tests.conftest import Api, Org, http_client
from tests.inbox_helpers import Inbox, _foreign, _member, configure_channels, system_context
from tests.messaging_helpers import CUSTOMER_PHONE, configure_exotel, exotel_inbound

WORKFLOW_FIELDS = "id name active version triggerType definition versions { version definition } runAs { id }"
CREATE = f"""
mutation($input: WorkflowCreateInput!) {{
  workflowCreate(input: $input) {{ workflow {{ {WORKFLOW_FIELDS} }} userErrors {{ field code message }} }}
}}
"""
UPDATE = f"""
mutation($input: WorkflowUpdateInput!) {{
  workflowUpdate(input: $input) {{ workflow {{ {WORKFLOW_FIELDS} }} userErrors {{ field code message }} }}
}}
"""
VALIDATE = "query($d: JSON!) { workflowValidate(definition: $d) { valid problems { path message } } }"
DRY_RUN = """
query($w: ID!, $t: ID!) {
  workflowDryRun(workflowId: $w, threadId: $t) {
    matched trigger conditions { path condition matched actual } steps { index type summary }
  }
}
"""
INSTANCES = """
query($f: WorkflowInstanceFilter) {
  workflowInstances(filter: $f, first: 50) {
    totalCount
    edges { node { id status stepIndex waitingFor error depth workflow { name } thread { id }
      steps { stepIndex stepType attempt status outcome error } } }
  }
}
"""
CANCEL = """
mutation($id: ID!) { workflowInstanceCancel(instanceId: $id) { instance { id status } userErrors { field code message } } }
"""
TEAM_CREATE = """
mutation($input: TeamCreateInput!) { teamCreate(input: $input) { team { id } userErrors { field code message } } }
"""
THREAD = "query($id: ID!) { thread(id: $id) { id status priority tags assignee { id } team { id } shipment { id } } }"
THREAD_UPDATE = """
mutation($input: ThreadUpdateInput!) { threadUpdate(input: $input) { thread { id status } userErrors { code message } } }
"""
ACTION_UPDATE = """
mutation($input: ActionUpdateInput!) { actionUpdate(input: $input) { action { id status } userErrors { code message } } }
"""

KEY_ACCOUNTS = {
    "trigger": {"type": "MESSAGE_RECEIVED", "channel": "WHATSAPP"},
    "conditions": {"all": [{"field": "customer.tags", "op": "CONTAINS", "value": "key account"}]},
    "steps": [],  # filled with the team
}


async def _create(inbox: Inbox, name: str, definition: dict, *, active: bool = True, token: str | None = None) -> dict:
    payload = await inbox.ok(
        CREATE, {"input": {"name": name, "definition": definition, "active": active}}, "workflowCreate", token
    )
    return payload["workflow"]


async def _key_accounts(inbox: Inbox) -> tuple[dict, list, dict]:
    """Team Sea Export (two agents) and the issue's workflow: WhatsApp from a key account → round-robin to Sea
    Export, an action 'Send quote' due in 2 h."""
    agents = [await _member(inbox, "support", f"{name}@acme.test") for name in ("ana", "ben")]
    team = (
        await inbox.ok(
            TEAM_CREATE, {"input": {"name": "Sea Export", "memberIds": [a.id for a in agents]}}, "teamCreate"
        )
    )["team"]
    definition = {
        **KEY_ACCOUNTS,
        "steps": [
            {"type": "ASSIGN", "team": team["id"], "strategy": "ROUND_ROBIN"},
            {"type": "CREATE_ACTION", "title": "Send quote", "actionType": "SEND_QUOTE", "dueInMinutes": 120},
        ],
    }
    return team, agents, await _create(inbox, "Key accounts", definition)


async def _key_account_contact(inbox: Inbox, phone: str = CUSTOMER_PHONE, tags: list[str] | None = None) -> dict:
    customer = await inbox.customer("Maersk Imports", tags=tags if tags is not None else ["Key Account"])
    return await inbox.contact(
        "Priya Shah", customerId=customer["id"], identities=[{"channel": "WHATSAPP", "address": phone}]
    )


async def _instances(state: AppState, **where: Any) -> list[WorkflowInstance]:
    async with system_session(state.sessionmaker) as session:
        query = select(WorkflowInstance).order_by(WorkflowInstance.created_at, WorkflowInstance.id)
        for name, value in where.items():
            query = query.where(getattr(WorkflowInstance, name) == value)
        return list(await session.scalars(query))


async def _events(state: AppState, *types: str, thread_id: uuid.UUID | None = None) -> list[Event]:
    async with system_session(state.sessionmaker) as session:
        query = select(Event).where(Event.type.in_(types)).order_by(Event.id)
        if thread_id is not None:
            query = query.where(Event.thread_id == thread_id)
        return list(await session.scalars(query))


async def _last_event(state: AppState, type_: str, thread_id: uuid.UUID) -> Event:
    found = await _events(state, type_, thread_id=thread_id)
    assert found, f"no {type_}"
    return found[-1]


async def _start_and_run(state: AppState, event: Event) -> list[str]:
    ctx = system_context(state)
    return [await workflow_run(ctx, instance_id) for instance_id in await workflows_start(ctx, event.id)]


async def _eventually(check: Any, seconds: float = 20.0) -> Any:
    for _ in range(int(seconds * 10)):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds} s")


# -- definitions --------------------------------------------------------------------------------------------------


async def test_every_problem_of_a_definition_is_named_with_its_path_and_nothing_is_saved(inbox: Inbox) -> None:
    bad = {
        "trigger": {"type": "SCHEDULE", "cron": "every morning"},
        "conditions": {"all": [{"field": "thread.colour", "value": "red"}, {"bogus": 1}]},
        "steps": [
            {"type": "ASSIGN"},
            {"type": "WAIT", "until": "CUSTOMER_REPLIED"},
            {"type": "ASSIGN", "team": "not-an-id"},
            {"type": "LAUNCH"},
        ],
    }
    result = (await inbox.gql(VALIDATE, {"d": bad}))["data"]["workflowValidate"]
    paths = {p["path"]: p["message"] for p in result["problems"]}
    assert result["valid"] is False
    assert set(paths) == {
        "trigger.cron",
        "conditions.all.0.field",
        "conditions.all.1",
        "steps.0",
        "steps.1",
        "steps.2.team",
        "steps.3",
    }, paths
    assert "five fields" in paths["trigger.cron"]
    assert "timeoutMinutes" in paths["steps.1"]
    # an id of nothing in this organization is a problem too
    missing_team = {"trigger": {"type": "THREAD_CREATED"}, "steps": [{"type": "ASSIGN", "team": str(uuid.uuid4())}]}
    result = (await inbox.gql(VALIDATE, {"d": missing_team}))["data"]["workflowValidate"]
    assert result["problems"] == [{"path": "steps.0.team", "message": "no such Team"}]
    # workflowCreate refuses with one userError per problem, and saves nothing
    payload = (await inbox.gql(CREATE, {"input": {"name": "Broken", "definition": bad}}))["data"]["workflowCreate"]
    assert payload["workflow"] is None
    assert {tuple(e["field"][:3]) for e in payload["userErrors"]} >= {("definition", "trigger", "cron")}
    assert {e["code"] for e in payload["userErrors"]} == {"INVALID"}
    async with system_session(inbox.api.state.sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(Workflow)) == 0


async def test_editing_the_definition_adds_a_version_and_only_managers_edit(inbox: Inbox) -> None:
    first = {"trigger": {"type": "THREAD_CREATED"}, "steps": [{"type": "SET", "priority": "HIGH"}]}
    workflow = await _create(inbox, "Triage", first, active=False)
    assert (workflow["version"], workflow["active"], workflow["triggerType"]) == (1, False, "THREAD_CREATED")
    renamed = await inbox.ok(UPDATE, {"input": {"workflowId": workflow["id"], "name": "Triage v2"}}, "workflowUpdate")
    assert renamed["workflow"]["version"] == 1  # a name is not a new version
    second = {"trigger": {"type": "THREAD_CREATED", "channel": "EMAIL"}, "steps": [{"type": "SET", "priority": "LOW"}]}
    updated = await inbox.ok(UPDATE, {"input": {"workflowId": workflow["id"], "definition": second}}, "workflowUpdate")
    assert updated["workflow"]["version"] == 2
    assert [v["version"] for v in updated["workflow"]["versions"]] == [1, 2]
    assert updated["workflow"]["versions"][0]["definition"]["steps"] == [
        {"type": "SET", "priority": "HIGH", "addTags": [], "removeTags": []}
    ]
    assert updated["workflow"]["definition"]["trigger"] == {"type": "THREAD_CREATED", "channel": "EMAIL"}

    support = await _member(inbox, "support")
    denied = await inbox.gql(CREATE, {"input": {"name": "Mine", "definition": first}}, token=support.token)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    viewer = await _member(inbox, "viewer")
    listed = await inbox.gql("{ workflows { name signingSecret } }", token=viewer.token)
    assert listed["data"]["workflows"] == [{"name": "Triage v2", "signingSecret": None}]  # readable, no secret
    secret = (await inbox.gql("{ workflows { signingSecret } }"))["data"]["workflows"][0]["signingSecret"]
    assert secret and len(secret) >= 32
    taken = (await inbox.gql(CREATE, {"input": {"name": "TRIAGE V2", "definition": first}}))["data"]["workflowCreate"]
    assert [e["code"] for e in taken["userErrors"]] == ["TAKEN"]
    other = await _foreign(inbox)
    foreign = await other.gql(UPDATE, {"input": {"workflowId": workflow["id"], "name": "Mine now"}})
    assert [e["code"] for e in foreign["data"]["workflowUpdate"]["userErrors"]] == ["NOT_FOUND"]
    assert (await other.gql("{ workflows { id } }"))["data"]["workflows"] == []


async def test_the_dry_run_explains_which_conditions_match_and_writes_nothing(inbox: Inbox) -> None:
    _, _, workflow = await _key_accounts(inbox)
    key = await inbox.customer("Maersk Imports", tags=["key account"])
    plain = await inbox.customer("Walk-in")
    matching = await inbox.thread("Rates to Hamburg", customerId=key["id"], primaryChannel="WHATSAPP")
    other = await inbox.thread("Rates to Hamburg", customerId=plain["id"])

    result = (await inbox.gql(DRY_RUN, {"w": workflow["id"], "t": matching["id"]}))["data"]["workflowDryRun"]
    assert result["matched"] is True
    assert result["trigger"] == "MESSAGE_RECEIVED (channel: WHATSAPP)"
    assert [(c["path"], c["matched"]) for c in result["conditions"]] == [
        ("conditions", True),
        ("conditions.all.0", True),
    ]
    assert result["conditions"][1]["actual"] == ["key account"]
    assert [s["summary"] for s in result["steps"]] == [
        "assign to team Sea Export (ROUND_ROBIN)",
        "create SEND_QUOTE action 'Send quote', due in 120 min",
    ]
    result = (await inbox.gql(DRY_RUN, {"w": workflow["id"], "t": other["id"]}))["data"]["workflowDryRun"]
    assert (result["matched"], result["steps"]) == (False, [])
    assert result["conditions"][1] == {
        "path": "conditions.all.0",
        "condition": "customer.tags CONTAINS 'key account'",
        "matched": False,
        "actual": [],
    }
    assert (await inbox.gql(THREAD, {"id": matching["id"]}))["data"]["thread"]["assignee"] is None
    assert await _instances(inbox.api.state) == []
    other_org = await _foreign(inbox)
    assert (await other_org.gql(DRY_RUN, {"w": workflow["id"], "t": matching["id"]}))["data"]["workflowDryRun"] is None


# -- the engine on real events --------------------------------------------------------------------------------


async def test_a_whatsapp_message_from_a_key_account_is_routed_to_sea_export_with_an_action(
    inbox: Inbox, state: AppState, provider: Any, worker: object
) -> None:
    """The issue's workflow, end to end: the provider stand-in's webhook, the relay, the consequences, the
    start_workflows and run_workflow actors of a real worker."""
    team, agents, workflow = await _key_accounts(inbox)
    await _key_account_contact(inbox)
    configured = await configure_exotel(inbox, provider)
    before = datetime.now(UTC)
    await exotel_inbound(inbox, configured)

    async def completed() -> list[WorkflowInstance]:
        found = await _instances(state, status="COMPLETED")
        return found

    [instance] = await _eventually(completed)
    listed = (await inbox.gql(INSTANCES, {"f": {"workflowId": workflow["id"]}}))["data"]["workflowInstances"]
    [node] = [edge["node"] for edge in listed["edges"]]
    assert (node["status"], node["stepIndex"], node["workflow"]["name"]) == ("COMPLETED", 2, "Key accounts")
    assert [(s["stepType"], s["status"], s["outcome"]["result"]) for s in node["steps"]] == [
        ("ASSIGN", "COMPLETED", "ASSIGNED"),
        ("CREATE_ACTION", "COMPLETED", "DONE"),
    ]
    thread = (await inbox.gql(THREAD, {"id": node["thread"]["id"]}))["data"]["thread"]
    assert thread["team"] == {"id": team["id"]}
    assert thread["assignee"]["id"] in {a.id for a in agents}
    async with system_session(state.sessionmaker) as session:
        [action] = list(await session.scalars(select(Action).where(Action.thread_id == instance.thread_id)))
    assert (action.title, action.type) == ("Send quote", ActionType.SEND_QUOTE)
    assert str(action.assignee_id) == str(local_id(thread["assignee"]["id"], "User"))
    assert before + timedelta(hours=2) <= action.due_at <= datetime.now(UTC) + timedelta(hours=2)
    steps = await _events(state, events.WorkflowStepCompleted.type, thread_id=instance.thread_id)
    assert [e.payload["step_index"] for e in steps] == [0, 1]
    assert all(e.workflow_id == instance.workflow_id for e in steps)


async def test_a_message_from_another_customer_starts_nothing(inbox: Inbox, state: AppState) -> None:
    await _key_accounts(inbox)
    plain = await inbox.customer("Walk-in")
    thread = await inbox.thread("Rates", customerId=plain["id"], primaryChannel="WHATSAPP")
    thread_id = local_id(thread["id"], "Thread")
    await _receive(state, inbox, thread_id, "Any rates?")
    assert await _start_and_run(state, await _last_event(state, events.MessageAdded.type, thread_id)) == []
    assert await _instances(state) == []


async def _receive(state: AppState, inbox: Inbox, thread_id: uuid.UUID, body: str, channel: str = "WHATSAPP") -> None:
    """The customer writes on the thread, through the provider path's use-case."""
    from banxway.db.session import tenant_session
    from banxway.enums import Channel
    from banxway.resolvers.inbound import message_receive

    async with tenant_session(state.sessionmaker, inbox.org.id) as session, session.begin():
        await message_receive(
            session, inbox.org.id, thread_id=thread_id, channel=Channel[channel], body=body, sender=CUSTOMER_PHONE
        )


async def _thread_with_event(
    state: AppState, inbox: Inbox, subject: str = "Rates", **fields: Any
) -> tuple[uuid.UUID, Event]:
    thread = await inbox.thread(subject, **fields)
    thread_id = local_id(thread["id"], "Thread")
    return thread_id, await _last_event(state, events.ThreadCreated.type, thread_id)


async def test_a_redelivered_job_never_runs_a_step_twice(inbox: Inbox, state: AppState) -> None:
    definition = {
        "trigger": {"type": "THREAD_CREATED"},
        "steps": [
            {"type": "CREATE_ACTION", "title": "Call back", "actionType": "CALL_BACK"},
            {"type": "SET", "addTags": ["called"]},
        ],
    }
    await _create(inbox, "Call back", definition)
    thread_id, event = await _thread_with_event(state, inbox)
    ctx = system_context(state)
    started = await workflows_start(ctx, event.id)
    assert await workflows_start(ctx, event.id) == []  # the same event again starts nothing
    [instance_id] = started
    # the same job delivered three times, two of them at once
    results = await asyncio.gather(workflow_run(ctx, instance_id), workflow_run(ctx, instance_id))
    assert await workflow_run(ctx, instance_id) == "COMPLETED"
    assert set(results) == {"COMPLETED"}
    async with system_session(state.sessionmaker) as session:
        actions = await session.scalar(select(func.count()).select_from(Action).where(Action.thread_id == thread_id))
        runs = list(await session.scalars(select(WorkflowStepRun).where(WorkflowStepRun.instance_id == instance_id)))
        tags = await session.scalar(select(Thread.tags).where(Thread.id == thread_id))
    assert actions == 1
    assert sorted((r.step_index, r.status) for r in runs) == [(0, "COMPLETED"), (1, "COMPLETED")]
    assert tags == ["called"]


async def test_waiting_for_the_customer_continues_on_a_reply_and_branches_on_timeout(
    inbox: Inbox, state: AppState
) -> None:
    definition = {
        "trigger": {"type": "THREAD_CREATED"},
        "steps": [
            {"type": "WAIT", "until": "CUSTOMER_REPLIED", "timeoutMinutes": 60, "onTimeout": 2},
            {"type": "SET", "priority": "HIGH"},
            {"type": "SET", "addTags": ["no-reply"]},
        ],
    }
    await _create(inbox, "Chase", definition)
    ctx = system_context(state)
    replied_id, replied_event = await _thread_with_event(state, inbox, "Replied", primaryChannel="WHATSAPP")
    silent_id, silent_event = await _thread_with_event(state, inbox, "Silent")
    assert await _start_and_run(state, replied_event) == ["WAITING"]
    assert await _start_and_run(state, silent_event) == ["WAITING"]
    [replied] = await _instances(state, thread_id=replied_id)
    assert (replied.waiting_for, replied.step_index) == ("CUSTOMER_REPLIED", 0)
    assert replied.due_at is not None and replied.due_at > datetime.now(UTC) + timedelta(minutes=59)

    # the customer replies: the wait ends, the next step runs
    await _receive(state, inbox, replied_id, "Yes please")
    assert await _start_and_run(state, await _last_event(state, events.MessageAdded.type, replied_id)) == ["COMPLETED"]
    thread = (await inbox.gql(THREAD, {"id": _gid(replied_id)}))["data"]["thread"]
    assert (thread["priority"], thread["tags"]) == ("HIGH", ["no-reply"])

    # no reply: the timer ends the wait and the timeout branch skips to step 2
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(WorkflowInstance)
            .where(WorkflowInstance.thread_id == silent_id)
            .values(due_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    [silent] = await _instances(state, thread_id=silent_id)
    assert silent.id in [i for i, _ in await workflow_timers_due(ctx, timedelta(seconds=90))]
    assert await workflow_run(ctx, silent.id) == "COMPLETED"
    thread = (await inbox.gql(THREAD, {"id": _gid(silent_id)}))["data"]["thread"]
    assert (thread["priority"], thread["tags"]) == ("NORMAL", ["no-reply"])
    async with system_session(state.sessionmaker) as session:
        outcomes = list(
            await session.execute(
                select(WorkflowStepRun.step_index, WorkflowStepRun.status)
                .where(WorkflowStepRun.instance_id == silent.id)
                .order_by(WorkflowStepRun.started_at)
            )
        )
    assert [tuple(o) for o in outcomes] == [(0, "WAITING"), (0, "COMPLETED"), (2, "COMPLETED")]


def _gid(thread_id: uuid.UUID) -> str:
    from banxway.schema.ids import to_global_id

    return to_global_id("Thread", thread_id)


async def test_a_reply_held_for_approval_is_sent_once_a_validator_approves(inbox: Inbox, state: AppState) -> None:
    await configure_channels(inbox, "EMAIL")
    definition = {
        "trigger": {"type": "THREAD_CREATED"},
        "steps": [{"type": "SEND_REPLY", "body": "Dear {{contact.first_name}}, your quote follows.", "approval": True}],
    }
    await _create(inbox, "Quote reply", definition)
    contact = await inbox.contact("Priya Shah", identities=[{"channel": "EMAIL", "address": "priya@maersk.test"}])
    approved_id, approved_event = await _thread_with_event(state, inbox, "Quote", contactId=contact["id"])
    rejected_id, rejected_event = await _thread_with_event(state, inbox, "Quote 2", contactId=contact["id"])
    assert await _start_and_run(state, approved_event) == ["WAITING"]
    assert await _start_and_run(state, rejected_event) == ["WAITING"]
    async with system_session(state.sessionmaker) as session:
        approval = await session.scalar(select(Action).where(Action.thread_id == approved_id))
        rejection = await session.scalar(select(Action).where(Action.thread_id == rejected_id))
    assert approval.type == ActionType.QUOTE_APPROVAL
    assert "Dear Priya, your quote follows." in approval.title

    support = await _member(inbox, "support")
    refused = await inbox.gql(
        ACTION_UPDATE, {"input": {"id": _action_gid(approval.id), "status": "DONE"}}, support.token
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    validator = await _member(inbox, "validator")
    await inbox.ok(
        ACTION_UPDATE, {"input": {"id": _action_gid(approval.id), "status": "DONE"}}, "actionUpdate", validator.token
    )
    assert await _start_and_run(state, await _last_event(state, events.ActionUpdated.type, approved_id)) == [
        "COMPLETED"
    ]
    await inbox.ok(ACTION_UPDATE, {"input": {"id": _action_gid(rejection.id), "status": "CANCELLED"}}, "actionUpdate")
    assert await _start_and_run(state, await _last_event(state, events.ActionUpdated.type, rejected_id)) == [
        "COMPLETED"
    ]

    async with system_session(state.sessionmaker) as session:
        sent = list(await session.scalars(select(Message).where(Message.thread_id == approved_id)))
        not_sent = await session.scalar(
            select(func.count()).select_from(Message).where(Message.thread_id == rejected_id)
        )
        outcome = await session.scalar(
            select(WorkflowStepRun.outcome).where(
                WorkflowStepRun.status == "COMPLETED",
                WorkflowStepRun.instance_id.in_(
                    select(WorkflowInstance.id).where(WorkflowInstance.thread_id == rejected_id)
                ),
            )
        )
    assert [(m.body, m.channel.name, m.recipients) for m in sent] == [
        ("Dear Priya, your quote follows.", "EMAIL", ["priya@maersk.test"])
    ]
    assert not_sent == 0
    assert outcome == {"result": "NOT_SENT", "because": "REJECTED"}


def _action_gid(action_id: uuid.UUID) -> str:
    from banxway.schema.ids import to_global_id

    return to_global_id("Action", action_id)


async def test_a_workflows_own_changes_do_not_start_it_again(inbox: Inbox, state: AppState) -> None:
    definition = {"trigger": {"type": "THREAD_STATUS_CHANGED"}, "steps": [{"type": "SET", "status": "OPEN"}]}
    await _create(inbox, "Reopen", definition)
    thread_id, _ = await _thread_with_event(state, inbox)
    await inbox.ok(THREAD_UPDATE, {"input": {"id": _gid(thread_id), "status": "PENDING"}}, "threadUpdate")
    assert await _start_and_run(state, await _last_event(state, events.ThreadUpdated.type, thread_id)) == ["COMPLETED"]
    own = await _last_event(state, events.ThreadUpdated.type, thread_id)
    assert own.workflow_id is not None and own.payload["changed"] == ["status"]
    assert await _start_and_run(state, own) == []
    assert len(await _instances(state)) == 1


async def test_a_chain_of_workflows_stops_at_the_depth_limit_saying_so(
    inbox: Inbox, state: AppState, worker: object
) -> None:
    to_open = {
        "trigger": {"type": "THREAD_STATUS_CHANGED", "to": ["PENDING"]},
        "steps": [{"type": "SET", "status": "OPEN"}],
    }
    to_pending = {
        "trigger": {"type": "THREAD_STATUS_CHANGED", "to": ["OPEN"]},
        "steps": [{"type": "SET", "status": "PENDING"}],
    }
    await _create(inbox, "Ping", to_open)
    await _create(inbox, "Pong", to_pending)
    thread_id, _ = await _thread_with_event(state, inbox)
    await inbox.ok(THREAD_UPDATE, {"input": {"id": _gid(thread_id), "status": "PENDING"}}, "threadUpdate")

    async def failed() -> list[WorkflowInstance]:
        return await _instances(state, status="FAILED")

    [stopped] = await _eventually(failed)
    assert "chain of 5 workflows" in stopped.error
    instances = await _instances(state)
    assert sorted(i.depth for i in instances) == [0, 1, 2, 3, 4]
    assert [e.payload["error"] for e in await _events(state, events.WorkflowFailed.type)] == [stopped.error]


async def test_a_step_that_breaks_the_threads_rules_fails_the_instance_at_once(inbox: Inbox, state: AppState) -> None:
    agent = await _member(inbox, "support")
    definition = {"trigger": {"type": "THREAD_CREATED"}, "steps": [{"type": "ASSIGN", "user": agent.id}]}
    await _create(inbox, "To Ana", definition)
    thread_id, event = await _thread_with_event(state, inbox)
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(update(Thread).where(Thread.id == thread_id).values(status=ThreadStatus.ARCHIVED))
    assert await _start_and_run(state, event) == ["FAILED"]
    [instance] = await _instances(state)
    assert instance.error == "Step 0 (ASSIGN): An archived thread cannot be assigned. (threadId)"
    [failed] = await _events(state, events.WorkflowFailed.type)
    assert failed.payload["step_index"] == 0


async def test_cancelling_stops_a_waiting_instance(inbox: Inbox, state: AppState) -> None:
    definition = {
        "trigger": {"type": "THREAD_CREATED"},
        "steps": [{"type": "WAIT", "minutes": 5}, {"type": "SET", "priority": "LOW"}],
    }
    await _create(inbox, "Later", definition)
    thread_id, event = await _thread_with_event(state, inbox)
    assert await _start_and_run(state, event) == ["WAITING"]
    [instance] = await _instances(state)
    gid = (await inbox.gql(INSTANCES, {}))["data"]["workflowInstances"]["edges"][0]["node"]["id"]
    support = await _member(inbox, "support")
    assert (await inbox.gql(CANCEL, {"id": gid}, support.token))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await inbox.ok(CANCEL, {"id": gid}, "workflowInstanceCancel"))["instance"]["status"] == "CANCELLED"
    again = (await inbox.gql(CANCEL, {"id": gid}))["data"]["workflowInstanceCancel"]
    assert [e["code"] for e in again["userErrors"]] == ["INVALID_TRANSITION"]
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(update(WorkflowInstance).values(due_at=datetime.now(UTC)))
    assert await workflow_run(system_context(state), instance.id) == "CANCELLED"
    assert (await inbox.gql(THREAD, {"id": _gid(thread_id)}))["data"]["thread"]["priority"] == "NORMAL"
    assert [e.type for e in await _events(state, events.WorkflowCancelled.type)] == ["WORKFLOW_CANCELLED"]


async def test_a_schedule_starts_one_instance_per_matching_thread_once_per_instant(
    inbox: Inbox, state: AppState
) -> None:
    definition = {
        "trigger": {"type": "SCHEDULE", "cron": "0 9 * * *", "timezone": "Asia/Kolkata"},
        "conditions": {"keyword": "overdue"},
        "steps": [{"type": "SET", "addTags": ["chased"]}],
    }
    workflow = await _create(inbox, "Morning chase", definition)
    async with system_session(state.sessionmaker) as session:
        next_run = await session.scalar(select(Workflow.next_run_at))
    assert next_run is not None and next_run.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Kolkata")).hour == 9
    overdue_id, _ = await _thread_with_event(state, inbox, "Invoice overdue")
    await _thread_with_event(state, inbox, "New booking")
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(update(Workflow).values(next_run_at=datetime.now(UTC) - timedelta(minutes=1)))
    ctx = system_context(state)
    started = await workflows_scheduled(ctx)
    assert await workflows_scheduled(ctx) == []  # the next instant is tomorrow
    assert [await workflow_run(ctx, i) for i in started] == ["COMPLETED"]
    assert (await inbox.gql(THREAD, {"id": _gid(overdue_id)}))["data"]["thread"]["tags"] == ["chased"]
    async with system_session(state.sessionmaker) as session:
        assert await session.scalar(select(Workflow.next_run_at)) > datetime.now(UTC)
    assert workflow["triggerType"] == "SCHEDULE"


async def test_link_shipment_finds_the_container_mentioned_in_the_subject(inbox: Inbox, state: AppState) -> None:
    shipment = await inbox.shipment("SHP-77", containerNumbers=["MSCU1234566"])
    definition = {"trigger": {"type": "THREAD_CREATED"}, "steps": [{"type": "LINK_SHIPMENT"}]}
    await _create(inbox, "Link", definition)
    thread_id, event = await _thread_with_event(state, inbox, "Where is mscu1234566?")
    assert await _start_and_run(state, event) == ["COMPLETED"]
    assert (await inbox.gql(THREAD, {"id": _gid(thread_id)}))["data"]["thread"]["shipment"] == {"id": shipment["id"]}


# -- the HTTP step ------------------------------------------------------------------------------------------------


class _HttpsReceiver:
    """An HTTPS server on 127.0.0.1 (certificate from the mail stand-ins' CA) recording what it is POSTed."""

    def __init__(self, context: ssl.SSLContext, status: int = 200) -> None:
        self.context = context
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((headers, body))
        writer.write(f"HTTP/1.1 {self.status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
        return f"https://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


async def test_the_http_step_posts_a_signed_body(inbox: Inbox, state: AppState, mail_certs: Any) -> None:
    import dataclasses

    settings = state.settings.model_copy(
        update={"outbound_ca_file": mail_certs.ca_path, "allow_private_webhooks": True}
    )
    local = dataclasses.replace(state, settings=settings)
    receiver = _HttpsReceiver(mail_certs.server_context())
    async with receiver as url:
        await _create(
            inbox, "Tell the TMS", {"trigger": {"type": "THREAD_CREATED"}, "steps": [{"type": "HTTP", "url": url}]}
        )
        thread_id, event = await _thread_with_event(state, inbox, "Booking 42")
        ctx = system_context(local)
        [instance_id] = await workflows_start(ctx, event.id)
        assert await workflow_run(ctx, instance_id) == "COMPLETED"
    [(headers, body)] = receiver.requests
    secret = (await inbox.gql("{ workflows { signingSecret } }"))["data"]["workflows"][0]["signingSecret"]
    timestamp, _, digest = headers["x-banxway-signature"].partition(",v1=")
    timestamp = timestamp.removeprefix("t=")
    assert hmac.compare_digest(
        digest, hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    )
    assert b'"reference"' in body and str(thread_id).encode() in body


async def test_the_http_step_refuses_a_private_address_and_fails_after_its_retries(
    inbox: Inbox, state: AppState
) -> None:
    import dataclasses

    local = dataclasses.replace(state, settings=state.settings.model_copy(update={"allow_private_webhooks": False}))
    await _create(
        inbox,
        "Internal",
        {"trigger": {"type": "THREAD_CREATED"}, "steps": [{"type": "HTTP", "url": "https://127.0.0.1:9/x"}]},
    )
    _, event = await _thread_with_event(state, inbox)
    ctx = system_context(local)
    [instance_id] = await workflows_start(ctx, event.id)
    for _ in range(2):
        with pytest.raises(RetryStep):
            await workflow_run(ctx, instance_id)
    assert await workflow_run(ctx, instance_id) == "FAILED"
    [instance] = await _instances(state)
    assert "could not be reached" in instance.error
    async with system_session(state.sessionmaker) as session:
        statuses = list(
            await session.scalars(select(WorkflowStepRun.status).where(WorkflowStepRun.instance_id == instance_id))
        )
    assert statuses == ["FAILED", "FAILED", "FAILED"]


async def test_an_http_step_to_a_private_address_is_refused_when_saved(state: AppState, org: Org) -> None:
    import dataclasses

    # given the production setting (user-given URLs must be on the internet)
    strict = dataclasses.replace(state, settings=state.settings.model_copy(update={"allow_private_webhooks": False}))
    async with http_client(strict.settings, strict) as http:
        api = Api(http, strict)
        inbox = Inbox(api, org, await api.token(org.admin_email))
        for url in ("https://127.0.0.1:9/x", "https://169.254.169.254/latest/meta-data", "https://[::1]/x"):
            definition = {"trigger": {"type": "THREAD_CREATED"}, "steps": [{"type": "HTTP", "url": url}]}
            # when an automation manager validates or saves a workflow whose HTTP step calls it
            result = (await inbox.gql(VALIDATE, {"d": definition}))["data"]["workflowValidate"]
            created = await inbox.gql(CREATE, {"input": {"name": "Internal", "definition": definition}})
            # then both name the step's url, and nothing is saved
            assert not result["valid"]
            assert [p["path"] for p in result["problems"]] == ["steps.0.url"], result
            assert "private or reserved" in result["problems"][0]["message"]
            assert created["data"]["workflowCreate"]["workflow"] is None, created
    async with system_session(state.sessionmaker) as session:
        assert await session.scalar(select(func.count()).select_from(Workflow)) == 0


async def test_the_demo_routes_a_key_accounts_whatsapp_message_to_sea_export(state: AppState) -> None:
    from banxway.db.models import Contact, Team, TeamMember
    from banxway.db.session import tenant_session
    from banxway.enums import Channel
    from banxway.resolvers.demo import seed_demo
    from banxway.resolvers.inbound import message_receive
    from banxway.resolvers.threads import new_thread

    await seed_demo(state)
    async with system_session(state.sessionmaker) as session:
        priya = await session.scalar(select(Contact).where(Contact.name == "Priya Shah"))
        workflow = await session.scalar(select(Workflow))
        team = await session.scalar(select(Team).where(Team.name == "Sea Export"))
        members = set(await session.scalars(select(TeamMember.user_id).where(TeamMember.team_id == team.id)))
    assert (workflow.name, workflow.active) == ("Key accounts on WhatsApp", True)
    # Priya (Tata Steel, a key account) writes on WhatsApp
    async with tenant_session(state.sessionmaker, priya.organization_id) as session, session.begin():
        thread = await new_thread(
            session,
            priya.organization_id,
            subject="Rates for 4x40HC",
            primary_channel=Channel.WHATSAPP,
            contact_id=priya.id,
            customer_id=priya.customer_id,
        )
        await message_receive(
            session,
            priya.organization_id,
            thread_id=thread.id,
            channel=Channel.WHATSAPP,
            body="Need rates for 4x40HC to Hamburg",
            sender="+919820012345",
        )
        thread_id = thread.id
    assert await _start_and_run(state, await _last_event(state, events.MessageAdded.type, thread_id)) == ["COMPLETED"]
    async with system_session(state.sessionmaker) as session:
        routed = await session.get(Thread, thread_id)
        action = await session.scalar(select(Action).where(Action.thread_id == thread_id))
    assert routed.team_id == team.id and routed.assignee_id in members
    assert (action.title, action.assignee_id) == ("Send quote", routed.assignee_id)


async def test_a_breached_sla_starts_a_workflow_that_notifies_the_team_and_the_assignee(
    inbox: Inbox, state: AppState
) -> None:
    from banxway.db.models import Notification
    from banxway.enums import NotificationType
    from banxway.resolvers import sla
    from tests.test_sla import _policy

    ana = await _member(inbox, "support", "ana@acme.test")
    ben = await _member(inbox, "support", "ben@acme.test")
    team = (await inbox.ok(TEAM_CREATE, {"input": {"name": "Escalations", "memberIds": [ben.id]}}, "teamCreate"))[
        "team"
    ]
    definition = {
        "trigger": {"type": "SLA_BREACHED", "target": "FIRST_RESPONSE"},
        "steps": [
            {"type": "NOTIFY", "team": team["id"], "assignee": True, "message": "first response breached"},
            {"type": "SET", "priority": "URGENT"},
        ],
    }
    await _create(inbox, "Escalate", definition)
    await _policy(inbox, firstResponseMinutes=30)
    thread_id, _ = await _thread_with_event(state, inbox, "Late quote")
    await inbox.ok(
        "mutation($input: ThreadAssignInput!) { threadAssign(input: $input) { thread { id } userErrors { code } } }",
        {"input": {"threadId": _gid(thread_id), "assigneeId": ana.id}},
        "threadAssign",
    )
    assert await sla.sla_check(system_context(state), thread_id, datetime.now(UTC) + timedelta(minutes=31)) == [
        "SLA_BREACHED"
    ]
    assert await _start_and_run(state, await _last_event(state, events.SlaBreached.type, thread_id)) == ["COMPLETED"]
    async with system_session(state.sessionmaker) as session:
        told = list(
            await session.execute(
                select(Notification.user_id, Notification.summary).where(
                    Notification.thread_id == thread_id, Notification.type == NotificationType.WORKFLOW
                )
            )
        )
    assert sorted(str(user_id) for user_id, _ in told) == sorted(str(local_id(m.id, "User")) for m in (ana, ben))
    assert {summary for _, summary in told} == {"Escalate: first response breached"}
    assert (await inbox.gql(THREAD, {"id": _gid(thread_id)}))["data"]["thread"]["priority"] == "URGENT"


async def test_a_shipment_milestone_starts_the_workflow_on_each_of_its_threads(inbox: Inbox, state: AppState) -> None:
    shipment = await inbox.shipment("SHP-9")
    definition = {
        "trigger": {"type": "SHIPMENT_MILESTONE", "milestone": "DEPARTED"},
        "conditions": {"field": "shipment.reference", "op": "EQ", "value": "shp-9"},
        "steps": [{"type": "SET", "addTags": ["departed"]}],
    }
    await _create(inbox, "Departed", definition)
    first, _ = await _thread_with_event(state, inbox, "Booking", shipmentId=shipment["id"])
    second, _ = await _thread_with_event(state, inbox, "Documents", shipmentId=shipment["id"])
    unrelated, _ = await _thread_with_event(state, inbox, "Other")
    milestone = """
    mutation($input: ShipmentMilestoneAddInput!) { shipmentMilestoneAdd(input: $input) { userErrors { code } } }
    """
    for kind in ("BOOKED", "DEPARTED"):
        await inbox.ok(
            milestone,
            {"input": {"shipmentId": shipment["id"], "type": kind, "actualAt": datetime.now(UTC).isoformat()}},
            "shipmentMilestoneAdd",
        )
    found = await _events(state, events.ShipmentMilestoneAdded.type)
    results = [await _start_and_run(state, event) for event in found]
    assert results == [[], ["COMPLETED", "COMPLETED"]]  # BOOKED is not the trigger's milestone
    for thread_id, tags in ((first, ["departed"]), (second, ["departed"]), (unrelated, [])):
        assert (await inbox.gql(THREAD, {"id": _gid(thread_id)}))["data"]["thread"]["tags"] == tags
