"""The web chat widget in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`, selenium) opens a
static page served from another origin (a tiny HTTP server on 127.0.0.1, another port) that embeds the snippet with
its SRI hash; the visitor types a message, the test (as an agent) finds it in the inbox and replies through GraphQL,
and the reply appears in the page (delivered by a real Dramatiq worker, read over the visitor's WebSocket). A page on
an origin the widget does not allow gets no session. Skipped without Chromium (a failure under CI=true)."""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from banxway.resolvers.web_chat import script
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
MESSAGE_STATUS = "query($id: ID!) { node(id: $id) { ... on Message { status } } }"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title></head>
<body><h1>A shop</h1>
<script src="{server}/widget.js?v=1" data-widget-key="{key}" integrity="{integrity}" crossorigin="anonymous" async>
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


async def _wait(browser: webdriver.Chrome, what: str, condition: Callable[[Any], Any]) -> Any:
    def wait() -> Any:
        try:
            return WebDriverWait(browser, WAIT, poll_frequency=0.1).until(condition)
        except TimeoutException:
            console = [entry["message"] for entry in browser.get_log("browser")]
            body = browser.find_element(By.TAG_NAME, "body").text[:2000]
            pytest.fail(f"waited {WAIT:.0f} s for {what}\npage: {body}\nconsole: {console}")

    return await asyncio.to_thread(wait)


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
            page = PAGE.format(server=f"http://{server}", key=key, integrity=integrity)
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
