"""The AI agent: administration (aiAgents), answering an inbound WhatsApp question from the knowledge base with a
citation through the real worker, handing over (asked for a person, a complaint, low confidence, max turns) with a
note, a notification and no answer, the shipment-status tool, suspension after a person's reply and
threadBotResume, a generative answer against the OpenAI stand-in, tenancy, and the corpus's precision."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from banxway.calendar import WEEKDAYS
from banxway.db.models import Action, AiAgentTurn, AuditEntry, Message, Note, Notification, Thread
from banxway.db.session import system_session
from banxway.enums import Direction, ThreadType
from banxway.resolvers.ai_agent import agent_handle_message
from banxway.schema.ids import local_id, to_global_id
from tests.ai_helpers import CONTAINER
from tests.inbox_helpers import Inbox, _foreign, _member, system_context
from tests.knowledge_corpus import QUESTIONS, evaluate, handover_accuracy, load, precision_at_1
from tests.messaging_helpers import CUSTOMER_PHONE, WHATSAPP_NUMBER, configure_exotel, post_json, url_of
from tests.standins.openai_server import openai_server
from tests.standins.providers import StandIn, exotel_whatsapp_incoming
from tests.test_knowledge import _admin_context

AGENT_CREATE = """
mutation($input: AiAgentCreateInput!) {
  aiAgentCreate(input: $input) {
    aiAgent { id name enabled channels minConfidence handoverKeywords tone maxTurns handoverTeamId activeHours }
    userErrors { field code message }
  }
}
"""
AGENT_UPDATE = """
mutation($input: AiAgentUpdateInput!) {
  aiAgentUpdate(input: $input) { aiAgent { id name maxTurns tone channels } userErrors { field code message } }
}
"""
AGENT_DELETE = "mutation($id: ID!) { aiAgentDelete(id: $id) { deletedId userErrors { field code message } } }"
AGENTS = "{ aiAgents { id name } }"
RESUME = """
mutation($input: ThreadBotResumeInput!) {
  threadBotResume(input: $input) { thread { id botSuspendedUntil } userErrors { field code message } }
}
"""
THREAD = "query($id: ID!) { thread(id: $id) { id type assignee { id } botSuspendedUntil } }"
THREAD_UPDATE = """
mutation($input: ThreadUpdateInput!) { threadUpdate(input: $input) { thread { id } userErrors { field code } } }
"""
TEAM_CREATE = """
mutation($input: TeamCreateInput!) { teamCreate(input: $input) { team { id } userErrors { field code message } } }
"""


async def _agent(inbox: Inbox, **fields: Any) -> dict:
    values = {"name": "Ava", "channels": ["WHATSAPP"], **fields}
    return (await inbox.ok(AGENT_CREATE, {"input": values}, "aiAgentCreate"))["aiAgent"]


async def _knowledge(inbox: Inbox) -> None:
    ctx = await _admin_context(inbox)
    try:
        await load(ctx)
    finally:
        await ctx.aclose()


async def _inbound(inbox: Inbox, configured: dict, body: str, sid: str | None = None) -> tuple[uuid.UUID, uuid.UUID]:
    """(thread id, message id) of a WhatsApp message from the customer, through the provider's webhook."""
    sid = sid or f"wa-{uuid.uuid4().hex[:8]}"
    payload = exotel_whatsapp_incoming(sid=sid, from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body=body)
    response = await post_json(inbox.api.http, url_of(configured, "/whatsapp"), payload)
    assert response.status_code == 200, response.text
    async with system_session(inbox.api.state.sessionmaker) as session:
        row = (
            await session.execute(select(Message.thread_id, Message.id).where(Message.provider_message_id == sid))
        ).one()
    return row[0], row[1]


async def _handle(inbox: Inbox, message_id: uuid.UUID, settings: Any = None) -> str:
    return await agent_handle_message(system_context(inbox.api.state, settings), message_id)


async def _rows(inbox: Inbox, model: Any, *where: Any) -> list[Any]:
    async with system_session(inbox.api.state.sessionmaker) as session:
        return list(await session.scalars(select(model).where(model.organization_id == inbox.org.id, *where)))


async def _agent_replies(inbox: Inbox, thread_id: uuid.UUID) -> list[Message]:
    return [
        m
        for m in await _rows(inbox, Message, Message.thread_id == thread_id, Message.direction == Direction.OUTBOUND)
        if (m.idempotency_key or "").startswith("aiagent:")
    ]


# -- administration ----------------------------------------------------------------------------------------------


async def test_admins_manage_agents_with_validation_audit_roles_and_tenancy(inbox: Inbox) -> None:
    # given / when
    agent = await _agent(
        inbox, tone="FORMAL", activeHours={"timezone": "UTC", "hours": {"monday": [["09:00", "17:00"]]}}
    )
    # then the defaults and the calendar's form
    assert agent["channels"] == ["WHATSAPP"] and agent["tone"] == "FORMAL" and agent["maxTurns"] == 5
    assert agent["minConfidence"] == 0.35 and "person" in agent["handoverKeywords"]
    assert agent["activeHours"]["timezone"] == "UTC"
    updated = await inbox.ok(AGENT_UPDATE, {"input": {"id": agent["id"], "maxTurns": 2}}, "aiAgentUpdate")
    assert updated["aiAgent"]["maxTurns"] == 2 and updated["aiAgent"]["tone"] == "FORMAL"
    # bad input names its field, nothing written
    for fields, code, field in (
        ({"name": "Bot", "channels": ["INTERNAL"]}, "INVALID", ["channels", "0"]),
        ({"name": "Bot", "channels": ["SMS"], "minConfidence": 2.0}, "INVALID", ["minConfidence"]),
        ({"name": "ava", "channels": ["SMS"]}, "TAKEN", ["name"]),
        (
            {"name": "Bot", "channels": ["SMS"], "activeHours": {"timezone": "Nowhere/City", "hours": {}}},
            "INVALID",
            None,
        ),
    ):
        payload = (await inbox.gql(AGENT_CREATE, {"input": fields}))["data"]["aiAgentCreate"]
        assert [e["code"] for e in payload["userErrors"]] == [code], payload
        if field:
            assert payload["userErrors"][0]["field"] == field
    assert [a["name"] for a in (await inbox.gql(AGENTS))["data"]["aiAgents"]] == ["Ava"]
    # SUPPORT may not manage agents
    support = await _member(inbox, "support")
    refused = await inbox.gql(AGENT_CREATE, {"input": {"name": "S", "channels": ["SMS"]}}, support.token)
    assert "may not" in str(refused["errors"])
    assert "errors" in await inbox.gql(AGENTS, token=support.token)
    # another organization neither sees nor changes it
    other = await _foreign(inbox)
    assert (await other.gql(AGENTS))["data"]["aiAgents"] == []
    foreign = (await other.gql(AGENT_DELETE, {"id": agent["id"]}))["data"]["aiAgentDelete"]
    assert [e["code"] for e in foreign["userErrors"]] == ["NOT_FOUND"]
    # delete, audited
    deleted = await inbox.ok(AGENT_DELETE, {"id": agent["id"]}, "aiAgentDelete")
    assert deleted["deletedId"] == agent["id"]
    entries = [(e.action, e.target) for e in await _rows(inbox, AuditEntry) if e.action.startswith("aiAgent")]
    assert sorted(entries) == sorted(
        [("aiAgentCreate", agent["id"]), ("aiAgentUpdate", agent["id"]), ("aiAgentDelete", agent["id"])]
    )


# -- answering through the worker --------------------------------------------------------------------------------


async def test_the_agent_answers_a_whatsapp_question_with_a_citation_through_the_worker(
    inbox: Inbox, provider: StandIn, worker: Any
) -> None:
    # given a knowledge base, WhatsApp, and an agent on it
    configured = await configure_exotel(inbox, provider)
    await _knowledge(inbox)
    await _agent(inbox)
    # when the customer asks on WhatsApp
    began = time.monotonic()
    thread_id, message_id = await _inbound(inbox, configured, "Hi, what time does your office open on Saturday?")
    # then the agent's answer goes out to the provider, quoting the passage and naming its source
    [request] = await provider.wait_for("exotel_whatsapp", 1, timeout=20)
    assert time.monotonic() - began < 20
    sent = str(request.json)
    assert "Saturdays from 10:00 to 14:00 IST" in sent and "Source: Opening hours and contact" in sent
    deadline = time.monotonic() + 10
    while not (replies := await _agent_replies(inbox, thread_id)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    [reply] = replies
    assert reply.idempotency_key == f"aiagent:{message_id}" and reply.channel.name == "WHATSAPP"
    [turn] = await _rows(inbox, AiAgentTurn, AiAgentTurn.message_id == message_id)
    assert (turn.outcome, turn.reply_message_id) == ("ANSWERED", reply.id)
    assert [s["title"] for s in turn.sources] == ["Opening hours and contact"]
    # the agent's own message does not suspend it, and a redelivered job sends nothing twice
    assert await _handle(inbox, reply.id) == "IGNORED"
    assert await _handle(inbox, message_id) == "DONE"
    thread = (await inbox.gql(THREAD, {"id": to_global_id("Thread", thread_id)}))["data"]["thread"]
    assert thread["botSuspendedUntil"] is None and thread["assignee"] is None
    # the message says it is the agent's, and the customer's does not
    marks = await inbox.gql(
        "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Message { sentByAgent direction } } }",
        {"ids": [to_global_id("Message", reply.id), to_global_id("Message", message_id)]},
    )
    assert marks["data"]["nodes"] == [
        {"sentByAgent": True, "direction": "OUTBOUND"},
        {"sentByAgent": False, "direction": "INBOUND"},
    ]


async def test_an_email_question_is_answered_by_email_with_a_re_subject(inbox: Inbox) -> None:
    from banxway.db.session import tenant_session
    from banxway.enums import Channel
    from banxway.resolvers.inbound import message_receive
    from banxway.resolvers.threads import new_thread
    from tests.inbox_helpers import configure_channels

    await configure_channels(inbox, "EMAIL")
    await _knowledge(inbox)
    await _agent(inbox, channels=["EMAIL"], tone="FORMAL")
    async with tenant_session(inbox.api.state.sessionmaker, inbox.org.id) as session, session.begin():
        thread = await new_thread(session, inbox.org.id, subject="Telex release", primary_channel=Channel.EMAIL)
        message = await message_receive(
            session,
            inbox.org.id,
            thread_id=thread.id,
            channel=Channel.EMAIL,
            subject="Telex release",
            body="Dear team,\n\nwhat is a telex release and when can you arrange it?\n\nRegards,\nPriya",
            sender="priya@customer.example",
        )
    outcome = await _handle(inbox, message.id)
    assert outcome == "ANSWERED", [t.reason for t in await _rows(inbox, AiAgentTurn)]
    [reply] = await _agent_replies(inbox, thread.id)
    assert (reply.channel, reply.subject, reply.recipients) == (
        Channel.EMAIL,
        "Re: Telex release",
        ["priya@customer.example"],
    )
    assert reply.body.startswith("Thank you for your message.")
    assert "telex release" in reply.body.lower() and "Source: Shipping documents" in reply.body


# -- handover ----------------------------------------------------------------------------------------------------


async def test_asking_for_a_person_hands_over_with_a_note_a_notification_and_no_answer(
    inbox: Inbox, provider: StandIn
) -> None:
    configured = await configure_exotel(inbox, provider)
    await _knowledge(inbox)
    await _agent(inbox)
    thread_id, message_id = await _inbound(inbox, configured, "I want to talk to a person please")
    # when
    assert await _handle(inbox, message_id) == "HANDED_OVER"
    # then no answer, a note saying why, the admins told, an action to reply, and the agent suspended
    assert await _agent_replies(inbox, thread_id) == []
    [note] = await _rows(inbox, Note, Note.thread_id == thread_id)
    assert "asked for a person" in note.body and note.author_id is None
    notifications = await _rows(inbox, Notification, Notification.thread_id == thread_id)
    assert notifications and all("handed" in n.summary for n in notifications)
    [action] = await _rows(inbox, Action, Action.thread_id == thread_id)
    assert action.title.startswith("Reply to the customer")
    [turn] = await _rows(inbox, AiAgentTurn, AiAgentTurn.message_id == message_id)
    assert turn.outcome == "HANDED_OVER" and "person" in (turn.reason or "")
    thread = (await inbox.gql(THREAD, {"id": to_global_id("Thread", thread_id)}))["data"]["thread"]
    assert thread["botSuspendedUntil"] is not None
    # a redelivered job does nothing more
    assert await _handle(inbox, message_id) == "DONE"
    assert len(await _rows(inbox, Note, Note.thread_id == thread_id)) == 1


async def test_a_complaint_always_goes_to_the_handover_team(inbox: Inbox, provider: StandIn) -> None:
    configured = await configure_exotel(inbox, provider)
    await _knowledge(inbox)
    ops = await _member(inbox, "support", "ops@acme.test")
    team = (await inbox.ok(TEAM_CREATE, {"input": {"name": "Care", "memberIds": [ops.id]}}, "teamCreate"))["team"]
    await _agent(inbox, handoverTeamId=team["id"], handoverKeywords=[])
    body = "This is unacceptable! The cargo arrived damaged and nobody answers. Terrible service, I want to complain."
    thread_id, message_id = await _inbound(inbox, configured, body)
    assert await _handle(inbox, message_id) == "HANDED_OVER"
    thread = (await inbox.gql(THREAD, {"id": to_global_id("Thread", thread_id)}))["data"]["thread"]
    assert thread["assignee"] == {"id": ops.id}
    assert await _agent_replies(inbox, thread_id) == []
    [note] = await _rows(inbox, Note, Note.thread_id == thread_id)
    assert "complains" in note.body
    [notification] = await _rows(inbox, Notification, Notification.thread_id == thread_id)
    assert notification.user_id == local_id(ops.id, "User")


async def test_low_confidence_and_max_turns_hand_over(inbox: Inbox, provider: StandIn) -> None:
    configured = await configure_exotel(inbox, provider)
    await _knowledge(inbox)
    await _agent(inbox, maxTurns=1)
    thread_id, first = await _inbound(inbox, configured, "What are your payment terms for invoices?")
    assert await _handle(inbox, first) == "ANSWERED"
    _, second = await _inbound(inbox, configured, "And how long is a rate quote valid?")
    assert await _handle(inbox, second) == "HANDED_OVER"
    [turn] = await _rows(inbox, AiAgentTurn, AiAgentTurn.message_id == second)
    assert "max turns" in (turn.reason or "")
    # a new conversation: a question the knowledge base does not hold
    async with system_session(inbox.api.state.sessionmaker) as session, session.begin():
        thread = await session.get(Thread, thread_id)
        assert thread is not None
        thread.status = thread.status.__class__.ARCHIVED
    _, third = await _inbound(inbox, configured, "Can you recommend a good restaurant in Hamburg?")
    assert await _handle(inbox, third) == "HANDED_OVER"
    [turn] = await _rows(inbox, AiAgentTurn, AiAgentTurn.message_id == third)
    assert (turn.reason or "").startswith("low confidence")


# -- tools -------------------------------------------------------------------------------------------------------


async def test_a_container_number_is_answered_with_the_shipments_status_and_eta_of_this_organization_only(
    inbox: Inbox, provider: StandIn
) -> None:
    configured = await configure_exotel(inbox, provider)
    await _agent(inbox, handoverKeywords=[])
    other = await _foreign(inbox)
    await other.shipment("OTHER-1", containerNumbers=[CONTAINER], eta="2026-12-20T08:00:00Z")
    # another organization's shipment is never told (no knowledge either: a handover)
    thread_id, message_id = await _inbound(inbox, configured, f"Where is container {CONTAINER}?")
    assert await _handle(inbox, message_id) == "HANDED_OVER"
    assert "OTHER-1" not in str([n.body for n in await _rows(inbox, Note, Note.thread_id == thread_id)])
    # another customer's shipment of our own organization is never told either
    customer, someone_else = await inbox.customer("Tata Steel"), await inbox.customer("Someone Else")
    await inbox.shipment("THEIRS-1", containerNumbers=[CONTAINER], customerId=someone_else["id"])
    thread_gid = to_global_id("Thread", thread_id)
    await inbox.ok(THREAD_UPDATE, {"input": {"threadId": thread_gid, "customerId": customer["id"]}}, "threadUpdate")
    await inbox.gql(RESUME, {"input": {"threadId": thread_gid}})
    _, theirs = await _inbound(inbox, configured, f"Status of container {CONTAINER} please")
    assert await _handle(inbox, theirs) == "HANDED_OVER"
    assert "THEIRS-1" not in str([m.body for m in await _agent_replies(inbox, thread_id)])
    # the thread's customer's own
    await inbox.shipment("SHP-7", containerNumbers=[CONTAINER], eta="2026-12-18T06:30:00Z", customerId=customer["id"])
    await inbox.gql(RESUME, {"input": {"threadId": thread_gid}})
    _, again = await _inbound(inbox, configured, f"Any update on container {CONTAINER}?")
    assert await _handle(inbox, again) == "ANSWERED"
    [reply] = [r for r in await _agent_replies(inbox, thread_id) if r.idempotency_key == f"aiagent:{again}"]
    assert reply.body.startswith("Shipment SHP-7 is ") and "ETA is 18 Dec 2026 06:30 UTC" in reply.body
    [turn] = await _rows(inbox, AiAgentTurn, AiAgentTurn.message_id == again)
    assert {"tool": "shipment_status", "shipment": "SHP-7"}.items() <= turn.tools[-1].items()
    # the set-thread-type tool: a tracking question makes a GENERAL thread a SHIPMENT_UPDATE
    async with system_session(inbox.api.state.sessionmaker) as session:
        assert (await session.get(Thread, thread_id)).type == ThreadType.SHIPMENT_UPDATE  # type: ignore[union-attr]


# -- suspension --------------------------------------------------------------------------------------------------


async def test_a_persons_reply_suspends_the_agent_until_resumed(inbox: Inbox, provider: StandIn) -> None:
    configured = await configure_exotel(inbox, provider)
    await _knowledge(inbox)
    await _agent(inbox)
    thread_id, first = await _inbound(inbox, configured, "What is a telex release?")
    global_thread = to_global_id("Thread", thread_id)
    # when a person replies on the thread
    human = await inbox.send(global_thread, "Hello, Priya here, I'll take care of this.", channel="WHATSAPP")
    assert await _handle(inbox, local_id(human["id"], "Message")) == "SUSPENDED"  # type: ignore[arg-type]
    suspended = (await inbox.gql(THREAD, {"id": global_thread}))["data"]["thread"]["botSuspendedUntil"]
    assert suspended is not None
    # then the agent stays silent on the customer's messages
    assert await _handle(inbox, first) == "BOT_SUSPENDED"
    _, second = await _inbound(inbox, configured, "And when is the bill of lading issued?")
    assert await _handle(inbox, second) == "BOT_SUSPENDED"
    assert await _agent_replies(inbox, thread_id) == []
    # until someone resumes it
    resumed = await inbox.ok(RESUME, {"input": {"threadId": global_thread}}, "threadBotResume")
    assert resumed["thread"]["botSuspendedUntil"] is None
    _, third = await _inbound(inbox, configured, "When is the bill of lading issued?")
    assert await _handle(inbox, third) == "ANSWERED"
    assert len(await _agent_replies(inbox, thread_id)) == 1
    # another organization cannot resume it
    other = await _foreign(inbox)
    payload = (await other.gql(RESUME, {"input": {"threadId": global_thread}}))["data"]["threadBotResume"]
    assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"]


async def test_no_answer_on_an_assigned_thread_or_a_channel_the_agent_does_not_answer(
    inbox: Inbox, provider: StandIn
) -> None:
    configured = await configure_exotel(inbox, provider)
    await _knowledge(inbox)
    agent = await _agent(inbox, channels=["SMS"])
    _, message_id = await _inbound(inbox, configured, "What is a telex release?")
    assert await _handle(inbox, message_id) == "NO_AGENT"
    await inbox.ok(AGENT_UPDATE, {"input": {"id": agent["id"], "channels": ["WHATSAPP"]}}, "aiAgentUpdate")
    thread_id, message_id = await _inbound(inbox, configured, "What is a telex release?")
    me = (await inbox.gql("{ me { id } }"))["data"]["me"]["id"]
    assign = "mutation($input: ThreadAssignInput!) { threadAssign(input: $input) { userErrors { code } } }"
    await inbox.gql(assign, {"input": {"threadId": to_global_id("Thread", thread_id), "assigneeId": me}})
    assert await _handle(inbox, message_id) == "ASSIGNED"
    # outside its active hours (open only the day after tomorrow) it does not answer either
    closed_day = WEEKDAYS[(datetime.now(UTC).weekday() + 2) % 7]
    hours = {"timezone": "UTC", "hours": {closed_day: [["09:00", "17:00"]]}}
    await inbox.ok(AGENT_UPDATE, {"input": {"id": agent["id"], "activeHours": hours}}, "aiAgentUpdate")
    _, later = await _inbound(inbox, configured, "Another question: what is a telex release?", sid="wa-hours")
    assert await _handle(inbox, later) == "NO_AGENT"


# -- a generative answer -----------------------------------------------------------------------------------------


async def test_with_a_model_the_answer_is_generated_from_the_retrieved_chunks(
    inbox: Inbox, provider: StandIn, settings: Any
) -> None:
    configured = await configure_exotel(inbox, provider)
    await _knowledge(inbox)
    await _agent(inbox, tone="CONCISE")
    async with openai_server() as standin:
        with_model = settings.model_copy(
            update={"openai_api_key": standin.api_key, "openai_base_url": standin.base_url, "agent_model": "gpt-x"}
        )
        standin.reply_next("We open at 10:00 on Saturdays [1].")
        thread_id, message_id = await _inbound(inbox, configured, "What time does your office open on Saturday?")
        assert await _handle(inbox, message_id, with_model) == "ANSWERED"
        [request] = standin.requests
    assert request.json["model"] == "gpt-x"
    system = request.json["messages"][0]["content"]
    assert "Saturdays from 10:00 to 14:00 IST" in system and "[1] Opening hours and contact" in system
    assert "Be as short as possible." in system
    [reply] = await _agent_replies(inbox, thread_id)
    assert reply.body.startswith("We open at 10:00 on Saturdays [1].")
    assert "Sources:\n[1] Opening hours and contact" in reply.body
    # a provider that refuses (4xx) makes a handover, not silence
    async with openai_server() as standin:
        refusing = settings.model_copy(
            update={"openai_api_key": standin.api_key, "openai_base_url": standin.base_url, "agent_model": "gpt-x"}
        )
        standin.fail_next(400, message="bad request")
        _, again = await _inbound(inbox, configured, "And when is the bill of lading issued?")
        assert await _handle(inbox, again, refusing) == "HANDED_OVER"
    [turn] = await _rows(inbox, AiAgentTurn, AiAgentTurn.message_id == again)
    assert turn.reason == "the AI provider did not answer (AI_REFUSED)"
    # an organization whose monthly AI tokens are spent hands over without calling the provider
    async with openai_server() as standin:
        spent = settings.model_copy(
            update={
                "openai_api_key": standin.api_key,
                "openai_base_url": standin.base_url,
                "agent_model": "gpt-x",
                "ai_monthly_token_budget": 1,  # the first answer above already spent more
            }
        )
        await inbox.gql(RESUME, {"input": {"threadId": to_global_id("Thread", thread_id)}})
        _, third = await _inbound(inbox, configured, "What time does your office open on Sunday?")
        assert await _handle(inbox, third, spent) == "HANDED_OVER"
        assert standin.requests == []
    [turn] = await _rows(inbox, AiAgentTurn, AiAgentTurn.message_id == third)
    assert turn.reason == "the AI budget is spent (BUDGET_EXCEEDED)"


# -- the corpus --------------------------------------------------------------------------------------------------


async def test_the_built_in_agent_cites_the_expected_source_for_most_corpus_questions(inbox: Inbox) -> None:
    ctx = await _admin_context(inbox)
    try:
        await load(ctx)
        results = await evaluate(ctx)
    finally:
        await ctx.aclose()
    assert len(results) == len(QUESTIONS) >= 20
    misses = [(r.question, r.cited, round(r.confidence, 2)) for r in results if r.cited != r.expected]
    # 1.00 and 1.00 when measured (bench/agent.py); the floor leaves room for a changed stemmer or corpus
    assert precision_at_1(results) >= 0.85, misses
    assert handover_accuracy(results) >= 0.66, misses
