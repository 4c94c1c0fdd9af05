"""GraphiQL served offline (issue 18): our own build (banxway/static/graphiql/, from web/graphiql/) in a real browser.

A `banxway serve` subprocess on the module's database and Redis, and headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by selenium) whose resolver knows no host but 127.0.0.1 — offline, as far as the page can
tell. The page must render, load nothing from another origin, send the token typed into its headers editor, and
show a subscription's events as they come. Without Chromium the browser tests fail under CI=true (CI installs it,
.ci/run) and are skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from banxway.app import GRAPHIQL
from banxway.db.session import create_engine, create_sessionmaker, system_session
from banxway.resolvers.users import organization_create
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import PASSWORD, http_client
from tests.live_helpers import LOGIN, THREAD_CREATE, ServeProcess, http_gql, module_settings, wait_redis_subscribers

WAIT = 20.0  # seconds for the page to render or answer (Chromium's first start on a loaded machine is slow)
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = ("chromedriver",)


# -- the page and its files over HTTP (no browser) ---------------------------------------------------------------


async def test_the_page_and_its_files_are_served_in_development(client: httpx.AsyncClient) -> None:
    # when the page and the files it names are fetched
    page = await client.get("/graphql", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    script = await client.get("/graphiql/app.js")
    stylesheet = await client.get("/graphiql/app.css")
    # then they are our build, served from this server
    assert page.status_code == 200 and page.text == (GRAPHIQL / "index.html").read_text()
    assert "/graphiql/app.js?v=" in page.text and "/graphiql/app.css?v=" in page.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert stylesheet.status_code == 200 and stylesheet.headers["content-type"].startswith("text/css")
    assert script.content == (GRAPHIQL / "app.js").read_bytes()
    # and nothing in them names a CDN or Google Fonts, nor embeds a font
    for text in (page.text, script.text, stylesheet.text):
        for host in ("unpkg.com", "jsdelivr.net", "fonts.googleapis.com", "fonts.gstatic.com"):
            assert host not in text
    assert "@font-face" not in stylesheet.text and "@import" not in stylesheet.text


def test_the_bundle_is_small_and_its_licences_are_recorded() -> None:
    sizes = {name: (GRAPHIQL / name).stat().st_size for name in ("index.html", "app.js", "app.css")}
    assert sum(sizes.values()) < 3_000_000, sizes
    licences = (GRAPHIQL / "LICENSES.txt").read_text()
    for package in ("react", "react-dom", "graphiql", "@graphiql/plugin-explorer", "@graphiql/toolkit", "graphql-ws"):
        assert f"\n{package} " in licences, package
    lock = json.loads((Path(__file__).parents[1] / "web/graphiql/package-lock.json").read_text())
    graphiql = lock["packages"]["node_modules/graphiql"]["version"]
    assert f"\ngraphiql {graphiql} MIT\n" in licences  # LICENSES.txt is of the locked versions


async def test_no_graphiql_nor_its_files_in_production(settings: Settings, state: AppState) -> None:
    async with http_client(settings.model_copy(update={"env": "production"}), state) as http:
        page = await http.get("/graphql", headers={"accept": "text/html"})
        script = await http.get("/graphiql/app.js")
    assert page.status_code == 404 and script.status_code == 404


# -- in Chromium --------------------------------------------------------------------------------------------------


def _find(names: tuple[str, ...], *also: str) -> str | None:
    for name in names:
        if found := shutil.which(name):
            return found
    return next((path for path in also if os.access(path, os.X_OK)), None)


@pytest.fixture(scope="module")
def chromium() -> tuple[str, str]:
    """(Chromium, chromedriver): a failure under CI=true when either is missing, a skip elsewhere."""
    browser = _find(CHROMIUM, "/usr/lib/chromium/chromium")
    driver = _find(CHROMEDRIVER, "/usr/lib/chromium/chromedriver")
    if browser is None or driver is None:
        message = (
            "GraphiQL's browser tests need Chromium and its driver: `apt-get install chromium chromium-driver` "
            f"(found chromium: {browser}, chromedriver: {driver})"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return browser, driver


@pytest.fixture(scope="module")
async def live_settings(
    postgres_server_url: str, template_database: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    data_dir = tmp_path_factory.mktemp("graphiql") / "data"
    async with module_settings(postgres_server_url, template_database, redis_url, data_dir) as settings:
        yield settings


@pytest.fixture(scope="module")
async def server(
    chromium: tuple[str, str], live_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServeProcess]:
    process = ServeProcess.start(live_settings, tmp_path_factory.mktemp("serve"), "graphiql")
    try:
        await process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser(chromium: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # Offline, as far as the page can tell: no name resolves, only 127.0.0.1 is reachable.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    # An explicit driver: selenium's manager would otherwise look for one on the network.
    service = webdriver.ChromeService(executable_path=driver_path, log_output=str(log))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
async def signed_in(live_settings: Settings, server: ServeProcess) -> AsyncIterator[Callable[[str], Any]]:
    """Creates an organization (slug given) and signs its admin in through `authLogin`: (its id, an access token)."""
    engine = create_engine(str(live_settings.database_url))
    sessionmaker = create_sessionmaker(engine)

    async def sign_in(slug: str) -> tuple[uuid.UUID, str]:
        email = f"admin@{slug}.test"
        async with system_session(sessionmaker) as session:
            organization, _ = await organization_create(
                session, name=slug.title(), slug=slug, admin_email=email, admin_password=PASSWORD
            )
        login = await http_gql(server, LOGIN, {"email": email, "password": PASSWORD})
        assert login["authLogin"]["userErrors"] == [], login
        return organization.id, login["authLogin"]["accessToken"]

    yield sign_in
    await engine.dispose()


def _open(browser: webdriver.Chrome, server: ServeProcess, **parameters: str) -> None:
    """GraphiQL at /graphql (with its URL parameters), on a clean storage, its editors rendered."""
    browser.get(f"{server.http_url}/livez")
    browser.execute_script("window.localStorage.clear()")
    browser.get(f"{server.graphql_url}?{urlencode(parameters)}" if parameters else server.graphql_url)
    _wait(browser, server, "the editors to render", lambda b: b.find_elements(By.CSS_SELECTOR, ".graphiql-container"))
    _wait(browser, server, "the query editor", lambda b: b.find_elements(By.CSS_SELECTOR, ".graphiql-query-editor"))


def _wait(browser: webdriver.Chrome, server: ServeProcess, what: str, condition: Callable[[Any], Any]) -> Any:
    try:
        return WebDriverWait(browser, WAIT, poll_frequency=0.1).until(condition)
    except TimeoutException:
        pytest.fail(
            f"waited {WAIT:.0f} s for {what}\n"
            f"page: {browser.find_element(By.TAG_NAME, 'body').text[:2000]}\n"
            f"browser console: {_console(browser)}\n"
            f"server log: {server.output()}"
        )


def _console(browser: webdriver.Chrome) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser")]


def _response(browser: webdriver.Chrome) -> str:
    """The text of GraphiQL's result pane (a CodeMirror editor)."""
    return browser.execute_script(
        "const editor = document.querySelector('.graphiql-response .CodeMirror');"
        "return editor && editor.CodeMirror ? editor.CodeMirror.getValue() : '';"
    )


def _run(browser: webdriver.Chrome) -> None:
    browser.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()


async def test_graphiql_renders_offline_and_loads_everything_from_this_server(
    browser: webdriver.Chrome, server: ServeProcess
) -> None:
    # when the page is opened with no network but this server
    _open(browser, server)
    # then the editors are there (CodeMirror), and the schema was fetched from this server (the docs explorer)
    assert browser.find_elements(By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror")
    assert browser.title == "GraphiQL · Banxway"
    script = "return performance.getEntriesByType('resource').map(entry => entry.name)"
    _wait(
        browser,
        server,
        "the introspection request",
        lambda b: any("/graphql" in url for url in b.execute_script(script)),
    )
    loaded = browser.execute_script(script)
    assert loaded and all(url.startswith(server.http_url + "/") for url in loaded), loaded
    assert {url.split("?")[0].removeprefix(server.http_url) for url in loaded} >= {
        "/graphiql/app.js",
        "/graphiql/app.css",
        "/graphql",
    }
    # and nothing was refused by the page's Content-Security-Policy, nor failed to load, a dialog opened included
    # (Radix locks the page's scrolling with a stylesheet: a constructed one, not an inline <style>, see build.mjs)
    browser.find_element(By.CSS_SELECTOR, '[aria-label="Open settings dialog"]').click()
    _wait(browser, server, "the settings dialog", lambda b: b.find_elements(By.CSS_SELECTOR, ".graphiql-dialog"))
    browser.find_element(By.CSS_SELECTOR, ".graphiql-dialog").send_keys(Keys.ESCAPE)
    _wait(browser, server, "the dialog to close", lambda b: not b.find_elements(By.CSS_SELECTOR, ".graphiql-dialog"))
    console = _console(browser)
    assert not [line for line in console if "Content Security Policy" in line or "Failed to load" in line], console
    # and the page uses the system's fonts, no web font
    fonts = browser.execute_script("return [...document.fonts].map(font => font.family)")
    assert fonts == [], fonts


async def test_a_query_runs_with_the_token_of_the_headers_editor(
    browser: webdriver.Chrome, server: ServeProcess, signed_in: Callable[[str], Any]
) -> None:
    # given a signed-in admin's token in the headers editor, and a query in the query editor (URL parameters)
    _organization_id, token = await signed_in("graphiql-query")
    query = "query Me {\n  me { email organization { name } }\n}"
    _open(browser, server, q=query, headers=json.dumps({"Authorization": f"Bearer {token}"}))
    # when the run button is clicked
    _run(browser)
    # then the result pane shows the viewer's data
    text = _wait(browser, server, "the result", lambda b: (value := _response(b)) and '"data"' in value and value)
    result = json.loads(text)
    assert result == {
        "data": {"me": {"email": "admin@graphiql-query.test", "organization": {"name": "Graphiql-Query"}}}
    }


async def test_a_subscription_shows_events_as_they_come(
    browser: webdriver.Chrome, server: ServeProcess, live_settings: Settings, signed_in: Callable[[str], Any]
) -> None:
    # given a subscription to the inbox's events, run in GraphiQL with the token of its headers editor
    organization_id, token = await signed_in("graphiql-live")
    subscription = "subscription Inbox {\n  inboxEvents { type thread { subject } }\n}"
    _open(browser, server, q=subscription, headers=json.dumps({"Authorization": f"Bearer {token}"}))
    _run(browser)
    await wait_redis_subscribers(str(live_settings.redis_url), organization_id, 1, within=WAIT)
    # when a thread is created (over HTTP, as another client would)
    await http_gql(server, THREAD_CREATE, {"subject": "Seen live in GraphiQL"}, token)
    # then its event appears in the result pane
    text = _wait(
        browser, server, "the event", lambda b: (value := _response(b)) and "THREAD_CREATED" in value and value
    )
    assert json.loads(text) == {
        "data": {"inboxEvents": {"type": "THREAD_CREATED", "thread": {"subject": "Seen live in GraphiQL"}}}
    }
    # and the button now stops the subscription
    _run(browser)
    await wait_redis_subscribers(str(live_settings.redis_url), organization_id, 0, within=WAIT)
