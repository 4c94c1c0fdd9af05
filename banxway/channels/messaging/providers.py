"""Exotel and Twilio over HTTP: sending WhatsApp/SMS, starting calls, testing credentials, and reading what
their webhooks post (normalised to `Inbound`, `StatusUpdate` and `CallUpdate`).

Every call has explicit timeouts. Errors are classified for the delivery state machine: a refusal that a
retry cannot fix (400/401/403/404, a message-level failure) is `PermanentProviderError` with the provider's
own words; 429, 5xx, timeouts and network errors are `TransientProviderError`, with Retry-After when given.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from banxway.enums import Channel, IntegrationType, MessageStatus

DEFAULT_BASE_URLS = {IntegrationType.EXOTEL: "https://api.exotel.com", IntegrationType.TWILIO: "https://api.twilio.com"}


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
class Outgoing:
    channel: Channel
    from_number: str
    to: str
    body: str
    status_callback: str
    reference: str  # our message id, echoed back by the provider where it can be
    template: Template | None = None


# One client per event loop and provider account, kept open: a new client costs ~40 ms of CPU (its SSL
# context) and a new connection per call (measured with bench/outbound.py).
_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def _client(config: ProviderConfig) -> httpx.AsyncClient:
    clients = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
    key = (config.base_url, config.auth, config.timeout)
    client = clients.get(key)
    if client is None or client.is_closed:
        timeout = httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0))
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=10, keepalive_expiry=30)
        client = clients[key] = httpx.AsyncClient(
            base_url=config.base_url, auth=config.auth, timeout=timeout, limits=limits
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
    words = _error_text(payload) or response.text[:300] or response.reason_phrase
    detail = f"{provider} answered {response.status_code}: {words}"
    if response.status_code == 429 or response.status_code >= 500:
        retry_after = _retry_after(response.headers.get("retry-after"))
        raise TransientProviderError(detail, response.status_code, retry_after)
    raise PermanentProviderError(detail, response.status_code)


def _twilio_address(channel: Channel, number: str) -> str:
    return f"whatsapp:{number}" if channel == Channel.WHATSAPP else number


async def send_message(config: ProviderConfig, out: Outgoing) -> str:
    """Send a WhatsApp or SMS message; the provider's id for it."""
    sid = config.account_sid
    if config.type == IntegrationType.TWILIO:
        form = {
            "To": _twilio_address(out.channel, out.to),
            "From": _twilio_address(out.channel, out.from_number),
            "StatusCallback": out.status_callback,
        }
        if out.template is not None and out.template.content_sid:
            form["ContentSid"] = out.template.content_sid
            form["ContentVariables"] = json.dumps({str(i + 1): p for i, p in enumerate(out.template.parameters)})
        else:
            form["Body"] = out.body
        reply = await request(config, "POST", f"/2010-04-01/Accounts/{sid}/Messages.json", data=form)
        return _field(reply, "sid")
    if out.channel == Channel.SMS:
        form = {
            "From": out.from_number,
            "To": out.to,
            "Body": out.body,
            "StatusCallback": out.status_callback,
            "CustomField": out.reference,
        }
        reply = await request(config, "POST", f"/v1/Accounts/{sid}/Sms/send.json", data=form)
        return _field(reply, "SMSMessage", "Sid")
    if out.template is not None:
        parameters = [{"type": "text", "text": p} for p in out.template.parameters]
        content: dict[str, Any] = {
            "type": "template",
            "template": {
                "name": out.template.name,
                "language": {"code": out.template.language},
                "components": [{"type": "body", "parameters": parameters}] if parameters else [],
            },
        }
    else:
        content = {"type": "text", "text": {"body": out.body}}
    payload = {
        "custom_data": out.reference,
        "status_callback": out.status_callback,
        "whatsapp": {"messages": [{"from": out.from_number, "to": out.to, "content": content}]},
    }
    reply = await request(config, "POST", f"/v2/accounts/{sid}/messages", json=payload)
    result = _field(reply, "response", "whatsapp", "messages")
    first = result[0] if isinstance(result, list) and result else {}
    if not isinstance(first, dict) or first.get("status") == "failure" or not first.get("data"):
        raise PermanentProviderError(f"EXOTEL refused the message: {_error_text({'response': first}) or first}")
    return _field(first, "data", "sid")


async def start_call(
    config: ProviderConfig, *, agent: str, customer: str, caller_id: str, status_callback: str, reference: str
) -> str:
    """Exotel's click-to-call: rings the agent, then connects the customer (recorded); the call's Sid."""
    if config.type != IntegrationType.EXOTEL:
        raise PermanentProviderError("Calls are made through an Exotel integration.")
    form = {
        "From": agent,
        "To": customer,
        "CallerId": caller_id,
        "Record": "true",
        "StatusCallback": status_callback,
        "StatusCallbackEvents[0]": "terminal",
        "StatusCallbackContentType": "application/x-www-form-urlencoded",
        "CustomField": reference,
    }
    reply = await request(config, "POST", f"/v1/Accounts/{config.account_sid}/Calls/connect.json", data=form)
    return _field(reply, "Call", "Sid")


async def test_credentials(config: ProviderConfig) -> str:
    """Call a read-only endpoint with the credentials; a description of the account on success."""
    if config.type == IntegrationType.EXOTEL:
        reply = await request(config, "GET", f"/v1/Accounts/{config.account_sid}/Balance.json")
        balance = reply.get("Balance") if isinstance(reply, dict) else None
        if isinstance(balance, dict):
            return f"Exotel account {config.account_sid}: balance {balance.get('Balance')} {balance.get('Currency')}"
        return f"Exotel account {config.account_sid}: credentials accepted"
    reply = await request(config, "GET", f"/2010-04-01/Accounts/{config.account_sid}.json")
    return f"Twilio account {reply.get('friendly_name') or config.account_sid}: {reply.get('status', 'active')}"


async def download(config: ProviderConfig, url: str, max_bytes: int, *, allowed_hosts: set[str]) -> tuple[bytes, str]:
    """Fetch media or a recording from the provider (only from `allowed_hosts`), at most `max_bytes`."""
    host = httpx.URL(url).host
    if host not in allowed_hosts:
        raise PermanentProviderError(f"Not downloading from {host}: it is not the provider's host.")
    timeout = httpx.Timeout(max(config.timeout, 30.0), connect=10.0)
    try:
        async with httpx.AsyncClient(auth=config.auth, timeout=timeout, follow_redirects=False) as client:
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


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 over the URL followed by each POST parameter's name and value,
    sorted by name."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def twilio_signature_valid(auth_token: str, url: str, params: dict[str, str], signature: str | None) -> bool:
    if not signature:
        return False
    return hmac.compare_digest(twilio_signature(auth_token, url, params).encode(), signature.encode())


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


def _strip_whatsapp(address: str) -> str:
    return address.removeprefix("whatsapp:")


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadPayload(f"{name} must be an object")
    return value


_EXOTEL_WA_STATUS = {30001: MessageStatus.SENT, 30002: MessageStatus.DELIVERED, 30003: MessageStatus.READ}


def parse_exotel_whatsapp(payload: Any) -> list[Inbound | StatusUpdate]:
    try:
        messages = payload["whatsapp"]["messages"]
        assert isinstance(messages, list)
    except (KeyError, TypeError, AssertionError):
        raise BadPayload('expected {"whatsapp": {"messages": [...]}}') from None
    found: list[Inbound | StatusUpdate] = []
    for item in messages:
        if not isinstance(item, dict) or not item.get("sid"):
            raise BadPayload("each message needs a sid")
        kind = item.get("callback_type")
        if kind == "dlr":
            try:
                code = int(item.get("exo_status_code"))
            except (TypeError, ValueError):
                raise BadPayload("a dlr needs a numeric exo_status_code") from None
            status = _EXOTEL_WA_STATUS.get(code, MessageStatus.FAILED if code >= 30004 else None)
            if status is None:
                continue  # an intermediate code we do not track
            error = None
            if status == MessageStatus.FAILED:
                error = item.get("description") or item.get("exo_detailed_status") or f"code {code}"
            details = {"exo_status_code": code}
            if item.get("custom_data"):
                details["reference"] = str(item["custom_data"])
            found.append(StatusUpdate(str(item["sid"]), status, error, details))
        elif kind in ("icm", "incoming_message"):
            content = _object(item.get("content"), "content")
            kind_of = content.get("type")
            media: list[Media] = []
            if kind_of == "text":
                body = str(_object(content.get("text"), "content.text").get("body") or "")
            elif kind_of in ("image", "audio", "document", "video", "sticker"):
                part = _object(content.get(kind_of), f"content.{kind_of}")
                if part.get("url"):
                    media.append(Media(str(part["url"]), part.get("mime_type"), part.get("caption")))
                body = str(part.get("caption") or f"[{kind_of}]")
            else:
                body = f"[{kind_of or 'unsupported message'}]"
            if not item.get("from"):
                raise BadPayload("an incoming message needs from")
            found.append(
                Inbound(
                    provider_id=str(item["sid"]),
                    channel=Channel.WHATSAPP,
                    sender=str(item["from"]),
                    to=str(item.get("to") or ""),
                    body=body,
                    profile_name=item.get("profile_name"),
                    media=media,
                )
            )
        else:
            raise BadPayload(f"unknown callback_type {kind!r}")
    return found


_EXOTEL_SMS_STATUS = {
    "queued": MessageStatus.SENT,
    "sending": MessageStatus.SENT,
    "submitted": MessageStatus.SENT,
    "sent": MessageStatus.DELIVERED,  # Exotel's "sent" is DELIVERED_TO_HANDSET
    "failed": MessageStatus.FAILED,
    "failed-dnd": MessageStatus.FAILED,
}


def parse_exotel_sms(form: dict[str, str]) -> Inbound | StatusUpdate:
    sid = form.get("SmsSid")
    if not sid:
        raise BadPayload("SmsSid is missing")
    if "Status" in form:
        status = _EXOTEL_SMS_STATUS.get(form["Status"].lower())
        if status is None:
            raise BadPayload(f"unknown SMS Status {form['Status']!r}")
        error = form.get("DetailedStatus") if status == MessageStatus.FAILED else None
        details = {"detailed_status": form.get("DetailedStatus")}
        if form.get("CustomField"):
            details["reference"] = form["CustomField"]
        return StatusUpdate(sid, status, error, details)
    if not form.get("From"):
        raise BadPayload("From is missing")
    return Inbound(sid, Channel.SMS, form["From"], form.get("To", ""), form.get("Body", ""))


_TWILIO_STATUS = {
    "accepted": MessageStatus.SENT,
    "queued": MessageStatus.SENT,
    "sending": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    "failed": MessageStatus.FAILED,
    "undelivered": MessageStatus.FAILED,
}


def parse_twilio_message(form: dict[str, str]) -> Inbound | StatusUpdate:
    sid = form.get("MessageSid") or form.get("SmsSid")
    if not sid:
        raise BadPayload("MessageSid is missing")
    word = (form.get("MessageStatus") or form.get("SmsStatus") or "received").lower()
    if word != "received":
        status = _TWILIO_STATUS.get(word)
        if status is None:
            raise BadPayload(f"unknown MessageStatus {word!r}")
        error = None
        if status == MessageStatus.FAILED:
            error = f"Twilio error {form.get('ErrorCode') or 'unknown'}: {form.get('ErrorMessage') or word}"
        return StatusUpdate(sid, status, error, {"error_code": form.get("ErrorCode")})
    sender = form.get("From") or ""
    if not sender:
        raise BadPayload("From is missing")
    channel = Channel.WHATSAPP if sender.startswith("whatsapp:") else Channel.SMS
    try:
        count = int(form.get("NumMedia") or 0)
    except ValueError:
        raise BadPayload("NumMedia is not a number") from None
    media = [
        Media(form[f"MediaUrl{i}"], form.get(f"MediaContentType{i}")) for i in range(count) if form.get(f"MediaUrl{i}")
    ]
    body = form.get("Body") or ("[media]" if media else "")
    return Inbound(
        sid, channel, _strip_whatsapp(sender), _strip_whatsapp(form.get("To", "")), body, form.get("ProfileName"), media
    )


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
