"""Request bodies are bounded on every route (issue 16, item 6: `/graphql` buffered 200 MB from anyone, and the
webhooks read a whole body before checking its size). Over `BANXWAY_MAX_BODY_BYTES` (uploads:
`BANXWAY_ATTACHMENT_MAX_BYTES`) the answer is 413, at once when Content-Length says so, and as soon as the bytes
pass the limit when the body is streamed, so that nothing buffers more than the limit."""

from __future__ import annotations

from typing import Any

import httpx

from banxway.app import create_app
from banxway.settings import Settings
from banxway.state import AppState
from tests.live_helpers import uvicorn_server

LIMIT = 64 * 1024


def _limited(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_body_bytes": LIMIT})


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(settings: Settings, state: AppState) -> None:
    # given a server with a 64 KiB limit
    async with uvicorn_server(_limited(settings), state) as url, httpx.AsyncClient() as http:
        base = url.replace("ws://", "http://").removesuffix("/graphql")
        # when a GraphQL request and a webhook declare larger bodies (no token needed to be refused)
        big = b"x" * (LIMIT + 1)
        graphql = await http.post(f"{base}/graphql", content=big, headers={"content-type": "application/json"})
        webhook = await http.post(f"{base}/webhooks/exotel/not-a-token/sms", content=big)
        small = await http.post(f"{base}/graphql", json={"query": "{ __typename }"})
    # then both are 413 naming the limit, and a small request still works
    assert (graphql.status_code, webhook.status_code) == (413, 413)
    assert f"{LIMIT}-byte limit" in graphql.json()["error"]
    assert small.status_code == 200


async def test_a_streamed_body_is_cut_off_at_the_limit(settings: Settings, state: AppState) -> None:
    # given the app, and a client streaming 32 MiB in 64 KiB chunks without a Content-Length
    app = create_app(_limited(settings), state=state)
    chunks_read = 0

    async def receive() -> dict[str, Any]:
        nonlocal chunks_read
        chunks_read += 1
        return {"type": "http.request", "body": b"x" * (64 * 1024), "more_body": chunks_read < 512}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = graphql_post_scope([(b"content-type", b"application/json")], {"app": state})
    # when it posts to /graphql
    await app(scope, receive, send)
    # then the app stopped reading just past the limit and answered 413
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 413
    assert chunks_read == 2  # 64 KiB is the limit: the second chunk passes it, and nothing more is read


def graphql_post_scope(headers: list[tuple[bytes, bytes]], state: dict[str, Any]) -> dict[str, Any]:
    """The ASGI scope of a POST /graphql, for tests that drive the app's receive/send by hand."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": state,
    }


async def test_a_client_that_goes_away_mid_request_is_not_an_application_error(
    settings: Settings, state: AppState
) -> None:
    """wrk and browsers close connections with requests in flight: no traceback, no 500, a 499 in the access log."""
    app = create_app(settings, state=state)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with app.router.lifespan_context(app) as lifespan_state:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"40")]
        await app(graphql_post_scope(headers, dict(lifespan_state)), receive, send)  # the disconnect is not raised
    assert sent == []
