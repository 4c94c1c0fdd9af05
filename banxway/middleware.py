"""Request middleware: a request id (the `X-Request-ID` header, echoed), a structured access log with secrets
masked, and Prometheus metrics for every HTTP request."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
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
