"""A stand-in for the messaging providers, for testing banxway's real HTTP clients against their wire formats.

* `standin_server` / the `provider` fixture: a Starlette app on 127.0.0.1 inside the test's event loop that
  answers like Exotel (SMS, WhatsApp v2, voice connect, balance), Twilio (Messages, Accounts), OpenAI's audio
  transcription and a plain media host. It records every request (`StandIn.requests`), checks HTTP Basic
  credentials per account sid, validates the documented required fields, and can be scripted to fail or to
  answer late, per endpoint kind, first in first out (`fail_next`, `delay_next`).
* Callback builders (`twilio_inbound`, `exotel_whatsapp_dlr`, ...): the payloads the providers POST to our
  webhooks, and `twilio_signature`, Twilio's X-Twilio-Signature over them.

Kinds: exotel_sms, exotel_whatsapp, exotel_call, exotel_balance, twilio_message, twilio_account, media,
transcription, and unknown (anything else, answered 404).

Form and multipart bodies are parsed here rather than by Starlette, which would need python-multipart.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.standins import serve_in_loop

IST = timezone(timedelta(hours=5, minutes=30), "IST")
WHATSAPP_CONTENT_TYPES = {"text", "template", "image", "document", "audio", "video"}
WHATSAPP_MEDIA_TYPES = {"image", "document", "audio", "video"}
WHATSAPP_TEXT_LIMIT = 4096
DEFAULT_TRANSCRIPT = "Hello, this is a test call."

# kind, method, path pattern; the "acc" group names the account whose credentials the request must carry
ROUTES: list[tuple[str, str, re.Pattern[str]]] = [
    ("exotel_sms", "POST", re.compile(r"/v1/Accounts/(?P<acc>[^/]+)/Sms/send(?:\.json)?")),
    ("exotel_call", "POST", re.compile(r"/v1/Accounts/(?P<acc>[^/]+)/Calls/connect(?:\.json)?")),
    ("exotel_balance", "GET", re.compile(r"/v1/Accounts/(?P<acc>[^/]+)/Balance(?:\.json)?")),
    ("exotel_whatsapp", "POST", re.compile(r"/v2/accounts/(?P<acc>[^/]+)/messages")),
    ("twilio_message", "POST", re.compile(r"/2010-04-01/Accounts/(?P<acc>[^/]+)/Messages\.json")),
    ("twilio_account", "GET", re.compile(r"/2010-04-01/Accounts/(?P<acc>[^/]+)\.json")),
    ("media", "GET", re.compile(r"/media/(?P<name>.+)")),
    ("transcription", "POST", re.compile(r"/v1/audio/transcriptions")),
]
REASONS = {
    400: "Bad request",
    401: "Authentication failed",
    402: "Payment required",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    422: "Unprocessable entity",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}
TWILIO_CODES = {400: 21211, 401: 20003, 403: 20403, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    auth: tuple[str, str] | None
    form: dict[str, str] | None
    json: Any
    files: dict[str, tuple[str, bytes]] | None
    fields: dict[str, str] | None
    kind: str
    at: float
    body: bytes = b""


@dataclass
class _Scripted:
    status: int
    body: Any
    headers: dict[str, str] | None


def new_hex() -> str:
    return uuid.uuid4().hex


def _exotel_time() -> str:
    return datetime.now(IST).strftime("%Y-%m-%d %H:%M:%S")


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """The main value and the parameters of a header like Content-Type or Content-Disposition."""
    message = Message()
    message["x"] = value
    params = message.get_params(header="x") or [("", "")]
    return params[0][0].lower(), {str(k).lower(): str(v) for k, v in params[1:]}


def _parse_multipart(body: bytes, boundary: str) -> tuple[dict[str, tuple[str, bytes]], dict[str, str]]:
    files: dict[str, tuple[str, bytes]] = {}
    fields: dict[str, str] = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").removesuffix(b"\r\n").partition(b"\r\n\r\n")
        disposition = ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value.strip()
        _, params = _header_params(disposition)
        if "name" not in params:
            continue
        if "filename" in params:
            files[params["name"]] = (params["filename"], data)
        else:
            fields[params["name"]] = data.decode("utf-8", "replace")
    return files, fields


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


# -- the providers' error shapes ---------------------------------------------------------------------------


def exotel_v1_error(status: int, message: str | None = None, code: int | None = None) -> dict[str, Any]:
    return {
        "RestException": {
            "Status": status,
            "Message": message or REASONS.get(status, "Error"),
            "Code": code or status * 100 + 1,
        }
    }


def exotel_v2_error(status: int, message: str | None = None, code: int | None = None) -> dict[str, Any]:
    text = message or REASONS.get(status, "Error")
    return {
        "request_id": new_hex(),
        "method": "POST",
        "http_code": status,
        "response": {
            "code": status,
            "error_data": {"code": code or status * 10 + 1, "message": text, "description": text},
            "status": "failure",
        },
    }


def twilio_error(status: int, message: str | None = None, code: int | None = None) -> dict[str, Any]:
    code = code or TWILIO_CODES.get(status, 20001)
    return {
        "code": code,
        "message": message or ("Authenticate" if status == 401 else REASONS.get(status, "Error")),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def openai_error(status: int, message: str | None = None, code: str | None = None) -> dict[str, Any]:
    kind = {429: "rate_limit_exceeded", 500: "server_error"}.get(status, "invalid_request_error")
    return {"error": {"message": message or REASONS.get(status, "Error"), "type": kind, "param": None, "code": code}}


ERROR_SHAPES: dict[str, Callable[[int], dict[str, Any]]] = {
    "exotel_sms": exotel_v1_error,
    "exotel_call": exotel_v1_error,
    "exotel_balance": exotel_v1_error,
    "exotel_whatsapp": exotel_v2_error,
    "twilio_message": twilio_error,
    "twilio_account": twilio_error,
    "transcription": openai_error,
}


def _error_body(kind: str, status: int) -> dict[str, Any]:
    return ERROR_SHAPES.get(kind, lambda s: {"error": REASONS.get(s, "Error"), "status": s})(status)


# -- the server --------------------------------------------------------------------------------------------


class StandIn:
    """The stand-in's state: accounts, media, scripted answers, and the requests it received."""

    def __init__(self) -> None:
        self.base_url = ""
        self.requests: list[Recorded] = []
        self.transcript = DEFAULT_TRANSCRIPT
        self.transcription_key = "sk-test"
        self._accounts: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._media: dict[str, tuple[str, bytes]] = {}
        self._failures: dict[str, deque[_Scripted]] = defaultdict(deque)
        self._delays: dict[str, deque[float]] = defaultdict(deque)
        self.app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])]
        )

    # -- scripting --

    def sent(self, kind: str) -> list[Recorded]:
        return [r for r in self.requests if r.kind == kind]

    def add_account(self, sid: str, user: str, password: str) -> None:
        self._accounts[sid].add((user, password))

    def fail_next(
        self, kind: str, status: int, *, body: Any = None, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        for _ in range(times):
            self._failures[kind].append(_Scripted(status, body, headers))

    def delay_next(self, kind: str, seconds: float, *, times: int = 1) -> None:
        self._delays[kind].extend([seconds] * times)

    def add_media(self, name: str, content_type: str, data: bytes) -> str:
        self._media[name] = (content_type, data)
        return f"{self.base_url}/media/{quote(name)}"

    async def wait_for(self, kind: str, count: int = 1, timeout: float = 10.0) -> list[Recorded]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while len(self.sent(kind)) < count:
            if time.monotonic() >= deadline:
                arrived = [f"{r.kind} {r.method} {r.path}" for r in self.requests]
                raise AssertionError(
                    f"{len(self.sent(kind))} of {count} {kind} requests within {timeout} s; arrived: {arrived}"
                )
            await asyncio.sleep(0.01)
        return self.sent(kind)

    # -- handling --

    async def _record(self, request: Request) -> tuple[Recorded, dict[str, str]]:
        path = request.url.path
        kind, params = "unknown", {}
        for route_kind, method, pattern in ROUTES:
            match = pattern.fullmatch(path)
            if match and request.method == method:
                kind, params = route_kind, match.groupdict()
                break
        body = await request.body()
        content_type, ct_params = _header_params(request.headers.get("content-type", ""))
        form = parsed_json = files = fields = None
        if content_type == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        elif content_type == "application/json" or content_type.endswith("+json"):
            with suppress(ValueError):
                parsed_json = json.loads(body)
        elif content_type == "multipart/form-data" and "boundary" in ct_params:
            files, fields = _parse_multipart(body, ct_params["boundary"])
        recorded = Recorded(
            method=request.method,
            path=path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            auth=_basic_auth(request.headers.get("authorization")),
            form=form,
            json=parsed_json,
            files=files,
            fields=fields,
            kind=kind,
            at=time.monotonic(),
            body=body,
        )
        self.requests.append(recorded)
        return recorded, params

    async def _handle(self, request: Request) -> Response:
        recorded, params = await self._record(request)
        kind = recorded.kind
        if self._delays[kind]:
            await asyncio.sleep(self._delays[kind].popleft())
        if self._failures[kind]:
            scripted = self._failures[kind].popleft()
            return self._scripted_response(kind, scripted)
        if kind == "unknown":
            return JSONResponse({"error": "Not found", "path": recorded.path}, status_code=404)
        if kind == "media":
            return self._serve_media(params["name"])
        if kind == "transcription":
            return self._transcription(recorded)
        if recorded.auth is None or recorded.auth not in self._accounts.get(params["acc"], set()):
            return JSONResponse(_error_body(kind, 401), status_code=401)
        handler: Callable[[Recorded, str], Response] = getattr(self, f"_{kind}")
        return handler(recorded, params["acc"])

    @staticmethod
    def _scripted_response(kind: str, scripted: _Scripted) -> Response:
        body = _error_body(kind, scripted.status) if scripted.body is None else scripted.body
        if isinstance(body, bytes | str):
            return Response(body, status_code=scripted.status, headers=scripted.headers)
        return JSONResponse(body, status_code=scripted.status, headers=scripted.headers)

    def _serve_media(self, name: str) -> Response:
        if name not in self._media:
            return JSONResponse({"error": "Not found", "name": name}, status_code=404)
        content_type, data = self._media[name]
        return Response(data, media_type=content_type)

    def _transcription(self, recorded: Recorded) -> Response:
        if recorded.headers.get("authorization") != f"Bearer {self.transcription_key}":
            return JSONResponse(openai_error(401, "Incorrect API key provided", "invalid_api_key"), status_code=401)
        fields = recorded.fields or {}
        if "file" not in (recorded.files or {}) or not fields.get("model"):
            missing = "file" if "file" not in (recorded.files or {}) else "model"
            body = openai_error(400, f"Missing required parameter: '{missing}'.", "missing_required_parameter")
            body["error"]["param"] = missing
            return JSONResponse(body, status_code=400)
        if fields.get("response_format") in ("text", "srt", "vtt"):
            return PlainTextResponse(self.transcript)
        return JSONResponse({"text": self.transcript})

    def _exotel_sms(self, recorded: Recorded, account: str) -> Response:
        form = recorded.form or {}
        missing = [name for name in ("From", "To", "Body") if not form.get(name)]
        if missing:
            return JSONResponse(exotel_v1_error(400, f"Missing parameter {missing[0]}", 34001), status_code=400)
        sid, now = new_hex(), _exotel_time()
        message = {
            "Sid": sid,
            "AccountSid": account,
            "From": form["From"],
            "To": form["To"],
            "DateCreated": now,
            "DateUpdated": now,
            "DateSent": None,
            "Body": form["Body"],
            "Direction": "outbound-api",
            "Uri": f"/v1/Accounts/{account}/SMSMessages/{sid}.json",
            "ApiVersion": None,
            "Price": None,
            "Status": "queued",
            "DetailedStatusCode": 21010,
            "DetailedStatus": "PENDING_TO_OPERATOR",
            "SmsUnits": None,
        }
        return JSONResponse({"SMSMessage": message})

    def _exotel_call(self, recorded: Recorded, account: str) -> Response:
        form = recorded.form or {}
        missing = [name for name in ("From", "To", "CallerId") if not form.get(name)]
        if missing:
            return JSONResponse(exotel_v1_error(400, f"Missing parameter {missing[0]}", 34001), status_code=400)
        sid, now = new_hex(), _exotel_time()
        call = {
            "Sid": sid,
            "ParentCallSid": None,
            "DateCreated": now,
            "DateUpdated": now,
            "AccountSid": account,
            "To": form["To"],
            "From": form["From"],
            "PhoneNumberSid": form["CallerId"],
            "Status": "in-progress",
            "StartTime": now,
            "EndTime": None,
            "Duration": None,
            "Price": None,
            "Direction": "outbound-api",
            "AnsweredBy": None,
            "ForwardedFrom": None,
            "CallerName": None,
            "Uri": f"/v1/Accounts/{account}/Calls/{sid}.json",
            "RecordingUrl": None,
        }
        return JSONResponse({"Call": call})

    def _exotel_balance(self, recorded: Recorded, account: str) -> Response:
        return JSONResponse({"Balance": {"AccountSid": account, "Balance": "1523.50", "Currency": "INR"}})

    def _exotel_whatsapp(self, recorded: Recorded, account: str) -> Response:
        whatsapp = recorded.json.get("whatsapp") if isinstance(recorded.json, dict) else None
        messages = whatsapp.get("messages") if isinstance(whatsapp, dict) else None
        problem = _whatsapp_problem(messages)
        if problem:
            return JSONResponse(exotel_v2_error(400, problem, 1002), status_code=400)
        now = _iso_now()
        results = [
            {
                "code": 202,
                "error_data": None,
                "status": "success",
                "data": {
                    "sid": new_hex(),
                    "date_created": now,
                    "date_updated": now,
                    "status": "created",
                    "direction": "outbound",
                    "from": message["from"],
                    "to": message["to"],
                },
            }
            for message in messages or []
        ]
        body = {
            "request_id": new_hex(),
            "method": "POST",
            "http_code": 202,
            "response": {"whatsapp": {"messages": results}},
        }
        return JSONResponse(body, status_code=202)

    def _twilio_message(self, recorded: Recorded, account: str) -> Response:
        form = recorded.form or {}
        if not form.get("To"):
            return JSONResponse(twilio_error(400, "A 'To' phone number is required.", 21604), status_code=400)
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return JSONResponse(twilio_error(400, "A 'From' phone number is required.", 21603), status_code=400)
        if not form.get("Body") and not form.get("ContentSid") and not form.get("MediaUrl"):
            return JSONResponse(
                twilio_error(400, "A text message body or media urls must be specified.", 21619), status_code=400
            )
        sid = "SM" + new_hex()
        now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        message = {
            "sid": sid,
            "account_sid": account,
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "to": form["To"],
            "from": form.get("From"),
            "body": form.get("Body", ""),
            "status": "queued",
            "num_segments": "1",
            "num_media": "1" if form.get("MediaUrl") else "0",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "price": None,
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
        }
        return JSONResponse(message, status_code=201)

    def _twilio_account(self, recorded: Recorded, account: str) -> Response:
        return JSONResponse({"sid": account, "friendly_name": "Test account", "status": "active", "type": "Full"})


def _whatsapp_problem(messages: Any) -> str | None:
    """Why Exotel would refuse this whatsapp.messages list, or None."""
    if not isinstance(messages, list) or not messages:
        return "whatsapp.messages must be a non-empty list"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not message.get("from") or not message.get("to"):
            return f"messages[{index}]: from and to are required"
        content = message.get("content")
        kind = content.get("type") if isinstance(content, dict) else None
        if kind not in WHATSAPP_CONTENT_TYPES:
            return f"messages[{index}]: content.type must be one of {sorted(WHATSAPP_CONTENT_TYPES)}"
        if kind == "text":
            body = (content.get("text") or {}).get("body")
            if not isinstance(body, str) or not body:
                return f"messages[{index}]: content.text.body is required"
            if len(body) > WHATSAPP_TEXT_LIMIT:
                return f"messages[{index}]: content.text.body is longer than {WHATSAPP_TEXT_LIMIT} characters"
        if kind == "template" and not (content.get("template") or {}).get("name"):
            return f"messages[{index}]: content.template.name is required"
        if kind in WHATSAPP_MEDIA_TYPES:
            media = content.get(kind)
            if not isinstance(media, dict) or not str(media.get("link") or "").startswith(("http://", "https://")):
                return f"messages[{index}]: content.{kind}.link must be an http(s) URL"
            if kind == "audio" and "caption" in media:
                return f"messages[{index}]: content.audio takes no caption"
    return None


@asynccontextmanager
async def standin_server() -> AsyncIterator[StandIn]:
    """The stand-in served by uvicorn on 127.0.0.1 in the running loop."""
    standin = StandIn()
    async with serve_in_loop(standin.app) as port:
        standin.base_url = f"http://127.0.0.1:{port}"
        yield standin


@pytest.fixture
async def provider() -> AsyncIterator[StandIn]:
    async with standin_server() as server:
        yield server


# -- what the providers POST to our webhooks ---------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by each parameter's name and value, by name."""
    payload = url + "".join(key + params[key] for key in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def twilio_inbound(
    *,
    sid: str,
    from_: str,
    to: str,
    body: str,
    account_sid: str,
    media: Sequence[tuple[str, str]] = (),
    whatsapp: bool = False,
    profile_name: str = "Priya",
) -> dict[str, str]:
    """An incoming SMS / WhatsApp message webhook; `media` holds (url, content type) pairs."""
    prefix = "whatsapp:" if whatsapp else ""
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": account_sid,
        "From": prefix + from_,
        "To": prefix + to,
        "Body": body,
        "NumMedia": str(len(media)),
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    for index, (url, content_type) in enumerate(media):
        params[f"MediaUrl{index}"] = url
        params[f"MediaContentType{index}"] = content_type
    if whatsapp:
        params["ProfileName"] = profile_name
        params["WaId"] = from_.removeprefix("+")
    return params


def twilio_status(
    *, sid: str, status: str, account_sid: str, to: str, from_: str, error_code: str | None = None
) -> dict[str, str]:
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": account_sid,
        "To": to,
        "From": from_,
        "ApiVersion": "2010-04-01",
    }
    if error_code is not None:
        params["ErrorCode"] = error_code
    return params


def exotel_whatsapp_incoming(
    *,
    sid: str,
    from_: str,
    to: str,
    profile_name: str = "Priya",
    body: str | None = None,
    media: tuple[str, str, str | None] | None = None,
    callback_type: str = "incoming_message",
) -> dict[str, Any]:
    """An incoming WhatsApp message; `media` is (type, url, caption) for image/audio/document/video."""
    if media is not None:
        media_type, url, caption = media
        if media_type not in ("image", "audio", "document", "video"):
            raise ValueError(f"unknown WhatsApp media type {media_type!r}")
        content: dict[str, Any] = {"type": media_type, media_type: {"url": url, "caption": caption}}
    else:
        content = {"type": "text", "text": {"body": body or ""}}
    message = {
        "callback_type": callback_type,
        "sid": sid,
        "from": from_,
        "to": to,
        "profile_name": profile_name,
        "timestamp": _iso_now(),
        "content": content,
    }
    return {"whatsapp": {"messages": [message]}}


WHATSAPP_DETAILED = {30001: "EX_MESSAGE_SENT", 30002: "EX_MESSAGE_DELIVERED", 30003: "EX_MESSAGE_SEEN"}


def exotel_whatsapp_dlr(*, sid: str, exo_status_code: int, to: str, description: str = "") -> dict[str, Any]:
    """A WhatsApp delivery report: 30001 sent, 30002 delivered, 30003 seen, 30004 and above failed."""
    message = {
        "callback_type": "dlr",
        "sid": sid,
        "to": to,
        "exo_status_code": exo_status_code,
        "exo_detailed_status": WHATSAPP_DETAILED.get(exo_status_code, "EX_MESSAGE_FAILED"),
        "description": description,
        "timestamp": _iso_now(),
        "custom_data": "",
    }
    return {"whatsapp": {"messages": [message]}}


SMS_DETAILED_CODES = {
    "DELIVERED_TO_HANDSET": 20005,
    "DELIVERED_TO_OPERATOR": 20006,
    "PENDING_TO_OPERATOR": 21010,
    "SENDING_TO_OPERATOR": 21015,
    "PENDING_ON_OPERATOR": 21020,
    "FAILED_SPAM_DETECTED": 23015,
    "FAILED_DND": 23005,
    "FAILED_HANDSET_ERROR": 24105,
    "FAILED_UNKNOWN_ERROR": 24990,
}


def exotel_sms_status(
    *,
    sms_sid: str,
    status: str,
    detailed_status: str = "DELIVERED_TO_HANDSET",
    custom_field: str = "",
    to: str = "09876543210",
) -> dict[str, str]:
    """The SMS StatusCallback form (sent when the SMS reaches sent / failed / failed-dnd)."""
    return {
        "SmsSid": sms_sid,
        "To": to,
        "Status": status,
        "DetailedStatus": detailed_status,
        "DetailedStatusCode": str(SMS_DETAILED_CODES.get(detailed_status, 24990)),
        "SmsUnits": "1",
        "DateSent": _exotel_time(),
        "CustomField": custom_field,
    }


def exotel_sms_incoming(*, sms_sid: str, from_: str, to: str, body: str) -> dict[str, str]:
    return {"SmsSid": sms_sid, "From": from_, "To": to, "Body": body, "Date": _exotel_time()}


def exotel_call_status(
    *,
    call_sid: str,
    status: str,
    from_: str,
    to: str,
    recording_url: str | None = None,
    duration: int | None = None,
    custom_field: str = "",
) -> dict[str, str]:
    """The connect API's terminal StatusCallback form; legs 0 (From, dialled first) and 1 (To), flattened."""
    now = datetime.now(IST)
    start = now - timedelta(seconds=(duration or 0) + 5)
    answered = status in ("completed", "in-progress")
    return {
        "CallSid": call_sid,
        "EventType": "terminal",
        "Status": status,
        "RecordingUrl": recording_url or "",
        "DateUpdated": now.strftime("%Y-%m-%d %H:%M:%S"),
        "ConversationDuration": str(duration or 0),
        "Direction": "outbound-api",
        "From": from_,
        "To": to,
        "StartTime": start.strftime("%Y-%m-%d %H:%M:%S"),
        "EndTime": now.strftime("%Y-%m-%d %H:%M:%S"),
        "CustomField": custom_field,
        "Legs[0][Status]": "completed" if answered else status,
        "Legs[0][OnCallDuration]": str(duration or 0),
        "Legs[1][Status]": status,
        "Legs[1][OnCallDuration]": str(duration or 0),
    }
