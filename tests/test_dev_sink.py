"""The development sink (BANXWAY_DEV_SINK, issue 18): a send on a channel with no account or number of its own
goes to the sink, turns SENT, then DELIVERED (and READ on WhatsApp; a call is answered and completed) on a
realistic schedule, with the same MESSAGE_STATUS_CHANGED events a provider's callbacks give, live; the outbox
(`devOutbox`, `GET /dev/outbox`) lists it for its organization only; production refuses all of it. Without the
sink, messageSend on a channel the organization has not configured fails at once with CHANNEL_NOT_CONFIGURED and
writes nothing. The demo (`seed_demo`, as `serve --demo` runs it) has no FAILED message; tests/test_cli.py runs the
real `serve --demo`."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from banxway.db.models import Event, Message
from banxway.db.session import system_session
from banxway.enums import Channel, Direction, MessageStatus
from banxway.extraction import container_check_digit
from banxway.resolvers import dev_sink
from banxway.resolvers.demo import seed_demo
from banxway.settings import Settings, SettingsError, load_settings
from banxway.state import AppState
from tests.conftest import SECRET, Api, Org, http_client
from tests.inbox_helpers import (
    EMAIL_ACCOUNT_CREATE,
    Inbox,
    _errors,
    _foreign,
    _member,
    configure_channels,
    open_whatsapp_window,
    system_context,
)
from tests.live_helpers import GraphQLSocket, local_uuid, uvicorn_server, wait_subscribed
from tests.messaging_helpers import CUSTOMER_PHONE, MESSAGE, SEND, deliver_now, send, whatsapp_thread
from tests.standins.mailservers import SmtpServer

OUTBOX = """
query($first: Int! = 50) {
  devOutbox(first: $first) {
    message { id status } channel status sender recipients subject body threadReference createdAt updatedAt
  }
}
"""
CALL_START = """
mutation($input: CallStartInput!) {
  callStart(input: $input) { message { id status channel recipients } userErrors { field code message } }
}
"""
CONFIGURATION = "{ configurationStatus { channel ready missing } }"
CUSTOMER_EMAIL = "priya.shah@oceanic.test"


@pytest.fixture
def dev_sink_on() -> bool:
    """Whether the test's settings turn the sink on (a test parametrizes `dev_sink_on` to turn it off)."""
    return True


@pytest.fixture
def settings(database_url: str, clean_redis: str, tmp_path: Path, dev_sink_on: bool) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=clean_redis,
        data_dir=tmp_path / "data",
        secret_key=SECRET,
        env="development",
        dev_sink=dev_sink_on,
    )


SINK_OFF = pytest.mark.parametrize("dev_sink_on", [False], ids=["no-sink"])


# -- helpers ------------------------------------------------------------------------------------------------


async def email_thread(inbox: Inbox) -> dict:
    contact = await inbox.contact(
        "Priya Shah",
        identities=[
            {"channel": "EMAIL", "address": CUSTOMER_EMAIL},
            {"channel": "WHATSAPP", "address": CUSTOMER_PHONE},
            {"channel": "SMS", "address": CUSTOMER_PHONE},
        ],
    )
    return await inbox.thread("Quote 2x40HC Nhava Sheva", contactId=contact["id"])


async def sent(inbox: Inbox, thread_id: str, channel: str, body: str = "Your container sailed.", **fields: Any) -> dict:
    payload = await send(inbox, thread_id, channel, body, **fields)
    assert payload["userErrors"] == [], payload
    return payload["message"]


async def stored(state: AppState, message_id: str) -> Message:
    async with system_session(state.sessionmaker) as session:
        message = await session.get(Message, local_uuid(message_id))
        assert message is not None
        return message


async def status_events(state: AppState, message_id: str) -> list[tuple[str, datetime, bool]]:
    """(status, when, relayed) of the message's MESSAGE_STATUS_CHANGED events, in order."""
    async with system_session(state.sessionmaker) as session:
        rows = await session.scalars(select(Event).where(Event.type == "MESSAGE_STATUS_CHANGED").order_by(Event.id))
        wanted = str(local_uuid(message_id))
        return [
            (r.payload["status"], r.created_at, r.dispatched_at is not None)
            for r in rows
            if r.payload["message_id"] == wanted
        ]


async def wait_status(state: AppState, message_id: str, status: MessageStatus, within: float = 20.0) -> Message:
    deadline = time.monotonic() + within
    while (message := await stored(state, message_id)).status != status:
        assert time.monotonic() < deadline, f"{message.status.name} after {within} s, expected {status.name}"
        await asyncio.sleep(0.1)
    return message


async def outbox(inbox: Inbox, token: str | None = None, **variables: Any) -> list[dict]:
    result = await inbox.gql(OUTBOX, variables, token)
    assert "errors" not in result, result
    return result["data"]["devOutbox"]


def production_state(state: AppState, settings: Settings, **changes: Any) -> tuple[Settings, AppState]:
    """The same databases, served in production (settings copied past their validation, as a bypass would be)."""
    production = settings.model_copy(update={"env": "production", **changes})
    return production, dataclasses.replace(state, settings=production)


@pytest.fixture
async def production_api(settings: Settings, state: AppState) -> AsyncIterator[Api]:
    production, served = production_state(state, settings)
    async with http_client(production, served) as http:
        yield Api(http, served)


# -- the schedule, end to end with a worker -------------------------------------------------------------------


async def test_a_whatsapp_message_goes_to_the_sink_and_turns_delivered_then_read_live(
    inbox: Inbox, settings: Settings, state: AppState, org: Org, worker: Any
) -> None:
    # given an organization with no WhatsApp number, a customer who wrote within 24 hours, and a client
    # subscribed to the inbox's events
    thread = await whatsapp_thread(inbox)
    await open_whatsapp_window(inbox, CUSTOMER_PHONE)
    subscription = "subscription { inboxEvents { type message { id status } } }"
    async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(inbox.token)
        await socket.subscribe("inbox", subscription)
        await wait_subscribed(state, org.id, 1)
        # when a WhatsApp message is sent
        message = await sent(inbox, thread["id"], "WHATSAPP", "Vessel departed; ETA Hamburg in 18 days.")
        assert message["status"] == "QUEUED"
        # then the client sees its status change live: SENDING, SENT, DELIVERED, READ
        changes = 0
        while changes < 4:
            _, event = await socket.next(within=20)
            if event["type"] == "MESSAGE_STATUS_CHANGED" and event["message"]["id"] == message["id"]:
                changes += 1
    row = await wait_status(state, message["id"], MessageStatus.READ, within=1)
    assert row.error is None and row.provider_message_id and row.provider_message_id.startswith("dev-sink-")
    # recorded and relayed as a provider's callbacks are, on the sink's schedule (2 s, then 3 s)
    events = await status_events(state, message["id"])
    assert [status for status, _, _ in events] == ["SENDING", "SENT", "DELIVERED", "READ"]
    assert all(relayed for _, _, relayed in events)
    times = {status: at for status, at, _ in events}
    assert (times["DELIVERED"] - times["SENT"]).total_seconds() >= 1.5
    assert (times["READ"] - times["DELIVERED"]).total_seconds() >= 2.5
    # and the message shows it
    assert (await inbox.gql(MESSAGE, {"id": message["id"]}))["data"]["node"]["status"] == "READ"


async def test_an_email_and_an_sms_turn_delivered_and_not_read(inbox: Inbox, state: AppState, worker: Any) -> None:
    # given an organization with no email account and no SMS number
    thread = await email_thread(inbox)
    # when an email and an SMS are sent
    email = await sent(inbox, thread["id"], "EMAIL", "Our quote: USD 2,150.", subject="Quote")
    sms = await sent(inbox, thread["id"], "SMS", "Your container is out.")
    # then both are delivered by the sink, and stay DELIVERED (neither has read receipts)
    for message in (email, sms):
        await wait_status(state, message["id"], MessageStatus.DELIVERED)
    await asyncio.sleep(4)  # past when a READ would have come
    for message in (email, sms):
        assert [s for s, _, _ in await status_events(state, message["id"])] == ["SENDING", "SENT", "DELIVERED"]
    # an email gets a Message-ID, as a mail server keeps it (a reply threads on it)
    row = await stored(state, email["id"])
    assert row.provider_message_id and row.provider_message_id.endswith(f"@{dev_sink.SINK_DOMAIN}>")
    assert row.email_account_id is None


async def test_a_call_goes_to_the_sink_and_is_answered_and_completed(
    inbox: Inbox, state: AppState, worker: Any
) -> None:
    # given a contact with a phone number, and no Exotel number to call from
    thread = await whatsapp_thread(inbox)
    # when a call is started
    result = await inbox.gql(CALL_START, {"input": {"threadId": thread["id"], "agentNumber": "+919820099999"}})
    payload = result["data"]["callStart"]
    assert payload["userErrors"] == [], payload
    call = payload["message"]
    assert (call["channel"], call["status"], call["recipients"]) == ("VOICE", "QUEUED", [CUSTOMER_PHONE])
    # then the sink places it: SENT, and some seconds later answered and completed, as a status callback says
    await wait_status(state, call["id"], MessageStatus.DELIVERED)
    node = (await inbox.gql(MESSAGE, {"id": call["id"]}))["data"]["node"]
    assert node["call"] == {
        "status": "completed",
        "durationSeconds": dev_sink.CALL_SECONDS,
        "recorded": False,
        "transcript": None,
        "transcriptError": None,
    }
    assert node["body"] == f"Call to {CUSTOMER_PHONE} (0:05). No recording."
    assert [s for s, _, _ in await status_events(state, call["id"])] == ["SENDING", "SENT", "DELIVERED"]
    async with system_session(state.sessionmaker) as session:
        updated = list(await session.scalars(select(Event).where(Event.type == "MESSAGE_UPDATED")))
    assert [e.payload["changed"] for e in updated if e.payload["message_id"] == str(local_uuid(call["id"]))] == [
        ["call", "body"]
    ]


@SINK_OFF
async def test_without_the_sink_a_call_with_no_number_is_refused(inbox: Inbox) -> None:
    thread = await whatsapp_thread(inbox)
    result = await inbox.gql(CALL_START, {"input": {"threadId": thread["id"], "agentNumber": "+919820099999"}})
    assert _errors(result["data"]["callStart"]) == [("INVALID", ["agentNumber"])]


# -- the state machine, step by step (no worker) -----------------------------------------------------------------


async def test_the_sink_steps_forward_only_and_says_what_comes_next(
    inbox: Inbox, settings: Settings, state: AppState
) -> None:
    thread = await whatsapp_thread(inbox)
    await open_whatsapp_window(inbox, CUSTOMER_PHONE)
    message = await sent(inbox, thread["id"], "WHATSAPP", "Hi")
    ctx = system_context(state, settings)
    message_id = local_uuid(message["id"])
    # QUEUED: nothing to report yet
    assert await dev_sink.dev_sink_next_step(ctx, message_id) is None
    # delivered by the sink: SENT, and DELIVERED comes in 2 s
    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT
    assert await dev_sink.dev_sink_next_step(ctx, message_id) == dev_sink.SinkStep(
        message_id, MessageStatus.DELIVERED, 2000
    )
    # a report changes the status once, however often it comes (a redelivered job)
    step = await dev_sink.dev_sink_advance(ctx, message_id, MessageStatus.DELIVERED)
    assert step == dev_sink.SinkStep(message_id, MessageStatus.READ, 3000)
    assert await dev_sink.dev_sink_advance(ctx, message_id, MessageStatus.DELIVERED) == step
    assert await dev_sink.dev_sink_advance(ctx, message_id, MessageStatus.READ) is None
    assert await dev_sink.dev_sink_advance(ctx, message_id, MessageStatus.DELIVERED) is None  # READ stays
    assert [s for s, _, _ in await status_events(state, message["id"])] == ["SENDING", "SENT", "DELIVERED", "READ"]
    # a message the sink did not deliver is none of its business
    internal = await sent(inbox, thread["id"], "INTERNAL", "FYI")
    assert await dev_sink.dev_sink_advance(ctx, local_uuid(internal["id"]), MessageStatus.DELIVERED) is None
    assert (await stored(state, internal["id"])).status == MessageStatus.SENT


async def test_a_message_with_an_account_of_its_own_is_not_the_sinks(
    inbox: Inbox, settings: Settings, state: AppState, smtp_server: SmtpServer
) -> None:
    # given an organization with an email account (the sink on)
    account = {
        "name": "Operations",
        "email": "ops@acme.test",
        "imapHost": "127.0.0.1",
        "imapPort": 143,
        "imapSecurity": "NONE",
        "imapUsername": "nobody",
        "imapPassword": "unused",
        "smtpHost": smtp_server.host,
        "smtpPort": smtp_server.port,
        "smtpSecurity": "NONE",
        "smtpUsername": smtp_server.user,
        "smtpPassword": smtp_server.password,
    }
    await inbox.ok(EMAIL_ACCOUNT_CREATE, {"input": account}, "emailAccountCreate")
    thread = await email_thread(inbox)
    # when an email is sent and delivered
    message = await sent(inbox, thread["id"], "EMAIL", "Our quote.")
    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT
    # then it went to the mail server, not to the sink
    assert len(smtp_server.messages) == 1
    assert await outbox(inbox) == []


# -- the outbox: the query and the page ---------------------------------------------------------------------------


async def test_the_outbox_lists_what_the_sink_delivered_for_the_viewers_organization_only(
    inbox: Inbox, settings: Settings, state: AppState
) -> None:
    # given two messages sent through the sink, one still queued, and another organization
    thread = await email_thread(inbox)
    email = await sent(inbox, thread["id"], "EMAIL", "Our quote: USD 2,150.", subject="Quote")
    sms = await sent(inbox, thread["id"], "SMS", "Your container is out.")
    queued = await sent(inbox, thread["id"], "SMS", "Not delivered yet.")
    for message in (email, sms):
        assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT
    globex = await _foreign(inbox)
    # when the outbox is read
    items = await outbox(inbox)
    # then it lists the delivered ones, newest first, with what was sent
    assert [item["message"]["id"] for item in items] == [sms["id"], email["id"]]
    assert items[1] | {"createdAt": None, "updatedAt": None} == {
        "message": {"id": email["id"], "status": "SENT"},
        "channel": "EMAIL",
        "status": "SENT",
        "sender": inbox.org.admin_email,
        "recipients": [CUSTOMER_EMAIL],
        "subject": "Quote",
        "body": "Our quote: USD 2,150.",
        "threadReference": thread["reference"],
        "createdAt": None,
        "updatedAt": None,
    }
    assert queued["id"] not in {item["message"]["id"] for item in items}
    assert [item["message"]["id"] for item in await outbox(inbox, first=1)] == [sms["id"]]
    # any signed-in user of the organization may read it; another organization sees nothing of it
    viewer = await _member(inbox, "viewer")
    assert len(await outbox(inbox, viewer.token)) == 2
    assert await outbox(globex) == []
    # first is bounded
    result = await inbox.gql(OUTBOX, {"first": 101})
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    anonymous = await inbox.api.gql(OUTBOX)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_the_outbox_page_needs_a_token_and_escapes_what_it_shows(
    inbox: Inbox, settings: Settings, state: AppState
) -> None:
    # given a message through the sink whose text is markup
    thread = await email_thread(inbox)
    body = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    message = await sent(inbox, thread["id"], "EMAIL", body, subject="<b>Quote</b>")
    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT
    http = inbox.api.http
    # without a token, or with a bad one: 401, nothing listed
    for response in (
        await http.get("/dev/outbox"),
        await http.get("/dev/outbox?token=not-a-token"),
        await http.get("/dev/outbox", headers={"authorization": "Bearer not-a-token"}),
    ):
        assert response.status_code == 401, response.text
        assert "alert" not in response.text and "Quote" not in response.text
    # with the access token, in the query (a browser's address bar) or the header
    by_query = await http.get(f"/dev/outbox?token={inbox.token}")
    by_header = await http.get("/dev/outbox", headers={"authorization": f"Bearer {inbox.token}"})
    for response in (by_query, by_header):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-store"
        policy = response.headers["content-security-policy"]
        assert policy.startswith("default-src 'none'") and "script-src" not in policy
        page = response.text
        # the message is there, escaped: no markup of the sender's runs
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in page
        assert "&lt;b&gt;Quote&lt;/b&gt;" in page
        assert "<script" not in page and "<img" not in page and "<b>" not in page
        assert CUSTOMER_EMAIL in page and "SENT" in page and "EMAIL" in page
    for bad in ("0", "101", "many"):
        assert (await http.get(f"/dev/outbox?token={inbox.token}&first={bad}")).status_code == 400
    # another organization's user sees an empty outbox
    globex = await _foreign(inbox)
    theirs = await http.get(f"/dev/outbox?token={globex.token}")
    assert theirs.status_code == 200 and "alert" not in theirs.text and "Nothing yet." in theirs.text


async def test_in_production_the_outbox_query_and_page_do_not_exist(inbox: Inbox, production_api: Api) -> None:
    result = await production_api.gql(OUTBOX, token=inbox.token)
    assert result["data"] is None
    [error] = result["errors"]
    assert error["extensions"] == {"code": "DEVELOPMENT_ONLY"}
    assert "production" in error["message"]
    for response in (
        await production_api.http.get(f"/dev/outbox?token={inbox.token}"),
        await production_api.http.get("/dev/outbox", headers={"authorization": f"Bearer {inbox.token}"}),
        await production_api.http.get("/dev/outbox"),
    ):
        assert response.status_code == 404
    simulated = await production_api.gql(
        DEV_INBOUND, {"input": {"channel": "SMS", "from": "+919876500011", "body": "hi"}}, token=inbox.token
    )
    assert simulated["data"] is None and simulated["errors"][0]["extensions"] == {"code": "DEVELOPMENT_ONLY"}


# -- refused in production ------------------------------------------------------------------------------------------


def test_production_settings_refuse_the_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANXWAY_PASSWORD_HASHING", "standard")
    base = {"BANXWAY_ENV": "production", "BANXWAY_SECRET_KEY": SECRET}
    with pytest.raises(SettingsError, match="BANXWAY_DEV_SINK"):
        load_settings(**base, BANXWAY_DEV_SINK="true")
    assert load_settings(**base).dev_sink_enabled is False
    assert load_settings(BANXWAY_DEV_SINK="true").dev_sink_enabled is True
    # a production setting that came by another way is ignored all the same
    forced = load_settings(**base).model_copy(update={"dev_sink": True})
    assert forced.dev_sink and not forced.dev_sink_enabled


async def test_in_production_a_send_with_no_account_is_refused_and_a_queued_one_is_not_sunk(
    inbox: Inbox, settings: Settings, state: AppState
) -> None:
    # given a production server whose settings say dev_sink (past their validation)
    production, served = production_state(state, settings, dev_sink=True)
    thread = await email_thread(inbox)
    queued = await sent(inbox, thread["id"], "EMAIL", "Queued in development.")
    async with http_client(production, served) as http:
        api = Api(http, served)
        # when an email is sent with no account: refused as if there were no sink
        result = await api.gql(
            SEND, {"input": {"threadId": thread["id"], "channel": "EMAIL", "body": "Hi"}}, inbox.token
        )
        assert _errors(result["data"]["messageSend"]) == [("CHANNEL_NOT_CONFIGURED", ["channel"])]
    # and a message queued with no account is failed by a production worker, not delivered to the sink
    assert await deliver_now(served, production, queued["id"]) == MessageStatus.FAILED
    row = await stored(state, queued["id"])
    assert row.error and "No email account" in row.error


# -- CHANNEL_NOT_CONFIGURED (no sink) --------------------------------------------------------------------------------


@SINK_OFF
@pytest.mark.parametrize("channel", ["EMAIL", "WHATSAPP", "SMS"])
async def test_a_channel_that_is_not_configured_is_refused_at_once_and_nothing_is_written(
    inbox: Inbox, state: AppState, channel: str
) -> None:
    # given an organization with no email account and no integration (the customer wrote on WhatsApp)
    thread = await email_thread(inbox)
    await open_whatsapp_window(inbox, CUSTOMER_PHONE)
    async with system_session(state.sessionmaker) as session:
        before = len(list(await session.scalars(select(Event.id))))
    # when a message is sent on the channel
    payload = await send(inbox, thread["id"], channel, "Hi")
    # then CHANNEL_NOT_CONFIGURED names the channel, with what configurationStatus says is missing
    assert payload["message"] is None
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("CHANNEL_NOT_CONFIGURED", ["channel"])
    assert error["message"].startswith(f"{channel} is not configured")
    status = (await inbox.gql(CONFIGURATION))["data"]["configurationStatus"]
    [readiness] = [s for s in status if s["channel"] == channel]
    assert not readiness["ready"]
    assert readiness["missing"][0] in error["message"]
    # and nothing was written: no outbound message, no event
    async with system_session(state.sessionmaker) as session:
        outbound = await session.scalars(select(Message).where(Message.direction == Direction.OUTBOUND))
        assert list(outbound) == []
        assert len(list(await session.scalars(select(Event.id)))) == before
    # internal messages need no configuration
    assert (await sent(inbox, thread["id"], "INTERNAL", "FYI"))["status"] == "SENT"


@SINK_OFF
async def test_a_configured_channel_is_sent_and_one_without_a_number_is_still_refused(inbox: Inbox) -> None:
    # given an email account and an integration with an SMS number only
    await configure_channels(inbox, "EMAIL", "SMS")
    thread = await email_thread(inbox)
    await open_whatsapp_window(inbox, CUSTOMER_PHONE)
    # then EMAIL and SMS are queued
    assert (await sent(inbox, thread["id"], "EMAIL", "Hi"))["status"] == "QUEUED"
    assert (await sent(inbox, thread["id"], "SMS", "Hi"))["status"] == "QUEUED"
    # and WhatsApp, which has no number, is refused: the integration alone does not make it configured
    payload = await send(inbox, thread["id"], "WHATSAPP", "Hi")
    assert _errors(payload) == [("CHANNEL_NOT_CONFIGURED", ["channel"])]
    assert "a phone number for WHATSAPP" in payload["userErrors"][0]["message"]


async def test_with_the_sink_a_channel_that_is_not_configured_is_queued(inbox: Inbox) -> None:
    thread = await email_thread(inbox)
    for channel in ("EMAIL", "SMS"):
        assert (await sent(inbox, thread["id"], channel, "Hi"))["status"] == "QUEUED"


# -- the demo ---------------------------------------------------------------------------------------------------------


async def _demo_outbound(state: AppState) -> list[Message]:
    async with system_session(state.sessionmaker) as session:
        return list(
            await session.scalars(
                select(Message).where(Message.direction == Direction.OUTBOUND, Message.channel != Channel.INTERNAL)
            )
        )


async def test_the_demo_sends_through_the_sink_and_nothing_fails(state: AppState, worker: Any) -> None:
    # when the demo is seeded as `serve --demo` does (the sink on)
    login = await seed_demo(state)
    assert login.replies_skipped == 0
    # then its replies are sent, and delivered (WhatsApp: read) within seconds; none fails
    deadline = time.monotonic() + 30
    while True:
        messages = await _demo_outbound(state)
        assert len(messages) == 5
        assert not [m for m in messages if m.status == MessageStatus.FAILED], [(m.body, m.error) for m in messages]
        final = {m.channel.name: [] for m in messages}
        for m in messages:
            final[m.channel.name].append(m.status)
        done = final["WHATSAPP"] == [MessageStatus.READ] * 2 and all(
            s == MessageStatus.DELIVERED for c in ("EMAIL", "SMS") for s in final[c]
        )
        if done:
            break
        assert time.monotonic() < deadline, final
        await asyncio.sleep(0.2)


@SINK_OFF
async def test_without_the_sink_the_demo_skips_its_replies_instead_of_failing_them(state: AppState) -> None:
    login = await seed_demo(state)
    assert login.replies_skipped == 5
    assert await _demo_outbound(state) == []


DEV_INBOUND = """
mutation($input: DevInboundInput!) {
  devInboundMessage(input: $input) {
    message { id thread { id } } userErrors { field code message }
  }
}
"""
LINKED = "query($id: ID!) { node(id: $id) { ... on Thread { intent shipment { reference } } } }"


async def test_a_simulated_whatsapp_naming_a_demo_container_links_its_thread_within_seconds(
    state: AppState, api: Api, worker: Any
) -> None:
    login = await seed_demo(state)
    token = await api.token(login.email, login.password)
    container = "MSCU 412093" + str(container_check_digit("MSCU412093"))
    result = await api.gql(
        DEV_INBOUND,
        {"input": {"channel": "WHATSAPP", "from": "+919876500011", "body": f"where is {container}? need ETA pls"}},
        token,
    )
    payload = result["data"]["devInboundMessage"]
    assert payload["userErrors"] == [], payload
    thread_id = payload["message"]["thread"]["id"]
    started = time.monotonic()
    while (thread := (await api.gql(LINKED, {"id": thread_id}, token))["data"]["node"])["shipment"] is None:
        assert time.monotonic() - started < 10, thread
        await asyncio.sleep(0.1)
    assert thread == {"intent": "TRACKING", "shipment": {"reference": "SE-2026-0417"}}
    bad = await api.gql(DEV_INBOUND, {"input": {"channel": "EMAIL", "from": "x", "body": "hi"}}, token)
    assert [e["field"] for e in bad["data"]["devInboundMessage"]["userErrors"]] == [["channel"]]
    bad = await api.gql(DEV_INBOUND, {"input": {"channel": "SMS", "from": "12", "body": "hi"}}, token)
    assert [e["field"] for e in bad["data"]["devInboundMessage"]["userErrors"]] == [["from"]]


@SINK_OFF
async def test_simulated_customer_messages_need_the_sink(api: Api, org: Org) -> None:
    token = await api.token(org.admin_email)
    result = await api.gql(DEV_INBOUND, {"input": {"channel": "SMS", "from": "+919876500011", "body": "hi"}}, token)
    assert [e["code"] for e in result["data"]["devInboundMessage"]["userErrors"]] == ["INVALID"]
