"""Request middleware: a request id (the `X-Request-ID` header, echoed), a structured access log with secrets
masked, Prometheus metrics for every HTTP request, and a limit on request bodies."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
import structlog
from prometheus_client import Counter, Histogram
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from banxway.logs import get_logger

log = get_logger("banxway.http")


class RequestContextMiddleware:
    """Request id, structured access log and Prometheus metrics for every HTTP request."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode()[:64] or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:  # the client went away mid-request: no answer to give, and not our error
            status = 499  # (nginx's word for it)
        finally:
            elapsed = time.perf_counter() - started
            path = scope["path"] if scope["path"] in _KNOWN_PATHS else "other"
            self.requests.labels(scope["method"], path, str(status)).inc()
            self.latency.labels(path).observe(elapsed)
            if path != "/metrics":
                log.info(
                    "request",
                    method=scope["method"],
                    path=_loggable(scope["path"]),
                    status=status,
                    ms=round(elapsed * 1000, 1),
                )
            structlog.contextvars.unbind_contextvars("request_id")


_KNOWN_PATHS = {"/graphql", "/livez", "/readyz", "/metrics"}


def _loggable(path: str) -> str:
    """The path without secrets: a webhook's token is its password."""
    if path.startswith("/webhooks/"):
        parts = path.split("/")
        if len(parts) > 3:
            parts[3] = "***"
        return "/".join(parts)
    return path


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Answers 413 to a request body over its route's limit: at once when Content-Length says so, else as soon as
    the bytes read pass it, so that no route buffers more than its limit. Uploads (`POST /attachments`) may be as
    large as an attachment; everything else as `BANXWAY_MAX_BODY_BYTES`."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload_bytes if scope["path"] == "/attachments" else self.max_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        received = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def watched_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, limit)


async def _too_large(send: Send, limit: int) -> None:
    body = orjson.dumps({"error": f"The request body is larger than the {limit}-byte limit."})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
