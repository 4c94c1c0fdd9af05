"""Voice through Exotel: callStart rings the agent and connects the contact, status callbacks update the call's
VOICE message, and a recording is transcribed with an OpenAI-compatible API (or says why there is no transcript)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from banxway.db.models import Message
from banxway.db.session import system_session
from banxway.resolvers.media import NO_TRANSCRIPT, transcribe
from banxway.settings import Settings
from banxway.state import AppState
from tests.inbox_helpers import Inbox, system_context
from tests.live_helpers import local_uuid
from tests.messaging_helpers import (
    CUSTOMER_PHONE,
    WHATSAPP_NUMBER,
    configure_exotel,
    configure_twilio,
    deliver_now,
    message,
    post_form,
    url_of,
    whatsapp_thread,
)
from tests.standins.providers import StandIn, exotel_call_status

AGENT = "+919820000001"
CALL_START = """
mutation($input: CallStartInput!) {
  callStart(input: $input) {
    message { id status channel direction body sender recipients thread { id subject primaryChannel } }
    userErrors { field code message }
  }
}
"""


async def _start(inbox: Inbox, **fields: Any) -> dict:
    result = await inbox.gql(CALL_START, {"input": {"agentNumber": AGENT, **fields}})
    assert "errors" not in result, result
    return result["data"]["callStart"]


async def _placed_call(inbox: Inbox, provider: StandIn, state: AppState, settings: Settings) -> tuple[dict, str]:
    """A call placed on a WhatsApp thread: (its message, the voice webhook URL)."""
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    payload = await _start(inbox, threadId=thread["id"])
    assert payload["userErrors"] == [], payload
    call = payload["message"]
    assert (call["channel"], call["direction"], call["status"]) == ("VOICE", "OUTBOUND", "QUEUED")
    assert (await deliver_now(state, settings, call["id"])).name == "SENT"
    assert len(provider.sent("exotel_call")) == 1
    return call, url_of(configured, "/voice")


async def _sid(state: AppState, message_id: str) -> str:
    async with system_session(state.sessionmaker) as session:
        sid = await session.scalar(select(Message.provider_message_id).where(Message.id == local_uuid(message_id)))
    assert sid
    return sid


async def test_call_start_asks_exotel_to_connect_the_agent_and_the_contact(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    call, _ = await _placed_call(inbox, provider, state, settings)
    [request] = provider.sent("exotel_call")
    assert request.path == "/v1/Accounts/acme1/Calls/connect.json"
    assert request.auth == ("exo-key", "exo-token")
    form = request.form
    assert (form["From"], form["To"], form["CallerId"], form["Record"]) == (
        AGENT,
        CUSTOMER_PHONE,
        WHATSAPP_NUMBER,
        "true",
    )
    assert form["StatusCallback"].endswith("/voice") and "/webhooks/exotel/" in form["StatusCallback"]
    assert form["CustomField"] == str(local_uuid(call["id"]))
    assert len(await _sid(state, call["id"])) == 32
    # delivering again places no second call
    assert (await deliver_now(state, settings, call["id"])).name == "SENT"
    assert len(provider.sent("exotel_call")) == 1


async def test_a_completed_recorded_call_is_transcribed(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    call, hook = await _placed_call(inbox, provider, state, settings)
    sid = await _sid(state, call["id"])
    recording = provider.add_media("call.mp3", "audio/mpeg", b"ID3" + b"\x00" * 2000)
    form = exotel_call_status(
        call_sid=sid, status="completed", from_=AGENT, to=CUSTOMER_PHONE, recording_url=recording, duration=151
    )
    response = await post_form(inbox.api.http, hook, form)
    assert response.status_code == 200, response.text
    node = await message(inbox, call["id"])
    assert node["status"] == "DELIVERED"
    assert node["call"] == {
        "status": "completed",
        "durationSeconds": 151,
        "recorded": True,
        "transcript": None,
        "transcriptError": None,
    }
    assert "(2:31)" in node["body"] and "transcription pending" in node["body"]
    # the same callback again changes nothing
    assert (await post_form(inbox.api.http, hook, form)).status_code == 200
    assert (await message(inbox, call["id"]))["body"] == node["body"]

    provider.transcript = "Hello, the container is at the port."
    ai = settings.model_copy(update={"openai_api_key": "sk-test", "openai_base_url": f"{provider.base_url}/v1"})
    text = await transcribe(system_context(state, ai), local_uuid(call["id"]))
    assert text == "Hello, the container is at the port."
    [request] = provider.sent("transcription")
    assert request.fields["model"] == "whisper-1"
    assert request.files["file"][1] == b"ID3" + b"\x00" * 2000
    node = await message(inbox, call["id"])
    assert node["call"]["transcript"] == "Hello, the container is at the port."
    assert node["body"].endswith("Transcript:\nHello, the container is at the port.")
    assert "(2:31)" in node["body"]
    # transcribing again does not call the AI provider a second time
    await transcribe(system_context(state, ai), local_uuid(call["id"]))
    assert len(provider.sent("transcription")) == 1


async def test_without_an_ai_provider_the_call_says_no_transcript(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    call, hook = await _placed_call(inbox, provider, state, settings)
    sid = await _sid(state, call["id"])
    recording = provider.add_media("call2.mp3", "audio/mpeg", b"ID3 audio")
    form = exotel_call_status(
        call_sid=sid, status="completed", from_=AGENT, to=CUSTOMER_PHONE, recording_url=recording, duration=42
    )
    assert (await post_form(inbox.api.http, hook, form)).status_code == 200
    assert settings.openai_api_key is None
    assert await transcribe(system_context(state, settings), local_uuid(call["id"])) is None
    node = await message(inbox, call["id"])
    assert node["status"] == "DELIVERED"
    assert node["call"]["transcriptError"] == NO_TRANSCRIPT
    assert node["body"].endswith(NO_TRANSCRIPT)
    assert provider.sent("transcription") == []


async def test_a_refused_transcription_is_recorded_not_retried_forever(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    call, hook = await _placed_call(inbox, provider, state, settings)
    sid = await _sid(state, call["id"])
    recording = provider.add_media("call3.mp3", "audio/mpeg", b"ID3 audio")
    form = exotel_call_status(call_sid=sid, status="completed", from_=AGENT, to=CUSTOMER_PHONE, recording_url=recording)
    assert (await post_form(inbox.api.http, hook, form)).status_code == 200
    wrong_key = settings.model_copy(update={"openai_api_key": "sk-wrong", "openai_base_url": f"{provider.base_url}/v1"})
    await transcribe(system_context(state, wrong_key), local_uuid(call["id"]))
    node = await message(inbox, call["id"])
    assert "Incorrect API key" in node["call"]["transcriptError"]


async def test_a_busy_callee_fails_the_call(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    call, hook = await _placed_call(inbox, provider, state, settings)
    sid = await _sid(state, call["id"])
    form = exotel_call_status(call_sid=sid, status="busy", from_=AGENT, to=CUSTOMER_PHONE)
    assert (await post_form(inbox.api.http, hook, form)).status_code == 200
    node = await message(inbox, call["id"])
    assert (node["status"], node["error"]) == ("FAILED", "The call was busy.")
    assert node["call"]["status"] == "busy"


async def test_a_callback_before_the_sid_is_stored_finds_the_call_by_its_custom_field(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    call = (await _start(inbox, threadId=thread["id"]))["message"]
    # the provider calls back (with our id in CustomField) before the connect reply is processed
    form = exotel_call_status(
        call_sid="c" * 32,
        status="completed",
        from_=AGENT,
        to=CUSTOMER_PHONE,
        duration=30,
        custom_field=str(local_uuid(call["id"])),
    )
    assert (await post_form(inbox.api.http, url_of(configured, "/voice"), form)).status_code == 200
    assert (await message(inbox, call["id"]))["status"] == "DELIVERED"
    # the delivery that was queued finds the call already handled and leaves it (no second call)
    assert (await deliver_now(state, settings, call["id"])).name == "DELIVERED"
    assert provider.sent("exotel_call") == []


async def test_an_incoming_call_opens_a_voice_message(inbox: Inbox, provider: StandIn) -> None:
    configured = await configure_exotel(inbox, provider)
    form = exotel_call_status(
        call_sid="d" * 32, status="completed", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, duration=65
    )
    form["Direction"] = "incoming"
    assert (await post_form(inbox.api.http, url_of(configured, "/voice"), form)).status_code == 200
    result = await inbox.gql(
        "{ threads(first: 5) { edges { node { primaryChannel contact { name } messages(first: 5) { edges { node {"
        " channel direction status body sender } } } } } } }"
    )
    [edge] = result["data"]["threads"]["edges"]
    assert edge["node"]["primaryChannel"] == "VOICE"
    [msg] = [e["node"] for e in edge["node"]["messages"]["edges"]]
    assert (msg["channel"], msg["direction"], msg["status"], msg["sender"]) == (
        "VOICE",
        "INBOUND",
        "RECEIVED",
        CUSTOMER_PHONE,
    )
    assert msg["body"].startswith(f"Call from {CUSTOMER_PHONE} (1:05)")


async def test_call_start_validates_its_input(
    inbox: Inbox, provider: StandIn, state: AppState, settings: Settings
) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    no_phone = await inbox.contact("No Phone", identities=[{"channel": "EMAIL", "address": "np@example.test"}])
    cases = [
        ({"threadId": thread["id"], "agentNumber": "12"}, "agentNumber"),
        ({"threadId": thread["id"], "contactId": no_phone["id"]}, "threadId"),
        ({}, "threadId"),
        ({"contactId": no_phone["id"]}, "contactId"),
    ]
    for fields, field in cases:
        payload = await _start(inbox, **fields)
        assert payload["message"] is None, fields
        [error] = payload["userErrors"]
        assert error["field"] == [field], (fields, error)
        assert error["message"]
    # a contact without a thread gets a new VOICE thread
    contact = await inbox.contact("Ravi", identities=[{"channel": "SMS", "address": "+919820077777"}])
    payload = await _start(inbox, contactId=contact["id"])
    assert payload["message"]["thread"]["primaryChannel"] == "VOICE"
    assert payload["message"]["recipients"] == ["+919820077777"]


async def test_calls_need_an_exotel_voice_number(inbox: Inbox, provider: StandIn) -> None:
    await configure_twilio(inbox, provider)
    thread = await whatsapp_thread(inbox)
    payload = await _start(inbox, threadId=thread["id"])
    assert payload["message"] is None
    [error] = payload["userErrors"]
    assert error["field"] == ["agentNumber"] and "Exotel" in error["message"]
