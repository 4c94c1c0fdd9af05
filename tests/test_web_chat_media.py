"""Files an agent sends a web chat visitor (`messageSend(channel: WEB_CHAT, attachmentIds)`): listed with the reply in
the visitor's API (`visitorMessages`, `visitorEvents`), downloaded by that visitor only — with their visitor token or
the signed link they were given — and never by another visitor, another organization's visitor, or no one; served as
downloads (nosniff, Content-Disposition: attachment) except images; programs refused before anything is stored."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select

from banxway import events
from banxway.db.models import Attachment, ChatVisitor, Message
from banxway.db.session import system_session
from banxway.enums import Direction, MessageStatus
from banxway.resolvers.web_chat import OLDER_SCRIPTS, SCRIPT_VERSION
from banxway.resolvers.web_chat_files import VISITOR_LINKS
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api
from tests.inbox_helpers import Inbox, upload
from tests.live_helpers import GraphQLSocket, local_uuid, uvicorn_server
from tests.messaging_helpers import deliver_now, send

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 3000
PDF = b"%PDF-1.4\n" + b"0" * 1000 + b"\n%%EOF\n"
HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"
SHOP = "https://shop.example.com"
CHAT_WIDGET_CREATE = """
mutation($input: ChatWidgetCreateInput!) {
  chatWidgetCreate(input: $input) { chatWidget { widgetKey } userErrors { field code message } }
}
"""
VISITOR_SEND = (
    "mutation($body: String!) { visitorMessageSend(input: {body: $body}) { message { id } userErrors { code } } }"
)
FILES = "attachments { id filename contentType size inline url }"
VISITOR_MESSAGES = f"query {{ visitorMessages(first: 50) {{ nodes {{ id body author {FILES} }} }} }}"
VISITOR_EVENTS = f"subscription {{ visitorEvents {{ type message {{ id body {FILES} }} }} }}"
THREAD_OF = "query($id: ID!) { node(id: $id) { ... on Message { thread { id } } } }"


async def _widget(inbox: Inbox) -> str:
    payload = await inbox.ok(
        CHAT_WIDGET_CREATE, {"input": {"name": "Shop", "allowedOrigins": [SHOP]}}, "chatWidgetCreate"
    )
    return payload["chatWidget"]["widgetKey"]


async def _visitor(http: httpx.AsyncClient, key: str) -> str:
    response = await http.post(
        f"/widget/{key}/session", json={}, headers={"origin": SHOP, "content-type": "text/plain"}
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


async def _visitor_thread(inbox: Inbox, key: str, text: str = "Where is my container?") -> tuple[str, str]:
    """A visitor who wrote: (their token, their thread's id)."""
    token = await _visitor(inbox.api.http, key)
    result = await inbox.api.gql(VISITOR_SEND, {"body": text}, token=token)
    message_id = result["data"]["visitorMessageSend"]["message"]["id"]
    thread = (await inbox.gql(THREAD_OF, {"id": message_id}))["data"]["node"]["thread"]
    return token, thread["id"]


async def _reply_with(inbox: Inbox, state: AppState, settings: Settings, thread_id: str, files: list[str]) -> str:
    payload = await send(inbox, thread_id, "WEB_CHAT", "Here are your documents.", attachmentIds=files)
    assert payload["userErrors"] == [], payload
    assert await deliver_now(state, settings, payload["message"]["id"]) == MessageStatus.SENT
    return payload["message"]["id"]


async def _agent_files(api: Api, token: str) -> list[dict]:
    result = await api.gql(VISITOR_MESSAGES, token=token)
    assert "errors" not in result, result
    return [file for node in result["data"]["visitorMessages"]["nodes"] for file in node["attachments"]]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _bare(url: str) -> str:
    return urlsplit(url).path


# -- what the visitor gets --------------------------------------------------------------------------------------


async def test_an_agents_files_reach_the_visitor_and_download_with_their_link_or_token(
    inbox: Inbox, state: AppState, settings: Settings
) -> None:
    # given a visitor's conversation
    key = await _widget(inbox)
    token, thread_id = await _visitor_thread(inbox, key)
    image = await upload(inbox, "seal.png", PNG, "image/png")
    document = await upload(inbox, "bl.pdf", PDF, "application/pdf")
    # when an agent replies with both files
    await _reply_with(inbox, state, settings, thread_id, [image, document])
    # then the visitor's conversation lists them with the reply
    result = await inbox.api.gql(VISITOR_MESSAGES, token=token)
    agent = [n for n in result["data"]["visitorMessages"]["nodes"] if n["author"] == "AGENT"]
    [reply] = agent
    assert reply["body"] == "Here are your documents."
    shown = [(f["filename"], f["contentType"], f["size"], f["inline"]) for f in reply["attachments"]]
    assert shown == [("seal.png", "image/png", len(PNG), True), ("bl.pdf", "application/pdf", len(PDF), False)]
    png, pdf = reply["attachments"]
    assert png["id"] == image and pdf["id"] == document
    assert _bare(png["url"]) == f"/widget/{key}/attachments/{image}" and "signature=" in png["url"]
    # the signed link downloads with no header: the image inline, the PDF as a download; nosniff; embeddable
    http = inbox.api.http
    shown_png = await http.get(_path(png["url"]))
    assert shown_png.status_code == 200 and shown_png.content == PNG
    assert shown_png.headers["content-type"] == "image/png"
    assert shown_png.headers["content-disposition"].startswith("inline")
    assert shown_png.headers["cross-origin-resource-policy"] == "cross-origin"
    got_pdf = await http.get(_path(pdf["url"]))
    assert got_pdf.status_code == 200 and got_pdf.content == PDF
    assert got_pdf.headers["content-disposition"].startswith("attachment")
    assert got_pdf.headers["x-content-type-options"] == "nosniff"
    # and the visitor token opens the same path
    with_token = await http.get(_bare(pdf["url"]), headers={"authorization": f"Bearer {token}"})
    assert with_token.status_code == 200 and with_token.content == PDF


async def test_html_is_never_served_to_render_and_programs_are_not_sent(
    inbox: Inbox, state: AppState, settings: Settings
) -> None:
    key = await _widget(inbox)
    token, thread_id = await _visitor_thread(inbox, key)
    page = await upload(inbox, "invoice.html", HTML, "text/html")
    await _reply_with(inbox, state, settings, thread_id, [page])
    [file] = await _agent_files(inbox.api, token)
    response = await inbox.api.http.get(_path(file["url"]))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in response.headers["content-security-policy"]
    # a program is refused before anything is stored, naming the file's index
    program = await upload(inbox, "setup.exe", b"MZ" + b"\x00" * 200, "application/octet-stream")
    async with system_session(state.sessionmaker) as session:
        before = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == Direction.OUTBOUND)
        )
    payload = await send(inbox, thread_id, "WEB_CHAT", "Install this.", attachmentIds=[page, program])
    assert payload["message"] is None
    [error] = payload["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID", ["attachmentIds", "1"]) and ".exe" in error["message"]
    async with system_session(state.sessionmaker) as session:
        after = await session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == Direction.OUTBOUND)
        )
        unlinked = await session.scalar(select(Attachment.message_id).where(Attachment.filename == "setup.exe"))
    assert after == before and unlinked is None


async def test_a_file_with_a_raw_content_type_downloads_as_the_listing_says(
    inbox: Inbox, state: AppState, settings: Settings
) -> None:
    # given an image whose stored Content-Type is as a mail carried it (an ingested attachment passed on)
    key = await _widget(inbox)
    token, thread_id = await _visitor_thread(inbox, key)
    image = await upload(inbox, "seal.png", PNG, "image/png")
    async with system_session(state.sessionmaker) as session, session.begin():
        row = await session.get(Attachment, local_uuid(image))
        assert row is not None
        row.content_type = "image/PNG; name=seal.png"
    await _reply_with(inbox, state, settings, thread_id, [image])
    # when the visitor's page lists it and shows it
    [file] = await _agent_files(inbox.api, token)
    response = await inbox.api.http.get(_path(file["url"]))
    # then the download is what the listing said: a PNG, shown inline
    assert (file["contentType"], file["inline"]) == ("image/png", True)
    assert response.status_code == 200 and response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"].startswith("inline")


async def test_a_visitors_file_is_served_like_any_attachment_download(
    inbox: Inbox, state: AppState, settings: Settings
) -> None:
    # given an AVIF image an agent sent a visitor
    key = await _widget(inbox)
    token, thread_id = await _visitor_thread(inbox, key)
    avif = b"\x00\x00\x00\x1cftypavif" + b"\x00" * 500
    uploaded = await inbox.api.http.post(
        "/attachments?filename=hold.avif",
        content=avif,
        headers={"authorization": f"Bearer {inbox.token}", "content-type": "image/avif"},
    )
    image, url = uploaded.json()["id"], uploaded.json()["downloadUrl"]
    await _reply_with(inbox, state, settings, thread_id, [image])
    [file] = await _agent_files(inbox.api, token)
    # when the visitor downloads it, and an agent downloads it with its own link
    visitors = await inbox.api.http.get(_path(file["url"]))
    agents = await inbox.api.http.get(_path(url))
    # then both are the same kind of answer: one list of inline types, one sandboxing policy
    assert file["inline"] is True
    for response in (visitors, agents):
        assert response.status_code == 200 and response.content == avif
        assert response.headers["content-type"] == "image/avif"
        assert response.headers["content-disposition"].startswith("inline")
        assert response.headers["x-content-type-options"] == "nosniff"
    assert visitors.headers["content-security-policy"] == agents.headers["content-security-policy"]
    assert "sandbox" in visitors.headers["content-security-policy"]
    assert visitors.headers["cross-origin-resource-policy"] == "cross-origin"


async def test_a_reply_not_sent_yet_shows_no_file(inbox: Inbox, state: AppState, settings: Settings) -> None:
    key = await _widget(inbox)
    token, thread_id = await _visitor_thread(inbox, key)
    image = await upload(inbox, "seal.png", PNG, "image/png")
    payload = await send(inbox, thread_id, "WEB_CHAT", "Soon.", attachmentIds=[image])  # QUEUED, not delivered
    assert payload["message"]["status"] == "QUEUED"
    assert await _agent_files(inbox.api, token) == []
    response = await inbox.api.http.get(
        f"/widget/{key}/attachments/{image}", headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 404


# -- nobody else ----------------------------------------------------------------------------------------------------


async def test_another_visitor_no_token_or_another_organization_cannot_download(
    inbox: Inbox, api: Api, state: AppState, settings: Settings
) -> None:
    # given a visitor with a file from an agent
    key = await _widget(inbox)
    token, thread_id = await _visitor_thread(inbox, key)
    image = await upload(inbox, "seal.png", PNG, "image/png")
    await _reply_with(inbox, state, settings, thread_id, [image])
    [file] = await _agent_files(api, token)
    http = inbox.api.http
    path = _bare(file["url"])
    # another visitor of the same widget (with a conversation of their own)
    other, _ = await _visitor_thread(inbox, key, "Me too")
    assert (await http.get(path, headers={"authorization": f"Bearer {other}"})).status_code == 404
    assert await _agent_files(api, other) == []
    # no token, or an organization member's access token (not a visitor token)
    assert (await http.get(path)).status_code == 401
    assert (await http.get(path, headers={"authorization": f"Bearer {inbox.token}"})).status_code == 401
    # a visitor of another organization's widget, on either widget's path
    other_org = await api.create_org("globex")
    other_inbox = Inbox(api, other_org, await api.token(other_org.admin_email))
    their_key = await _widget(other_inbox)
    stranger, _ = await _visitor_thread(other_inbox, their_key, "Hello")
    assert (await http.get(path, headers={"authorization": f"Bearer {stranger}"})).status_code == 404
    their_path = f"/widget/{their_key}/attachments/{image}"
    assert (await http.get(their_path, headers={"authorization": f"Bearer {stranger}"})).status_code == 404
    # the visitor token opens no organization-wide download either
    assert (await http.get(f"/attachments/{image}", headers={"authorization": f"Bearer {token}"})).status_code == 401


async def test_a_signed_link_works_only_as_given(inbox: Inbox, api: Api, state: AppState, settings: Settings) -> None:
    key = await _widget(inbox)
    token, thread_id = await _visitor_thread(inbox, key)
    image = await upload(inbox, "seal.png", PNG, "image/png")
    await _reply_with(inbox, state, settings, thread_id, [image])
    [file] = await _agent_files(api, token)
    query = dict(part.split("=", 1) for part in urlsplit(file["url"]).query.split("&"))
    http = inbox.api.http
    assert (await http.get(_path(file["url"]))).status_code == 200

    async def status(path: str, **changes: Any) -> int:
        params = {**query, **changes}
        return (await http.get(path, params=params)).status_code

    # for another file, another visitor, another time, or with another signature: refused
    other_file = await upload(inbox, "other.png", PNG, "image/png")
    assert await status(f"/widget/{key}/attachments/{other_file}") == 403
    await _visitor_thread(inbox, key, "Me too")
    async with system_session(state.sessionmaker) as session:
        ids = [str(v) for v in await session.scalars(select(ChatVisitor.id))]
    assert await status(_bare(file["url"]), visitor=next(i for i in ids if i != query["visitor"])) == 403
    assert await status(_bare(file["url"]), expires=str(int(query["expires"]) + 3600)) == 403
    assert await status(_bare(file["url"]), signature="A" * 43) == 403
    # on another widget's path (of another organization): not there
    other_org = await api.create_org("globex")
    other_inbox = Inbox(api, other_org, await api.token(other_org.admin_email))
    their_key = await _widget(other_inbox)
    assert await status(f"/widget/{their_key}/attachments/{image}") == 404


async def test_an_expired_link_is_refused(inbox: Inbox, api: Api, state: AppState, settings: Settings) -> None:
    key = await _widget(inbox)
    token, thread_id = await _visitor_thread(inbox, key)
    image = await upload(inbox, "seal.png", PNG, "image/png")
    await _reply_with(inbox, state, settings, thread_id, [image])
    [file] = await _agent_files(api, token)
    query = dict(part.split("=", 1) for part in urlsplit(file["url"]).query.split("&"))
    past = 1_000_000
    signature = VISITOR_LINKS.signature(state.secret_key, (local_uuid(image), uuid.UUID(query["visitor"])), past)
    response = await inbox.api.http.get(
        _bare(file["url"]), params={"visitor": query["visitor"], "expires": str(past), "signature": signature}
    )
    assert response.status_code == 403 and "expired" in response.json()["error"]


# -- live ----------------------------------------------------------------------------------------------------------


async def test_the_live_reply_carries_its_files_with_an_absolute_link(
    inbox: Inbox, state: AppState, settings: Settings
) -> None:
    key = await _widget(inbox)
    token, thread_id = await _visitor_thread(inbox, key)
    image = await upload(inbox, "seal.png", PNG, "image/png")
    async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(token)
        await socket.subscribe("events", VISITOR_EVENTS)
        await _listening(state, inbox.org.id)
        await _reply_with(inbox, state, settings, thread_id, [image])
        while True:
            _, event = await socket.next()
            if event["type"] == "MESSAGE":
                break
    [file] = event["message"]["attachments"]
    assert (file["filename"], file["inline"]) == ("seal.png", True)
    server = url.removeprefix("ws://").removesuffix("/graphql")
    assert file["url"].startswith(f"http://{server}/widget/{key}/attachments/{image}?visitor=")


async def _listening(state: AppState, organization_id: uuid.UUID) -> None:
    for _ in range(500):
        if events.channel(organization_id) in state.broadcast._subscribers:
            await asyncio.sleep(0.05)
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the visitor's subscription never listened")


# -- the script -----------------------------------------------------------------------------------------------------


async def test_the_script_that_shows_files_is_a_new_version_and_the_old_one_is_still_served(
    client: httpx.AsyncClient,
) -> None:
    # given pages that embed version 1 with its SRI hash, and the new snippet's version 2
    info = (await client.get("/widget.js.json")).json()
    assert info["version"] == SCRIPT_VERSION == 2 and info["path"] == "/widget.js?v=2"
    current = await client.get(info["path"])
    old = await client.get("/widget.js?v=1")
    # then each version is served with its own hash, the old one unchanged (banxway/static/widget.v1.js)
    assert "sha384-" + base64.b64encode(hashlib.sha384(current.content).digest()).decode() == info["integrity"]
    assert "attachments {" in current.text and "attachments {" not in old.text
    assert old.content == OLDER_SCRIPTS[1].read_bytes() and old.headers["x-widget-version"] == "1"
    assert (await client.get("/widget.js?v=7")).content == current.content


async def test_any_version_asked_for_is_answered_never_a_500(client: httpx.AsyncClient) -> None:
    current = (await client.get("/widget.js")).content
    # a digit that is no ASCII digit, more digits than int() takes, a sign, spaces: the current script
    for asked in ("\u00b2", "\u0661", "9" * 5000, "-1", " 1", "1.0", "0x1"):
        response = await client.get("/widget.js", params={"v": asked})
        assert response.status_code == 200, asked
        assert response.content == current and response.headers["x-widget-version"] == str(SCRIPT_VERSION)
