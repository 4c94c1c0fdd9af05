"""AI compose and analysis with an external provider: the real `openai` client against a local OpenAI-compatible
stand-in (streaming chat completions, failures, a slow stream), through the real worker."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import select

from banxway.db.models import AiUsage, ComposeSession
from banxway.db.session import system_session
from banxway.resolvers.analysis import analyse_message
from banxway.settings import Settings
from tests.ai_helpers import (
    COMPOSE_CANCEL,
    COMPOSE_STREAM,
    CONTAINER,
    compose_start,
    freight_thread,
    read_socket,
    session_uuid,
    started,
)
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import GraphQLSocket, uvicorn_server
from tests.standins.openai_server import OpenAIStandIn, openai_standin  # noqa: F401 - the fixture

MODEL = "gpt-standin"


@pytest.fixture
def settings(settings: Settings, openai_standin: OpenAIStandIn) -> Settings:  # noqa: F811
    return settings.model_copy(
        update={
            "openai_api_key": openai_standin.api_key,
            "openai_base_url": openai_standin.base_url,
            "compose_model": MODEL,
            "ai_monthly_token_budget": 100,
        }
    )


async def _stream(settings: Settings, state: Any, inbox: Inbox, session_id: str) -> list[dict]:
    async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(inbox.token)
        await socket.subscribe("1", COMPOSE_STREAM, {"id": session_id})
        return await read_socket(socket, "1")


async def _row(state: Any, session_id: str) -> ComposeSession:
    async with system_session(state.sessionmaker) as session:
        row = await session.scalar(select(ComposeSession).where(ComposeSession.id == session_uuid(session_id)))
        assert row is not None
        return row


async def test_drafts_stream_from_the_provider_and_the_tokens_are_metered_against_the_budget(
    inbox: Inbox,
    settings: Settings,
    state: Any,
    worker: Any,
    openai_standin: OpenAIStandIn,  # noqa: F811
) -> None:
    thread = await freight_thread(inbox)
    openai_standin.reply_next(["Hi Priya, it arrives on 14 Dec.", "Dear Priya, ETA Hamburg: 14 Dec."], usage=(60, 20))
    session_id = await started(inbox, thread.thread_id, variants=2, tone="FORMAL")
    items = await _stream(settings, state, inbox, session_id)
    done = items[-1]
    assert done["__typename"] == "ComposeDone", items[-1]
    assert [v["text"] for v in done["variants"]] == [
        "Hi Priya, it arrives on 14 Dec.",
        "Dear Priya, ETA Hamburg: 14 Dec.",
    ]
    assert done["usage"] == {"promptTokens": 60, "completionTokens": 20, "totalTokens": 80}
    request = openai_standin.requests[-1].json
    assert (request["model"], request["n"], request["stream"]) == (MODEL, 2, True)
    prompt = "\n".join(message["content"] for message in request["messages"])
    assert CONTAINER in prompt and "Priya Shah" in prompt and "formal" in prompt.lower()
    assert (await _row(state, session_id)).provider == MODEL
    async with system_session(state.sessionmaker) as session:
        assert await session.scalar(select(AiUsage.tokens)) == 80
    # 80 of the 100-token budget spent: one more session may start; past the budget, none
    openai_standin.reply_next("Noted.", usage=(30, 10))
    second = await started(inbox, thread.thread_id)
    assert (await _stream(settings, state, inbox, second))[-1]["__typename"] == "ComposeDone"
    refused = await compose_start(inbox, thread.thread_id)
    assert [e["code"] for e in refused["userErrors"]] == ["BUDGET_EXCEEDED"]
    assert "100" in refused["userErrors"][0]["message"]


async def test_a_failing_provider_ends_the_stream_with_a_clear_error_never_a_hang(
    inbox: Inbox,
    settings: Settings,
    state: Any,
    worker: Any,
    openai_standin: OpenAIStandIn,  # noqa: F811
) -> None:
    thread = await freight_thread(inbox)
    openai_standin.fail_next(500, message="upstream exploded")
    session_id = await started(inbox, thread.thread_id)
    failure = (await _stream(settings, state, inbox, session_id))[-1]
    assert failure["__typename"] == "ComposeFailure" and failure["code"] == "AI_UNAVAILABLE", failure
    openai_standin.cut_next(after_chunks=2)
    cut = await started(inbox, thread.thread_id)
    items = await _stream(settings, state, inbox, cut)
    assert items[-1]["__typename"] == "ComposeFailure" and items[-1]["code"] == "AI_UNAVAILABLE", items
    openai_standin.fail_next(400, message="model not found")
    refused = await started(inbox, thread.thread_id)
    assert (await _stream(settings, state, inbox, refused))[-1]["code"] == "AI_REFUSED"
    rows = [await _row(state, sid) for sid in (session_id, cut, refused)]
    assert [(row.status, row.error_code) for row in rows] == [
        ("FAILED", "AI_UNAVAILABLE"),
        ("FAILED", "AI_UNAVAILABLE"),
        ("FAILED", "AI_REFUSED"),
    ]
    assert all(row.drafts == [] for row in rows)  # no half draft passed off as finished


async def test_cancel_reaches_the_provider_within_a_second(
    inbox: Inbox,
    settings: Settings,
    state: Any,
    worker: Any,
    openai_standin: OpenAIStandIn,  # noqa: F811
) -> None:
    thread = await freight_thread(inbox)
    openai_standin.chunk_delay = 0.25
    openai_standin.reply_next(" ".join(["word"] * 200))
    async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(inbox.token)
        session_id = await started(inbox, thread.thread_id)
        await socket.subscribe("1", COMPOSE_STREAM, {"id": session_id})
        _, first = await socket.next(10)
        assert first["__typename"] == "ComposeDelta"
        cancelled_at = time.monotonic()
        result = await inbox.gql(COMPOSE_CANCEL, {"input": {"sessionId": session_id}})
        assert result["data"]["composeCancel"]["session"]["status"] == "CANCELLED"
        rest = await read_socket(socket, "1", within=5)
    assert rest[-1]["code"] == "CANCELLED"
    stopped_at = await openai_standin.wait_for_disconnect(openai_standin.requests[-1], timeout=2.0)
    assert stopped_at - cancelled_at < 1.0, stopped_at - cancelled_at
    assert openai_standin.requests[-1].chunks_sent < 20  # it did not run to its end


async def test_an_llm_extractor_adds_to_the_rules_and_check_digits_still_decide(
    inbox: Inbox,
    settings: Settings,
    state: Any,
    openai_standin: OpenAIStandIn,  # noqa: F811
) -> None:
    thread = await freight_thread(
        inbox,
        shipment=False,
        question="Pls confirm cargo ready date for the cotton yarn, box TGHU 8765436 or TGHU8765431",
    )
    answer = {
        "language": "en",
        "sentiment": "NEUTRAL",
        "sentiment_score": 0.0,
        "intent": "BOOKING",
        "entities": [
            {"kind": "CONTAINER", "text": "TGHU8765431"},  # wrong check digit: dropped
            {"kind": "COMMODITY", "text": "cotton yarn"},
            {"kind": "PORT", "text": "Rotterdam"},  # not in the message: dropped
        ],
    }
    openai_standin.reply_next(json.dumps(answer), usage=(120, 30))
    llm = settings.model_copy(update={"analysis_model": "extractor-standin"})
    from tests.test_analysis import _last_inbound

    analysed = await analyse_message(system_context(state, llm), await _last_inbound(state, thread.thread_id))
    assert analysed is not None
    assert analysed.intent.name == "BOOKING" and analysed.analyser.endswith("+extractor-standin")
    found = {(e["kind"], e["value"]) for e in analysed.entities}
    assert ("COMMODITY", "cotton yarn") in found
    assert not any(kind == "PORT" for kind, _ in found)
    assert not any(value == "TGHU8765431" for _, value in found)
    request = openai_standin.requests[-1].json
    assert request["model"] == "extractor-standin" and request["response_format"]["type"] == "json_schema"
    async with system_session(state.sessionmaker) as session:
        assert await session.scalar(select(AiUsage.tokens)) == 150
