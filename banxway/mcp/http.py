"""`POST /mcp`: the MCP server over the SDK's streamable HTTP transport, stateless, for personal API tokens only.

Each request is authenticated on its own with `Authorization: Bearer bxp_...` (`banxway.context.authenticate`: the
token's row and its user as they are now, so a revoked token or a deactivated user is refused at once); without a
valid one the answer is 401 with a JSON error and nothing of MCP runs. The access token of a login (a JWT) is refused
too: an agent acts with a token of its own, whose scopes bound it (an access token has none: the whole role), whose
name the audit log records, and which is revoked alone.

Stateless (the SDK's `stateless_http`): no session is kept between requests, so any API process answers any request
of an agent and nothing needs sticky sessions. JSON responses (one per POST), not SSE streams: every tool answers
once, at its end. The SDK's DNS-rebinding check (a Host/Origin allow-list meant for unauthenticated local servers) is
off: a browser page cannot make another site send our bearer token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from banxway.auth import InvalidToken, bearer_token, is_api_token
from banxway.context import authenticate
from banxway.mcp.calls import SCOPE_KEY, Caller
from banxway.mcp.server import build_server
from banxway.state import AppState

Scope = dict[str, Any]
Receive = Any
Send = Any

API_TOKEN_NEEDED = (
    "MCP needs a personal API token: send 'Authorization: Bearer bxp_...' (create one with apiTokenCreate)"
)


class McpEndpoint:
    """The ASGI app of `/mcp`. Its session manager runs for the app's lifetime: `async with endpoint.running():` in
    the app's lifespan (a mounted app's own lifespan never runs)."""

    def __init__(self) -> None:
        self.server = build_server()
        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.manager: StreamableHTTPSessionManager = self.server.session_manager

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the session manager (its task group holds each request's server task) until the block ends.

        The manager runs in a task of its own: its anyio task group must be left by the task that entered it, and
        the app's lifespan may be entered and left by different tasks (a test fixture's set-up and tear-down)."""
        started, stop = asyncio.Event(), asyncio.Event()

        async def serve() -> None:
            async with self.manager.run():
                started.set()
                await stop.wait()

        task = asyncio.create_task(serve(), name="banxway-mcp-sessions")
        ready = asyncio.create_task(started.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            ready.cancel()
            await task  # it failed to start: raise why
        try:
            yield
        finally:
            stop.set()
            await task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - routed for HTTP only
            return
        state: AppState = scope["state"]["app"]
        authorization = _header(scope, b"authorization")
        try:
            token = bearer_token(authorization)
        except InvalidToken as exc:
            await _unauthorized(send, f"Invalid access token: {exc}")
            return
        if token is None:
            await _unauthorized(send, API_TOKEN_NEEDED)
            return
        if not is_api_token(token):
            await _unauthorized(send, f"{API_TOKEN_NEEDED}; the access token of a login is not accepted here")
            return
        viewer, error = await authenticate(state, authorization)
        if viewer is None:
            await _unauthorized(send, error or API_TOKEN_NEEDED)
            return
        scope[SCOPE_KEY] = Caller(state, viewer)
        await self.manager.handle_request(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _unauthorized(send: Send, message: str) -> None:
    body = orjson.dumps({"error": message})
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="banxway-mcp"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
