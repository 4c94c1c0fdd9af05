"""Delivering an outbound WhatsApp or SMS message through Exotel and Twilio (the stand-in provider): the
delivery state machine's error classes (a refusal fails at once, a rate limit or server error is retried, after
the provider's Retry-After), a refused connection retried versus an unanswered request never sent again, the
at-most-once claim (delivering twice, a message stuck in SENDING, concurrent deliveries), the Dramatiq actor's
retry, and delivery without an integration."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import pytest
from sqlalchemy import update

from banxway.db.models import Message
from banxway.db.session import system_session
from banxway.enums import MessageStatus
from banxway.resolvers.sending import RetryLater
from banxway.settings import Settings
from banxway.state import AppState
from tests.inbox_helpers import Inbox
from tests.live_helpers import local_uuid
from tests.messaging_helpers import (
    CONFIGURE,
    CUSTOMER_PHONE,
    SHIPMENT_TEMPLATE,
    SMS_NUMBER,
    WHATSAPP_NUMBER,
    configure_exotel,
    configure_twilio,
    deliver_now,
    exotel_inbound,
    post_json,
    send,
    sent_ok,
    stored,
    url_of,
    whatsapp_thread,
)
from tests.standins.providers import StandIn, exotel_whatsapp_dlr, exotel_whatsapp_incoming

# -- helpers ---------------------------------------------------------------------------------------------------


async def set_message(state: AppState, message_id: str, **values: Any) -> None:
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(update(Message).where(Message.id == local_uuid(message_id)).values(**values))


# -- 1. error classes ------------------------------------------------------------------------------------------


async def test_a_refusal_fails_the_message_at_once(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    cases = [
        ("exotel_sms", 400, "Bad request (code 40001)"),
        ("exotel_sms", 401, "Authentication failed (code 40101)"),
        ("exotel_sms", 403, "Forbidden (code 40301)"),
        ("exotel_whatsapp", 400, "Bad request (code 4001)"),
        ("exotel_whatsapp", 403, "Forbidden (code 4031)"),
    ]
    for kind, status, words in cases:
        before = len(provider.sent(kind))
        if kind == "exotel_whatsapp":
            message = await sent_ok(inbox, thread["id"], "WHATSAPP", template=SHIPMENT_TEMPLATE)
        else:
            message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
        provider.fail_next(kind, status)

        assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED, (kind, status)

        row = await stored(state, message["id"])
        assert row.status == MessageStatus.FAILED
        assert row.error and f"answered {status}" in row.error and words in row.error, row.error
        assert len(provider.sent(kind)) == before + 1
        # a redelivered job sends nothing more
        assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED
        assert len(provider.sent(kind)) == before + 1

    # Exotel accepts the request but refuses the message inside its reply
    refused = {
        "request_id": "r1",
        "method": "POST",
        "http_code": 202,
        "response": {
            "whatsapp": {
                "messages": [
                    {
                        "code": 400,
                        "status": "failure",
                        "data": None,
                        "error_data": {"code": 1009, "message": "Template not approved", "description": "Not approved"},
                    }
                ]
            }
        },
    }
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", template=SHIPMENT_TEMPLATE)
    provider.fail_next("exotel_whatsapp", 202, body=refused)
    assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED
    row = await stored(state, message["id"])
    assert row.error and "Not approved (code 1009)" in row.error, row.error


async def test_a_twilio_refusal_fails_the_message_with_twilios_words(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_twilio(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    provider.fail_next(
        "twilio_message", 400, body={"code": 21211, "message": "The 'To' number is not valid.", "status": 400}
    )

    assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED

    row = await stored(state, message["id"])
    assert row.error == "TWILIO answered 400: The 'To' number is not valid. (code 21211)"
    assert len(provider.sent("twilio_message")) == 1


async def test_rate_limit_retries_after_the_providers_retry_after(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    provider.fail_next("exotel_sms", 429, headers={"Retry-After": "7"})

    with pytest.raises(RetryLater) as raised:
        await deliver_now(state, settings, message["id"])

    assert raised.value.retry_after == 7
    row = await stored(state, message["id"])
    assert row.status == MessageStatus.QUEUED
    assert row.error and "429" in row.error and "Too many requests" in row.error
    assert len(provider.sent("exotel_sms")) == 1


async def test_server_error_then_success_sends_once_more(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    provider.fail_next("exotel_sms", 500)

    with pytest.raises(RetryLater) as raised:
        await deliver_now(state, settings, message["id"])
    assert raised.value.retry_after is None
    row = await stored(state, message["id"])
    assert row.status == MessageStatus.QUEUED and row.error and "500" in row.error

    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT
    row = await stored(state, message["id"])
    assert row.status == MessageStatus.SENT and row.error is None and row.provider_message_id
    assert len(provider.sent("exotel_sms")) == 2


async def test_a_provider_that_cannot_be_reached_is_retried_later(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    # nothing was sent (connection refused): safe to try again
    await configure_exotel(inbox, provider, baseUrl="http://127.0.0.1:9")
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    with pytest.raises(RetryLater):
        await deliver_now(state, settings, message["id"])
    row = await stored(state, message["id"])
    assert row.status == MessageStatus.QUEUED
    assert row.error and "could not be reached" in row.error


async def test_a_provider_that_takes_the_request_but_does_not_answer_is_not_sent_again(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    # the request went out and no answer came in time: the provider may have taken it
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    await post_json(
        inbox.api.http,
        url_of(configured, "/whatsapp"),
        exotel_whatsapp_incoming(sid="in-slow", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="Status?"),
    )
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", "Your container is out.")
    provider.delay_next("exotel_whatsapp", 1.5)
    impatient = settings.model_copy(update={"provider_timeout_seconds": 0.3})
    started = asyncio.get_running_loop().time()
    assert await deliver_now(state, impatient, message["id"]) == MessageStatus.SENDING
    assert asyncio.get_running_loop().time() - started < 1.4
    row = await stored(state, message["id"])
    assert row.status == MessageStatus.SENDING
    assert row.error and "may have accepted" in row.error
    # a redelivery sends nothing
    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENDING
    await asyncio.sleep(1.5)
    assert len(provider.sent("exotel_whatsapp")) == 1
    # the provider's receipt, which carries our id as custom_data, settles it
    dlr = exotel_whatsapp_dlr(sid="late-sid", exo_status_code=30002, to=CUSTOMER_PHONE)
    dlr["whatsapp"]["messages"][0]["custom_data"] = str(local_uuid(message["id"]))
    assert (await post_json(inbox.api.http, url_of(configured, "/whatsapp"), dlr)).status_code == 200
    row = await stored(state, message["id"])
    assert (row.status, row.provider_message_id, row.error) == (MessageStatus.DELIVERED, "late-sid", None)


async def test_a_transient_failure_of_an_old_message_fails_it(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    await set_message(state, message["id"], created_at=datetime.now(UTC) - timedelta(hours=2))
    provider.fail_next("exotel_sms", 503)

    assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED

    row = await stored(state, message["id"])
    assert row.status == MessageStatus.FAILED and row.error and "503" in row.error
    assert len(provider.sent("exotel_sms")) == 1


# -- 2. at most once -------------------------------------------------------------------------------------------


async def test_delivering_twice_sends_once(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")

    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT
    first_id = (await stored(state, message["id"])).provider_message_id
    assert await deliver_now(state, settings, message["id"]) == MessageStatus.SENT

    assert len(provider.sent("exotel_sms")) == 1
    assert (await stored(state, message["id"])).provider_message_id == first_id


async def test_a_message_stuck_in_sending_fails_without_a_request(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    await set_message(
        state, message["id"], status=MessageStatus.SENDING, updated_at=datetime.now(UTC) - timedelta(minutes=11)
    )

    recent = await sent_ok(inbox, thread["id"], "SMS", "In flight.")
    await set_message(
        state, recent["id"], status=MessageStatus.SENDING, updated_at=datetime.now(UTC) - timedelta(minutes=9)
    )

    assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED
    assert await deliver_now(state, settings, recent["id"]) == MessageStatus.SENDING

    row = await stored(state, message["id"])
    assert row.status == MessageStatus.FAILED and row.error and "interrupted" in row.error
    assert (await stored(state, recent["id"])).status == MessageStatus.SENDING
    assert provider.requests == []


async def test_concurrent_deliveries_send_once(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    provider.delay_next("exotel_sms", 0.3)

    results = await asyncio.gather(*(deliver_now(state, settings, message["id"]) for _ in range(3)))

    assert MessageStatus.SENT in results
    assert set(results) <= {MessageStatus.SENT, MessageStatus.SENDING}, results
    assert len(provider.sent("exotel_sms")) == 1
    assert (await stored(state, message["id"])).status == MessageStatus.SENT


async def test_another_organizations_integration_does_not_configure_this_one(
    inbox: Inbox, provider: StandIn, api: Any
) -> None:
    # given another organization with WhatsApp and SMS numbers
    other_org = await api.create_org("elsewhere")
    other = Inbox(api, other_org, await api.token(other_org.admin_email))
    await configure_exotel(other, provider)
    # when this organization, configured for nothing, sends on those channels, then each is refused
    thread = await whatsapp_thread(inbox)
    for channel in ("WHATSAPP", "SMS"):
        refused = await send(inbox, thread["id"], channel, "Your container is out.")
        assert [e["code"] for e in refused["userErrors"]] == ["CHANNEL_NOT_CONFIGURED"], (channel, refused)
    # and once configured itself, it may send
    await configure_exotel(inbox, provider)
    await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")


# -- 3. the Dramatiq actor -------------------------------------------------------------------------------------


async def test_the_actor_retries_after_the_providers_retry_after(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from banxway.tasks import broker as broker_module
    from banxway.tasks.actors import deliver_message
    from banxway.tasks.consequences import new_worker_state

    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    message = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    provider.fail_next("exotel_sms", 429, headers={"Retry-After": "7"})
    monkeypatch.setattr(broker_module, "_state", None)  # restored afterwards
    worker = new_worker_state(settings)
    broker_module.set_state(worker)
    try:
        # the actor's own coroutine function (Actor.fn wraps it for the worker's event loop thread)
        with pytest.raises(dramatiq.Retry) as raised:
            await deliver_message.fn.__wrapped__(str(local_uuid(message["id"])))
        assert raised.value.delay == 7000
        assert (await stored(state, message["id"])).status == MessageStatus.QUEUED

        # and the next run sends it
        await deliver_message.fn.__wrapped__(str(local_uuid(message["id"])))
    finally:
        await worker.broadcast.disconnect()
        await worker.engine.dispose()
    assert (await stored(state, message["id"])).status == MessageStatus.SENT
    assert len(provider.sent("exotel_sms")) == 2


# -- 4. no integration -----------------------------------------------------------------------------------------


async def test_without_an_integration_the_delivery_fails_naming_integration_configure(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    # without an integration a send is refused at once (CHANNEL_NOT_CONFIGURED), naming integrationConfigure
    thread = await whatsapp_thread(inbox)
    refused = await send(inbox, thread["id"], "SMS", "Your container is out.")
    assert [(e["code"], e["field"]) for e in refused["userErrors"]] == [("CHANNEL_NOT_CONFIGURED", ["channel"])]
    assert "integrationConfigure" in refused["userErrors"][0]["message"]

    # an integration switched off after the customer wrote: the messages queued before fail at delivery, naming
    # integrationConfigure, and a send after is refused
    configured = await configure_exotel(inbox, provider)
    await exotel_inbound(inbox, configured)
    queued = await sent_ok(inbox, thread["id"], "SMS", "Your container is out.")
    assert queued["sender"] == SMS_NUMBER
    whatsapp = await sent_ok(inbox, thread["id"], "WHATSAPP", "Following up.")
    await inbox.ok(CONFIGURE, {"input": {"type": "EXOTEL", "active": False}}, "integrationConfigure")
    for message in (queued, whatsapp):
        assert await deliver_now(state, settings, message["id"]) == MessageStatus.FAILED
        row = await stored(state, message["id"])
        assert row.status == MessageStatus.FAILED and row.error and "integrationConfigure" in row.error
    after = await send(inbox, thread["id"], "WHATSAPP", "Following up again.")
    assert [e["code"] for e in after["userErrors"]] == ["CHANNEL_NOT_CONFIGURED"]
    assert provider.sent("exotel_whatsapp") == [] and provider.sent("exotel_sms") == []
