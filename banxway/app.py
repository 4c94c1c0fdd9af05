"""create_app(): the Starlette application, its routes and its typed lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, TypedDict

import orjson
from cross_web import HTTPException
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy import text
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.execution import PreExecutionError
from strawberry.types.unset import UNSET

from banxway import events, fanout, wsframes
from banxway.compiler import CompilingSchema
from banxway.context import (
    SIGNED_OUT,
    Context,
    SystemContext,
    authenticate,
    authenticate_claims,
    operation_scope,
    viewer_of,
)
from banxway.downloads import sandboxed_file
from banxway.errors import DomainError, PermissionDenied
from banxway.exports import ROUTES as EXPORT_ROUTES
from banxway.logs import get_logger
from banxway.mcp import McpEndpoint
from banxway.middleware import (
    GRAPHIQL_POLICY,
    BodyLimitMiddleware,
    RateLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
    bearer_matches,
    is_multipart,
    websocket_operation_refusal,
)
from banxway.resolvers.attachments import (
    attachment_file,
    attachment_file_signed,
    attachment_upload,
    signed_query,
)
from banxway.resolvers.compose import DeltaEvent, DoneEvent, ErrorEvent, compose_events, compose_session_of
from banxway.resolvers.web_chat import visitor_claims_of
from banxway.schema import build_schema
from banxway.schema.dev import dev_outbox_page
from banxway.schema.ids import local_id, to_global_id
from banxway.schema.persisted import persisted_operations, websocket_operation
from banxway.settings import Settings
from banxway.state import AppState, new_state
from banxway.tasks import consequences
from banxway.tasks.actors import setup_broker
from banxway.webchat import ROUTES as WEBCHAT_ROUTES
from banxway.webchat import WIDGET_ORIGIN, widget_websocket_scope
from banxway.webhooks import ROUTES as WEBHOOK_ROUTES

log = get_logger("banxway.http")

# The GraphiQL page of development and its files, built from web/graphiql/ (web/graphiql/build.sh): no CDN, no fonts.
GRAPHIQL = Path(__file__).parent / "static" / "graphiql"


class State(TypedDict):
    app: AppState


async def build_state(settings: Settings) -> AppState:
    """An API process's state: the broker set up (events enqueue their consequences), the broadcast listening."""
    setup_broker(settings.redis_url or "")
    state = new_state(settings, consequences=consequences.start)
    await state.broadcast.connect()
    return state


async def run_event_maintenance(state: AppState) -> None:
    """Every second relay what a crash left undispatched; every hour prune past the retention."""
    retention = timedelta(days=state.settings.event_retention_days)
    last_prune = 0.0
    this = asyncio.current_task()
    while True:
        try:
            await events.sweep(state.broadcast, state.sessionmaker, consequences=state.consequences)
            if time.monotonic() - last_prune > 3600:
                await events.prune(state.sessionmaker, retention)
                last_prune = time.monotonic()
        except Exception as exc:  # the database or Redis is down: try again in a second
            log.warning("event maintenance failed", error=str(exc))
        if this is not None and this.cancelling():
            # a cancel can be swallowed inside a database call (asyncio.wait_for in Python 3.11 may lose one);
            # stop anyway, or the shutdown that awaits this task hangs (seen in the test suite)
            raise asyncio.CancelledError
        await asyncio.sleep(1)


class _OperationTask:
    """What both WebSocket protocols do around the connection's token and one operation's task.

    The token given at `connection_init` is checked again for every operation, as each HTTP request checks its own
    (`viewer_of`: one statement): the operation runs with the user's role as it is now, and a token that expired, or
    a user deactivated or signed out everywhere (a new password), ends the connection with 4403 and the reason. The
    connection also ends when its token expires, unless the client renewed it in-band before (`_renew`)."""

    websocket: Any
    context: Context
    _expiry: asyncio.Task[None] | None = None
    # the protocol's own (the handler classes below)
    send_message: Callable[[Any], Awaitable[None]]
    _errors_payload: Callable[[dict[str, Any]], Any]

    async def _may_run(self, message: Any) -> bool:
        """Whether the operation `message` starts may run: the viewer refreshed, or the connection ended, or the
        operation refused with RATE_LIMITED (it counts in the same windows as the user's HTTP requests)."""
        state = self.context.state
        claims = self.context.claims
        if claims is not None:  # (without a token the operation answers UNAUTHENTICATED itself)
            viewer, error = await viewer_of(state, claims)
            if viewer is None:
                await self._forbid(error or SIGNED_OUT)
                return False
            self.context.viewer_or_none = viewer
        client = self.websocket.ws.client
        user = str(claims.user_id) if claims is not None else None
        address = client.host if client else None
        persisted = persisted_operations(self.schema)
        refusal = await websocket_operation_refusal(state, user, address, message.get("payload"), persisted)
        if refusal is None:
            return True
        text, retry = refusal
        error = {"message": text, "extensions": {"code": "RATE_LIMITED", "retryAfter": retry}}
        await self.send_message({"type": "error", "id": message.get("id"), "payload": self._errors_payload(error)})
        return False

    async def _renew(self, payload: Any) -> str | None:
        """Take the newer access token of `payload`'s `authorization` for the rest of the connection; the reason
        when it is refused (the connection then goes on with the token it has, until that one expires)."""
        claims, viewer, error = await authenticate_claims(self.context.state, _authorization(payload))
        if claims is None or viewer is None:
            return error or "no token: give {'authorization': 'Bearer <access token>'}"
        current = self.context.claims
        if current is None or (current.user_id, current.organization_id) != (claims.user_id, claims.organization_id):
            return "a connection can only be renewed with a token of the user it was opened for"
        self.context.claims, self.context.viewer_or_none = claims, viewer
        return None

    async def _forbid(self, reason: str) -> None:
        reason = reason.removeprefix("Invalid access token: ")
        await self.websocket.close(code=4403, reason=f"Forbidden: {reason}".encode()[:123].decode(errors="ignore"))

    def _watch_expiry(self) -> None:
        if self._expiry is None and self.context.claims is not None:
            self._expiry = asyncio.create_task(self._expire())

    async def _expire(self) -> None:
        """End the connection when its token expires (a renewed token moves the moment on)."""
        with contextlib.suppress(Exception):
            while (claims := self.context.claims) is not None:
                left = (claims.expires_at - datetime.now(UTC)).total_seconds()
                if left <= 0:
                    await self._forbid("token expired; reconnect with a new token, or renew it in-band")
                    return
                await asyncio.sleep(left)

    def _stop_watching(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()

    @contextlib.asynccontextmanager
    async def _operation(self, message_type: str, operation_id: str, variables: Any) -> AsyncIterator[None]:
        """A session and loaders of the operation's own, and a sink for the pre-encoded `message_type` messages
        that live subscriptions send themselves (`banxway.fanout`)."""
        websocket = self.websocket.ws  # Strawberry's ASGI adapter: the Starlette WebSocket

        async def send_text(text: str) -> None:
            try:
                await websocket.send_text(text)
            except WebSocketDisconnect as exc:
                raise WebSocketDisconnected from exc

        direct = wsframes.writer(websocket.scope)
        write = direct.write_text if direct is not None else None
        with fanout.operation_sink(message_type, operation_id, send_text, variables, write):
            async with operation_scope(self.context):
                yield


class LegacyWSHandler(_OperationTask, BaseGraphQLWSHandler):
    """The legacy graphql-ws protocol, running queries and mutations too (Strawberry's runs subscriptions only).
    A `connection_init` after the first renews the token (`connection_ack`, or `connection_error` with the reason)."""

    async def handle_connection_init(self, message: Any) -> None:
        if not self.connection_acknowledged:
            await super().handle_connection_init(message)
            if self.connection_acknowledged:
                self._watch_expiry()
            return
        error = await self._renew(message.get("payload"))
        if error is None:
            await self.send_message({"type": "connection_ack"})
        else:
            await self.send_message({"type": "connection_error", "payload": {"message": error}})

    async def handle_start(self, message: Any) -> None:
        if self.connection_acknowledged and not await self._may_run(message):
            return
        with websocket_operation(message.get("payload")):
            await super().handle_start(message)

    @staticmethod
    def _errors_payload(error: dict[str, Any]) -> Any:
        return error  # graphql-ws: one error

    async def cleanup(self) -> None:
        self._stop_watching()
        await super().cleanup()

    async def handle_async_results(
        self, operation_id: str, query: str, operation_name: str | None, variables: dict[str, object] | None
    ) -> None:
        async with self._operation("data", operation_id, variables):
            await self._run(operation_id, query, operation_name, variables)

    async def _run(
        self, operation_id: str, query: str, operation_name: str | None, variables: dict[str, object] | None
    ) -> None:
        try:
            result_source = await self.schema.stream(
                query,
                variable_values=variables,
                operation_name=operation_name,
                context_value=self.context,
                root_value=self.root_value,
            )
            self.subscriptions[operation_id] = result_source
            first = True
            async for result in result_source:
                if first and isinstance(result, PreExecutionError):
                    await self.send_message(
                        {"type": "error", "id": operation_id, "payload": result.errors[0].formatted}  # type: ignore[index]
                    )
                    return
                await self.send_data_message(result, operation_id)  # type: ignore[arg-type]
                first = False
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            await self.send_message({"type": "complete", "id": operation_id})
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)


class TransportWSHandler(_OperationTask, BaseGraphQLTransportWSHandler):
    """graphql-transport-ws with a session per operation and keep-alive pings from the server."""

    _keepalive: asyncio.Task[None] | None = None

    async def run_operation(self, operation: Operation) -> None:  # type: ignore[override]
        async with self._operation("next", operation.id, operation.variables):
            await super().run_operation(operation)

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._keepalive is None:
            self._keepalive = asyncio.create_task(self._ping())
            self._watch_expiry()

    async def handle_subscribe(self, message: Any) -> None:
        if self.connection_acknowledged and not await self._may_run(message):
            return
        with websocket_operation(message.get("payload")):
            await super().handle_subscribe(message)

    @staticmethod
    def _errors_payload(error: dict[str, Any]) -> Any:
        return [error]  # graphql-transport-ws: a list of errors

    async def handle_ping(self, message: Any) -> None:
        """A `ping` whose payload carries `authorization` renews the connection's token: the `pong` says
        `{"renewed": true, "expiresAt"}` or `{"renewed": false, "error"}`. Any other ping gets a plain `pong`."""
        payload = message.get("payload")
        if not (isinstance(payload, dict) and _authorization(payload) is not None):
            await super().handle_ping(message)
            return
        error = await self._renew(payload)
        if error is not None:
            answer: dict[str, Any] = {"renewed": False, "error": error}
        else:
            expires_at = self.context.claims.expires_at  # type: ignore[union-attr]
            answer = {"renewed": True, "expiresAt": expires_at.isoformat()}
        await self.send_message({"type": "pong", "payload": answer})

    async def _ping(self) -> None:
        """A `ping` every interval, so that proxies keep an idle connection open (the client answers `pong`)."""
        interval = self.view.keepalive_seconds  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(interval)
                await self.send_message({"type": "ping"})

    async def shutdown(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._stop_watching()
        await super().shutdown()


LOCAL_ORIGINS = r"http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


def prefers_graphql_response(accept: str | None) -> bool:
    """Whether an Accept header prefers `application/graphql-response+json` to `application/json` (GraphQL over
    HTTP): by their q values, the first listed winning a tie; `*/*` and no header mean application/json."""
    best: tuple[float, int, bool] | None = None
    for position, part in enumerate((accept or "").split(",")):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        if media.lower() not in (GRAPHQL_RESPONSE_JSON, "application/json"):
            continue
        q = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                with contextlib.suppress(ValueError):
                    q = float(value)
        candidate = (q, -position, media.lower() == GRAPHQL_RESPONSE_JSON)
        if q > 0 and (best is None or candidate[:2] > best[:2]):
            best = candidate
    return best is not None and best[2]


def _request_error(result: Any) -> bool:
    """A GraphQL request error (the document does not parse or validate, a variable does not coerce): errors and
    no data, none of them at a field's path. Over application/graphql-response+json: 400, without `data`."""
    errors = getattr(result, "errors", None)
    return getattr(result, "data", None) is None and bool(errors) and all(not error.path for error in errors)


class GraphQLApp(GraphQL):
    """Strawberry's ASGI app with our context, orjson, and token auth on WebSocket init; GraphQL over HTTP:
    `application/graphql-response+json` when the client prefers it (400 and no `data` for a request error),
    405 for a mutation sent by GET."""

    graphql_ws_handler_class = LegacyWSHandler
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(self, *args: Any, keepalive_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, keep_alive=True, keep_alive_interval=keepalive_seconds, **kwargs)
        self.keepalive_seconds = keepalive_seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                scope = await widget_websocket_scope(scope)  # a web chat widget's page (banxway.webchat)
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        refusal = await self._multipart_refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        try:
            response = await self.run(request)
        except HTTPException as exc:
            response = PlainTextResponse(exc.reason, status_code=exc.status_code)
            if exc.status_code == 405:
                response.headers["allow"] = "GET, POST" if self.allow_queries_via_get else "POST"
        finally:
            await request.close()  # the uploaded files of a multipart request (spooled to disk when large)
        await response(scope, receive, send)

    async def _multipart_refusal(self, request: Request) -> Response | None:
        """A multipart request (uploads: the GraphQL multipart request spec) is read only for a signed-in user:
        without a valid `Authorization: Bearer` token it is answered 401 before its files are read.

        This is also its CSRF defence. A cross-site page can POST multipart/form-data without a CORS preflight (a
        "simple request"), but it cannot add an Authorization header without one — and the preflight only passes
        for the allowed origins (BANXWAY_CORS_ORIGINS) — and Banxway takes no ambient credentials (no cookies).
        So no `Apollo-Require-Preflight`-style header is needed: the token is the proof of intent."""
        if request.method != "POST" or not is_multipart(request.headers.get("content-type")):
            return None
        viewer, error = await authenticate(request.state.app, request.headers.get("authorization"))
        if viewer is not None:
            return None
        message = error or "Uploads (multipart requests) need 'Authorization: Bearer <access token>'."
        errors = [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]
        return JSONResponse({"errors": errors}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    async def execute_operation(self, request: Any, request_adapter: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_operation(request, request_adapter, *args, **kwargs)
        except HTTPException as exc:
            if request_adapter.method == "GET" and exc.status_code == 400 and "GET" in exc.reason:
                raise HTTPException(405, exc.reason) from exc  # a mutation (or subscription) sent by GET
            raise

    async def process_result(self, request: Any, result: Any) -> Any:
        data = await super().process_result(request, result)
        if _request_error(result) and prefers_graphql_response(request.headers.get("accept")):
            data.pop("data", None)
        return data

    def create_response(self, response_data: Any, sub_response: Any) -> Response:
        response = super().create_response(response_data, sub_response)
        if sub_response.headers.get("x-banxway-media") == GRAPHQL_RESPONSE_JSON:
            del response.headers["x-banxway-media"]
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
            if isinstance(response_data, dict) and "data" not in response_data:
                response.status_code = 400
        return response

    @cached_property
    def graphql_ide_html(self) -> str:  # type: ignore[override]
        """Our GraphiQL page, not Strawberry's template (which loads React, GraphiQL and fonts from CDNs): it loads
        /graphiql/app.js and app.css from this server, so that it works offline."""
        return (GRAPHIQL / "index.html").read_text(encoding="utf-8")

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Not for a persisted query sent by GET (APQ): it has `extensions` and no `query`."""
        return "extensions" not in request.query_params and super().should_render_graphql_ide(request)

    def is_websocket_origin_allowed(self, request: Any, origin: str) -> bool:  # type: ignore[override]
        """Cross-origin handshakes: only a chat widget's page, to /graphql?widget=<key> (`widget_websocket_scope`)."""
        return request.scope.get(WIDGET_ORIGIN) == origin or super().is_websocket_origin_allowed(request, origin)

    def encode_json(self, data: object) -> str:  # type: ignore[override]
        return orjson.dumps(data).decode()  # text frames on WebSocket, as browser clients expect

    def decode_json(self, data: str | bytes) -> object:
        """orjson: a body nested past 1,024 levels is a 400 like any other bad JSON (json.loads raised RecursionError,
        a 500)."""
        return orjson.loads(data)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:  # type: ignore[override]
        state: AppState = request.state.app
        ctx = Context(state=state, request=request, response=response)
        ctx.request_id = request.headers.get("x-request-id")
        if isinstance(request, Request):
            ctx.viewer_or_none, ctx.auth_error = await authenticate(state, request.headers.get("authorization"))
            if prefers_graphql_response(request.headers.get("accept")):
                response.headers["x-banxway-media"] = GRAPHQL_RESPONSE_JSON  # (read by create_response)
        return ctx

    async def on_ws_connect(self, context: Context) -> Any:  # type: ignore[override]
        authorization = _authorization(context.connection_params)
        claims, viewer, error = await authenticate_claims(context.state, authorization)
        if error is not None:
            if visitor_claims_of(context.state.secret_key, authorization) is not None:
                return UNSET  # a web chat visitor: only the visitor fields take it (banxway.schema.web_chat)
            raise ConnectionRejectionError({"message": error})
        context.viewer_or_none, context.claims = viewer, claims
        return UNSET


def _authorization(payload: Any) -> str | None:
    """The `authorization` of a `connection_init` (or renewal) payload."""
    header = (payload.get("authorization") or payload.get("Authorization")) if isinstance(payload, dict) else None
    return header if isinstance(header, str) else None


async def livez(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _viewer_context(request: Request) -> Context | Response:
    state: AppState = request.state.app
    viewer, error = await authenticate(state, request.headers.get("authorization"))
    if viewer is None:
        return JSONResponse({"error": error or "Authentication required"}, status_code=401)
    return Context(state, viewer)


async def download_attachment(request: Request) -> Response:
    """An attachment's bytes: for a signed-in user of its organization (Authorization: Bearer <token>), or through
    a signed link (`Attachment.downloadUrl`: `?expires=&signature=`, no header; 403 once expired or altered)."""
    attachment_id = local_id(request.path_params["attachment_id"], "Attachment")
    params = request.query_params
    try:
        if "signature" in params or "expires" in params:
            signed = await attachment_file_signed(
                SystemContext(request.state.app), attachment_id, params.get("expires"), params.get("signature")
            )
            found, max_age = (signed[:2], min(signed[2], 3600)) if signed is not None else (None, 0)
        else:
            ctx = await _viewer_context(request)
            if isinstance(ctx, Response):
                return ctx
            try:
                found, max_age = await attachment_file(ctx, attachment_id), 3600
            finally:
                await ctx.aclose()
    except PermissionDenied as exc:
        return JSONResponse({"error": str(exc)}, status_code=403)
    if found is None:
        return JSONResponse({"error": "No such attachment"}, status_code=404)
    row, path = found
    # raster images shown, everything else a download; nosniff and sandboxed (banxway.downloads)
    return sandboxed_file(path, content_type=row.content_type, filename=row.filename, max_age=max_age)


SSE_EVENT_NAMES = {DeltaEvent: "delta", DoneEvent: "done", ErrorEvent: "error"}


async def compose_stream_sse(request: Request) -> Response:
    """A compose session's drafts as Server-Sent Events (`delta`, then `done` or `error`; each `data` is the JSON of
    the composeStream item), for the user who started it (Authorization: Bearer <token>). The same stream as the
    composeStream subscription; a client that disconnects before the end cancels the drafting."""
    ctx = await _viewer_context(request)
    if isinstance(ctx, Response):
        return ctx
    raw = request.path_params["session_id"]
    session_id = local_id(raw, "ComposeSession")
    try:
        row = await compose_session_of(ctx, session_id)
    except PermissionDenied as exc:
        await ctx.aclose()
        return JSONResponse({"error": str(exc)}, status_code=403)
    except DomainError as exc:
        await ctx.aclose()
        return JSONResponse({"error": exc.message, "code": exc.code}, status_code=404)

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            async for event in compose_events(ctx, row):
                yield {"event": SSE_EVENT_NAMES[type(event)], "data": orjson.dumps(sse_data(event)).decode()}
        finally:
            await ctx.aclose()

    return EventSourceResponse(
        events(), ping=15, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}, send_timeout=30
    )


def sse_data(event: DeltaEvent | DoneEvent | ErrorEvent) -> dict[str, Any]:
    if isinstance(event, DeltaEvent):
        return {"variant": event.variant, "text": event.text}
    if isinstance(event, DoneEvent):
        return {
            "variants": [{"variant": index, "text": text} for index, text in enumerate(event.variants)],
            "usage": {
                "promptTokens": event.prompt_tokens,
                "completionTokens": event.completion_tokens,
                "totalTokens": event.prompt_tokens + event.completion_tokens,
            },
        }
    return {"code": event.code, "message": event.message}


async def upload_attachment(request: Request) -> Response:
    """Upload a file to send: the request body is the file, `?filename=` its name, Content-Type its type.
    Answers the attachment's id, to pass in messageSend's attachmentIds."""
    ctx = await _viewer_context(request)
    if isinstance(ctx, Response):
        return ctx
    limit = ctx.settings.attachment_max_bytes
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return JSONResponse({"error": f"The file is larger than the {limit}-byte limit."}, status_code=413)
        chunks.append(chunk)
    content_type = (request.headers.get("content-type") or "application/octet-stream").split(";")[0].strip()
    try:
        row = await attachment_upload(
            ctx, filename=request.query_params.get("filename") or "", content_type=content_type, data=b"".join(chunks)
        )
    except PermissionDenied as exc:
        return JSONResponse({"error": str(exc)}, status_code=403)
    except DomainError as exc:
        return JSONResponse({"error": exc.message}, status_code=400)
    finally:
        await ctx.aclose()
    global_id = to_global_id("Attachment", row.id)
    body = {"id": global_id, "filename": row.filename, "contentType": row.content_type, "size": row.size}
    urls = {"url": f"/attachments/{global_id}", "downloadUrl": f"/attachments/{global_id}?{signed_query(ctx, row)}"}
    return JSONResponse({**body, "sha256": row.sha256, **urls}, status_code=201)


async def readyz(request: Request) -> Response:
    state: AppState = request.state.app
    checks: dict[str, str] = {}

    async def check_postgres() -> None:
        async with state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def check_redis() -> None:
        await state.redis.ping()

    for name, check in (("postgres", check_postgres), ("redis", check_redis)):
        try:
            await asyncio.wait_for(check(), timeout=2)
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; say which part and why
            checks[name] = f"unavailable: {type(exc).__name__}: {exc}"[:300]
    failing = [name for name, result in checks.items() if result != "ok"]
    body = {"status": "ok" if not failing else "unavailable", "checks": checks}
    if failing:
        body["failing"] = failing
    return JSONResponse(body, status_code=503 if failing else 200)


def create_app(settings: Settings, *, state: AppState | None = None) -> Starlette:
    """The ASGI app. `state` is built in the lifespan from `settings` unless given."""
    registry = CollectorRegistry()
    requests = Counter(
        "banxway_http_requests_total",
        "HTTP requests",
        ["method", "path", "status"],
        registry=registry,
    )
    latency = Histogram(
        "banxway_http_request_seconds",
        "HTTP request latency",
        ["path"],
        registry=registry,
    )

    schema = build_schema(settings, CompilingSchema, compiled=settings.graphql_compiled)
    graphql = GraphQLApp(
        schema,
        graphql_ide=None if settings.production else "graphiql",
        allow_queries_via_get=True,
        multipart_uploads_enabled=True,  # uploads: authenticated before they are read (GraphQLApp._multipart_refusal)
        keepalive_seconds=settings.ws_keepalive_seconds,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
        max_subscriptions_per_connection=settings.ws_max_subscriptions,
    )

    async def metrics(request: Request) -> Response:
        """With BANXWAY_METRICS_TOKEN, for `Authorization: Bearer <token>` only; without, open in development and
        missing (404, like any unknown path) in production."""
        if settings.metrics_token is not None:
            if not bearer_matches(request.headers.get("authorization"), settings.metrics_token):
                error = {"error": "/metrics needs 'Authorization: Bearer <BANXWAY_METRICS_TOKEN>'"}
                return JSONResponse(error, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        elif settings.production:
            return PlainTextResponse("Not Found", status_code=404)
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    mcp = McpEndpoint()  # POST /mcp: AI agents, with a personal API token (banxway.mcp)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        app_state = state or await build_state(settings)
        maintenance = asyncio.create_task(run_event_maintenance(app_state))
        try:
            async with mcp.running():
                yield {"app": app_state}
        finally:
            maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintenance
            if state is None:
                await app_state.aclose()

    middleware = [
        Middleware(RequestContextMiddleware, requests=requests, latency=latency),
        Middleware(
            SecurityHeadersMiddleware,
            html_policy=GRAPHIQL_POLICY if graphql.graphql_ide else None,
            hsts=settings.production,
        ),
        Middleware(
            BodyLimitMiddleware,
            max_body_bytes=settings.max_body_bytes,
            max_upload_bytes=settings.attachment_max_bytes,
        ),
    ]
    # Development without BANXWAY_CORS_ORIGINS: a frontend's dev server on this machine (any port of localhost or
    # 127.0.0.1, http) may call the API; production allows only the origins configured.
    local = None if settings.cors_origins or settings.production else LOCAL_ORIGINS
    if settings.cors_origins or local:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_origin_regex=local,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["authorization", "content-type", "x-request-id"],
                expose_headers=["retry-after", "x-request-id"],
            )
        )
    middleware.append(
        Middleware(RateLimitMiddleware, settings=settings, persisted=persisted_operations(schema))
    )  # inside the body limit and CORS
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            *([Mount("/graphiql", StaticFiles(directory=GRAPHIQL), name="graphiql")] if graphql.graphql_ide else []),
            Route("/livez", livez),
            Route("/healthz", livez),
            Route("/readyz", readyz),
            Route("/attachments", upload_attachment, methods=["POST"]),
            Route("/attachments/{attachment_id}", download_attachment),
            Route("/compose/{session_id}/stream", compose_stream_sse),
            Route("/metrics", metrics),
            Route("/mcp", mcp),
            Route("/dev/outbox", dev_outbox_page),
            *WEBHOOK_ROUTES,
            *WEBCHAT_ROUTES,
            *EXPORT_ROUTES,
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
