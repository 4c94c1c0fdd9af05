"""Request middleware: a request id (the `X-Request-ID` header, echoed), a structured access log with secrets
masked, Prometheus metrics for every HTTP request, a limit on request bodies, rate limits, and security headers."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import time
import uuid
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
import structlog
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from banxway import ratelimit, wsframes
from banxway.auth import InvalidToken, bearer_token, decode_access_token, is_api_token
from banxway.context import api_token_user
from banxway.logs import get_logger
from banxway.settings import Settings

if TYPE_CHECKING:
    from banxway.schema.persisted import PersistedOperations
    from banxway.state import AppState

log = get_logger("banxway.http")


class RequestContextMiddleware:
    """Request id, structured access log and Prometheus metrics for every HTTP request; a WebSocket connection's
    direct frame writer (`banxway.wsframes`), which must see the server's own `send`."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # the outermost of ours: `send` is still the server's own
                wsframes.attach(scope, send)
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
    large as an attachment, a multipart GraphQL request (the multipart request spec: files with the operation) as an
    attachment plus `BANXWAY_MAX_BODY_BYTES`; everything else as `BANXWAY_MAX_BODY_BYTES`."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload_bytes if scope["path"] == "/attachments" else self.max_body_bytes
        if scope["path"] == "/graphql" and is_multipart(_header(scope, b"content-type")):
            limit = self.max_upload_bytes + self.max_body_bytes
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


# -- rate limits ------------------------------------------------------------------------------------------------

RATE_LIMIT_WINDOW_SECONDS = 60.0
_RATE_KEY = "banxway:ratelimit:"


class RateLimitMiddleware:
    """Sliding-minute limits (`banxway.ratelimit`) on GraphQL over HTTP (GET and POST /graphql: per user, by the
    access token's subject, and per client address), a stricter one on mutations (counted in both), and on provider
    callbacks (per webhook URL and per client address). Over a limit the answer is 429 with `Retry-After` (seconds)
    and, for GraphQL, an error with `extensions: {code: RATE_LIMITED, retryAfter}`; the request counts in no window.

    Whether a POST is a mutation is read from its body (bounded by BodyLimitMiddleware, which runs first): the
    document is parsed by graphql-core with the token limit, and the operation types of documents up to 16 KiB are
    kept in an LRU keyed by their text, so a client's usual operations are parsed once (Strawberry's ParserCache
    parses them again later, keyed alike). A document that does not parse counts as a query: it is refused before
    anything runs. A token that does not verify counts for no user (only for its address). A request whose limits
    cannot be checked because Redis fails is let through, with a warning: the limits protect the service, they
    are not worth an outage."""

    def __init__(self, app: ASGIApp, settings: Settings, persisted: PersistedOperations | None = None) -> None:
        self.app = app
        self.persisted = persisted  # what a hash-only request (APQ) stands for
        self.graphql = (settings.rate_limit_graphql_per_minute, settings.rate_limit_graphql_per_ip_per_minute)
        self.mutations = (settings.rate_limit_mutations_per_minute, settings.rate_limit_mutations_per_ip_per_minute)
        self.webhooks = (settings.rate_limit_webhooks_per_minute, settings.rate_limit_webhooks_per_ip_per_minute)
        self.max_tokens = settings.graphql_max_tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path == "/graphql" and method in ("GET", "POST") and any(self.graphql + self.mutations):
                await self._graphql(scope, receive, send)
                return
            if path.startswith("/webhooks/") and method == "POST" and any(self.webhooks):
                await self._webhook(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _graphql(self, scope: Scope, receive: Receive, send: Send) -> None:
        mutation = False
        state = _app_state(scope)
        if any(self.mutations):
            if scope["method"] == "POST" and is_multipart(_header(scope, b"content-type")):
                mutation = True  # uploads: only mutations take files, and the body (files) is not buffered here
                requests: list[Any] = []
            elif scope["method"] == "GET":
                params = {
                    key: values[0]
                    for key, values in parse_qs(scope.get("query_string", b"").decode(errors="replace")).items()
                }
                with contextlib.suppress(orjson.JSONDecodeError):
                    params["extensions"] = orjson.loads(params.get("extensions") or "null")
                requests = [params]
            else:
                messages, body = await _read_body(receive)
                receive = _replay(messages, receive)
                if body is None:  # the client went away: the app finds out and answers no one
                    await self.app(scope, receive, send)
                    return
                content_type = _header(scope, b"content-type")
                if content_type is not None and not content_type.startswith("application/json"):
                    requests = []  # not a GraphQL request the view takes (it answers 400)
                else:
                    try:
                        payload = orjson.loads(body)
                    except orjson.JSONDecodeError:
                        payload = None
                    requests = payload if isinstance(payload, list) else [payload]
            for request in requests:
                if isinstance(request, dict) and await self._mutation(request, state):
                    mutation = True
                    break
        user = await _user_of(state, _header(scope, b"authorization")) if state is not None else None
        limits = _operation_limits(self.graphql, self.mutations if mutation else None, user, _address(scope))
        refusal = await _check(state, limits)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        message, retry = refusal
        error = {"message": message, "extensions": {"code": "RATE_LIMITED", "retryAfter": retry}}
        await _too_many(send, {"errors": [error]}, retry)

    async def _mutation(self, request: dict[str, Any], state: AppState | None) -> bool:
        query = await _query_of(request, self.persisted, state)
        return _is_mutation(query, request.get("operationName"), self.max_tokens)

    async def _webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = scope["path"].split("/")  # /webhooks/{provider}/{token}/{kind}: the token is the integration's
        url = hashlib.sha256(parts[3].encode() if len(parts) > 3 else b"").hexdigest()[:32]
        address = _address(scope)
        per_url, per_address = self.webhooks
        limits = {f"{_RATE_KEY}webhooks:url:{url}": (per_url, "callbacks to this webhook URL")}
        if address is not None:
            limits[f"{_RATE_KEY}webhooks:ip:{address}"] = (per_address, "callbacks from this address")
        refusal = await _check(_app_state(scope), limits)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        message, retry = refusal
        await _too_many(send, {"error": message, "retryAfter": retry}, retry)


_WHAT = {"graphql": "GraphQL requests", "mutations": "GraphQL mutations"}


def _operation_limits(
    graphql: tuple[int, int], mutations: tuple[int, int] | None, user: str | None, address: str | None
) -> dict[str, tuple[int, str]]:
    """The windows a GraphQL operation counts in: (per user, per address) limits, the mutations' too for one."""
    limits: dict[str, tuple[int, str]] = {}
    kinds = [("graphql", graphql)] + ([("mutations", mutations)] if mutations is not None else [])
    for kind, (per_user, per_address) in kinds:
        if user is not None:
            limits[f"{_RATE_KEY}{kind}:user:{user}"] = (per_user, f"{_WHAT[kind]} for this user")
        if address is not None:
            limits[f"{_RATE_KEY}{kind}:ip:{address}"] = (per_address, f"{_WHAT[kind]} from this address")
    return limits


async def websocket_operation_refusal(
    state: AppState, user: str | None, address: str | None, request: Any, persisted: PersistedOperations | None
) -> tuple[str, int] | None:
    """(message, seconds to wait) when an operation sent over a WebSocket (`request`: its message's payload) is
    over a limit: it counts in the same windows as the user's and the address's HTTP requests
    (`RateLimitMiddleware`); None to run it."""
    settings = state.settings
    graphql = (settings.rate_limit_graphql_per_minute, settings.rate_limit_graphql_per_ip_per_minute)
    mutations = (settings.rate_limit_mutations_per_minute, settings.rate_limit_mutations_per_ip_per_minute)
    request = request if isinstance(request, dict) else {}
    query = await _query_of(request, persisted, state)
    mutation = _is_mutation(query, request.get("operationName"), settings.graphql_max_tokens)
    return await _check(state, _operation_limits(graphql, mutations if mutation else None, user, address))


async def _check(state: AppState | None, limits: dict[str, tuple[int, str]]) -> tuple[str, int] | None:
    """(message, seconds to wait) when a limit is reached; None to go on."""
    if state is None or not limits:
        return None
    try:
        limited = await ratelimit.hit_many(
            state.redis, {key: limit for key, (limit, _) in limits.items()}, RATE_LIMIT_WINDOW_SECONDS
        )
    except (RedisError, OSError) as exc:
        log.warning("rate limits not checked: Redis failed", error=str(exc))
        return None
    if limited is None:
        return None
    limit, what = limits[limited.key]
    retry = max(1, math.ceil(limited.retry_after))
    return f"Too many {what}: at most {limit} a minute. Try again in {retry} s.", retry


async def _too_many(send: Send, content: dict[str, Any], retry: int) -> None:
    body = orjson.dumps(content)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry).encode()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _app_state(scope: Scope) -> AppState | None:
    return (scope.get("state") or {}).get("app")


def is_multipart(content_type: str | None) -> bool:
    """Whether a Content-Type is multipart/form-data (a GraphQL multipart request: files with the operation)."""
    return (content_type or "").split(";")[0].strip().lower() == "multipart/form-data"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin-1")
    return None


def _address(scope: Scope) -> str | None:
    """The client's address (uvicorn sets it from X-Forwarded-For when the proxy is trusted: FORWARDED_ALLOW_IPS)."""
    client = scope.get("client")
    return client[0] if client else None


async def _user_of(state: AppState, authorization: str | None) -> str | None:
    """The user id of a valid access token (verified tokens are cached by banxway.auth: no database), or of a
    personal API token (`api_token_user`: its user is cached by the process after one read)."""
    try:
        token = bearer_token(authorization)
        if token is not None and is_api_token(token):
            return await api_token_user(state, token)
        return str(decode_access_token(state.secret_key, token).user_id) if token is not None else None
    except InvalidToken:
        return None


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The request's messages and its body (None when the client disconnected first)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives `messages` again, then what `receive` gives (a disconnect, later)."""
    pending = deque(messages)

    async def replayed() -> Message:
        return pending.popleft() if pending else await receive()

    return replayed


async def _query_of(request: dict[str, Any], persisted: PersistedOperations | None, state: AppState | None) -> Any:
    """A GraphQL request's document: its `query`, or the one its persisted-query hash stands for (APQ)."""
    query = request.get("query")
    if query is None and persisted is not None and state is not None:
        query = await persisted.text_of(request.get("extensions"), state.redis)
    return query


_OPERATIONS: OrderedDict[str, dict[str | None, OperationType]] = OrderedDict()
_OPERATIONS_MAX = 1024
_CACHED_DOCUMENT_MAX = 16 * 1024


def _is_mutation(query: object, operation_name: object, max_tokens: int) -> bool:
    """Whether the operation that `query` and `operation_name` select is a mutation (without a name: whether the
    document holds any mutation)."""
    if not isinstance(query, str):
        return False
    operations = _OPERATIONS.get(query)
    if operations is not None:
        _OPERATIONS.move_to_end(query)
    else:
        try:
            document = parse(query, no_location=True, max_tokens=max_tokens)
        except GraphQLError:
            operations = {}
        else:
            operations = {
                definition.name.value if definition.name else None: definition.operation
                for definition in document.definitions
                if isinstance(definition, OperationDefinitionNode)
            }
        if len(query) <= _CACHED_DOCUMENT_MAX:
            _OPERATIONS[query] = operations
            if len(_OPERATIONS) > _OPERATIONS_MAX:
                _OPERATIONS.popitem(last=False)
    if isinstance(operation_name, str) and operation_name in operations:
        return operations[operation_name] == OperationType.MUTATION
    return OperationType.MUTATION in operations.values()


# -- security headers -------------------------------------------------------------------------------------------

# What every answer gets. JSON and files are never documents: no framing, nothing loaded (default-src 'none').
_SECURITY_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
)
STRICT_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HSTS = "max-age=63072000; includeSubDomains"


class SecurityHeadersMiddleware:
    """`X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY` and a
    Content-Security-Policy on every HTTP answer — `html_policy` on HTML pages (GraphiQL, in development), the
    strict one on everything else — and, in production, `Strict-Transport-Security`. A header the route set
    itself is kept."""

    def __init__(self, app: ASGIApp, html_policy: str | None = None, hsts: bool = False) -> None:
        self.app = app
        self.html_policy = html_policy or STRICT_POLICY
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                html = headers.get("content-type", "").startswith("text/html")
                for name, value in _SECURITY_HEADERS:
                    headers.setdefault(name, value)
                headers.setdefault("content-security-policy", self.html_policy if html else STRICT_POLICY)
                if self.hsts:
                    headers.setdefault("strict-transport-security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


# The GraphiQL page (development): our own build (banxway/static/graphiql/, from web/graphiql/), which loads its
# script and stylesheet from this server and uses the system's fonts — nothing inline, nothing from elsewhere.
# Requests go only to this server: HTTP and its WebSocket (ws:/wss: besides 'self', which browsers before CSP 3 do
# not apply to WebSockets).
GRAPHIQL_POLICY = "; ".join(
    f"{name} {' '.join(sources)}"
    for name, sources in {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "font-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'", "ws:", "wss:"],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
        "frame-ancestors": ["'none'"],
    }.items()
)


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header is `Bearer <token>` (the token compared in constant time)."""
    scheme, _, presented = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())
