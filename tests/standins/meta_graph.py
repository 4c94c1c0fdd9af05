"""A stand-in for Meta's Graph API (Messenger Platform and Instagram Messaging), on 127.0.0.1 in the test's loop.

Speaks the documented wire format of what banxway calls:

* the Send API, `POST /{version}/me/messages` (or `/{version}/{page-id}/messages`) with the page access token as
  `Authorization: Bearer` or `?access_token=`: checks `recipient.id`, `messaging_type` (RESPONSE, UPDATE,
  MESSAGE_TAG), `tag` (required with MESSAGE_TAG, refused otherwise) and `message.text` (at most 2000 characters)
  or, instead of text, `message.attachment` (`type` image, video, audio or file; `payload.url`, `payload.is_reusable`
  a boolean): like Meta, it fetches the URL (no credentials) and refuses what it cannot fetch, an audio file not
  served as `audio/*`, an image not served as `image/*`, or a file past 25 MB (an image fetched from a URL: 8 MB)
  with `(#100) Failed to fetch the file from the url` (subcode 2018008); answers `{"recipient_id": ...,
  "message_id": "m_..."}`, or a Graph error `{"error": {"message", "type", "code", "fbtrace_id"}}`: 190
  (OAuthException) for a bad token, 100 for a bad parameter;
* `GET /{version}/me?fields=id,name` (the page);
* the token endpoint, `GET /{version}/oauth/access_token?grant_type=fb_exchange_token&client_id&client_secret
  &fb_exchange_token`: a new token with `token_type` and `expires_in` (60 days), which becomes the valid one;
* `GET /media/{name}`: attachment URLs for inbound messages.

`fail_next(kind, status, code=...)` scripts Graph errors (e.g. 400 with code 613, Meta's throttling; kind
`attachment`: only a send carrying an attachment). Builders make the webhook bodies Meta POSTs (`messenger_text`,
`instagram_text`, `delivery`, `read`) and `hub_signature` signs them like Meta (X-Hub-Signature-256).

Covered: the request and reply shapes above, token checks, the error shape, that an attachment's URL downloads.
Not covered (needs a real app and page): Meta's app review and permissions, the real rate limits and their error
codes, the 24-hour window as Meta enforces it (we enforce it ourselves), which file formats Meta really accepts and
how it shows them, real CDN URLs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.standins import serve_in_loop

MESSAGING_TYPES = {"RESPONSE", "UPDATE", "MESSAGE_TAG"}
TAGS = {"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "HUMAN_AGENT"}
TEXT_LIMIT = 2000
ATTACHMENT_TYPES = {"image", "video", "audio", "file"}
MB = 1024 * 1024
FETCH_LIMITS = {"image": 8 * MB, "video": 25 * MB, "audio": 25 * MB, "file": 25 * MB}
LONG_LIVED_SECONDS = 60 * 24 * 3600


@dataclass
class Recorded:
    kind: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class Fetched:
    """An attachment URL the stand-in downloaded (as Meta does before it sends the file)."""

    url: str
    status: int
    content_type: str
    content: bytes


@dataclass
class MetaGraph:
    page_id: str = "1000000000000001"
    page_name: str = "Acme Freight"
    token: str = "page-token-1"
    app_id: str = "app-1"
    app_secret: str = "app-secret-1"
    requests: list[Recorded] = field(default_factory=list)
    media: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    port: int = 0
    fetched: list[Fetched] = field(default_factory=list)
    # where attachment URLs are fetched: None, the URL itself; a client (the app under test), its path and query
    # through that client, standing for the internet between Meta and BANXWAY_PUBLIC_URL
    fetch_client: httpx.AsyncClient | None = None
    _failures: dict[str, deque[tuple[int, str, int]]] = field(default_factory=lambda: defaultdict(deque))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sent(self, kind: str = "send") -> list[Recorded]:
        return [r for r in self.requests if r.kind == kind]

    def fail_next(
        self,
        kind: str,
        status: int,
        message: str = "An unexpected error has occurred.",
        *,
        times: int = 1,
        code: int | None = None,
    ) -> None:
        """The next `times` requests of `kind` (send, me, token; attachment: a send that carries an attachment)
        answer a Graph error with this status and code (default: 2, a temporary error, for 5xx; 100, a bad
        parameter, otherwise)."""
        for _ in range(times):
            self._failures[kind].append((status, message, code if code is not None else (2 if status >= 500 else 100)))

    def add_media(self, name: str, content_type: str, data: bytes) -> str:
        self.media[name] = (content_type, data)
        return f"{self.base_url}/media/{name}"

    # -- the app -------------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/media/{name}", self._media, methods=["GET"]),
                Route("/{version}/oauth/access_token", self._token, methods=["GET"]),
                Route("/{version}/me", self._me, methods=["GET"]),
                Route("/{version}/{node}/messages", self._send, methods=["POST"]),
            ]
        )

    async def _record(self, request: Request, kind: str) -> Recorded:
        body = await request.body()
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        recorded = Recorded(
            kind, request.method, request.url.path, dict(request.query_params), dict(request.headers), payload
        )
        self.requests.append(recorded)
        return recorded

    def _scripted(self, kind: str) -> Response | None:
        if self._failures[kind]:
            status, message, code = self._failures[kind].popleft()
            return graph_error(status, message, code=code)
        return None

    def _authorized(self, recorded: Recorded) -> bool:
        header = recorded.headers.get("authorization", "")
        given = header.removeprefix("Bearer ") if header.startswith("Bearer ") else recorded.query.get("access_token")
        return given == self.token

    async def _send(self, request: Request) -> Response:
        recorded = await self._record(request, "send")
        if (failed := self._scripted("send")) is not None:
            return failed
        if not self._authorized(recorded):
            return graph_error(400, "Invalid OAuth access token - Cannot parse access token", code=190)
        if request.path_params["node"] not in ("me", self.page_id):
            return graph_error(400, "Unsupported post request.", code=100)
        body = recorded.json if isinstance(recorded.json, dict) else {}
        recipient = (body.get("recipient") or {}).get("id")
        kind = body.get("messaging_type")
        text = (body.get("message") or {}).get("text")
        if not recipient:
            return graph_error(400, "(#100) The parameter recipient is required", code=100)
        if kind not in MESSAGING_TYPES:
            return graph_error(
                400, "(#100) Param messaging_type must be one of RESPONSE, UPDATE, MESSAGE_TAG", code=100
            )
        if kind == "MESSAGE_TAG" and body.get("tag") not in TAGS:
            return graph_error(400, "(#100) Param tag must be a valid message tag", code=100)
        if kind != "MESSAGE_TAG" and "tag" in body:
            return graph_error(400, "(#100) tag is only allowed with messaging_type MESSAGE_TAG", code=100)
        attachment = (body.get("message") or {}).get("attachment")
        if attachment is not None:
            if text is not None:
                return graph_error(400, "(#100) Only one of message[text] and message[attachment] may be given")
            if (failed := self._scripted("attachment")) is not None:
                return failed
            if (refused := await self._attachment(attachment)) is not None:
                return refused
        elif not text or len(text) > TEXT_LIMIT:
            return graph_error(400, "(#100) Param message[text] must be non-empty UTF-8 of at most 2000 characters")
        return JSONResponse({"recipient_id": recipient, "message_id": f"m_{uuid.uuid4().hex}"})

    async def _attachment(self, attachment: Any) -> Response | None:
        """Check an attachment message's shape and fetch its URL, as Meta does; a Graph error, or None if fine."""
        if not isinstance(attachment, dict) or attachment.get("type") not in ATTACHMENT_TYPES:
            return graph_error(400, "(#100) Param message[attachment][type] must be one of image, video, audio, file")
        payload = attachment.get("payload")
        url = payload.get("url") if isinstance(payload, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return graph_error(400, "(#100) Param message[attachment][payload][url] must be a URL")
        if not isinstance(payload.get("is_reusable", False), bool):
            return graph_error(400, "(#100) Param message[attachment][payload][is_reusable] must be a boolean")
        fetched = await self._fetch(url)
        kind = attachment["type"]
        media = fetched.content_type.split(";")[0].strip().lower()
        if (
            fetched.status != 200
            or len(fetched.content) > FETCH_LIMITS[kind]
            or (kind in ("image", "audio", "video") and not media.startswith(kind + "/"))
        ):
            return graph_error(400, "(#100) Failed to fetch the file from the url", code=100, subcode=2018008)
        return None

    async def _fetch(self, url: str) -> Fetched:
        try:
            if self.fetch_client is not None:
                parts = urlsplit(url)
                response = await self.fetch_client.get(f"{parts.path}?{parts.query}" if parts.query else parts.path)
            else:
                async with httpx.AsyncClient(timeout=10.0) as client:
                    response = await client.get(url)
        except httpx.HTTPError:
            fetched = Fetched(url, 0, "", b"")
        else:
            fetched = Fetched(url, response.status_code, response.headers.get("content-type", ""), response.content)
        self.fetched.append(fetched)
        return fetched

    async def _me(self, request: Request) -> Response:
        recorded = await self._record(request, "me")
        if (failed := self._scripted("me")) is not None:
            return failed
        if not self._authorized(recorded):
            return graph_error(400, "Invalid OAuth access token - Cannot parse access token", code=190)
        return JSONResponse({"id": self.page_id, "name": self.page_name})

    async def _token(self, request: Request) -> Response:
        recorded = await self._record(request, "token")
        if (failed := self._scripted("token")) is not None:
            return failed
        q = recorded.query
        if q.get("grant_type") != "fb_exchange_token":
            return graph_error(400, "(#100) grant_type must be fb_exchange_token", code=100)
        if q.get("client_id") != self.app_id or q.get("client_secret") != self.app_secret:
            return graph_error(400, "Error validating client secret.", code=1)
        if q.get("fb_exchange_token") != self.token:
            return graph_error(400, "Error validating access token: Session has expired", code=190)
        self.token = f"page-token-{uuid.uuid4().hex[:8]}"
        return JSONResponse({"access_token": self.token, "token_type": "bearer", "expires_in": LONG_LIVED_SECONDS})

    async def _media(self, request: Request) -> Response:
        await self._record(request, "media")
        name = request.path_params["name"]
        if name not in self.media:
            return Response(status_code=404)
        content_type, data = self.media[name]
        return Response(data, media_type=content_type)


def graph_error(status: int, message: str, *, code: int = 100, subcode: int | None = None) -> JSONResponse:
    kind = "OAuthException" if code in (190, 1) else "GraphMethodException"
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": uuid.uuid4().hex[:11]}
    if subcode is not None:
        error["error_subcode"] = subcode
    return JSONResponse({"error": error}, status_code=status)


@asynccontextmanager
async def meta_graph() -> AsyncIterator[MetaGraph]:
    graph = MetaGraph()
    async with serve_in_loop(graph.app()) as port:
        graph.port = port
        yield graph


# -- what Meta POSTs to the webhook ------------------------------------------------------------------------------


def hub_signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _callback(obj: str, account: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": obj, "entry": [{"id": account, "time": 1733300000000, "messaging": items}]}


def _message_item(sender: str, account: str, mid: str, text: str | None, attachments: list | None) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid}
    if text is not None:
        message["text"] = text
    if attachments:
        message["attachments"] = attachments
    return {"sender": {"id": sender}, "recipient": {"id": account}, "timestamp": 1733300000000, "message": message}


def messenger_text(
    page_id: str, psid: str, text: str | None, *, mid: str | None = None, attachments: list | None = None
) -> dict[str, Any]:
    return _callback("page", page_id, [_message_item(psid, page_id, mid or f"m_{uuid.uuid4().hex}", text, attachments)])


def instagram_text(ig_id: str, igsid: str, text: str, *, mid: str | None = None) -> dict[str, Any]:
    return _callback("instagram", ig_id, [_message_item(igsid, ig_id, mid or f"aWdf{uuid.uuid4().hex}", text, None)])


def delivery(page_id: str, psid: str, mids: list[str], watermark: int = 1733300000000) -> dict[str, Any]:
    item = {"sender": {"id": psid}, "recipient": {"id": page_id}, "delivery": {"mids": mids, "watermark": watermark}}
    return _callback("page", page_id, [item])


def read(page_id: str, psid: str, watermark_ms: int) -> dict[str, Any]:
    item = {"sender": {"id": psid}, "recipient": {"id": page_id}, "read": {"watermark": watermark_ms}}
    return _callback("page", page_id, [item])
