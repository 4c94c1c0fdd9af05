"""Reminders on actions' due times: at the due time the assignee (or, with nobody assigned, the creator) gets an
ACTION_DUE notification, once per due time; a done or cancelled action none; a new due time a new reminder; and
the scheduler's timer sends it on time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from banxway.db.models import Action, Notification
from banxway.db.session import system_session
from banxway.enums import NotificationType
from banxway.resolvers.actions import action_remind
from banxway.schema.ids import local_id
from banxway.state import AppState
from banxway.tasks import actors
from tests.inbox_helpers import Inbox, _member, system_context

ACTION_CREATE = """
mutation($input: ActionCreateInput!) { actionCreate(input: $input) { action { id } userErrors { field code message } } }
"""
ACTION_UPDATE = """
mutation($input: ActionUpdateInput!) { actionUpdate(input: $input) { action { id } userErrors { field code message } } }
"""
ME = "{ me { id } }"


async def _action(inbox: Inbox, **fields: object) -> str:
    thread = await inbox.thread()
    due = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    values = {"threadId": thread["id"], "title": "Send quote", "dueAt": due, **fields}
    return (await inbox.ok(ACTION_CREATE, {"input": values}, "actionCreate"))["action"]["id"]


async def _due(state: AppState, action_id: str, at: datetime) -> None:
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(update(Action).where(Action.id == local_id(action_id, "Action")).values(due_at=at))


async def _reminded(state: AppState) -> list[tuple[str, str]]:
    async with system_session(state.sessionmaker) as session:
        rows = await session.execute(
            select(Notification.user_id, Notification.summary).where(Notification.type == NotificationType.ACTION_DUE)
        )
        return [(str(user_id), summary) for user_id, summary in rows]


async def _remind(state: AppState, action_id: str) -> bool:
    return await action_remind(system_context(state), local_id(action_id, "Action"))


async def test_the_assignee_is_reminded_once_at_the_due_time(inbox: Inbox, state: AppState) -> None:
    agent = await _member(inbox, "support", "agent@acme.test")
    action = await _action(inbox, assigneeId=agent.id)
    assert await _remind(state, action) is False  # not due yet
    await _due(state, action, datetime.now(UTC) - timedelta(seconds=1))
    assert await _remind(state, action) is True
    assert await _remind(state, action) is False
    [(user_id, summary)] = await _reminded(state)
    assert user_id == str(local_id(agent.id, "User"))
    assert summary.startswith("Due now on BX-") and summary.endswith("Send quote")


async def test_without_an_assignee_the_creator_is_reminded(inbox: Inbox, state: AppState) -> None:
    action = await _action(inbox)
    await _due(state, action, datetime.now(UTC) - timedelta(seconds=1))
    assert await _remind(state, action) is True
    me = (await inbox.gql(ME))["data"]["me"]["id"]
    assert [user for user, _ in await _reminded(state)] == [str(local_id(me, "User"))]


async def test_a_done_action_is_not_reminded_and_a_new_due_time_reminds_again(inbox: Inbox, state: AppState) -> None:
    done = await _action(inbox)
    await inbox.ok(ACTION_UPDATE, {"input": {"id": done, "status": "DONE"}}, "actionUpdate")
    await _due(state, done, datetime.now(UTC) - timedelta(seconds=1))
    assert await _remind(state, done) is False
    moved = await _action(inbox)
    await _due(state, moved, datetime.now(UTC) - timedelta(seconds=1))
    assert await _remind(state, moved) is True
    # when its due time moves, the next reminder follows it
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await inbox.ok(ACTION_UPDATE, {"input": {"id": moved, "dueAt": later}}, "actionUpdate")
    await _due(state, moved, datetime.now(UTC) - timedelta(seconds=1))
    assert await _remind(state, moved) is True
    assert len(await _reminded(state)) == 2


async def test_the_timer_reminds_on_time(inbox: Inbox, state: AppState, worker: object) -> None:
    action = await _action(inbox)
    due = datetime.now(UTC) + timedelta(seconds=2)
    await _due(state, action, due)
    actors.remind_actions.send()
    for _ in range(200):
        async with system_session(state.sessionmaker) as session:
            reminded_at = await session.scalar(
                select(Action.reminded_at).where(Action.id == local_id(action, "Action"))
            )
        if reminded_at is not None:
            break
        await asyncio.sleep(0.1)
    assert reminded_at is not None, "no reminder within 20 s"
    assert due <= reminded_at < due + timedelta(seconds=10)  # the minute sweep alone would be up to 60 s late
    assert len(await _reminded(state)) == 1
