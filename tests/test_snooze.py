"""Snoozing a thread (threadSnooze): hidden from the default inbox until a time, woken earlier by the customer,
and shown again by the scheduler's timer at that time, with THREAD_UPDATED each time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from banxway.db.models import Event, Thread
from banxway.db.session import system_session, tenant_session
from banxway.enums import Channel
from banxway.resolvers.inbound import message_receive
from banxway.schema.ids import local_id
from banxway.state import AppState
from banxway.tasks import actors
from tests.inbox_helpers import Inbox, _member

SNOOZE = """
mutation($input: ThreadSnoozeInput!) {
  threadSnooze(input: $input) { thread { id snoozedUntil } userErrors { field code message } }
}
"""
INBOX = """
query($filter: ThreadFilter) { threads(filter: $filter) { totalCount edges { node { id } } } }
"""


async def _ids(inbox: Inbox, **filter: object) -> tuple[int, list[str]]:
    result = await inbox.gql(INBOX, {"filter": filter or None})
    threads = result["data"]["threads"]
    return threads["totalCount"], [edge["node"]["id"] for edge in threads["edges"]]


async def _snoozed_events(state: AppState, thread_id: str) -> list[Event]:
    local = str(local_id(thread_id, "Thread"))
    async with system_session(state.sessionmaker) as session:
        rows = await session.scalars(select(Event).where(Event.type == "THREAD_UPDATED").order_by(Event.id))
        return [r for r in rows if r.payload["thread_id"] == local and r.payload["changed"] == ["snoozed_until"]]


async def test_a_snoozed_thread_leaves_the_inbox_until_unsnoozed(inbox: Inbox) -> None:
    kept = await inbox.thread("Booking 4711")
    snoozed = await inbox.thread("Quote, customer asks to call back Monday")
    until = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    payload = await inbox.ok(SNOOZE, {"input": {"threadId": snoozed["id"], "until": until.isoformat()}}, "threadSnooze")
    assert datetime.fromisoformat(payload["thread"]["snoozedUntil"]) == until
    assert await _ids(inbox) == (1, [kept["id"]])
    assert await _ids(inbox, snoozed=True) == (1, [snoozed["id"]])
    await inbox.ok(SNOOZE, {"input": {"threadId": snoozed["id"], "until": None}}, "threadSnooze")
    assert (await _ids(inbox))[0] == 2
    assert len(await _snoozed_events(inbox.api.state, snoozed["id"])) == 2


async def test_a_snooze_must_end_in_the_future_within_a_year(inbox: Inbox) -> None:
    thread = await inbox.thread()
    now = datetime.now(UTC)
    for until in (now - timedelta(minutes=1), now + timedelta(days=400), "2026-12-24T09:00:00"):
        value = until if isinstance(until, str) else until.isoformat()
        result = await inbox.gql(SNOOZE, {"input": {"threadId": thread["id"], "until": value}})
        errors = result["data"]["threadSnooze"]["userErrors"]
        assert [(e["code"], e["field"]) for e in errors] == [("INVALID", ["until"])], (value, errors)
    assert (await _ids(inbox))[0] == 1
    viewer = await _member(inbox, "viewer")
    later = (now + timedelta(days=1)).isoformat()
    refused = await inbox.gql(SNOOZE, {"input": {"threadId": thread["id"], "until": later}}, token=viewer.token)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_the_customer_writing_wakes_a_snoozed_thread(inbox: Inbox) -> None:
    thread = await inbox.thread()
    until = datetime.now(UTC) + timedelta(days=1)
    await inbox.ok(SNOOZE, {"input": {"threadId": thread["id"], "until": until.isoformat()}}, "threadSnooze")
    state = inbox.api.state
    async with tenant_session(state.sessionmaker, inbox.org.id) as session, session.begin():
        await message_receive(
            session,
            inbox.org.id,
            thread_id=local_id(thread["id"], "Thread"),
            channel=Channel.EMAIL,
            body="Any news?",
            sender="buyer@example.com",
        )
    assert await _ids(inbox) == (1, [thread["id"]])
    assert len(await _snoozed_events(state, thread["id"])) == 2


async def test_the_timer_shows_the_thread_again_on_time(inbox: Inbox, state: AppState, worker: object) -> None:
    thread = await inbox.thread()
    await inbox.ok(
        SNOOZE,
        {"input": {"threadId": thread["id"], "until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}},
        "threadSnooze",
    )
    # given the snooze ends in 2 seconds
    ends = datetime.now(UTC) + timedelta(seconds=2)
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(
            update(Thread).where(Thread.id == local_id(thread["id"], "Thread")).values(snoozed_until=ends)
        )
    # when the scheduler's minute job runs
    actors.wake_threads.send()
    # then the thread wakes up at that time, once
    for _ in range(200):
        found = await _snoozed_events(state, thread["id"])
        if len(found) == 2:
            break
        await asyncio.sleep(0.1)
    assert len(found) == 2, "not woken within 20 s"
    assert ends <= found[1].created_at < ends + timedelta(seconds=10)  # the minute sweep alone would be up to 60 s late
    async with system_session(state.sessionmaker) as session:
        assert (
            await session.scalar(select(Thread.snoozed_until).where(Thread.id == local_id(thread["id"], "Thread")))
            is None
        )
