"""Outbound media on Messenger and Instagram (`messageSend(attachmentIds)`), against the Graph stand-in
(tests/standins/meta_graph.py), which checks the attachment message's shape and fetches its URL as Meta does: the
text goes first as a message of its own, then the file (`image`/`file`, `payload.url` on BANXWAY_PUBLIC_URL,
`is_reusable`); the limits of `media_limits` (Instagram: 8 MB images, no webp), checked before anything is stored;
Meta down mid-way: the message FAILED with Meta's words, and `messageRetry` sends the file without the text twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, text, update

from banxway.db.models import Attachment, Message
from banxway.db.session import system_session
from banxway.enums import Direction, MessageStatus
from banxway.resolvers.sending import RetryLater
from banxway.settings import Settings
from banxway.state import AppState
from tests.inbox_helpers import Inbox, upload
from tests.live_helpers import local_uuid
from tests.messaging_helpers import PUBLIC_URL, deliver_now, message, send
from tests.standins.meta_graph import MetaGraph, instagram_text, meta_graph
from tests.test_meta_messaging import (
    IG_ACCOUNT,
    IGSID,
    PSID,
    RETRY,
    configure_meta,
    customer_wrote,
    hook_of,
    messenger_thread_id,
    post_signed,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 3000
PDF = b"%PDF-1.4\n" + b"0" * 1000 + b"\n%%EOF\n"
MESSAGE_HEADERS = "query($id: ID!) { node(id: $id) { ... on Message { attachments { filename contentType } } } }"


@pytest.fixture
async def graph(inbox: Inbox) -> AsyncIterator[MetaGraph]:
    async with meta_graph() as server:
        server.fetch_client = inbox.api.http  # Meta reaches BANXWAY_PUBLIC_URL: here, the app under test
        yield server


@pytest.fixture
def public(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_url": PUBLIC_URL})


async def messenger_thread(inbox: Inbox, graph: MetaGraph, state: AppState) -> str:
    hook = hook_of(await configure_meta(inbox, graph))
    return await messenger_thread_id(state, await customer_wrote(inbox, state, hook))


async def instagram_thread(inbox: Inbox, graph: MetaGraph, state: AppState) -> str:
    hook = hook_of(await configure_meta(inbox, graph))
    response = await post_signed(inbox, hook, instagram_text(IG_ACCOUNT, IGSID, "Photos of the damage?", mid="ig1"))
    assert response.status_code == 200, response.text
    async with system_session(state.sessionmaker) as session:
        row = await session.scalar(select(Message).where(Message.provider_message_id == "ig1"))
    assert row is not None
    return await messenger_thread_id(state, row)


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


async def provider_ids(state: AppState, message_id: str) -> tuple[str | None, str | None]:
    """(the message's provider id, the id of the text sent before its file)."""
    async with system_session(state.sessionmaker) as session:
        row = await session.get(Message, local_uuid(message_id))
        assert row is not None
        headers = await session.scalar(select(Message.headers).where(Message.id == row.id))
        return row.provider_message_id, (headers or {}).get("text_message_id")


def attachment_of(request: object) -> dict:
    return request.json["message"]["attachment"]  # type: ignore[attr-defined]


# -- what Meta receives -----------------------------------------------------------------------------------------


async def test_a_messenger_image_goes_after_its_text_and_meta_downloads_it(
    inbox: Inbox, graph: MetaGraph, state: AppState, public: Settings
) -> None:
    # given a Messenger conversation and an uploaded PNG
    thread_id = await messenger_thread(inbox, graph, state)
    image = await upload(inbox, "seal.png", PNG, "image/png")
    # when it is sent with a text and delivered
    payload = await send(inbox, thread_id, "MESSENGER", "The seal, as loaded.", attachmentIds=[image])
    assert payload["userErrors"] == [], payload
    message_id = payload["message"]["id"]
    assert await deliver_now(state, public, message_id) == MessageStatus.SENT
    # then Meta got two messages: the text, then the image by URL (reusable), which it fetched without credentials
    text, media = graph.sent("send")
    assert text.json == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "The seal, as loaded."},
    }
    assert media.json["recipient"] == {"id": PSID} and media.json["messaging_type"] == "RESPONSE"
    assert "text" not in media.json["message"]
    attachment = attachment_of(media)
    assert attachment["type"] == "image" and attachment["payload"]["is_reusable"] is True
    url = attachment["payload"]["url"]
    assert url.startswith(f"{PUBLIC_URL}/attachments/") and "signature=" in urlsplit(url).query
    [fetched] = graph.fetched
    assert (fetched.url, fetched.status, fetched.content) == (url, 200, PNG)
    assert fetched.content_type.startswith("image/png")
    # the message's provider id is the file's; the text's is kept beside it
    sid, text_sid = await provider_ids(state, message_id)
    assert sid and text_sid and sid != text_sid
    node = await message(inbox, message_id)
    assert node["status"] == "SENT" and [a["filename"] for a in node["attachments"]] == ["seal.png"]


async def test_a_pdf_goes_to_messenger_as_a_file(
    inbox: Inbox, graph: MetaGraph, state: AppState, public: Settings
) -> None:
    thread_id = await messenger_thread(inbox, graph, state)
    document = await upload(inbox, "bl.pdf", PDF, "application/pdf")
    payload = await send(inbox, thread_id, "MESSENGER", "Your B/L.", attachmentIds=[document])
    assert await deliver_now(state, public, payload["message"]["id"]) == MessageStatus.SENT
    _, media = graph.sent("send")
    assert attachment_of(media)["type"] == "file"
    [fetched] = graph.fetched
    assert fetched.status == 200 and fetched.content == PDF


async def test_an_instagram_image_within_the_limits_is_sent(
    inbox: Inbox, graph: MetaGraph, state: AppState, public: Settings
) -> None:
    thread_id = await instagram_thread(inbox, graph, state)
    image = await upload(inbox, "damage.png", PNG, "image/png")
    payload = await send(inbox, thread_id, "INSTAGRAM", "Here it is.", attachmentIds=[image])
    assert payload["userErrors"] == [], payload
    assert await deliver_now(state, public, payload["message"]["id"]) == MessageStatus.SENT
    text, media = graph.sent("send")
    assert text.json["recipient"] == media.json["recipient"] == {"id": IGSID}
    assert attachment_of(media)["type"] == "image" and graph.fetched[0].content == PNG


async def test_a_url_meta_cannot_fetch_fails_the_message_with_metas_words(
    inbox: Inbox, graph: MetaGraph, state: AppState, settings: Settings
) -> None:
    # given the app's public URL is not where Meta can download from (the stand-in fetches it for real)
    graph.fetch_client = None
    unreachable = settings.model_copy(update={"public_url": "http://127.0.0.1:9"})
    thread_id = await messenger_thread(inbox, graph, state)
    image = await upload(inbox, "seal.png", PNG, "image/png")
    payload = await send(inbox, thread_id, "MESSENGER", "The seal.", attachmentIds=[image])
    # when / then: Meta's refusal is permanent
    assert await deliver_now(state, unreachable, payload["message"]["id"]) == MessageStatus.FAILED
    node = await message(inbox, payload["message"]["id"])
    assert "Failed to fetch the file from the url" in node["error"]


# -- limits: INVALID naming the field and the limit, nothing written ------------------------------------------------


async def _refused(inbox: Inbox, state: AppState, thread_id: str, channel: str, attachment: str) -> dict:
    before = await outbound_rows(state)
    payload = await send(inbox, thread_id, channel, "See attached.", attachmentIds=[attachment])
    assert payload["message"] is None, payload
    assert await outbound_rows(state) == before
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID", ["attachmentIds", "0"])
    return error


async def test_an_instagram_image_over_8_mb_is_invalid(inbox: Inbox, graph: MetaGraph, state: AppState) -> None:
    thread_id = await instagram_thread(inbox, graph, state)
    big = await upload(inbox, "big.png", b"\x89PNG" + b"\x00" * (8 * 1024 * 1024), "image/png")
    error = await _refused(inbox, state, thread_id, "INSTAGRAM", big)
    assert "INSTAGRAM image may be at most 8 MB" in error["message"]
    assert graph.sent("send") == []


async def test_an_instagram_file_of_another_type_is_invalid(inbox: Inbox, graph: MetaGraph, state: AppState) -> None:
    thread_id = await instagram_thread(inbox, graph, state)
    webp = await upload(inbox, "sticker.webp", b"RIFF0000WEBPVP8 " + b"\x00" * 100, "image/webp")
    error = await _refused(inbox, state, thread_id, "INSTAGRAM", webp)
    assert "image/webp" in error["message"] and "image/png" in error["message"] and "video/mp4" in error["message"]
    word = await upload(inbox, "notes.docx", b"PK\x03\x04" + b"\x00" * 100, "application/msword")
    error = await _refused(inbox, state, thread_id, "INSTAGRAM", word)
    assert "application/msword" in error["message"]


async def test_a_messenger_image_over_8_mb_is_invalid_and_one_file_per_message(
    inbox: Inbox, graph: MetaGraph, state: AppState
) -> None:
    thread_id = await messenger_thread(inbox, graph, state)
    big = await upload(inbox, "big.jpg", b"\xff\xd8" + b"\x00" * (8 * 1024 * 1024), "image/jpeg")
    error = await _refused(inbox, state, thread_id, "MESSENGER", big)
    assert "MESSENGER image may be at most 8 MB" in error["message"]
    first = await upload(inbox, "a.png", PNG, "image/png")
    second = await upload(inbox, "b.pdf", PDF, "application/pdf")
    before = await outbound_rows(state)
    payload = await send(inbox, thread_id, "MESSENGER", "Two files.", attachmentIds=[first, second])
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("INVALID", ["attachmentIds"])]
    assert await outbound_rows(state) == before


# -- Meta down ------------------------------------------------------------------------------------------------------


async def test_meta_down_with_media_fails_then_a_retry_sends_the_file_without_the_text_twice(
    inbox: Inbox, graph: MetaGraph, state: AppState, public: Settings
) -> None:
    # given a Messenger message with a PDF
    thread_id = await messenger_thread(inbox, graph, state)
    document = await upload(inbox, "bl.pdf", PDF, "application/pdf")
    message_id = (await send(inbox, thread_id, "MESSENGER", "Your B/L.", attachmentIds=[document]))["message"]["id"]
    down = "An unexpected error has occurred. Please retry your request later."
    # when Meta is down from the start: nothing went, kept QUEUED for a retry
    graph.fail_next("send", 500, down)
    with pytest.raises(RetryLater):
        await deliver_now(state, public, message_id)
    assert (await message(inbox, message_id))["status"] == "QUEUED"
    assert await provider_ids(state, message_id) == (None, None)
    # when the text goes but the file's request fails, and the retries have run out: FAILED with Meta's words
    async with system_session(state.sessionmaker) as session, session.begin():
        old = datetime.now(UTC) - timedelta(hours=2)
        await session.execute(update(Message).where(Message.id == local_uuid(message_id)).values(created_at=old))
    sent_before = len(graph.sent("send"))
    graph.fail_next("attachment", 500, down)  # the text goes through; the file's request fails
    assert await deliver_now(state, public, message_id) == MessageStatus.FAILED
    node = await message(inbox, message_id)
    assert node["status"] == "FAILED" and "Please retry your request later" in node["error"]
    texts = [r for r in graph.sent("send")[sent_before:] if "text" in r.json["message"]]
    assert len(texts) == 1
    _, text_sid = await provider_ids(state, message_id)
    assert text_sid is not None
    # when Meta is back, messageRetry queues it again, and the delivery sends the file alone
    retried = await inbox.ok(RETRY, {"input": {"messageId": message_id}}, "messageRetry")
    assert retried["message"]["status"] == "QUEUED"
    before_retry = len(graph.sent("send"))
    assert await deliver_now(state, public, message_id) == MessageStatus.SENT
    [only] = graph.sent("send")[before_retry:]
    assert attachment_of(only)["type"] == "file" and graph.fetched[-1].content == PDF
    sid, kept = await provider_ids(state, message_id)
    assert sid and kept == text_sid


REFUSE_TEXT_ID = (
    """
    CREATE FUNCTION refuse_text_id() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.headers ? 'text_message_id' AND NEW.provider_message_id IS NULL THEN
        RAISE EXCEPTION 'the database is not taking writes now';
      END IF;
      RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER refuse_text_id BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION refuse_text_id()",
)


async def refuse_storing_the_text_id_alone(state: AppState) -> None:
    """The database fails the write that stores the text's id before the file went (a real error of PostgreSQL's,
    as an outage or a pool timeout would be); the final write, with the file's id, goes through."""
    async with system_session(state.sessionmaker) as session, session.begin():
        for statement in REFUSE_TEXT_ID:
            await session.execute(text(statement))


async def test_a_database_error_after_the_text_still_sends_the_file(
    inbox: Inbox, graph: MetaGraph, state: AppState, public: Settings
) -> None:
    # given a Messenger message with a PDF, and a database that fails storing the text's id on its own
    thread_id = await messenger_thread(inbox, graph, state)
    document = await upload(inbox, "bl.pdf", PDF, "application/pdf")
    message_id = (await send(inbox, thread_id, "MESSENGER", "Your B/L.", attachmentIds=[document]))["message"]["id"]
    await refuse_storing_the_text_id_alone(state)
    # when it is delivered
    assert await deliver_now(state, public, message_id) == MessageStatus.SENT
    # then the text went once, then the file; both ids are kept with the message
    text_request, file_request = graph.sent("send")
    assert "text" in text_request.json["message"] and attachment_of(file_request)["type"] == "file"
    sid, text_sid = await provider_ids(state, message_id)
    assert sid and text_sid and sid != text_sid


async def test_a_database_error_then_a_failed_file_is_an_unknown_outcome_not_a_second_text(
    inbox: Inbox, graph: MetaGraph, state: AppState, public: Settings
) -> None:
    # given a Messenger message with a PDF, a database that fails storing the text's id, and Meta failing the file
    thread_id = await messenger_thread(inbox, graph, state)
    document = await upload(inbox, "bl.pdf", PDF, "application/pdf")
    message_id = (await send(inbox, thread_id, "MESSENGER", "Your B/L.", attachmentIds=[document]))["message"]["id"]
    await refuse_storing_the_text_id_alone(state)
    graph.fail_next("attachment", 500, "An unexpected error has occurred. Please retry your request later.")
    # when it is delivered
    status = await deliver_now(state, public, message_id)
    # then it is not put back for a retry (which would send the text again): its outcome is unknown, saying why
    assert status == MessageStatus.SENDING
    node = await message(inbox, message_id)
    assert "could not be stored" in node["error"] and "Please retry your request later" in node["error"]
    assert len([r for r in graph.sent("send") if "text" in r.json["message"]]) == 1
    # and a second run of the job sends nothing
    before = len(graph.sent("send"))
    assert await deliver_now(state, public, message_id) == MessageStatus.SENDING
    assert len(graph.sent("send")) == before
