"""Persisted operations: Apollo's automatic persisted queries (APQ) and an allow-list of registered operations.

The protocol is the one Apollo Client's `createPersistedQueryLink` speaks. A request carries
`extensions: {"persistedQuery": {"version": 1, "sha256Hash": "<sha256 hex of the query text>"}}`:

* with the hash alone, the query registered under it runs; an unknown hash is answered
  `PersistedQueryNotFound` (code PERSISTED_QUERY_NOT_FOUND, HTTP 200), and the client sends it again with the text;
* with the text and the hash, the hash must be the text's sha256 (else BAD_USER_INPUT, "provided sha does not
  match query"); the text runs, and once it has validated for a signed-in viewer it is kept in Redis
  (`banxway:apq:<hash>`, BANXWAY_GRAPHQL_APQ_TTL) with a small LRU of the process in front.

The registered operations come from a manifest (BANXWAY_GRAPHQL_OPERATIONS_FILE) loaded at start, either
`{"<sha256>": "<query>"}` or Apollo's persisted-query manifest. With BANXWAY_GRAPHQL_PERSISTED_ONLY only they run
(by hash, or by a text whose sha256 is registered); anything else is refused as PERSISTED_QUERY_NOT_ALLOWED and no
new query is kept.

`PersistedQueries` resolves the query before Strawberry parses it; `CompilingSchema.execute` calls the same
`PersistedOperations.resolve` before its fast path (which runs no extensions).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, parse
from redis.exceptions import RedisError
from strawberry.extensions import SchemaExtension

from banxway.logs import get_logger
from banxway.settings import Settings, SettingsError

log = get_logger("banxway.persisted")

KEY_PREFIX = "banxway:apq:"
APOLLO_MANIFEST_FORMAT = "apollo-persisted-query-manifest"
NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_ALLOWED = "PERSISTED_QUERY_NOT_ALLOWED"
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_MAX_HASH_LENGTH = 128  # a sha256 is 64 hex digits; a manifest's own ids may be other strings
_MAX_KEPT_CHARS = 64 * 1024  # a longer query runs but is not kept (Redis, the LRU): one request may not pin a megabyte

# The `extensions` of the WebSocket operation being started (Strawberry passes them only over HTTP).
_WEBSOCKET_EXTENSIONS: ContextVar[dict[str, Any] | None] = ContextVar("banxway_ws_extensions", default=None)


def sha256_hex(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


class PersistedQueryError(Exception):
    """A request the persisted-operations rules refuse; `error` is what the client is answered."""

    def __init__(self, message: str, code: str, reason: str | None = None) -> None:
        super().__init__(message)
        extensions: dict[str, Any] = {"code": code}
        if reason is not None:
            extensions |= {"reason": reason, "field": ["extensions", "persistedQuery"]}
        self.error = GraphQLError(message, extensions=extensions)


@dataclass(frozen=True)
class Resolved:
    """The query to run, and the hash to keep it under once it has validated (None: nothing to keep)."""

    query: str | None
    register: str | None = None


class _Lru:
    """Queries by hash, bounded by their count."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: OrderedDict[str, str] = OrderedDict()

    def get(self, key: str) -> str | None:
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, key: str, value: str) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        if len(self.items) > self.maxsize:
            self.items.popitem(last=False)


class PersistedOperations:
    """The registered operations (the manifest), the APQ store (Redis, an LRU in front) and the rules of both."""

    def __init__(
        self,
        registered: dict[str, str] | None = None,
        *,
        persisted_only: bool = False,
        ttl_seconds: int = 7 * 24 * 3600,
        lru_size: int = 1024,
    ) -> None:
        self.registered: dict[str, str] = {}
        for identifier, body in (registered or {}).items():
            self.registered[identifier] = body
            self.registered.setdefault(sha256_hex(body), body)  # a text sent whole is found by its hash
        self.persisted_only = persisted_only
        self.ttl_seconds = ttl_seconds
        self.lru = _Lru(lru_size)

    @classmethod
    def from_settings(cls, settings: Settings) -> PersistedOperations:
        path = settings.graphql_operations_file
        return cls(
            load_manifest(path) if path is not None else None,
            persisted_only=settings.graphql_persisted_only,
            ttl_seconds=settings.graphql_apq_ttl_seconds,
        )

    async def resolve(self, query: str | None, extensions: Any, context: Any) -> Resolved:
        """The query to run for a request's `query` and `extensions`, or PersistedQueryError."""
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if persisted is None:
            if query is not None and self.persisted_only and sha256_hex(query) not in self.registered:
                raise PersistedQueryError(
                    "This operation is not registered: only the registered operations run here "
                    "(BANXWAY_GRAPHQL_PERSISTED_ONLY).",
                    NOT_ALLOWED,
                )
            return Resolved(query)
        digest = _hash_of(persisted)
        registered = self.registered.get(digest)
        if query is None:
            if registered is not None:
                return Resolved(registered)
            if self.persisted_only:
                raise PersistedQueryError(
                    f"No operation is registered under the hash {digest!r}: only the registered operations run "
                    "here (BANXWAY_GRAPHQL_PERSISTED_ONLY).",
                    NOT_ALLOWED,
                )
            kept = await self._kept(digest, _redis_of(context))
            if kept is None:
                raise PersistedQueryError("PersistedQueryNotFound", NOT_FOUND)
            return Resolved(kept)
        if registered is not None:
            if registered != query:
                raise _mismatch()
            return Resolved(query)
        if sha256_hex(query) != digest:
            raise _mismatch()
        if self.persisted_only:
            raise PersistedQueryError(
                "This operation is not registered, and new ones are not registered here "
                "(BANXWAY_GRAPHQL_PERSISTED_ONLY).",
                NOT_ALLOWED,
            )
        keep = len(query) <= _MAX_KEPT_CHARS and self.lru.get(digest) is None
        return Resolved(query, register=digest if keep else None)

    async def text_of(self, extensions: Any, redis: Any) -> str | None:
        """The query that a request sending only `extensions.persistedQuery` stands for, when it is known (the
        rate limits ask it: is a hash-only request a mutation?)."""
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        try:
            digest = _hash_of(persisted)
        except PersistedQueryError:
            return None
        return self.registered.get(digest) or await self._kept(digest, redis)

    async def _kept(self, digest: str, redis: Any) -> str | None:
        query = self.lru.get(digest)
        if query is not None or redis is None:
            return query
        try:
            value = await redis.get(KEY_PREFIX + digest)
        except RedisError as exc:  # the client sends the text again: the operation still runs
            log.warning("persisted query lookup failed", error=str(exc))
            return None
        if value is None:
            return None
        query = value.decode() if isinstance(value, bytes) else str(value)
        self.lru.put(digest, query)
        return query

    async def register(self, digest: str, query: str, context: Any) -> None:
        """Keep a query that has validated, for the next requests that send its hash alone: for a signed-in viewer
        only (anyone else can fill no memory with queries; a login sends its text each time)."""
        if getattr(context, "viewer_or_none", None) is None:
            return
        self.lru.put(digest, query)
        redis = _redis_of(context)
        if redis is None:
            return
        try:
            await redis.set(KEY_PREFIX + digest, query, ex=self.ttl_seconds)
        except RedisError as exc:
            log.warning("persisted query not stored", error=str(exc))


def _redis_of(context: Any) -> Any:
    return getattr(getattr(context, "state", None), "redis", None)


def _hash_of(persisted: Any) -> str:
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise PersistedQueryError(
            "Unsupported persisted query: expected {version: 1, sha256Hash}.", "BAD_USER_INPUT", "INVALID"
        )
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not 0 < len(digest) <= _MAX_HASH_LENGTH:
        raise PersistedQueryError(
            "persistedQuery.sha256Hash must be the sha256 of the query in hexadecimal.", "BAD_USER_INPUT", "INVALID"
        )
    return digest


def _mismatch() -> PersistedQueryError:
    return PersistedQueryError("provided sha does not match query", "BAD_USER_INPUT", "PERSISTED_QUERY_HASH_MISMATCH")


# -- the manifest -----------------------------------------------------------------------------------------------


def load_manifest(path: Path) -> dict[str, str]:
    """Operations by id from `{"<sha256>": "<query>"}` or Apollo's persisted-query manifest."""
    where = f"BANXWAY_GRAPHQL_OPERATIONS_FILE={str(path)!r}"
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SettingsError(f"Invalid {where}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise SettingsError(f"Invalid {where}: not JSON ({exc})") from None
    if isinstance(data, dict) and "operations" in data and "format" in data:
        if data.get("format") != APOLLO_MANIFEST_FORMAT or data.get("version") != 1:
            raise SettingsError(
                f"Invalid {where}: format {data.get('format')!r} version {data.get('version')!r}, expected "
                f"{APOLLO_MANIFEST_FORMAT!r} version 1"
            )
        operations = data["operations"]
        if not isinstance(operations, list) or not all(
            isinstance(item, dict) and isinstance(item.get("id"), str) and isinstance(item.get("body"), str)
            for item in operations
        ):
            raise SettingsError(f"Invalid {where}: every operation needs a string 'id' and 'body'")
        return {item["id"]: item["body"] for item in operations}
    if not isinstance(data, dict) or not all(
        isinstance(key, str) and isinstance(body, str) for key, body in data.items()
    ):
        raise SettingsError(f'Invalid {where}: expected {{"<sha256>": "<query>", ...}} or an Apollo manifest')
    return data


def manifest_of(paths: list[Path]) -> dict[str, Any]:
    """Apollo's persisted-query manifest of .graphql files: an entry per operation, whose body is its file's text
    exactly as the client sends it (several operations of one file share it; the client picks by operationName)."""
    operations = []
    for path in paths:
        body = Path(path).read_text()
        digest = sha256_hex(body)
        for definition in parse(body).definitions:
            if isinstance(definition, OperationDefinitionNode):
                name = definition.name.value if definition.name else None
                operations.append({"id": digest, "name": name, "type": definition.operation.value, "body": body})
    return {"format": APOLLO_MANIFEST_FORMAT, "version": 1, "operations": operations}


# -- the extension --------------------------------------------------------------------------------------------


def _refusal(operation_name: str | None) -> str:
    """A document standing in for a refused request: it parses and validates, and the operation it names (the
    client's own operationName) is found; its validation errors are replaced by the refusal."""
    name = operation_name if operation_name and _NAME.fullmatch(operation_name) else ""
    return f"query {name} {{ __typename }}"


class PersistedQueries(SchemaExtension):
    """Resolve a persisted query before it is parsed, refuse what the rules refuse (as a validation error, so that
    HTTP, WebSocket and streaming answers carry it alike), keep a new APQ once it has validated.

    It is listed after the other validation extensions: `ValidationCache` sets the errors it found, this one
    replaces them with the refusal."""

    def __init__(self, *, operations: PersistedOperations) -> None:
        super().__init__()
        self.operations = operations
        self.refusal: GraphQLError | None = None
        self.register: str | None = None

    async def on_operation(self) -> AsyncIterator[None]:
        context = self.execution_context
        extensions = context.operation_extensions
        if extensions is None:
            extensions = _WEBSOCKET_EXTENSIONS.get()
        try:
            resolved = await self.operations.resolve(context.query, extensions, context.context)
        except PersistedQueryError as exc:
            self.refusal = exc.error
            context.query = _refusal(context.operation_name)
        else:
            context.query = resolved.query
            self.register = resolved.register
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        if self.refusal is not None:
            context.pre_execution_errors = [self.refusal]
        yield
        if self.register is not None and context.query is not None and not context.pre_execution_errors:
            await self.operations.register(self.register, context.query, context.context)


def persisted_queries(operations: PersistedOperations) -> partial[PersistedQueries]:
    """The extension factory of `schema_extensions`."""
    return partial(PersistedQueries, operations=operations)


def persisted_operations(schema: Any) -> PersistedOperations | None:
    """The registry of a schema built with the extension (None: without it)."""
    for extension in getattr(schema, "extensions", ()):
        if isinstance(extension, partial) and extension.func is PersistedQueries:
            return extension.keywords["operations"]
    return None


@contextlib.contextmanager
def websocket_operation(payload: Any) -> Iterator[None]:
    """Around a WebSocket `subscribe` / `start` message's handling: the operation's task (created within) sees the
    payload's `extensions`, and a payload with a hash and no query (APQ) is let through to it."""
    if not isinstance(payload, dict):
        yield
        return
    extensions = payload.get("extensions")
    if isinstance(extensions, dict) and "persistedQuery" in extensions:
        payload.setdefault("query", None)
    token = _WEBSOCKET_EXTENSIONS.set(extensions if isinstance(extensions, dict) else None)
    try:
        yield
    finally:
        _WEBSOCKET_EXTENSIONS.reset(token)


__all__ = [
    "NOT_ALLOWED",
    "NOT_FOUND",
    "PersistedOperations",
    "PersistedQueries",
    "PersistedQueryError",
    "Resolved",
    "load_manifest",
    "manifest_of",
    "persisted_operations",
    "persisted_queries",
    "sha256_hex",
    "websocket_operation",
]
