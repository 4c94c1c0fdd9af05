"""The web chat widget in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`, selenium) opens a
static page served from another origin (a tiny HTTP server on 127.0.0.1, another port) that embeds the snippet with
its SRI hash; the visitor types a message, the test (as an agent) finds it in the inbox and replies through GraphQL,
and the reply appears in the page (delivered by a real Dramatiq worker, read over the visitor's WebSocket). A page on
an origin the widget does not allow gets no session. An agent's reply with an image and a PDF shows the image in the
page (loaded through the visitor's signed link, from the page's other origin) and a download link for the PDF.
Skipped without Chromium (a failure under CI=true)."""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import shutil
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from banxway.resolvers.web_chat import SCRIPT_VERSION, script
from banxway.settings import Settings
from banxway.state import AppState
from tests.inbox_helpers import Inbox
from tests.live_helpers import free_port, uvicorn_server

WAIT = 20.0
CHAT_WIDGET_CREATE = """
mutation($input: ChatWidgetCreateInput!) {
  chatWidgetCreate(input: $input) { chatWidget { widgetKey } userErrors { field code message } }
}
"""
THREADS = "query { threads(first: 5) { edges { node { id primaryChannel messages(first: 5) { edges { node { body } } } } } } }"
AGENT_SEND = """
mutation($threadId: ID!, $body: String!) {
  messageSend(input: {threadId: $threadId, channel: WEB_CHAT, body: $body}) { message { id } userErrors { message } }
}
"""
AGENT_SEND_FILES = """
mutation($threadId: ID!, $body: String!, $files: [ID!]!) {
  messageSend(input: {threadId: $threadId, channel: WEB_CHAT, body: $body, attachmentIds: $files}) {
    message { id } userErrors { message }
  }
}
"""
MESSAGE_STATUS = "query($id: ID!) { node(id: $id) { ... on Message { status } } }"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title></head>
<body><h1>A shop</h1>
<script src="{server}/widget.js?v={version}" data-widget-key="{key}" integrity="{integrity}" crossorigin="anonymous" async>
</script></body></html>
"""


def _find(*names: str) -> str | None:
    for name in names:
        if found := shutil.which(name):
            return found
        if os.access(name, os.X_OK):
            return name
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    binary = _find("chromium", "chromium-browser", "google-chrome", "/usr/lib/chromium/chromium")
    driver_path = _find("chromedriver", "/usr/lib/chromium/chromedriver")
    if binary is None or driver_path is None:
        message = f"the widget's browser test needs chromium and chromium-driver (found {binary}, {driver_path})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-widget')}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def attachment_url_ttl() -> int | None:
    """BANXWAY_ATTACHMENT_URL_TTL for a test that parametrizes it; the default otherwise."""
    return None


@pytest.fixture
def settings(settings: Settings, attachment_url_ttl: int | None) -> Settings:
    if attachment_url_ttl is None:
        return settings
    return settings.model_copy(update={"attachment_url_ttl_seconds": attachment_url_ttl})


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _static_site(directory: Path) -> tuple[str, Callable[[], None]]:
    """A tiny HTTP server of `directory` on 127.0.0.1 (its own port: its own origin)."""
    port = free_port()
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{port}", stop


async def _wait(browser: webdriver.Chrome, what: str, condition: Callable[[Any], Any], seconds: float = WAIT) -> Any:
    def wait() -> Any:
        try:
            return WebDriverWait(browser, seconds, poll_frequency=0.1).until(condition)
        except TimeoutException:
            console = [entry["message"] for entry in browser.get_log("browser")]
            body = browser.find_element(By.TAG_NAME, "body").text[:2000]
            pytest.fail(f"waited {seconds:.0f} s for {what}\npage: {body}\nconsole: {console}")

    return await asyncio.to_thread(wait)


def _png(width: int = 4, height: int = 3) -> bytes:
    """A real (decodable) PNG: a browser shows it with its natural size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x1f\x6f\xeb" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def _upload(inbox: Inbox, filename: str, data: bytes, content_type: str) -> str:
    response = await inbox.api.http.post(
        f"/attachments?filename={filename}",
        content=data,
        headers={"authorization": f"Bearer {inbox.token}", "content-type": content_type},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _agent_texts(browser: webdriver.Chrome) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#banxway-chat-messages .from-agent")]


async def test_a_visitor_chats_with_an_agent_from_an_allowed_page_and_another_origin_is_refused(
    browser: webdriver.Chrome, inbox: Inbox, settings: Settings, state: AppState, worker: Any, tmp_path: Path
) -> None:
    # given two static sites (two origins), one of them allowed by the widget, each embedding the snippet
    allowed_dir, refused_dir = tmp_path / "allowed", tmp_path / "refused"
    allowed_dir.mkdir()
    refused_dir.mkdir()
    allowed_origin, stop_allowed = _static_site(allowed_dir)
    refused_origin, stop_refused = _static_site(refused_dir)
    widget = await inbox.ok(
        CHAT_WIDGET_CREATE,
        {"input": {"name": "Shop", "allowedOrigins": [allowed_origin], "greeting": "Hello! Ask us anything."}},
        "chatWidgetCreate",
    )
    key = widget["chatWidget"]["widgetKey"]
    _, integrity = script()
    try:
        async with uvicorn_server(settings, state) as ws_url:
            server = ws_url.removeprefix("ws://").removesuffix("/graphql")
            page = PAGE.format(server=f"http://{server}", key=key, integrity=integrity, version=SCRIPT_VERSION)
            (allowed_dir / "index.html").write_text(page)
            (refused_dir / "index.html").write_text(page)

            # when the visitor opens the allowed page, the chat, and writes
            await asyncio.to_thread(browser.get, f"{allowed_origin}/index.html")
            await _wait(
                browser,
                "the widget to connect",
                lambda b: b.find_element(By.ID, "banxway-chat").get_attribute("data-state") == "ready",
            )
            await asyncio.to_thread(lambda: browser.find_element(By.ID, "banxway-chat-button").click())
            assert _agent_texts(browser) == ["Hello! Ask us anything."]  # the greeting
            chat_input = await asyncio.to_thread(browser.find_element, By.ID, "banxway-chat-input")
            await asyncio.to_thread(chat_input.send_keys, "Is my container MSKU1234565 on time?", Keys.ENTER)
            await _wait(
                browser,
                "the visitor's message",
                lambda b: b.find_elements(By.CSS_SELECTOR, "#banxway-chat-messages .from-visitor"),
            )

            # then the agent finds it in the inbox, and replies on WEB_CHAT
            threads = (await inbox.gql(THREADS))["data"]["threads"]["edges"]
            assert len(threads) == 1 and threads[0]["node"]["primaryChannel"] == "WEB_CHAT"
            messages = threads[0]["node"]["messages"]["edges"]
            assert [m["node"]["body"] for m in messages] == ["Is my container MSKU1234565 on time?"]
            reply = await inbox.ok(
                AGENT_SEND, {"threadId": threads[0]["node"]["id"], "body": "Yes, it sails on Friday."}, "messageSend"
            )

            # and the reply appears in the page, which marks it READ (the panel is open)
            await _wait(browser, "the agent's reply", lambda b: "Yes, it sails on Friday." in _agent_texts(b))
            for _ in range(200):
                status = (await inbox.gql(MESSAGE_STATUS, {"id": reply["message"]["id"]}))["data"]["node"]["status"]
                if status == "READ":
                    break
                await asyncio.sleep(0.05)
            assert status == "READ"

            # when the agent replies with an image and a PDF
            image = await _upload(inbox, "seal.png", _png(), "image/png")
            document = await _upload(inbox, "bl.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")
            await inbox.ok(
                AGENT_SEND_FILES,
                {"threadId": threads[0]["node"]["id"], "body": "The seal and your B/L.", "files": [image, document]},
                "messageSend",
            )
            # then the page shows the image, loaded from the server's other origin, and a link to the PDF
            await _wait(
                browser,
                "the agent's image",
                lambda b: b.execute_script(
                    "var i = document.querySelector('#banxway-chat-messages .from-agent img.banxway-chat-image');"
                    "return !!i && i.complete && i.naturalWidth === 4 && i.naturalHeight === 3;"
                ),
            )
            assert "The seal and your B/L." in _agent_texts(browser)[-1]
            link = await asyncio.to_thread(
                browser.find_element, By.CSS_SELECTOR, "#banxway-chat-messages .from-agent a.banxway-chat-file"
            )
            assert link.text.startswith("bl.pdf") and f"/widget/{key}/attachments/{document}?" in (
                link.get_attribute("href") or ""
            )

            # when a page on another origin embeds the same snippet
            await asyncio.to_thread(browser.get, f"{refused_origin}/index.html")
            # then it gets no session: the widget says so
            await _wait(
                browser,
                "the refusal",
                lambda b: b.find_element(By.ID, "banxway-chat").get_attribute("data-state") == "refused",
            )
            text = await asyncio.to_thread(
                lambda: browser.find_element(By.ID, "banxway-chat-status").get_attribute("textContent")
            )
            assert "may not open this chat widget" in text or "Chat unavailable" in text
    finally:
        stop_allowed()
        stop_refused()


@pytest.mark.parametrize("attachment_url_ttl", [36])
async def test_the_widget_renews_an_images_link_as_well_as_the_download_links(
    browser: webdriver.Chrome, inbox: Inbox, settings: Settings, state: AppState, worker: Any, tmp_path: Path
) -> None:
    # given a server whose file links are valid for 36 s only (the widget asks for new ones before they expire)
    assert settings.attachment_url_ttl_seconds == 36
    site = tmp_path / "site"
    site.mkdir()
    origin, stop = _static_site(site)
    widget = await inbox.ok(
        CHAT_WIDGET_CREATE, {"input": {"name": "Shop", "allowedOrigins": [origin]}}, "chatWidgetCreate"
    )
    key = widget["chatWidget"]["widgetKey"]
    _, integrity = script()
    try:
        async with uvicorn_server(settings, state) as ws_url:
            server = ws_url.removeprefix("ws://").removesuffix("/graphql")
            page = PAGE.format(server=f"http://{server}", key=key, integrity=integrity, version=SCRIPT_VERSION)
            (site / "index.html").write_text(page)
            # and a visitor who wrote, and an agent's reply with an image, shown in the page
            await asyncio.to_thread(browser.get, f"{origin}/index.html")
            await _wait(
                browser,
                "the widget to connect",
                lambda b: b.find_element(By.ID, "banxway-chat").get_attribute("data-state") == "ready",
            )
            await asyncio.to_thread(lambda: browser.find_element(By.ID, "banxway-chat-button").click())
            chat_input = await asyncio.to_thread(browser.find_element, By.ID, "banxway-chat-input")
            await asyncio.to_thread(chat_input.send_keys, "A photo of the seal, please.", Keys.ENTER)
            await _wait(
                browser,
                "the visitor's message",
                lambda b: b.find_elements(By.CSS_SELECTOR, "#banxway-chat-messages .from-visitor"),
            )
            thread_id = (await inbox.gql(THREADS))["data"]["threads"]["edges"][0]["node"]["id"]
            image = await _upload(inbox, "seal.png", _png(), "image/png")
            await inbox.ok(AGENT_SEND_FILES, {"threadId": thread_id, "body": "Here.", "files": [image]}, "messageSend")
            shown = (
                "var i = document.querySelector('#banxway-chat-messages .from-agent img.banxway-chat-image');"
                "return i && i.complete && i.naturalWidth === 4 ? [i.getAttribute('src'), i.parentNode.href] : null;"
            )
            first_src, first_href = await _wait(browser, "the agent's image", lambda b: b.execute_script(shown))
            assert first_src == first_href
            # when its link is renewed (before it expires)
            renewed = await _wait(
                browser,
                "a renewed image link",
                lambda b: (found := b.execute_script(shown)) and found[0] != first_src and found,
                seconds=45,
            )
            # then the image shows from the new link, the same one as its download link
            new_src, new_href = renewed
            assert new_src == new_href and f"/widget/{key}/attachments/{image}?" in new_src
            assert _expiry(new_src) > _expiry(first_src)
    finally:
        stop()


def _expiry(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["expires"][0])
