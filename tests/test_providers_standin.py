"""The provider stand-in (tests/standins/providers.py) answers the documented wire formats, and its helpers are right."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.standins.providers import (
    StandIn,
    exotel_call_status,
    exotel_sms_status,
    exotel_whatsapp_dlr,
    exotel_whatsapp_incoming,
    provider,
    twilio_inbound,
    twilio_signature,
    twilio_status,
)

__all__ = ["provider"]  # the fixture, imported for the tests below

EXOTEL_SID, EXOTEL_KEY, EXOTEL_TOKEN = "banxway1", "api-key", "api-token"
TWILIO_SID, TWILIO_TOKEN = "AC" + "0" * 32, "twilio-token"
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
async def client(provider: StandIn) -> AsyncIterator[httpx.AsyncClient]:
    provider.add_account(EXOTEL_SID, EXOTEL_KEY, EXOTEL_TOKEN)
    provider.add_account(TWILIO_SID, TWILIO_SID, TWILIO_TOKEN)
    async with httpx.AsyncClient(base_url=provider.base_url, timeout=5) as http:
        yield http


EXOTEL_AUTH = (EXOTEL_KEY, EXOTEL_TOKEN)
SMS_PATH = f"/v1/Accounts/{EXOTEL_SID}/Sms/send.json"
WHATSAPP_PATH = f"/v2/accounts/{EXOTEL_SID}/messages"
TWILIO_PATH = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"


def whatsapp_text(body: str) -> dict:
    message = {"from": "+918047000000", "to": "+919876543210", "content": {"type": "text", "text": {"body": body}}}
    return {"custom_data": "c1", "status_callback": "https://example.test/cb", "whatsapp": {"messages": [message]}}


async def test_exotel_sms_success_and_recording(provider: StandIn, client: httpx.AsyncClient) -> None:
    form = {"From": "BANXWY", "To": "+919876543210", "Body": "Your shipment left", "CustomField": "m-1"}
    first = await client.post(SMS_PATH, data=form, auth=EXOTEL_AUTH)
    second = await client.post(SMS_PATH, data=form, auth=EXOTEL_AUTH)
    assert first.status_code == 200
    message = first.json()["SMSMessage"]
    assert HEX32.fullmatch(message["Sid"]) and message["Sid"] != second.json()["SMSMessage"]["Sid"]
    assert message["AccountSid"] == EXOTEL_SID and message["Status"] == "queued"
    assert message["DetailedStatusCode"] == 21010 and message["Body"] == "Your shipment left"
    assert message["Uri"] == f"/v1/Accounts/{EXOTEL_SID}/SMSMessages/{message['Sid']}.json"
    (recorded, _) = provider.sent("exotel_sms")
    assert recorded.auth == EXOTEL_AUTH and recorded.form == form and recorded.method == "POST"


async def test_exotel_sms_missing_field_and_wrong_auth(client: httpx.AsyncClient) -> None:
    missing = await client.post(SMS_PATH, data={"From": "BANXWY", "To": "+919876543210"}, auth=EXOTEL_AUTH)
    assert missing.status_code == 400
    assert missing.json()["RestException"]["Status"] == 400
    wrong = await client.post(SMS_PATH, data={"From": "a", "To": "b", "Body": "c"}, auth=(EXOTEL_KEY, "nope"))
    assert wrong.status_code == 401
    assert wrong.json()["RestException"]["Message"] == "Authentication failed"
    unknown_account = await client.get("/v1/Accounts/other/Balance.json", auth=EXOTEL_AUTH)
    assert unknown_account.status_code == 401


async def test_exotel_whatsapp_text_template_and_validation(client: httpx.AsyncClient) -> None:
    ok = await client.post(WHATSAPP_PATH, json=whatsapp_text("Hello"), auth=EXOTEL_AUTH)
    assert ok.status_code == 202
    (result,) = ok.json()["response"]["whatsapp"]["messages"]
    assert result["status"] == "success" and result["code"] == 202
    assert HEX32.fullmatch(result["data"]["sid"]) and result["data"]["to"] == "+919876543210"
    template = whatsapp_text("")
    template["whatsapp"]["messages"][0]["content"] = {
        "type": "template",
        "template": {"name": "shipment_update", "language": {"code": "en"}, "components": []},
    }
    assert (await client.post(WHATSAPP_PATH, json=template, auth=EXOTEL_AUTH)).status_code == 202
    too_long = await client.post(WHATSAPP_PATH, json=whatsapp_text("x" * 4097), auth=EXOTEL_AUTH)
    assert too_long.status_code == 400
    error = too_long.json()
    assert error["http_code"] == 400 and error["response"]["status"] == "failure"
    assert "4096" in error["response"]["error_data"]["message"]
    empty = await client.post(WHATSAPP_PATH, json={"whatsapp": {"messages": []}}, auth=EXOTEL_AUTH)
    assert empty.status_code == 400
    wrong = await client.post(WHATSAPP_PATH, json=whatsapp_text("Hi"), auth=("x", "y"))
    assert wrong.status_code == 401 and wrong.json()["response"]["error_data"]["code"]


async def test_exotel_call_and_balance(client: httpx.AsyncClient) -> None:
    path = f"/v1/Accounts/{EXOTEL_SID}/Calls/connect.json"
    form = {"From": "09876543210", "To": "09123456789", "CallerId": "08047000000", "Record": "true"}
    call = (await client.post(path, data=form, auth=EXOTEL_AUTH)).json()["Call"]
    assert HEX32.fullmatch(call["Sid"]) and call["PhoneNumberSid"] == "08047000000"
    assert call["Status"] == "in-progress" and call["RecordingUrl"] is None
    no_caller = await client.post(path, data={"From": "1", "To": "2"}, auth=EXOTEL_AUTH)
    assert no_caller.status_code == 400 and "CallerId" in no_caller.json()["RestException"]["Message"]
    balance = await client.get(f"/v1/Accounts/{EXOTEL_SID}/Balance.json", auth=EXOTEL_AUTH)
    assert balance.json() == {"Balance": {"AccountSid": EXOTEL_SID, "Balance": "1523.50", "Currency": "INR"}}


async def test_twilio_message_account_and_errors(provider: StandIn, client: httpx.AsyncClient) -> None:
    auth = (TWILIO_SID, TWILIO_TOKEN)
    sent = await client.post(
        TWILIO_PATH, data={"To": "whatsapp:+15005550006", "From": "whatsapp:+1415", "Body": "Hi"}, auth=auth
    )
    assert sent.status_code == 201
    message = sent.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"]) and message["status"] == "queued"
    assert message["uri"] == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{message['sid']}.json"
    missing = await client.post(TWILIO_PATH, data={"To": "+15005550006", "From": "+1415"}, auth=auth)
    assert missing.status_code == 400 and missing.json()["status"] == 400
    wrong = await client.post(TWILIO_PATH, data={"To": "1", "From": "2", "Body": "3"}, auth=(TWILIO_SID, "bad"))
    assert wrong.status_code == 401
    assert wrong.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    account = await client.get(f"/2010-04-01/Accounts/{TWILIO_SID}.json", auth=auth)
    assert account.json()["status"] == "active" and account.json()["sid"] == TWILIO_SID
    assert [r.kind for r in provider.requests] == ["twilio_message"] * 3 + ["twilio_account"]


async def test_fail_next_429_then_success(provider: StandIn, client: httpx.AsyncClient) -> None:
    provider.fail_next("twilio_message", 429, headers={"Retry-After": "1"}, times=2)
    provider.fail_next("exotel_sms", 503, body="upstream down")
    form = {"To": "+15005550006", "From": "+1415", "Body": "Hi"}
    auth = (TWILIO_SID, "wrong token: scripted failures come before auth")
    for _ in range(2):
        limited = await client.post(TWILIO_PATH, data=form, auth=auth)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
        assert limited.json()["code"] == 20429 and limited.json()["status"] == 429
    assert (await client.post(TWILIO_PATH, data=form, auth=(TWILIO_SID, TWILIO_TOKEN))).status_code == 201
    down = await client.post(SMS_PATH, data={"From": "a", "To": "b", "Body": "c"}, auth=EXOTEL_AUTH)
    assert down.status_code == 503 and down.text == "upstream down" and "retry-after" not in down.headers
    provider.fail_next("exotel_whatsapp", 500)
    failed = await client.post(WHATSAPP_PATH, json=whatsapp_text("Hi"), auth=EXOTEL_AUTH)
    assert failed.status_code == 500 and failed.json()["response"]["status"] == "failure"
    assert len(provider.sent("twilio_message")) == 3


async def test_delay_next_and_wait_for(provider: StandIn, client: httpx.AsyncClient) -> None:
    provider.delay_next("exotel_balance", 0.3)
    path = f"/v1/Accounts/{EXOTEL_SID}/Balance.json"
    started = time.monotonic()
    pending = asyncio.create_task(client.get(path, auth=EXOTEL_AUTH))
    (recorded,) = await provider.wait_for("exotel_balance")
    assert not pending.done()  # recorded on arrival, answered after the delay
    assert (await pending).status_code == 200
    assert time.monotonic() - started >= 0.3 and recorded.at >= started
    fast = time.monotonic()
    await client.get(path, auth=EXOTEL_AUTH)
    assert time.monotonic() - fast < 0.3
    with pytest.raises(AssertionError, match="exotel_sms"):
        await provider.wait_for("exotel_sms", timeout=0.05)


async def test_media_and_unknown(provider: StandIn, client: httpx.AsyncClient) -> None:
    data = bytes(range(256)) * 4
    url = provider.add_media("bill of lading.pdf", "application/pdf", data)
    assert url.startswith(provider.base_url + "/media/")
    served = await client.get(url)
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == "application/pdf"
    assert (await client.get("/media/missing.pdf")).status_code == 404
    unknown = await client.post("/v3/nothing?x=1", json={"a": 1})
    assert unknown.status_code == 404
    recorded = provider.sent("unknown")[0]
    assert recorded.query == {"x": "1"} and recorded.json == {"a": 1}


async def test_transcription_multipart(provider: StandIn, client: httpx.AsyncClient) -> None:
    audio = b"RIFF\r\n--\x00\xff" * 100
    files = {"file": ("call.wav", audio, "audio/wav")}
    headers = {"Authorization": "Bearer sk-test"}
    ok = await client.post("/v1/audio/transcriptions", files=files, data={"model": "whisper-1"}, headers=headers)
    assert ok.status_code == 200 and ok.json() == {"text": "Hello, this is a test call."}
    recorded = provider.sent("transcription")[0]
    assert recorded.files == {"file": ("call.wav", audio)} and recorded.fields == {"model": "whisper-1"}
    provider.transcript = "Container arrives Friday."
    text = await client.post(
        "/v1/audio/transcriptions", files=files, data={"model": "whisper-1", "response_format": "text"}, headers=headers
    )
    assert text.text == "Container arrives Friday." and text.headers["content-type"].startswith("text/plain")
    wrong = await client.post(
        "/v1/audio/transcriptions", files=files, data={"model": "whisper-1"}, headers={"Authorization": "Bearer no"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    no_file = await client.post("/v1/audio/transcriptions", data={"model": "whisper-1"}, headers=headers)
    assert no_file.status_code == 400


def test_twilio_signature_matches_twilio_ruby_example() -> None:
    # The SMS example of twilio-ruby's request validator spec (spec/util/request_validator_spec.rb).
    params = {
        "ToState": "CA",
        "FromState": "CA",
        "AccountSid": "ACba8bc05eacf94afdae398e642c9cc32d",
        "SmsMessageSid": "SM2003cbd5e6a3701999aa3e5f20ff2787",
        "Body": "Orly",
        "From": "+14159354345",
        "FromCity": "SAN FRANCISCO",
        "SmsStatus": "received",
        "FromZip": "94107",
        "FromCountry": "US",
        "To": "+14158141819",
        "ToCity": "SAN FRANCISCO",
        "ToZip": "94105",
        "ToCountry": "US",
        "ApiVersion": "2010-04-01",
        "SmsSid": "SM2003cbd5e6a3701999aa3e5f20ff2787",
    }
    token, url = "2bd9e9638872de601313dc77410d3b23", "http://twiliotests.heroku.com/validate/sms"
    assert twilio_signature(token, url, params) == "mxeiv65lEe0b8L6LdVw2jgJi8yw="


def test_twilio_signature_against_independent_computation() -> None:
    params = twilio_inbound(
        sid="SM1", from_="+919876543210", to="+14155238886", body="Hi", account_sid=TWILIO_SID, whatsapp=True
    )
    url = "https://banxway.test/webhooks/twilio?org=1"
    ordered = sorted(params.items())
    payload = (url + "".join(f"{k}{v}" for k, v in ordered)).encode()
    expected = base64.b64encode(hmac.new(b"tok", payload, hashlib.sha1).digest()).decode()
    assert twilio_signature("tok", url, params) == expected


def test_callback_builders() -> None:
    inbound = twilio_inbound(
        sid="SM1",
        from_="+919876543210",
        to="+14155238886",
        body="",
        account_sid=TWILIO_SID,
        media=[("https://m/1", "image/jpeg"), ("https://m/2", "application/pdf")],
        whatsapp=True,
    )
    assert inbound["From"] == "whatsapp:+919876543210" and inbound["NumMedia"] == "2"
    assert inbound["MediaContentType1"] == "application/pdf" and inbound["ProfileName"]
    assert "ProfileName" not in twilio_inbound(sid="SM1", from_="a", to="b", body="c", account_sid=TWILIO_SID)
    status = twilio_status(
        sid="SM1", status="undelivered", account_sid=TWILIO_SID, to="a", from_="b", error_code="30003"
    )
    assert status["MessageStatus"] == status["SmsStatus"] == "undelivered" and status["ErrorCode"] == "30003"
    incoming = exotel_whatsapp_incoming(sid="w1", from_="+91", to="+80", media=("image", "https://m/1", None))
    content = incoming["whatsapp"]["messages"][0]["content"]
    assert content == {"type": "image", "image": {"url": "https://m/1", "caption": None}}
    dlr = exotel_whatsapp_dlr(sid="w1", exo_status_code=30002, to="+91")["whatsapp"]["messages"][0]
    assert dlr["callback_type"] == "dlr" and dlr["exo_detailed_status"] == "EX_MESSAGE_DELIVERED"
    assert exotel_sms_status(sms_sid="s1", status="sent")["DetailedStatusCode"] == "20005"
    call = exotel_call_status(
        call_sid="c1", status="completed", from_="1", to="2", recording_url="https://r", duration=42
    )
    assert (
        call["ConversationDuration"] == "42"
        and call["RecordingUrl"] == "https://r"
        and call["Legs[1][Status]"] == "completed"
    )
