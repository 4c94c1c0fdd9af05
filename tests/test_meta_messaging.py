"""Facebook Messenger and Instagram through the Meta Graph API, against a stand-in that speaks its wire format
(tests/standins/meta_graph.py): configuration and roles, the webhook's verification handshake and signature,
inbound messages into threads (idempotent per `mid`, also concurrently), the Send API inside and outside the
24-hour window, delivery and read receipts, graceful degradation when Meta is down (FAILED with the reason, then
`messageRetry`), the long-lived page token's refresh, and tenancy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from banxway.db.models import Contact, ContactIdentity, Event, Integration, Message, MetaAccount, Notification, Thread
from banxway.db.session import system_session
from banxway.enums import Channel, MessageStatus, NotificationType
from banxway.resolvers.meta import refresh_page_token, tokens_to_refresh
from banxway.resolvers.sending import RetryLater
from banxway.settings import Settings
from banxway.state import AppState
from banxway.tasks import actors, consequences
from tests.conftest import Api, Org
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import local_uuid
from tests.messaging_helpers import CONFIGURE, deliver_now, message, message_global_id, send
from tests.standins.meta_graph import (
    MetaGraph,
    delivery,
    hub_signature,
    instagram_text,
    messenger_text,
    meta_graph,
    read,
)

IG_ACCOUNT = "1784000000000001"
PSID = "2400000000000001"
IGSID = "3500000000000001"
VERIFY_TOKEN = "verify-me-please"

RETRY = """
mutation($input: MessageRetryInput!) {
  messageRetry(input: $input) { message { id status error } userErrors { field code message } }
}
"""
CONTACT_NODE = "query($id: ID!) { node(id: $id) { ... on Contact { id identities { channel address } } } }"
INTEGRATIONS = "{ integrations { type meta { instagramAccountId tokenExpiresAt tokenRefreshedAt tokenError } } }"
VISIBLE = "{ threads(first: 50) { totalCount } contacts(first: 50) { totalCount } }"


@pytest.fixture
async def graph() -> AsyncIterator[MetaGraph]:
    async with meta_graph() as server:
        yield server


async def configure_meta(inbox: Inbox, graph: MetaGraph, **fields: Any) -> dict:
    values = {
        "type": "META",
        "accountSid": graph.page_id,
        "apiKey": graph.app_id,
        "apiToken": graph.token,
        "appSecret": graph.app_secret,
        "verifyToken": VERIFY_TOKEN,
        "instagramAccountId": IG_ACCOUNT,
        "baseUrl": graph.base_url,
        **fields,
    }
    return await inbox.ok(CONFIGURE, {"input": values}, "integrationConfigure")


def hook_of(configured: dict) -> str:
    [url] = [u["url"] for u in configured["webhookUrls"] if u["url"].endswith("/events")]
    assert "/webhooks/meta/" in url
    return url


async def post_signed(inbox: Inbox, hook: str, payload: dict, secret: str | None = "app-secret-1") -> Any:
    body = orjson.dumps(payload)
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["x-hub-signature-256"] = hub_signature(secret, body)
    return await inbox.api.http.post(hook, content=body, headers=headers)


async def count(state: AppState, model: Any) -> int:
    async with system_session(state.sessionmaker) as session:
        return await session.scalar(select(func.count()).select_from(model))


async def by_mid(state: AppState, mid: str) -> Message | None:
    async with system_session(state.sessionmaker) as session:
        return await session.scalar(select(Message).where(Message.provider_message_id == mid))


async def customer_wrote(inbox: Inbox, state: AppState, hook: str, text: str = "Where is my container?") -> Message:
    """The customer writes on Messenger (opens the 24-hour window); the stored message."""
    payload = messenger_text("1000000000000001", PSID, text)
    response = await post_signed(inbox, hook, payload)
    assert response.status_code == 200, response.text
    row = await by_mid(state, payload["entry"][0]["messaging"][0]["message"]["mid"])
    assert row is not None
    return row


async def messenger_thread_id(state: AppState, row: Message) -> str:
    from banxway.schema.ids import to_global_id

    return to_global_id("Thread", row.thread_id)


# -- configuration and roles ---------------------------------------------------------------------------------------


async def test_an_admin_configures_meta_and_other_roles_may_not(
    api: Api, inbox: Inbox, org: Org, graph: MetaGraph, state: AppState
) -> None:
    # given / when
    configured = await configure_meta(inbox, graph)
    # then
    assert configured["integration"]["type"] == "META"
    assert configured["integration"]["accountSid"] == graph.page_id
    assert hook_of(configured).startswith("http")
    async with system_session(state.sessionmaker) as session:
        account = await session.scalar(select(MetaAccount))
    assert account is not None and account.instagram_account_id == IG_ACCOUNT
    assert graph.app_secret not in account.app_secret and VERIFY_TOKEN not in account.verify_token  # encrypted
    assert state.box.decrypt(account.app_secret) == graph.app_secret
    # a support agent may not configure it
    await api.create_user(org, "agent@acme.test", "support")
    agent = await api.token("agent@acme.test")
    result = await inbox.gql(CONFIGURE, {"input": {"type": "META", "verifyToken": "x"}}, token=agent)
    assert result["errors"][0]["extensions"] == {"code": "FORBIDDEN"}, result


STATUS = "{ configurationStatus { channel ready missing } }"


async def test_configuration_status_says_what_messenger_and_instagram_lack(inbox: Inbox, graph: MetaGraph) -> None:
    before = {s["channel"]: s for s in (await inbox.gql(STATUS))["data"]["configurationStatus"]}
    assert before["MESSENGER"]["ready"] is False and "META integration" in before["MESSENGER"]["missing"][0]
    # without one, messageSend on MESSENGER is CHANNEL_NOT_CONFIGURED, nothing stored
    contact = await inbox.contact("Lena Vogel", identities=[{"channel": "MESSENGER", "address": PSID}])
    thread = await inbox.thread("Invoice question", contactId=contact["id"], primaryChannel="MESSENGER")
    refused = await send(inbox, thread["id"], "MESSENGER", "Hello")
    assert refused["userErrors"][0]["code"] == "CHANNEL_NOT_CONFIGURED"
    await configure_meta(inbox, graph, instagramAccountId=None)
    after = {s["channel"]: s for s in (await inbox.gql(STATUS))["data"]["configurationStatus"]}
    assert not any("META integration" in what for what in after["MESSENGER"]["missing"])
    assert any("instagramAccountId" in what for what in after["INSTAGRAM"]["missing"])
    assert after["WHATSAPP"]["ready"] is False  # a META integration is no WhatsApp provider


async def test_meta_configuration_refuses_bad_input(inbox: Inbox, graph: MetaGraph, state: AppState) -> None:
    values = {"type": "META", "accountSid": graph.page_id, "apiKey": graph.app_id, "apiToken": graph.token}
    result = await inbox.gql(CONFIGURE, {"input": {**values, "verifyToken": VERIFY_TOKEN, "baseUrl": graph.base_url}})
    assert result["data"]["integrationConfigure"]["userErrors"][0]["field"] == ["appSecret"]
    result = await inbox.gql(CONFIGURE, {"input": {**values, "appSecret": "s", "instagramAccountId": "not-digits"}})
    assert result["data"]["integrationConfigure"]["userErrors"][0]["field"] == ["instagramAccountId"]
    exotel = {"type": "EXOTEL", "accountSid": "a", "apiKey": "k", "apiToken": "t", "appSecret": "s"}
    result = await inbox.gql(CONFIGURE, {"input": exotel})
    assert result["data"]["integrationConfigure"]["userErrors"][0]["field"] == ["appSecret"]
    assert await count(state, Integration) == 0 and await count(state, MetaAccount) == 0


INTEGRATION_TEST = """
mutation($input: IntegrationIdInput!) { integrationTest(input: $input) { ok detail userErrors { field code message } } }
"""


async def test_integration_test_reads_the_page_with_its_token(inbox: Inbox, graph: MetaGraph) -> None:
    configured = (await configure_meta(inbox, graph))["integration"]
    good = await inbox.ok(INTEGRATION_TEST, {"input": {"id": configured["id"]}}, "integrationTest")
    assert good["ok"] is True and graph.page_name in good["detail"]
    assert graph.sent("me")[0].headers["authorization"] == f"Bearer {graph.token}"
    graph.token = "revoked"  # Meta no longer accepts the stored token
    bad = await inbox.ok(INTEGRATION_TEST, {"input": {"id": configured["id"]}}, "integrationTest")
    assert bad["ok"] is False and "Invalid OAuth access token" in bad["detail"]


# -- the webhook: handshake and signature -----------------------------------------------------------------------------


async def test_the_verification_handshake_echoes_the_challenge_only_for_the_verify_token(
    inbox: Inbox, graph: MetaGraph
) -> None:
    hook = hook_of(await configure_meta(inbox, graph))
    http = inbox.api.http
    good = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    response = await http.get(hook, params=good)
    assert response.status_code == 200 and response.text == "1158201444"
    assert (await http.get(hook, params={**good, "hub.verify_token": "wrong"})).status_code == 403
    assert (await http.get(hook, params={**good, "hub.mode": "unsubscribe"})).status_code == 403
    forged = hook.replace(hook.split("/")[-2], "not-the-token")
    assert (await http.get(forged, params=good)).status_code == 403


async def test_a_bad_or_missing_signature_is_refused_and_nothing_is_stored(
    inbox: Inbox, graph: MetaGraph, state: AppState
) -> None:
    hook = hook_of(await configure_meta(inbox, graph))
    before = (await count(state, Message), await count(state, Contact), await count(state, Event))
    payload = messenger_text(graph.page_id, PSID, "hello")
    assert (await post_signed(inbox, hook, payload, secret="not-the-app-secret")).status_code == 403
    assert (await post_signed(inbox, hook, payload, secret=None)).status_code == 403
    assert (await count(state, Message), await count(state, Contact), await count(state, Event)) == before
    # a signed body that is not a Meta callback is a 400, also with nothing stored
    assert (await post_signed(inbox, hook, {"object": "whatsapp_business_account", "entry": []})).status_code == 400
    assert await count(state, Message) == before[0]


# -- inbound ----------------------------------------------------------------------------------------------------


async def test_an_inbound_messenger_text_makes_a_thread_a_contact_and_a_message(
    inbox: Inbox, graph: MetaGraph, state: AppState
) -> None:
    hook = hook_of(await configure_meta(inbox, graph))
    photo = graph.add_media("bl.jpg", "image/jpeg", b"\xff\xd8 a photo of the bill of lading")
    attachments = [{"type": "image", "payload": {"url": photo}}]
    payload = messenger_text(graph.page_id, PSID, "Is my container on board?", mid="m_in1", attachments=attachments)
    # when
    response = await post_signed(inbox, hook, payload)
    # then
    assert response.status_code == 200, response.text
    row = await by_mid(state, "m_in1")
    assert row is not None and row.channel == Channel.MESSENGER and row.sender == PSID
    node = await message(inbox, message_global_id(row.id))
    assert node["body"] == "Is my container on board?" and node["direction"] == "INBOUND"
    assert node["thread"]["primaryChannel"] == "MESSENGER"
    async with system_session(state.sessionmaker) as session:
        identity = await session.scalar(select(ContactIdentity).where(ContactIdentity.address == PSID))
        headers = await session.scalar(select(Message.headers).where(Message.id == row.id))
    assert identity is not None and identity.channel == Channel.MESSENGER and identity.contact_id == row.contact_id
    assert headers["media"][0]["url"] == photo  # downloaded by fetch_message_media, as on every channel
    # a second message from the same person joins the same thread
    await post_signed(inbox, hook, messenger_text(graph.page_id, PSID, "Any news?", mid="m_in2"))
    second = await by_mid(state, "m_in2")
    assert second is not None and second.thread_id == row.thread_id and second.contact_id == row.contact_id


async def test_an_inbound_instagram_message_lands_on_the_instagram_channel(
    inbox: Inbox, graph: MetaGraph, state: AppState
) -> None:
    hook = hook_of(await configure_meta(inbox, graph))
    response = await post_signed(inbox, hook, instagram_text(IG_ACCOUNT, IGSID, "Price for LCL to Hamburg?", mid="ig1"))
    assert response.status_code == 200, response.text
    row = await by_mid(state, "ig1")
    assert row is not None and row.channel == Channel.INSTAGRAM and row.sender == IGSID
    async with system_session(state.sessionmaker) as session:
        thread = await session.get(Thread, row.thread_id)
        identity = await session.scalar(select(ContactIdentity).where(ContactIdentity.address == IGSID))
    assert thread is not None and thread.primary_channel == Channel.INSTAGRAM
    assert identity is not None and identity.channel == Channel.INSTAGRAM
    # an Instagram entry for another Instagram account is not ours: ignored
    await post_signed(inbox, hook, instagram_text("1784999999999999", IGSID, "not for us", mid="ig2"))
    assert await by_mid(state, "ig2") is None


async def test_the_same_mid_delivered_concurrently_is_stored_once(
    inbox: Inbox, graph: MetaGraph, state: AppState
) -> None:
    hook = hook_of(await configure_meta(inbox, graph))
    payload = messenger_text(graph.page_id, PSID, "Booking for 2x40HC", mid="m_dup")
    responses = await asyncio.gather(*(post_signed(inbox, hook, payload) for _ in range(6)))
    assert [r.status_code for r in responses] == [200] * 6
    async with system_session(state.sessionmaker) as session:
        stored = await session.scalar(select(func.count()).where(Message.provider_message_id == "m_dup"))
        threads = await session.scalar(select(func.count()).select_from(Thread))
        contacts = await session.scalar(select(func.count()).select_from(Contact))
    assert (stored, threads, contacts) == (1, 1, 1)


# -- outbound ---------------------------------------------------------------------------------------------------


async def test_a_reply_inside_the_window_goes_through_the_send_api_as_a_response(
    inbox: Inbox, graph: MetaGraph, state: AppState, settings: Settings
) -> None:
    hook = hook_of(await configure_meta(inbox, graph))
    inbound = await customer_wrote(inbox, state, hook)
    thread_id = await messenger_thread_id(state, inbound)
    # when
    payload = await send(inbox, thread_id, "MESSENGER", "It sailed yesterday; ETA Hamburg 12 Jan.")
    # then
    assert payload["userErrors"] == [], payload
    assert payload["message"]["recipients"] == [PSID] and payload["message"]["sender"] == graph.page_id
    assert await deliver_now(state, settings, payload["message"]["id"]) == MessageStatus.SENT
    [request] = graph.sent("send")
    assert request.path == "/v19.0/me/messages"
    assert request.headers["authorization"] == f"Bearer {graph.token}"
    assert request.json == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "It sailed yesterday; ETA Hamburg 12 Jan."},
    }
    row = await by_mid(state, request_mid := (await _provider_id(state, payload["message"]["id"])))
    assert row is not None and request_mid.startswith("m_")


async def _provider_id(state: AppState, message_id: str) -> str:
    async with system_session(state.sessionmaker) as session:
        value = await session.scalar(select(Message.provider_message_id).where(Message.id == local_uuid(message_id)))
    assert value
    return value


async def test_outside_the_window_a_send_needs_a_message_tag(
    inbox: Inbox, graph: MetaGraph, state: AppState, settings: Settings
) -> None:
    await configure_meta(inbox, graph)
    contact = await inbox.contact("Lena Vogel", identities=[{"channel": "MESSENGER", "address": PSID}])
    thread = await inbox.thread("Invoice question", contactId=contact["id"], primaryChannel="MESSENGER")
    # no message from the customer: the window is closed
    refused = await send(inbox, thread["id"], "MESSENGER", "Your invoice is ready.")
    assert refused["message"] is None
    [error] = refused["userErrors"]
    assert error["code"] == "WINDOW_CLOSED" and error["field"] == ["messageTag"] and "24-hour" in error["message"]
    bad = await send(inbox, thread["id"], "MESSENGER", "Your invoice is ready.", messageTag="PROMOTION")
    assert bad["userErrors"][0]["field"] == ["messageTag"] and bad["userErrors"][0]["code"] == "INVALID"
    assert await count(state, Message) == 0
    # with a tag it goes, as MESSAGE_TAG
    tagged = await send(inbox, thread["id"], "MESSENGER", "Your invoice is ready.", messageTag="ACCOUNT_UPDATE")
    assert tagged["userErrors"] == [], tagged
    assert await deliver_now(state, settings, tagged["message"]["id"]) == MessageStatus.SENT
    [request] = graph.sent("send")
    assert request.json["messaging_type"] == "MESSAGE_TAG" and request.json["tag"] == "ACCOUNT_UPDATE"
    assert request.json["recipient"] == {"id": PSID}


async def test_delivery_and_read_receipts_move_the_status_forward(
    inbox: Inbox, graph: MetaGraph, state: AppState, settings: Settings
) -> None:
    hook = hook_of(await configure_meta(inbox, graph))
    thread_id = await messenger_thread_id(state, await customer_wrote(inbox, state, hook))
    first = (await send(inbox, thread_id, "MESSENGER", "First"))["message"]["id"]
    second = (await send(inbox, thread_id, "MESSENGER", "Second"))["message"]["id"]
    for message_id in (first, second):
        assert await deliver_now(state, settings, message_id) == MessageStatus.SENT
    first_mid = await _provider_id(state, first)
    # when: Meta reports the first delivered (by mid)
    assert (await post_signed(inbox, hook, delivery(graph.page_id, PSID, [first_mid]))).status_code == 200
    # then
    assert (await message(inbox, first))["status"] == "DELIVERED"
    assert (await message(inbox, second))["status"] == "SENT"
    # when: a read watermark after both
    watermark = int((datetime.now(UTC) + timedelta(seconds=5)).timestamp() * 1000)
    assert (await post_signed(inbox, hook, read(graph.page_id, PSID, watermark))).status_code == 200
    assert (await message(inbox, first))["status"] == "READ"
    assert (await message(inbox, second))["status"] == "READ"
    # a delivery receipt arriving late never moves READ back
    await post_signed(inbox, hook, delivery(graph.page_id, PSID, [first_mid]))
    assert (await message(inbox, first))["status"] == "READ"


async def test_when_meta_is_down_the_message_fails_with_the_reason_and_a_retry_sends_it(
    inbox: Inbox, graph: MetaGraph, state: AppState, settings: Settings
) -> None:
    hook = hook_of(await configure_meta(inbox, graph))
    thread_id = await messenger_thread_id(state, await customer_wrote(inbox, state, hook))
    message_id = (await send(inbox, thread_id, "MESSENGER", "Your B/L is attached."))["message"]["id"]
    down = "An unexpected error has occurred. Please retry your request later."
    graph.fail_next("send", 500, down)
    # a 500: kept QUEUED for a retry with back-off, the reason stored
    with pytest.raises(RetryLater):
        await deliver_now(state, settings, message_id)
    node = await message(inbox, message_id)
    assert node["status"] == "QUEUED" and "500" in node["error"]
    # Meta's throttling comes as HTTP 400 with code 613: also retried, not failed
    graph.fail_next("send", 400, "(#613) Calls to this api have exceeded the rate limit.", code=613)
    with pytest.raises(RetryLater):
        await deliver_now(state, settings, message_id)
    assert (await message(inbox, message_id))["status"] == "QUEUED"
    # the retries run out (the message is older than the retry window): FAILED, with Meta's words
    graph.fail_next("send", 500, down)
    async with system_session(state.sessionmaker) as session, session.begin():
        old = datetime.now(UTC) - timedelta(hours=2)
        await session.execute(update(Message).where(Message.id == local_uuid(message_id)).values(created_at=old))
    assert await deliver_now(state, settings, message_id) == MessageStatus.FAILED
    node = await message(inbox, message_id)
    assert node["status"] == "FAILED" and "Please retry your request later" in node["error"]
    assert node["body"] == "Your B/L is attached."  # stored, never lost
    # when Meta is back, messageRetry queues it again and its delivery follows
    retried = await inbox.ok(RETRY, {"input": {"messageId": message_id}}, "messageRetry")
    assert retried["message"]["status"] == "QUEUED" and retried["message"]["error"] is None
    async with system_session(state.sessionmaker) as session:
        last = await session.scalar(
            select(Event).where(Event.type == "MESSAGE_STATUS_CHANGED").order_by(Event.id.desc()).limit(1)
        )
    assert (actors.deliver_message, str(local_uuid(message_id))) in consequences.jobs([last])
    assert await deliver_now(state, settings, message_id) == MessageStatus.SENT
    assert len(graph.sent("send")) == 4
    # only a FAILED message can be retried
    again = await inbox.gql(RETRY, {"input": {"messageId": message_id}})
    assert again["data"]["messageRetry"]["userErrors"][0]["code"] == "INVALID_TRANSITION"


async def test_meta_unreachable_is_transient_too(
    inbox: Inbox, graph: MetaGraph, state: AppState, settings: Settings
) -> None:
    hook = hook_of(await configure_meta(inbox, graph))
    thread_id = await messenger_thread_id(state, await customer_wrote(inbox, state, hook))
    # the integration now points at a port nobody listens on (connection refused)
    await configure_meta(inbox, graph, baseUrl="http://127.0.0.1:9", apiToken=graph.token)
    message_id = (await send(inbox, thread_id, "MESSENGER", "Hello?"))["message"]["id"]
    with pytest.raises(RetryLater):
        await deliver_now(state, settings, message_id)
    node = await message(inbox, message_id)
    assert node["status"] == "QUEUED" and "could not be reached" in node["error"]


# -- the long-lived page token ------------------------------------------------------------------------------------


async def test_the_page_token_is_refreshed_and_a_failure_notifies_admins(
    inbox: Inbox, graph: MetaGraph, state: AppState, settings: Settings
) -> None:
    await configure_meta(inbox, graph)
    ctx = system_context(state, settings)
    old_token = graph.token
    [integration_id] = await tokens_to_refresh(ctx)  # its expiry is not known yet
    # when
    assert await refresh_page_token(ctx, integration_id) is True
    # then: the stand-in's token endpoint was asked with the app's credentials, and the new token is stored
    [request] = graph.sent("token")
    assert request.query["grant_type"] == "fb_exchange_token" and request.query["fb_exchange_token"] == old_token
    assert request.query["client_id"] == graph.app_id and request.query["client_secret"] == graph.app_secret
    async with system_session(state.sessionmaker) as session:
        integration = await session.get(Integration, integration_id)
        account = await session.scalar(select(MetaAccount))
    assert integration is not None and account is not None
    assert graph.token != old_token and state.box.decrypt(integration.api_token) == graph.token
    assert account.token_expires_at is not None
    assert timedelta(days=59) < account.token_expires_at - datetime.now(UTC) <= timedelta(days=60)
    assert await tokens_to_refresh(ctx) == []  # good for another 60 days
    # a failure keeps the token, stores why and tells the admins (once)
    graph.fail_next("token", 400, "Error validating access token: Session has expired", times=2)
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(update(MetaAccount).values(token_expires_at=datetime.now(UTC) + timedelta(days=1)))
    assert await tokens_to_refresh(ctx) == [integration_id]
    assert await refresh_page_token(ctx, integration_id) is False
    assert await refresh_page_token(ctx, integration_id) is False
    async with system_session(state.sessionmaker) as session:
        account = await session.scalar(select(MetaAccount))
        notes = list(await session.scalars(select(Notification)))
    assert account is not None and "Session has expired" in (account.token_error or "")
    assert [n.type for n in notes] == [NotificationType.INTEGRATION_TOKEN_FAILED]
    assert "Session has expired" in notes[0].summary
    # admins see the token's state on the integration
    [shown] = (await inbox.gql(INTEGRATIONS))["data"]["integrations"]
    assert shown["meta"]["instagramAccountId"] == IG_ACCOUNT and shown["meta"]["tokenExpiresAt"] is not None
    assert "Session has expired" in shown["meta"]["tokenError"]


def test_the_scheduler_refreshes_meta_tokens(settings: Settings) -> None:
    from banxway.tasks.scheduler import schedule

    assert (actors.refresh_meta_tokens, 3600) in schedule(settings)


# -- tenancy ------------------------------------------------------------------------------------------------------


async def test_a_webhook_for_one_organizations_page_never_lands_in_another(
    api: Api, inbox: Inbox, org: Org, graph: MetaGraph, state: AppState
) -> None:
    beta_org = await api.create_org("beta")
    beta = Inbox(api, beta_org, await api.token(beta_org.admin_email))
    acme_hook = hook_of(await configure_meta(inbox, graph))
    beta_page = "1000000000000002"
    beta_hook = hook_of(await configure_meta(beta, graph, accountSid=beta_page, instagramAccountId="1784000000000002"))
    assert acme_hook != beta_hook
    # Beta's page's message posted to Acme's URL: not Acme's page, ignored
    await post_signed(inbox, acme_hook, messenger_text(beta_page, PSID, "for beta", mid="m_beta_on_acme"))
    assert await by_mid(state, "m_beta_on_acme") is None
    # each organization's own page lands in it only
    await post_signed(inbox, acme_hook, messenger_text(graph.page_id, PSID, "for acme", mid="m_acme"))
    await post_signed(beta, beta_hook, messenger_text(beta_page, PSID, "for beta", mid="m_beta"))
    acme_row, beta_row = await by_mid(state, "m_acme"), await by_mid(state, "m_beta")
    assert acme_row is not None and acme_row.organization_id == org.id
    assert beta_row is not None and beta_row.organization_id == beta_org.id
    assert (await beta.gql(VISIBLE))["data"] == {"threads": {"totalCount": 1}, "contacts": {"totalCount": 1}}
    assert (await beta.gql("query($id: ID!) { node(id: $id) { id } }", {"id": message_global_id(acme_row.id)}))["data"][
        "node"
    ] is None
