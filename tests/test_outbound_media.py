"""Outbound media on WhatsApp and SMS (`messageSend(attachmentIds)`): what the stand-in provider receives (Twilio's
MediaUrl for WhatsApp and MMS, Exotel's WhatsApp media message with a link), that the URL downloads the file without
a token, and the limits of `banxway.integrations.messaging.media_limits`, checked before anything is stored."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from banxway.db.models import Attachment, Message
from banxway.db.session import system_session
from banxway.enums import Direction, MessageStatus
from banxway.settings import Settings
from banxway.state import AppState
from tests.inbox_helpers import Inbox, upload
from tests.live_helpers import local_uuid
from tests.messaging_helpers import (
    CUSTOMER_PHONE,
    PUBLIC_URL,
    TWILIO_SID,
    TWILIO_TOKEN,
    WHATSAPP_NUMBER,
    configure_exotel,
    configure_twilio,
    deliver_now,
    exotel_inbound,
    post_form,
    send,
    sent_ok,
    url_of,
    whatsapp_thread,
)
from tests.standins.providers import StandIn, twilio_inbound

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 2000 + b"\xff\xd9"
PDF = b"%PDF-1.4\n" + b"0" * 1000 + b"\n%%EOF\n"
US_PHONE = "+14155552671"


@pytest.fixture
def public(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_url": PUBLIC_URL})


async def outbound_rows(state: AppState) -> tuple[int, int]:
    """(outbound messages, attachments linked to a message)."""
    async with system_session(state.sessionmaker) as session:
        messages = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == Direction.OUTBOUND)
        )
        linked = await session.scalar(
            select(func.count()).select_from(Attachment).where(Attachment.message_id.is_not(None))
        )
        return messages, linked


async def downloads(inbox: Inbox, url: str, data: bytes) -> None:
    """The provider's URL is on BANXWAY_PUBLIC_URL and downloads the file with no Authorization header."""
    assert url.startswith(f"{PUBLIC_URL}/attachments/"), url
    parts = urlsplit(url)
    response = await inbox.api.http.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200, response.text
    assert response.content == data


async def twilio_whatsapp_window(inbox: Inbox, configured: dict) -> None:
    form = twilio_inbound(
        sid="SMin1", from_=CUSTOMER_PHONE, to=WHATSAPP_NUMBER, body="Hi", account_sid=TWILIO_SID, whatsapp=True
    )
    response = await post_form(inbox.api.http, url_of(configured, "/messages"), form, twilio_token=TWILIO_TOKEN)
    assert response.status_code == 200, response.text


# -- what the providers receive -------------------------------------------------------------------------------


async def test_whatsapp_image_through_twilio_sends_a_media_url(
    inbox: Inbox, provider: StandIn, state: AppState, public: Settings
) -> None:
    # given a Twilio WhatsApp conversation and an uploaded JPEG
    configured = await configure_twilio(inbox, provider)
    thread = await whatsapp_thread(inbox)
    await twilio_whatsapp_window(inbox, configured)
    image = await upload(inbox, "container.jpg", JPEG, "image/jpeg")
    # when it is sent with a caption and delivered
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", "The seal, as loaded.", attachmentIds=[image])
    assert await deliver_now(state, public, message["id"]) == MessageStatus.SENT
    # then Twilio got the caption as Body and one MediaUrl that downloads the file
    [request] = provider.sent("twilio_message")
    assert request.form["To"] == f"whatsapp:{CUSTOMER_PHONE}" and request.form["Body"] == "The seal, as loaded."
    await downloads(inbox, request.form["MediaUrl"], JPEG)


async def test_mms_through_twilio_to_a_us_number(
    inbox: Inbox, provider: StandIn, state: AppState, public: Settings
) -> None:
    # given a US contact and a Twilio SMS number
    await configure_twilio(inbox, provider)
    contact = await inbox.contact("Sam Lee", identities=[{"channel": "SMS", "address": US_PHONE}])
    thread = await inbox.thread("Booking", contactId=contact["id"], primaryChannel="SMS")
    image = await upload(inbox, "seal.jpg", JPEG, "image/jpeg")
    # when an SMS with the image is sent
    message = await sent_ok(inbox, thread["id"], "SMS", "Seal photo.", attachmentIds=[image])
    assert await deliver_now(state, public, message["id"]) == MessageStatus.SENT
    # then it went as an MMS: To the number, with the MediaUrl
    [request] = provider.sent("twilio_message")
    assert request.form["To"] == US_PHONE and request.form["Body"] == "Seal photo."
    await downloads(inbox, request.form["MediaUrl"], JPEG)


async def test_whatsapp_document_through_exotel_sends_a_media_message(
    inbox: Inbox, provider: StandIn, state: AppState, public: Settings
) -> None:
    # given an Exotel WhatsApp conversation and an uploaded PDF
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    await exotel_inbound(inbox, configured)
    document = await upload(inbox, "bl.pdf", PDF, "application/pdf")
    # when it is sent and delivered
    message = await sent_ok(inbox, thread["id"], "WHATSAPP", "Your B/L.", attachmentIds=[document])
    assert await deliver_now(state, public, message["id"]) == MessageStatus.SENT
    # then Exotel got a document message with the link, the caption and the file's name
    [request] = provider.sent("exotel_whatsapp")
    [out] = request.json["whatsapp"]["messages"]
    assert out["content"]["type"] == "document"
    media = out["content"]["document"]
    assert media["caption"] == "Your B/L." and media["filename"] == "bl.pdf"
    await downloads(inbox, media["link"], PDF)
    attachments = (await inbox.gql(MESSAGE_ATTACHMENTS, {"id": message["id"]}))["data"]["node"]["attachments"]
    assert [a["filename"] for a in attachments] == ["bl.pdf"]


MESSAGE_ATTACHMENTS = "query($id: ID!) { node(id: $id) { ... on Message { attachments { filename } } } }"


# -- limits: INVALID naming the field, nothing written -------------------------------------------------------------


async def _refused(inbox: Inbox, state: AppState, thread_id: str, channel: str, attachment: str) -> dict:
    before = await outbound_rows(state)
    payload = await send(inbox, thread_id, channel, "See attached.", attachmentIds=[attachment])
    assert payload["message"] is None, payload
    assert await outbound_rows(state) == before
    [error] = payload["userErrors"]
    return error


async def test_a_whatsapp_image_over_5_mb_is_invalid(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    await exotel_inbound(inbox, configured)
    big = await upload(inbox, "big.jpg", b"\xff\xd8" + b"\x00" * (5 * 1024 * 1024), "image/jpeg")
    error = await _refused(inbox, state, thread["id"], "WHATSAPP", big)
    assert (error["code"], error["field"]) == ("INVALID", ["attachmentIds", "0"])
    assert "5 MB" in error["message"]


async def test_a_whatsapp_file_of_another_type_is_invalid(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    await exotel_inbound(inbox, configured)
    webp = await upload(inbox, "sticker.webp", b"RIFF0000WEBPVP8 " + b"\x00" * 100, "image/webp")
    error = await _refused(inbox, state, thread["id"], "WHATSAPP", webp)
    assert (error["code"], error["field"]) == ("INVALID", ["attachmentIds", "0"])
    assert "image/webp" in error["message"] and "image/jpeg" in error["message"]


async def test_sms_on_exotel_carries_no_media(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    image = await upload(inbox, "seal.jpg", JPEG, "image/jpeg")
    error = await _refused(inbox, state, thread["id"], "SMS", image)
    assert (error["code"], error["field"]) == ("INVALID", ["attachmentIds", "0"])
    assert error["message"] == "SMS on Exotel carries no media (no MMS)."


async def test_mms_through_twilio_only_to_us_and_canada(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    await configure_twilio(inbox, provider)
    thread = await whatsapp_thread(inbox)  # an Indian number
    image = await upload(inbox, "seal.jpg", JPEG, "image/jpeg")
    error = await _refused(inbox, state, thread["id"], "SMS", image)
    assert (error["code"], error["field"]) == ("INVALID", ["attachmentIds", "0"])
    assert "CA, US" in error["message"]


async def test_one_media_per_message(inbox: Inbox, provider: StandIn, state: AppState) -> None:
    configured = await configure_exotel(inbox, provider)
    thread = await whatsapp_thread(inbox)
    await exotel_inbound(inbox, configured)
    first = await upload(inbox, "a.jpg", JPEG, "image/jpeg")
    second = await upload(inbox, "b.jpg", JPEG, "image/jpeg")
    before = await outbound_rows(state)
    payload = await send(inbox, thread["id"], "WHATSAPP", "Two photos.", attachmentIds=[first, second])
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID", ["attachmentIds"])]
    assert await outbound_rows(state) == before
    assert local_uuid(first) != local_uuid(second)
