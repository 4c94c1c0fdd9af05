"""Outbound webhooks: POST one signed JSON body to an organization's endpoint, and say what came back.

Plain values in, a `WebhookResponse` out; nothing of the database. The body is signed as
`Banxway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (`sign`). Connect and read
timeouts are explicit; redirects are not followed (a 3xx is a failure: the receiver must give its final URL);
with `public_only` the connection is made only to internet addresses, the name resolved at connect time
(`banxway.integrations.network`: a name that answered a public address when it was saved cannot point at our own
network later). Only the first KiB of the answer is read.

`transient` failures are worth retrying: a timeout, a connection that failed, a 429 or a 5xx. A refused address,
a 3xx and any other 4xx are permanent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
import time
from dataclasses import dataclass

import httpx

from banxway.integrations import network

USER_AGENT = "Banxway-Webhooks/1 (+https://banxway.example.com/docs/webhooks)"
RESPONSE_LIMIT = 1024  # bytes of the receiver's answer kept


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str
    timeout: float = 10.0
    public_only: bool = True
    ca_file: str | None = None


@dataclass(frozen=True)
class WebhookResponse:
    ok: bool
    status: int | None  # the HTTP status, None when none came back
    body: str | None  # the first RESPONSE_LIMIT bytes, decoded leniently
    duration_ms: int
    error: str | None
    transient: bool


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The Banxway-Signature header's value for `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def headers(secret: str, event_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Banxway-Event-Id": event_id,
        "Banxway-Signature": sign(secret, timestamp, body),
    }


async def post(target: WebhookTarget, event_id: str, body: bytes) -> WebhookResponse:
    """POST `body` to the target once (see the module)."""
    verify: ssl.SSLContext | bool = True
    if target.ca_file:
        verify = ssl.create_default_context(cafile=target.ca_file)
    transport = network.transport(public_only=target.public_only, verify=verify)
    timeout = httpx.Timeout(target.timeout, connect=target.timeout, pool=target.timeout)
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        async with (
            asyncio.timeout(2 * target.timeout),  # connect + read, whatever a slow receiver trickles
            httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False) as client,
            client.stream("POST", target.url, content=body, headers=headers(target.secret, event_id, body)) as answer,
        ):
            kept = bytearray()
            async for chunk in answer.aiter_bytes():
                kept += chunk
                if len(kept) >= RESPONSE_LIMIT:
                    break
            status = answer.status_code
            location = answer.headers.get("location")
    except (httpx.TimeoutException, TimeoutError) as exc:
        return WebhookResponse(
            False, None, None, elapsed(), f"No answer within {target.timeout:g} s ({type(exc).__name__})", True
        )
    except httpx.HTTPError as exc:  # the connection failed, or the address guard refused it
        refused = "private or reserved address" in str(exc)
        return WebhookResponse(False, None, None, elapsed(), f"Could not connect: {exc}", not refused)
    text = bytes(kept[:RESPONSE_LIMIT]).decode("utf-8", errors="replace")
    if 200 <= status < 300:
        return WebhookResponse(True, status, text, elapsed(), None, False)
    if 300 <= status < 400:
        error = f"Answered {status} to {location or 'nowhere'}: redirects are not followed (give the final URL)."
        return WebhookResponse(False, status, text, elapsed(), error, False)
    transient = status == 429 or status >= 500
    return WebhookResponse(False, status, text, elapsed(), f"Answered {status}.", transient)
