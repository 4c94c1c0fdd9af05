"""What every messaging provider shares: the `Provider` interface, the values going in and out (`Outgoing`,
`Inbound`, `StatusUpdate`, `CallUpdate`), the HTTP call with its error classes, and media downloads.

Every call has explicit timeouts. Errors are classified for the delivery state machine: a refusal that a
retry cannot fix (400/401/403/404, a message-level failure) is `PermanentProviderError` with the provider's
own words; 429, 5xx, timeouts and network errors are `TransientProviderError`, with Retry-After when given.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol

import httpx
import structlog

from banxway.enums import Channel, IntegrationType, MessageStatus
from banxway.integrations import network


class ProviderError(Exception):
    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class PermanentProviderError(ProviderError):
    """The provider refused the request; sending it again will not help."""


class OutcomeUnknown(ProviderError):
    """The request was sent but no answer came (read timeout, connection dropped): the provider may have
    accepted it. Sending again could send twice."""


class TransientProviderError(ProviderError):
    """Worth a retry: rate limit, server error, timeout, network failure."""

    def __init__(self, detail: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(detail, status)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ProviderConfig:
    type: IntegrationType
    base_url: str
    account_sid: str
    api_key: str | None
    api_token: str
    timeout: float = 15.0
    public_only: bool = True  # connect only to internet addresses (`banxway.integrations.network`)

    @property
    def auth(self) -> tuple[str, str]:
        # Exotel: API key : token. Twilio: AccountSid (or an API key SID) : auth token (or key secret).
        return (self.api_key or self.account_sid, self.api_token)


@dataclass(frozen=True)
class Template:
    name: str
    language: str
    parameters: list[str]
    content_sid: str | None = None  # Twilio Content API


@dataclass(frozen=True)
class OutgoingMedia:
    """A file sent with a message: a URL the provider downloads it from (signed, public), its type and name."""

    url: str
    content_type: str
    filename: str
    kind: str  # WhatsApp's media type: image, audio, video or document


@dataclass(frozen=True)
class Outgoing:
    channel: Channel
    from_number: str
    to: str
    body: str
    status_callback: str
    reference: str  # our message id, echoed back by the provider where it can be
    template: Template | None = None
    tag: str | None = None  # Messenger/Instagram: the message tag that allows a send outside the 24-hour window
    media: OutgoingMedia | None = None  # one file, the body as its caption (`messaging.media_limits`)


# One client per event loop and provider account, kept open: a new client costs ~40 ms of CPU (its SSL
# context) and a new connection per call (measured with bench/outbound.py). A connection idle for KEEPALIVE_S is
# closed by the client, not reused: servers close idle ones after their keep-alive timeout (uvicorn's and Node's 5 s),
# and a send that goes out on one as the server closes it gets no answer — "the provider may have it", the message
# left SENDING (tests/test_provider_client.py). Under load connections are reused long before that; at a send every
# few seconds each one pays a new connection (and TLS handshake). A server that closes idle connections sooner than
# that still meets the race.
KEEPALIVE_S = 4.0
log = structlog.get_logger("banxway.providers")

_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def _client(config: ProviderConfig) -> httpx.AsyncClient:
    clients = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
    key = (config.base_url, config.auth, config.timeout, config.public_only)
    client = clients.get(key)
    if client is None or client.is_closed:
        timeout = httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0))
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=10, keepalive_expiry=KEEPALIVE_S)
        client = clients[key] = httpx.AsyncClient(
            base_url=config.base_url,
            auth=config.auth,
            timeout=timeout,
            transport=network.transport(public_only=config.public_only, limits=limits),
        )
    return client


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _error_text(payload: Any) -> str | None:
    """The provider's own words in an error reply (Exotel v1, Exotel v2, Twilio, OpenAI shapes)."""
    if not isinstance(payload, dict):
        return None
    if isinstance(payload.get("RestException"), dict):  # Exotel v1
        rest = payload["RestException"]
        return f"{rest.get('Message')} (code {rest.get('Code')})" if rest.get("Code") else str(rest.get("Message"))
    response = payload.get("response")
    if isinstance(response, dict):  # Exotel v2
        error = response.get("error_data")
        if not error and isinstance(response.get("whatsapp"), dict):
            messages = response["whatsapp"].get("messages") or [{}]
            error = messages[0].get("error_data") if isinstance(messages[0], dict) else None
        if isinstance(error, dict):
            words = error.get("description") or error.get("message")
            return f"{words} (code {error.get('code')})" if error.get("code") else str(words)
    if "message" in payload and ("code" in payload or "status" in payload):  # Twilio
        return f"{payload['message']} (code {payload.get('code')})"
    if isinstance(payload.get("error"), dict) and "fbtrace_id" in payload["error"]:  # Meta's Graph API
        error = payload["error"]
        return f"{error.get('message')} (code {error.get('code')})" if error.get("code") else str(error.get("message"))
    if isinstance(payload.get("error"), dict):  # OpenAI
        return str(payload["error"].get("message"))
    return None


async def request(config: ProviderConfig, method: str, path: str, **kwargs: Any) -> Any:
    """One API call; the decoded JSON reply, or a classified ProviderError."""
    try:
        response = await _client(config).request(method, path, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:  # nothing was sent
        raise TransientProviderError(f"{config.type.name} could not be reached ({type(exc).__name__}: {exc})") from exc
    except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        if method == "GET":
            raise TransientProviderError(f"{config.type.name} did not answer ({type(exc).__name__})") from exc
        raise OutcomeUnknown(
            f"{config.type.name} did not answer in time ({type(exc).__name__}); it may have accepted the request"
        ) from exc
    except httpx.HTTPError as exc:
        raise TransientProviderError(f"{config.type.name} could not be reached: {exc}") from exc
    return decode_reply(config.type.name, response)


def decode_reply(provider: str, response: httpx.Response) -> Any:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.is_success:
        if payload is None:
            raise PermanentProviderError(
                f"{provider} answered {response.status_code} without JSON", response.status_code
            )
        return payload
    words = _error_text(payload)
    if words is None:  # not the provider's error shape: its body is not repeated to the caller (it may be anyone's)
        log.warning("provider error reply", provider=provider, status=response.status_code, body=response.text[:300])
        words = response.reason_phrase or "an error"
    detail = f"{provider} answered {response.status_code}: {words}"
    if response.status_code == 429 or response.status_code >= 500:
        retry_after = _retry_after(response.headers.get("retry-after"))
        raise TransientProviderError(detail, response.status_code, retry_after)
    raise PermanentProviderError(detail, response.status_code)


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an address, the port filled in for http and https."""
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)


async def download(
    config: ProviderConfig, url: str, max_bytes: int, *, allowed_origins: set[tuple[str, str, int]]
) -> tuple[bytes, str]:
    """Fetch media or a recording from the provider, only from `allowed_origins` (scheme, host and port: another
    port of the provider's host is another server), at most `max_bytes`; redirects are not followed."""
    host = httpx.URL(url).host
    if origin(url) not in allowed_origins:
        raise PermanentProviderError(f"Not downloading from {url.split('?')[0]}: it is not the provider's server.")
    timeout = httpx.Timeout(max(config.timeout, 30.0), connect=10.0)
    try:
        guarded = network.transport(public_only=config.public_only)
        async with httpx.AsyncClient(auth=config.auth, timeout=timeout, transport=guarded) as client:
            async with client.stream("GET", url) as response:
                if not response.is_success:
                    await response.aread()
                    decode_reply(config.type.name, response)
                declared = int(response.headers.get("content-length") or 0)
                if declared > max_bytes:
                    raise PermanentProviderError(f"The file has {declared} bytes; the limit is {max_bytes}.")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise PermanentProviderError(f"The file is larger than the {max_bytes}-byte limit.")
                    chunks.append(chunk)
                content_type = response.headers.get("content-type", "application/octet-stream").split(";")[0]
                return b"".join(chunks), content_type.strip()
    except httpx.TimeoutException as exc:
        raise TransientProviderError(f"The download from {host} timed out") from exc
    except httpx.HTTPError as exc:
        raise TransientProviderError(f"The download from {host} failed: {exc}") from exc


def _field(payload: Any, *path: str) -> Any:
    value = payload
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    if value in (None, ""):
        raise PermanentProviderError(f"The provider's reply has no {'.'.join(path)}: {str(payload)[:300]}")
    return value


# -- webhooks ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Media:
    url: str
    content_type: str | None = None
    caption: str | None = None


@dataclass(frozen=True)
class Inbound:
    provider_id: str
    channel: Channel
    sender: str
    to: str
    body: str
    profile_name: str | None = None
    media: list[Media] = field(default_factory=list)


@dataclass(frozen=True)
class StatusUpdate:
    provider_id: str
    status: MessageStatus
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallUpdate:
    call_sid: str
    status: str  # the provider's word: queued, ringing, in-progress, completed, busy, no-answer, failed, canceled
    sender: str | None
    to: str | None
    inbound: bool
    recording_url: str | None = None
    duration: int | None = None
    reference: str | None = None


class BadPayload(ValueError):
    """A webhook body that is not what the provider sends."""


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadPayload(f"{name} must be an object")
    return value


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def parse_call(form: dict[str, str]) -> CallUpdate:
    """An Exotel or Twilio call status callback."""
    sid = form.get("CallSid")
    if not sid:
        raise BadPayload("CallSid is missing")
    status = (form.get("Status") or form.get("CallStatus") or form.get("DialCallStatus") or "").lower()
    if not status:
        raise BadPayload("Status is missing")
    direction = (form.get("Direction") or "").lower()
    durations = [_int(form.get(name)) for name in ("ConversationDuration", "CallDuration", "Duration")]
    duration = next((d for d in durations if d is not None), None)
    return CallUpdate(
        call_sid=sid,
        status=status,
        sender=form.get("From"),
        to=form.get("To"),
        inbound=direction in ("incoming", "inbound"),
        recording_url=form.get("RecordingUrl") or None,
        duration=duration,
        reference=form.get("CustomField") or None,
    )


class Provider(Protocol):
    """One messaging provider (Exotel, Twilio): callers never ask which one it is."""

    type: ClassVar[IntegrationType]
    default_base_url: ClassVar[str]
    region: ClassVar[str | None]  # how national-form numbers in its callbacks are read (None: E.164 only)
    webhook_paths: ClassVar[list[tuple[str, str]]]  # (purpose, path after /webhooks/<provider>/<token>/)
    calls: ClassVar[bool]  # whether callStart can go through it
    signature_header: ClassVar[str | None]  # the header its webhooks are signed in (None: it signs nothing)
    mms_regions: ClassVar[frozenset[str]]  # where its SMS may carry media (MMS); empty: nowhere

    def status_path(self, channel: Channel) -> str:
        """The webhook path its status callbacks for a message on `channel` are sent to."""
        ...

    async def send_message(self, config: ProviderConfig, out: Outgoing) -> str:
        """Send a WhatsApp or SMS message; the provider's id for it."""
        ...

    async def start_call(
        self, config: ProviderConfig, *, agent: str, customer: str, caller_id: str, status_callback: str, reference: str
    ) -> str:
        """Ring the agent, then connect the customer (recorded); the call's id."""
        ...

    async def test_credentials(self, config: ProviderConfig) -> str:
        """Call a read-only endpoint with the credentials; a description of the account on success."""
        ...

    def verify_webhook(self, auth_token: str, url: str, body: bytes, signature: str | None) -> bool:
        """Whether a callback's signature matches (called only when `signature_header` is set)."""
        ...

    def parse_webhook(self, kind: str, body: bytes) -> list[Inbound | StatusUpdate | CallUpdate]:
        """What a callback reports; raises BadPayload, or a decoding error, for a body it never sends."""
        ...
