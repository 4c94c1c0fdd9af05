"""AI compose with the built-in composer (no key configured): composeStart, the stream read over the GraphQL
WebSocket and as Server-Sent Events from a real server, roles, tenancy, cancellation, feedback and figures."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select

from banxway.db.models import ComposeSession
from banxway.db.session import system_session
from banxway.resolvers import compose
from banxway.settings import Settings
from tests.ai_helpers import (
    BL,
    COMPOSE_CANCEL,
    COMPOSE_FEEDBACK,
    COMPOSE_STREAM,
    SESSION,
    compose_start,
    freight_thread,
    joined,
    read_socket,
    read_sse,
    session_uuid,
    sse,
    started,
)
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import GraphQLSocket, uvicorn_server

STATS = """
query($period: PeriodInput!) {
  composeStats(period: $period) {
    sessions finished failed cancelled withFeedback accepted acceptanceRate meanEditDistance meanEditRatio tokens
  }
}
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"compose_word_delay": 0.005})


async def _session_row(inbox: Inbox, session_id: str) -> Any:
    async with system_session(inbox.api.state.sessionmaker) as session:
        return await session.scalar(select(ComposeSession).where(ComposeSession.id == session_uuid(session_id)))


async def test_a_draft_streams_word_by_word_over_the_websocket_grounded_in_the_shipment(
    inbox: Inbox, settings: Settings, state: Any, worker: Any
) -> None:
    thread = await freight_thread(inbox)
    async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(inbox.token)
        session_id = await started(inbox, thread.thread_id, tone="FRIENDLY", variants=2, instructions="")
        await socket.subscribe("1", COMPOSE_STREAM, {"id": session_id})
        items = await read_socket(socket, "1")
    done = items[-1]
    assert done["__typename"] == "ComposeDone", items[-3:]
    deltas = [item for item in items if item["__typename"] == "ComposeDelta"]
    assert len(deltas) > 10, "streamed word by word, not in one piece"
    assert {item["variant"] for item in deltas} == {0, 1}
    drafts = {draft["variant"]: draft["text"] for draft in done["variants"]}
    assert drafts[0] == joined(items, 0) and drafts[1] == joined(items, 1)
    assert drafts[0] != drafts[1]
    first = drafts[0]
    assert "Priya" in first  # greeted by name
    assert "14 Dec" in first  # the ETA, from the shipment
    assert BL in first  # the BL the customer asked about
    assert done["usage"]["totalTokens"] == done["usage"]["promptTokens"] + done["usage"]["completionTokens"] > 0
    row = await _session_row(inbox, session_id)
    assert (row.status, row.provider, list(row.drafts)) == ("DONE", "builtin", [drafts[0], drafts[1]])


async def test_the_same_stream_as_server_sent_events_for_its_owner_only(
    inbox: Inbox, settings: Settings, state: Any, worker: Any
) -> None:
    thread = await freight_thread(inbox)
    session_id = await started(inbox, thread.thread_id)
    other = await inbox.api.create_org("globex")
    stranger = await inbox.api.token(other.admin_email)
    await inbox.api.create_user(inbox.org, "colleague@acme.test", "support")
    colleague = await inbox.api.token("colleague@acme.test")
    async with uvicorn_server(settings, state) as url:
        base = url.replace("ws://", "http://").removesuffix("/graphql")
        async with sse(base, session_id, None) as response:
            assert response.status_code == 401
        for token in (stranger, colleague):  # another organization; another user of the same one
            async with sse(base, session_id, token) as response:
                assert response.status_code == 404, await response.aread()
        async with sse(base, session_id, inbox.token) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = await read_sse(response)
    names = [event.event for event in events]
    assert names[-1] == "done" and set(names[:-1]) == {"delta"}, names
    text = "".join(event.data["text"] for event in events if event.event == "delta")
    assert events[-1].data["variants"] == [{"variant": 0, "text": text}]
    assert "Priya" in text


async def test_viewers_may_not_compose_and_bad_input_is_named(inbox: Inbox) -> None:
    thread = await freight_thread(inbox)
    await inbox.api.create_user(inbox.org, "viewer@acme.test", "viewer")
    viewer = await inbox.api.token("viewer@acme.test")
    result = await inbox.gql(
        """mutation($input: ComposeStartInput!) { composeStart(input: $input) { session { id } } }""",
        {"input": {"threadId": thread.thread_id}},
        viewer,
    )
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    for fields, field in (({"variants": 4}, "variants"), ({"channel": "INTERNAL"}, "channel")):
        payload = await compose_start(inbox, thread.thread_id, **fields)
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID", [field])], payload
    payload = await compose_start(inbox, thread.thread_id, instructions="x" * 2001)
    assert payload["userErrors"][0]["field"] == ["instructions"]
    other = await inbox.api.create_org("globex")
    foreign = await Inbox(inbox.api, other, await inbox.api.token(other.admin_email)).thread("Theirs")
    payload = await compose_start(inbox, foreign["id"])
    assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"]
    async with system_session(inbox.api.state.sessionmaker) as session:
        assert list(await session.scalars(select(ComposeSession))) == []  # nothing written by any of them


async def test_another_organizations_session_is_not_found_everywhere(
    inbox: Inbox, settings: Settings, state: Any
) -> None:
    thread = await freight_thread(inbox)
    session_id = await started(inbox, thread.thread_id)
    other = await inbox.api.create_org("globex")
    stranger = await inbox.api.token(other.admin_email)
    result = await inbox.gql(COMPOSE_CANCEL, {"input": {"sessionId": session_id}}, stranger)
    assert [e["code"] for e in result["data"]["composeCancel"]["userErrors"]] == ["NOT_FOUND"]
    result = await inbox.gql(SESSION, {"id": session_id}, stranger)
    assert result["data"]["node"] is None
    async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(stranger)
        await socket.subscribe("1", COMPOSE_STREAM, {"id": session_id})
        message = await socket.receive()
    assert message["type"] == "next" and message["payload"]["data"] is None, message
    assert message["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert (await _session_row(inbox, session_id)).status == "PENDING"  # untouched


def _slow_drafting(state: Any, settings: Settings, session_id: str) -> asyncio.Task:
    """What the stream_compose actor does, with a slow built-in composer (the worker fixture's is fast)."""
    slow = settings.model_copy(update={"compose_word_delay": 0.2})
    return asyncio.create_task(compose.stream_compose(system_context(state, slow), session_uuid(session_id)))


async def test_cancel_stops_the_drafting_and_tells_the_readers(inbox: Inbox, settings: Settings, state: Any) -> None:
    async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(inbox.token)
        thread = await freight_thread(inbox)
        session_id = await started(inbox, thread.thread_id)
        drafting = _slow_drafting(state, settings, session_id)
        await socket.subscribe("1", COMPOSE_STREAM, {"id": session_id})
        _, first = await socket.next(10)
        assert first["__typename"] == "ComposeDelta"
        cancelled_at = time.monotonic()
        result = await inbox.gql(COMPOSE_CANCEL, {"input": {"sessionId": session_id}})
        assert result["data"]["composeCancel"]["session"]["status"] == "CANCELLED"
        rest = await read_socket(socket, "1", within=5)
        assert rest[-1] == {"__typename": "ComposeFailure", "code": "CANCELLED", "message": rest[-1]["message"]}
        assert time.monotonic() - cancelled_at < 1.0
        assert await asyncio.wait_for(drafting, 1.0) == "CANCELLED"  # the drafting itself stopped within 1 s
    row = await _session_row(inbox, session_id)
    assert (row.status, row.error_code, list(row.drafts)) == ("CANCELLED", "CANCELLED", [])


async def test_a_client_that_goes_away_cancels_the_drafting(inbox: Inbox, settings: Settings, state: Any) -> None:
    thread = await freight_thread(inbox)
    session_id = await started(inbox, thread.thread_id)
    drafting = _slow_drafting(state, settings, session_id)
    async with uvicorn_server(settings, state) as url:
        base = url.replace("ws://", "http://").removesuffix("/graphql")
        async with sse(base, session_id, inbox.token) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: delta"):
                    break  # and hang up
        deadline = time.monotonic() + 3
        while (row := await _session_row(inbox, session_id)).status != "CANCELLED":
            assert time.monotonic() < deadline, row.status
            await asyncio.sleep(0.05)
    assert row.error_message == "The client went away."
    assert await asyncio.wait_for(drafting, 1.0) == "CANCELLED"


async def test_feedback_keeps_the_edit_distance_and_the_stats_add_up(
    inbox: Inbox, settings: Settings, state: Any, worker: Any
) -> None:
    thread = await freight_thread(inbox)
    ids = []
    for _ in range(3):
        session_id = await started(inbox, thread.thread_id)
        async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
            await socket.init(inbox.token)
            await socket.subscribe("1", COMPOSE_STREAM, {"id": session_id})
            items = await read_socket(socket, "1")
        ids.append((session_id, items[-1]["variants"][0]["text"]))
    (first, draft1), (second, _), (third, _) = ids
    sent = draft1 + " Thanks!"
    result = await inbox.gql(
        COMPOSE_FEEDBACK, {"input": {"sessionId": first, "variant": 0, "rating": "UP", "finalText": sent}}
    )
    feedback = result["data"]["composeFeedback"]
    assert feedback["userErrors"] == []
    assert feedback["session"]["editDistance"] == len(" Thanks!")
    rewritten = "Completely different words."
    result = await inbox.gql(
        COMPOSE_FEEDBACK, {"input": {"sessionId": second, "variant": 0, "rating": "DOWN", "finalText": rewritten}}
    )
    assert result["data"]["composeFeedback"]["session"]["editDistance"] > len(rewritten) // 2
    result = await inbox.gql(COMPOSE_FEEDBACK, {"input": {"sessionId": third, "variant": 2, "rating": "UP"}})
    assert [(e["code"], e["field"]) for e in result["data"]["composeFeedback"]["userErrors"]] == [
        ("INVALID", ["variant"])
    ]
    period = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
    stats = (await inbox.gql(STATS, {"period": period}))["data"]["composeStats"]
    assert stats["sessions"] == stats["finished"] == 3
    assert (stats["withFeedback"], stats["accepted"], stats["acceptanceRate"]) == (2, 1, 0.5)
    assert stats["meanEditDistance"] > len(" Thanks!")
    assert stats["tokens"] > 0
    empty = await inbox.gql(STATS, {"period": {"from": "2000-01-01T00:00:00Z", "to": "2000-02-01T00:00:00Z"}})
    assert empty["data"]["composeStats"]["sessions"] == 0
