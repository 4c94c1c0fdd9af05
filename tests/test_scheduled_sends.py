"""Scheduled sends (messageSend with sendAt): SCHEDULED until their time, not delivered before, cancellable until
then; released by the scheduler's timer on time, as the author's reply (first response, NEW -> OPEN, the SLA's
response target), with the delivery started by the released event."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import select, update

from banxway.db.models import Event, Message, SlaTarget
from banxway.db.session import system_session
from banxway.enums import MessageStatus
from banxway.resolvers.messages import release_scheduled
from banxway.schema.ids import local_id
from banxway.state import AppState
from banxway.tasks import actors
from tests.inbox_helpers import Inbox, _member, configure_channels, system_context

SEND = """
mutation($input: MessageSendInput!) {
  messageSend(input: $input) { message { id status sendAt thread { status firstResponseAt } } userErrors { field code message } }
}
"""
CANCEL = """
mutation($input: MessageCancelScheduledInput!) {
  messageCancelScheduled(input: $input) { message { id status } userErrors { field code message } }
}
"""
THREAD = "query($id: ID!) { thread(id: $id) { status firstResponseAt slaStatus messages { totalCount } } }"


async def _schedule(inbox: Inbox, thread_id: str, at: datetime, **fields: object) -> dict:
    variables = {
        "input": {
            "threadId": thread_id,
            "channel": "EMAIL",
            "body": "Our quote: USD 2,150 per 40HC, valid 14 days.",
            "to": ["buyer@example.com"],
            "sendAt": at.isoformat(),
            **fields,
        }
    }
    return (await inbox.ok(SEND, variables, "messageSend"))["message"]


async def _delivery_queue(state: AppState) -> set[str]:
    return {orjson.loads(job)["args"][0] for job in await state.redis.hvals("banxway:delivery.msgs")}


async def _released(state: AppState, message_id: str) -> list[Event]:
    local = str(local_id(message_id, "Message"))
    async with system_session(state.sessionmaker) as session:
        rows = await session.scalars(select(Event).where(Event.type == "MESSAGE_STATUS_CHANGED").order_by(Event.id))
        return [r for r in rows if r.payload["message_id"] == local and r.payload.get("released")]


async def _due_now(state: AppState, message_id: str, at: datetime) -> None:
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(update(Message).where(Message.id == local_id(message_id, "Message")).values(send_at=at))


async def test_a_scheduled_message_waits_and_is_not_delivered(inbox: Inbox, state: AppState) -> None:
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    at = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    message = await _schedule(inbox, thread["id"], at)
    assert (message["status"], datetime.fromisoformat(message["sendAt"])) == ("SCHEDULED", at)
    # not a reply yet: the thread is still NEW, with no first response, and nothing waits for delivery
    assert message["thread"] == {"status": "NEW", "firstResponseAt": None}
    assert str(local_id(message["id"], "Message")) not in await _delivery_queue(state)
    # and its time has not come: releasing it now changes nothing
    assert await release_scheduled(system_context(state), local_id(message["id"], "Message")) is False


async def test_bad_schedules_are_refused_and_write_nothing(inbox: Inbox) -> None:
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    now = datetime.now(UTC)
    for fields in (
        {"sendAt": (now - timedelta(minutes=1)).isoformat()},
        {"sendAt": (now + timedelta(days=400)).isoformat()},
        {"sendAt": "2026-12-24T09:00:00"},
        {"channel": "INTERNAL", "to": None},
    ):
        variables = {
            "input": {
                "threadId": thread["id"],
                "channel": "EMAIL",
                "body": "Later",
                "to": ["buyer@example.com"],
                "sendAt": (now + timedelta(hours=1)).isoformat(),
                **fields,
            }
        }
        result = await inbox.gql(SEND, variables)
        errors = result["data"]["messageSend"]["userErrors"]
        assert [(e["code"], e["field"]) for e in errors] == [("INVALID", ["sendAt"])], (fields, errors)
    counted = await inbox.gql(THREAD, {"id": thread["id"]})
    assert counted["data"]["thread"]["messages"]["totalCount"] == 0


async def test_a_scheduled_message_is_cancelled_once(inbox: Inbox, state: AppState) -> None:
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    message = await _schedule(inbox, thread["id"], datetime.now(UTC) + timedelta(hours=1))
    viewer = await _member(inbox, "viewer")
    refused = await inbox.gql(CANCEL, {"input": {"messageId": message["id"]}}, token=viewer.token)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    cancelled = await inbox.ok(CANCEL, {"input": {"messageId": message["id"]}}, "messageCancelScheduled")
    assert cancelled["message"]["status"] == "CANCELLED"
    again = await inbox.gql(CANCEL, {"input": {"messageId": message["id"]}})
    assert [e["code"] for e in again["data"]["messageCancelScheduled"]["userErrors"]] == ["INVALID_TRANSITION"]
    # its time comes and goes: a cancelled message never goes
    await _due_now(state, message["id"], datetime.now(UTC) - timedelta(seconds=1))
    assert await release_scheduled(system_context(state), local_id(message["id"], "Message")) is False
    assert str(local_id(message["id"], "Message")) not in await _delivery_queue(state)


async def test_a_released_message_is_the_reply_and_goes_to_delivery(inbox: Inbox, state: AppState) -> None:
    await configure_channels(inbox, "EMAIL")
    await inbox.ok(
        "mutation($i: SlaPolicyCreateInput!) { slaPolicyCreate(input: $i) { userErrors { field } } }",
        {"i": {"name": "Replies", "firstResponseMinutes": 60}},
        "slaPolicyCreate",
    )
    thread = await inbox.thread()
    message = await _schedule(inbox, thread["id"], datetime.now(UTC) + timedelta(hours=1))
    await _due_now(state, message["id"], datetime.now(UTC) - timedelta(seconds=1))
    # when the timer releases it (twice: the second does nothing)
    ctx = system_context(state)
    assert await release_scheduled(ctx, local_id(message["id"], "Message")) is True
    assert await release_scheduled(ctx, local_id(message["id"], "Message")) is False
    # then it waits for delivery, and it was the thread's first response
    assert str(local_id(message["id"], "Message")) in await _delivery_queue(state)
    assert len(await _released(state, message["id"])) == 1
    seen = (await inbox.gql(THREAD, {"id": thread["id"]}))["data"]["thread"]
    assert (seen["status"], seen["slaStatus"]) == ("OPEN", "MET")
    assert seen["firstResponseAt"] is not None
    async with system_session(state.sessionmaker) as session:
        met = list(await session.scalars(select(SlaTarget.met_at).where(SlaTarget.met_at.is_not(None))))
    assert len(met) == 1


async def test_the_timer_releases_a_message_on_time(inbox: Inbox, state: AppState, worker: object) -> None:
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    message = await _schedule(inbox, thread["id"], datetime.now(UTC) + timedelta(hours=1))
    due = datetime.now(UTC) + timedelta(seconds=2)
    await _due_now(state, message["id"], due)
    actors.release_messages.send()
    found: list[Event] = []
    for _ in range(200):
        found = await _released(state, message["id"])
        if found:
            break
        await asyncio.sleep(0.1)
    assert len(found) == 1, "not released within 20 s"
    assert due <= found[0].created_at < due + timedelta(seconds=10)  # the minute sweep alone would be up to 60 s late


UPDATE = """
mutation($input: MessageUpdateScheduledInput!) {
  messageUpdateScheduled(input: $input) {
    message { id status body subject sendAt } userErrors { field code message }
  }
}
"""


async def _updated_events(state: AppState, message_id: str) -> list[Event]:
    local = str(local_id(message_id, "Message"))
    async with system_session(state.sessionmaker) as session:
        rows = await session.scalars(select(Event).where(Event.type == "MESSAGE_UPDATED").order_by(Event.id))
        return [r for r in rows if r.payload["message_id"] == local]


async def test_a_scheduled_message_is_edited_until_it_goes(inbox: Inbox, state: AppState) -> None:
    # given a scheduled email
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    message = await _schedule(inbox, thread["id"], datetime.now(UTC) + timedelta(hours=1), subject="Quote")
    viewer = await _member(inbox, "viewer")
    # when a viewer tries to edit it, then its author does
    refused = await inbox.gql(UPDATE, {"input": {"messageId": message["id"], "body": "Mine now"}}, token=viewer.token)
    edited = await inbox.ok(
        UPDATE,
        {"input": {"messageId": message["id"], "body": "Our quote: USD 2,050 per 40HC.", "subject": "Revised quote"}},
        "messageUpdateScheduled",
    )
    # then the viewer may not, and the author's text replaces the old one, with a MESSAGE_UPDATED saying what
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (edited["message"]["status"], edited["message"]["body"], edited["message"]["subject"]) == (
        "SCHEDULED",
        "Our quote: USD 2,050 per 40HC.",
        "Revised quote",
    )
    [event] = await _updated_events(state, message["id"])
    assert event.payload["changed"] == ["body", "subject"]
    # and what goes out when its time comes is the new text
    await _due_now(state, message["id"], datetime.now(UTC) - timedelta(seconds=1))
    assert await release_scheduled(system_context(state), local_id(message["id"], "Message")) is True
    async with system_session(state.sessionmaker) as session:
        sent = await session.get(Message, local_id(message["id"], "Message"))
        assert sent is not None and sent.body == "Our quote: USD 2,050 per 40HC."
    # and once it went, it can no longer be edited
    late = await inbox.gql(UPDATE, {"input": {"messageId": message["id"], "body": "Too late"}})
    errors = late["data"]["messageUpdateScheduled"]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [("NOT_SCHEDULED", ["messageId"])]
    assert len(await _updated_events(state, message["id"])) == 1


async def test_bad_edits_are_refused_and_change_nothing(inbox: Inbox, state: AppState) -> None:
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    message = await _schedule(inbox, thread["id"], at, html="<p>Our quote</p>")
    cancelled = await _schedule(inbox, thread["id"], at)
    await inbox.ok(CANCEL, {"input": {"messageId": cancelled["id"]}}, "messageCancelScheduled")
    for fields, expected in (
        ({"body": "  "}, ("INVALID", ["body"])),
        ({"body": "New text only"}, ("INVALID", ["html"])),  # the HTML part would say something else
        ({"sendAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}, ("INVALID", ["sendAt"])),
        ({"messageId": cancelled["id"], "body": "Back"}, ("NOT_SCHEDULED", ["messageId"])),
        ({"messageId": thread["id"], "body": "Back"}, ("NOT_FOUND", ["messageId"])),
    ):
        result = await inbox.gql(UPDATE, {"input": {"messageId": message["id"], **fields}})
        errors = result["data"]["messageUpdateScheduled"]["userErrors"]
        assert [(e["code"], e["field"]) for e in errors] == [expected], (fields, errors)
    async with system_session(state.sessionmaker) as session:
        row = await session.get(Message, local_id(message["id"], "Message"))
        assert row is not None and (row.body, row.send_at) == ("Our quote: USD 2,150 per 40HC, valid 14 days.", at)
    assert await _updated_events(state, message["id"]) == []


async def test_an_edit_waits_for_a_release_holding_the_message(inbox: Inbox, state: AppState) -> None:
    # given a scheduled message whose row a release holds (locked, about to turn it QUEUED)
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    message = await _schedule(inbox, thread["id"], datetime.now(UTC) + timedelta(hours=1))
    local = local_id(message["id"], "Message")
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(select(Message.id).where(Message.id == local).with_for_update())
        # when the author edits it meanwhile
        edit = asyncio.create_task(inbox.gql(UPDATE, {"input": {"messageId": message["id"], "body": "New text"}}))
        await asyncio.sleep(1.0)
        # then the edit waits for the lock
        assert not edit.done()
        await session.execute(update(Message).where(Message.id == local).values(status=MessageStatus.QUEUED))
    # and, once the release committed, finds the message gone: the old text went, and the edit says so
    result = await edit
    errors = result["data"]["messageUpdateScheduled"]["userErrors"]
    assert [e["code"] for e in errors] == ["NOT_SCHEDULED"]
    async with system_session(state.sessionmaker) as session:
        row = await session.get(Message, local)
        assert row is not None and row.body == "Our quote: USD 2,150 per 40HC, valid 14 days."


async def test_moving_the_time_rearms_the_timer(inbox: Inbox, state: AppState, worker: object) -> None:
    # given a message scheduled an hour from now
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    message = await _schedule(inbox, thread["id"], datetime.now(UTC) + timedelta(hours=1))
    # when it is moved to two seconds from now (no sweep of the scheduler runs in between)
    due = datetime.now(UTC) + timedelta(seconds=2)
    moved = await inbox.ok(
        UPDATE, {"input": {"messageId": message["id"], "sendAt": due.isoformat()}}, "messageUpdateScheduled"
    )
    assert datetime.fromisoformat(moved["message"]["sendAt"]) == due
    # then the worker releases it at the new time
    found: list[Event] = []
    for _ in range(200):
        found = await _released(state, message["id"])
        if found:
            break
        await asyncio.sleep(0.1)
    assert len(found) == 1, "not released within 20 s"
    assert due <= found[0].created_at < due + timedelta(seconds=10)


async def test_moving_the_time_later_keeps_it_from_the_old_timer(inbox: Inbox, state: AppState, worker: object) -> None:
    # given a message due in two seconds, whose timer the scheduler's sweep has set
    await configure_channels(inbox, "EMAIL")
    thread = await inbox.thread()
    message = await _schedule(inbox, thread["id"], datetime.now(UTC) + timedelta(seconds=2))
    actors.release_messages.send()
    # when it is moved an hour later before then
    later = datetime.now(UTC) + timedelta(hours=1)
    await inbox.ok(
        UPDATE, {"input": {"messageId": message["id"], "sendAt": later.isoformat()}}, "messageUpdateScheduled"
    )
    await asyncio.sleep(4)
    # then the old timer went off and did nothing: the message still waits
    assert await _released(state, message["id"]) == []
    seen = await inbox.gql("query($id: ID!) { node(id: $id) { ... on Message { status } } }", {"id": message["id"]})
    assert seen["data"]["node"]["status"] == "SCHEDULED"
