"""The web chat widget's public HTTP routes (no access token: the widget key and the page's `Origin` decide).

* `GET /widget.js` — the embeddable, dependency-free script (banxway/static/widget.js), versioned by
  `?v=<SCRIPT_VERSION>`, served with `Access-Control-Allow-Origin: *` so that a page can check it with SRI
  (`integrity="sha384-..."`, `crossorigin="anonymous"`). `GET /widget.js.json` says its version and hash. An older
  version (`?v=1`) is still served as it was, so that pages embedding it with its hash keep working.
* `POST /widget/{widgetKey}/session` — a visitor token for a page on one of the widget's allowed origins: 404 for
  an unknown key, 403 for another origin (or none), 429 when one address opens too many, 400 for bad JSON. The body
  is JSON (any content type: the script sends `text/plain`, a CORS "simple request", so no preflight is needed):
  `{"token"?: old visitor token (renewal), "name"?, "email"?}`. The answer carries
  `Access-Control-Allow-Origin: <that origin>` only for an allowed origin.
* `GET /widget/{widgetKey}/attachments/{id}` — a file an agent sent the visitor (`resolvers.web_chat_files`): with
  `Authorization: Bearer <visitor token>`, or through the signed link `visitorMessages` gives (`?visitor=&expires=
  &signature=`, what the widget's `<img>` and links use). 401 without either, 403 for an altered or expired link,
  404 for a file that is not in this visitor's conversation on this widget. Served with `X-Content-Type-Options:
  nosniff`, a sandboxing CSP, `Cross-Origin-Resource-Policy: cross-origin` (the widget's page shows it), and
  `Content-Disposition: attachment` (and `application/octet-stream`) for everything but raster images
  (`banxway.downloads`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from banxway.downloads import sandboxed_file
from banxway.resolvers.web_chat import (
    OLDER_SCRIPTS,
    SCRIPT_VERSION,
    SessionRefused,
    script,
    visitor_claims_of,
    visitor_session_open,
    widget_allows_origin,
)
from banxway.resolvers.web_chat_files import LinkRefused, visitor_file
from banxway.schema.ids import local_id
from banxway.state import AppState

MAX_SESSION_BODY = 4096
_OLDER_BY_NAME = {str(version): version for version in OLDER_SCRIPTS}


async def widget_script(request: Request) -> Response:
    # looked up as text: `?v=` is anyone's input ("²" is a digit to str.isdigit, 5000 digits no int)
    version = _OLDER_BY_NAME.get(request.query_params.get("v", ""), SCRIPT_VERSION)
    content, integrity = script(version)
    etag = '"' + integrity.removeprefix("sha384-")[:27] + '"'
    headers = {
        "access-control-allow-origin": "*",
        "cross-origin-resource-policy": "cross-origin",
        "cache-control": "public, max-age=300",
        "etag": etag,
        "x-widget-version": str(version),
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="text/javascript; charset=utf-8", headers=headers)


async def widget_script_info(request: Request) -> Response:
    _, integrity = script()
    body = {"version": SCRIPT_VERSION, "integrity": integrity, "path": f"/widget.js?v={SCRIPT_VERSION}"}
    return JSONResponse(body, headers={"access-control-allow-origin": "*"})


def _cors(origin: str | None) -> dict[str, str]:
    if not origin:
        return {"vary": "Origin"}
    return {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": "POST, OPTIONS",
        "access-control-allow-headers": "content-type",
        "access-control-max-age": "600",
        "vary": "Origin",
    }


async def visitor_session(request: Request) -> Response:
    state: AppState = request.state.app
    origin = request.headers.get("origin")
    widget_key = request.path_params["widget_key"]
    raw = await request.body()
    body: object = {}
    if raw.strip():
        try:
            body = orjson.loads(raw) if len(raw) <= MAX_SESSION_BODY else None
        except orjson.JSONDecodeError:
            body = None
    if not isinstance(body, dict):
        return JSONResponse({"error": "The body must be a JSON object (at most 4 KB)."}, status_code=400)
    address = request.client.host if request.client else None
    try:
        if request.method == "OPTIONS":
            await visitor_session_open(state, widget_key, origin, {"__check__": True}, None, check_only=True)
            return Response(status_code=204, headers=_cors(origin))
        session = await visitor_session_open(state, widget_key, origin, body, address)
    except SessionRefused as refused:
        headers = {"vary": "Origin"}
        if refused.retry_after is not None:
            headers["retry-after"] = str(max(1, round(refused.retry_after)))
            headers.update(_cors(origin))
        elif refused.status == 400:
            headers.update(_cors(origin))
        return JSONResponse({"error": refused.message}, status_code=refused.status, headers=headers)
    return JSONResponse(session, headers={**_cors(origin), "cache-control": "no-store"})


async def visitor_attachment(request: Request) -> Response:
    state: AppState = request.state.app
    params = request.query_params
    attachment_id = local_id(request.path_params["attachment_id"], "Attachment")
    widget_key = request.path_params["widget_key"]
    try:
        if "signature" in params or "expires" in params or "visitor" in params:
            found = await visitor_file(
                state,
                widget_key,
                attachment_id,
                visitor=params.get("visitor"),
                expires=params.get("expires"),
                signature=params.get("signature"),
            )
        else:
            claims = visitor_claims_of(state.secret_key, request.headers.get("authorization"))
            if claims is None:
                return JSONResponse(
                    {"error": "This needs a web chat visitor token (Authorization: Bearer) or a signed link."},
                    status_code=401,
                    headers={"www-authenticate": "Bearer"},
                )
            found = await visitor_file(state, widget_key, attachment_id, claims=claims)
    except LinkRefused as exc:
        return JSONResponse({"error": str(exc)}, status_code=403)
    if found is None:
        return JSONResponse({"error": "No such attachment"}, status_code=404)
    row, path, max_age = found
    return sandboxed_file(
        path,
        content_type=row.content_type,  # normalised as the listing (`visitor_files`) is: `image/PNG; name=x` shows
        filename=row.filename,
        max_age=max_age,
        opaque=True,
        headers={"cross-origin-resource-policy": "cross-origin"},
    )


WIDGET_ORIGIN = "banxway.widget_origin"


async def widget_websocket_scope(scope: dict[str, Any]) -> dict[str, Any]:
    """A WebSocket handshake to /graphql?widget=<widgetKey> from a page that widget allows: marked (`WIDGET_ORIGIN`) so
    that the GraphQL app accepts its cross-origin handshake. Other cross-origin handshakes stay refused (Strawberry's
    rule). Nothing else changes: the connection still needs a token, and a visitor token opens only visitor fields."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    key = (query.get("widget") or [""])[0]
    if not key:
        return scope
    origin = Headers(scope=scope).get("origin")
    state: AppState = scope["state"]["app"]
    if origin and await widget_allows_origin(state, key, origin):
        return {**scope, WIDGET_ORIGIN: origin}
    return scope


ROUTES = [
    Route("/widget.js", widget_script, methods=["GET"]),
    Route("/widget.js.json", widget_script_info, methods=["GET"]),
    Route("/widget/{widget_key}/session", visitor_session, methods=["POST", "OPTIONS"]),
    Route("/widget/{widget_key}/attachments/{attachment_id}", visitor_attachment, methods=["GET"]),
]
