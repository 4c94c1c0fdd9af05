"""Who acts, with what: `Context` (a viewer, per request or WebSocket operation) and `SystemContext` (webhooks
and actors, acting for an organization or across organizations). Both record events in the transaction of
their change and relay them after commit; nothing else writes that dance by hand."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from banxway import events
from banxway.auth import (
    AccessClaims,
    ApiTokenScope,
    InvalidToken,
    Permission,
    allows,
    bearer_token,
    decode_access_token,
    has_permission,
    hash_api_token,
    is_api_token,
)
from banxway.dataloaders import Loaders
from banxway.db.models import ApiToken, User
from banxway.db.session import SerialSession, read, system_session, tenant_session
from banxway.enums import Role
from banxway.errors import AuthenticationRequired, PermissionDenied
from banxway.events import DomainEvent
from banxway.logs import get_logger
from banxway.secrets import SecretBox
from banxway.settings import Settings
from banxway.state import AppState


@dataclass(frozen=True)
class Viewer:
    """The authenticated user of a request, as read at its start."""

    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: Role
    email: str
    name: str
    session_version: int = 0  # as the user's token carries it (`banxway.auth.AccessClaims`)
    # A personal API token's id and scopes: what the viewer may do is the role's permissions within the scopes
    # (`banxway.auth.effective_permissions`). None for a signed-in session: the role's permissions.
    api_token_id: uuid.UUID | None = None
    scopes: frozenset[ApiTokenScope] | None = None

    def can(self, permission: Permission) -> bool:
        """Whether the viewer may do `permission`: the role has it and, with an API token, a scope grants it."""
        return allows(self.role, self.scopes, permission)


@dataclass
class OperationScope:
    """The session and loaders of one GraphQL operation."""

    db: SerialSession | None = None
    loaders: Loaders | None = None


# Set by the WebSocket handlers at the start of each operation's task, so that operations sharing a
# connection's Context never share a session; an HTTP request's Context is its own scope.
_OPERATION: ContextVar[OperationScope | None] = ContextVar("banxway_operation", default=None)


@asynccontextmanager
async def operation_scope(context: Context) -> AsyncIterator[None]:
    """Run one operation of a WebSocket connection with a session and loaders of its own."""
    token = _OPERATION.set(OperationScope())
    try:
        yield
    finally:
        await context.aclose()
        _OPERATION.reset(token)


@dataclass
class Context:
    state: AppState
    viewer_or_none: Viewer | None = None
    auth_error: str | None = None
    request: Any = None
    response: Any = None
    request_id: str | None = None
    connection_params: dict[str, Any] | None = None
    claims: AccessClaims | None = None  # a WebSocket's token: its operations check it again (`viewer_of`)
    _own_scope: OperationScope = field(default_factory=OperationScope, repr=False)

    @property
    def _scope(self) -> OperationScope:
        return _OPERATION.get() or self._own_scope

    # -- who is asking -----------------------------------------------------------

    @property
    def viewer(self) -> Viewer:
        if self.viewer_or_none is None:
            raise AuthenticationRequired(self.auth_error or "Authentication required")
        return self.viewer_or_none

    def require(self, permission: Permission) -> Viewer:
        viewer = self.viewer
        if not viewer.can(permission):
            if has_permission(viewer.role, permission):  # the role may, the API token's scopes do not
                scopes = ", ".join(sorted(scope.name for scope in viewer.scopes or ()))
                raise PermissionDenied(f"This API token (scopes: {scopes}) may not {permission.value}")
            raise PermissionDenied(f"Role {viewer.role.name} may not {permission.value}")
        return viewer

    # -- data --------------------------------------------------------------------

    @property
    def db(self) -> SerialSession:
        """The viewer's session: every query on it is scoped to the viewer's organization."""
        scope = self._scope
        if scope.db is None:
            scope.db = SerialSession(tenant_session(self.state.sessionmaker, self.viewer.organization_id))
        return scope.db

    def system_session(self) -> AsyncSession:
        """A new session across organizations; the caller closes it."""
        return system_session(self.state.sessionmaker)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One write transaction on the viewer's session; rolled back if the block raises.
        The events it recorded are relayed to subscribers once it has committed."""
        try:
            async with self.db.transaction() as session:
                yield session
        except BaseException:
            events.take_recorded(self.db.session)  # rolled back: nothing to relay
            raise
        await relay(self.state, session)

    def record(self, session: AsyncSession, event: DomainEvent) -> None:
        """Append an event by the viewer to the outbox, in `session`'s transaction."""
        events.record(session, event, organization_id=self.viewer.organization_id, actor_id=self.viewer.user_id)

    @property
    def loaders(self) -> Loaders:
        scope = self._scope
        if scope.loaders is None:
            scope.loaders = Loaders(self.db, self.viewer.user_id)
        return scope.loaders

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def redis(self) -> aioredis.Redis:
        return self.state.redis

    @property
    def box(self) -> SecretBox:
        return self.state.box

    async def sign_in(self, user: User) -> None:
        """The rest of the operation acts as `user`, who just signed in with it (authLogin, authRefresh): the
        payload's `user { organization }` resolves as it would with the new token."""
        await self.aclose()
        self.auth_error = None
        self.viewer_or_none = Viewer(
            user.id, user.organization_id, user.role, user.email, user.name, user.session_version
        )

    async def aclose(self) -> None:
        """Close the operation's session and drop its loaders (a subscription starts afresh for each event)."""
        scope = self._scope
        scope.loaders = None
        if scope.db is not None:
            db, scope.db = scope.db, None
            await db.session.close()


# built once: a request binds the token's claims (building the expression was a tenth of a compiled request's CPU)
_VIEWER_QUERY = select(User.id, User.organization_id, User.role, User.email, User.name, User.session_version).where(
    User.id == bindparam("user_id"),
    User.organization_id == bindparam("organization_id"),
    User.session_version == bindparam("session_version"),
    User.active,
)
SIGNED_OUT = "the user no longer exists, is deactivated, or was signed out everywhere (a new password)"


def verify_token(state: AppState, authorization: str | None) -> tuple[AccessClaims | None, str | None]:
    """(claims, None) for a valid `Bearer` access token, (None, reason) for a bad one, (None, None) for none.
    An API token (`bxp_...`) is looked up in the database: `authenticate_claims`."""
    try:
        token = bearer_token(authorization)
        return (decode_access_token(state.secret_key, token), None) if token is not None else (None, None)
    except InvalidToken as exc:
        return None, f"Invalid access token: {exc}"


async def viewer_of(state: AppState, claims: AccessClaims) -> tuple[Viewer | None, str | None]:
    """The token's user as they are now (one statement): (viewer, None) while the token is unexpired and the
    user exists, is active, belongs to the token's organization and was not signed out since it was issued;
    else (None, reason). HTTP requests and every operation of a WebSocket ask this. For an API token, its row
    (not revoked, not expired) and its user (active) as they are now."""
    if claims.api_token_id is not None:
        row = await read(state.reads, _API_TOKEN_BY_ID, {"token_id": claims.api_token_id})
        _, viewer, error = await _api_token_viewer(state, row)
        return viewer, error
    if claims.expires_at <= datetime.now(UTC):
        return None, "Invalid access token: token expired"
    parameters = {
        "user_id": claims.user_id,
        "organization_id": claims.organization_id,
        "session_version": claims.session_version,
    }
    row = await read(state.reads, _VIEWER_QUERY, parameters)
    return (Viewer(*row), None) if row is not None else (None, f"Invalid access token: {SIGNED_OUT}")


async def authenticate(state: AppState, authorization: str | None) -> tuple[Viewer | None, str | None]:
    """(viewer, None) for a valid token, (None, reason) for a bad one, (None, None) for none."""
    _, viewer, error = await authenticate_claims(state, authorization)
    return viewer, error


async def authenticate_claims(
    state: AppState, authorization: str | None
) -> tuple[AccessClaims | None, Viewer | None, str | None]:
    """(claims, viewer, None) for a valid access token or personal API token, (None, None, reason) for a bad one,
    (None, None, None) for none. One statement either way: the access token's user, or the API token's row with
    its user. The claims are what a WebSocket keeps to check each of its operations again (`viewer_of`)."""
    try:
        token = bearer_token(authorization)
    except InvalidToken as exc:
        return None, None, f"Invalid access token: {exc}"
    if token is not None and is_api_token(token):
        row = await read(state.reads, _API_TOKEN_BY_HASH, {"token_hash": hash_api_token(token)})
        return await _api_token_viewer(state, row)
    claims, error = verify_token(state, authorization)
    if claims is None:
        return None, None, error
    viewer, error = await viewer_of(state, claims)
    return (claims, viewer, None) if viewer is not None else (None, None, error)


# -- personal API tokens (`bxp_...`) ---------------------------------------------------------------------------
#
# No cache: a token is looked up by its hash on every request (one statement on the unique index, joined with its
# user, as the access-token path reads its user), so that a revocation or a deactivation counts at once. Its last
# use is written at most once a minute (a conditional UPDATE, when the row read says it is older than that).

_API_TOKEN_COLUMNS = (
    User.id,
    User.organization_id,
    User.role,
    User.email,
    User.name,
    User.session_version,
    User.active,
    ApiToken.id,
    ApiToken.scopes,
    ApiToken.expires_at,
    ApiToken.revoked_at,
    ApiToken.last_used_at,
)
_API_TOKEN_JOIN = select(*_API_TOKEN_COLUMNS).join(
    User, (User.id == ApiToken.user_id) & (User.organization_id == ApiToken.organization_id)
)
_API_TOKEN_BY_HASH = _API_TOKEN_JOIN.where(ApiToken.token_hash == bindparam("token_hash"))
_API_TOKEN_BY_ID = _API_TOKEN_JOIN.where(ApiToken.id == bindparam("token_id"))
_API_TOKEN_USED = (
    update(ApiToken.__table__)
    .where(
        ApiToken.__table__.c.id == bindparam("token_id"),
        or_(ApiToken.__table__.c.last_used_at.is_(None), ApiToken.__table__.c.last_used_at < bindparam("stale")),
    )
    .values(last_used_at=bindparam("now"))
)
LAST_USED_RESOLUTION = timedelta(minutes=1)
_log = get_logger("banxway.auth")


async def _api_token_viewer(state: AppState, row: Any) -> tuple[AccessClaims | None, Viewer | None, str | None]:
    if row is None:
        return None, None, "Invalid access token: unknown API token"
    (user_id, organization_id, role, email, name, version, active, token_id, scopes, expires_at, revoked_at, used) = row
    now = datetime.now(UTC)
    if revoked_at is not None:
        return None, None, "Invalid access token: the API token was revoked"
    if expires_at <= now:
        return None, None, "Invalid access token: token expired"
    if not active:
        return None, None, "Invalid access token: the API token's user is deactivated"
    if used is None or used <= now - LAST_USED_RESOLUTION:
        await _api_token_used(state, token_id, now)
    granted = frozenset(ApiTokenScope[scope] for scope in scopes if scope in ApiTokenScope.__members__)
    viewer = Viewer(user_id, organization_id, role, email, name, version, token_id, granted)
    claims = AccessClaims(user_id, organization_id, role, expires_at, version, api_token_id=token_id)
    return claims, viewer, None


async def _api_token_used(state: AppState, token_id: uuid.UUID, now: datetime) -> None:
    """Set the token's `last_used_at` unless another request (of any process) did within the minute."""
    try:
        async with state.engine.begin() as connection:
            await connection.execute(
                _API_TOKEN_USED, {"token_id": token_id, "stale": now - LAST_USED_RESOLUTION, "now": now}
            )
    except Exception as exc:  # bookkeeping: a request is not refused for it
        _log.warning("API token last use not recorded", error=str(exc), token_id=str(token_id))


# The user of each API token seen by this process, by the token's hash: the rate limits count a token's requests
# in its user's windows before the request is authenticated. A token's user never changes, so the entry stays
# true (a revoked token's requests, refused anyway, still count for its user).
_API_TOKEN_USERS: OrderedDict[str, str] = OrderedDict()
_API_TOKEN_USERS_MAX = 10_000
_API_TOKEN_USER = select(ApiToken.user_id).where(ApiToken.token_hash == bindparam("token_hash"))


async def api_token_user(state: AppState, token: str) -> str | None:
    """The id of the user of API token `token` (from the process's cache, else one indexed read); None if unknown."""
    token_hash = hash_api_token(token)
    user = _API_TOKEN_USERS.get(token_hash)
    if user is None:
        try:
            row = await read(state.reads, _API_TOKEN_USER, {"token_hash": token_hash})
        except Exception as exc:  # the request then counts for its address only; authenticating it will say more
            _log.warning("API token's user not read for the rate limits", error=str(exc))
            return None
        if row is None:
            return None
        user = _API_TOKEN_USERS[token_hash] = str(row[0])
        if len(_API_TOKEN_USERS) > _API_TOKEN_USERS_MAX:
            _API_TOKEN_USERS.popitem(last=False)
    return user


async def api_tokens_in_force(
    state: AppState, organization_id: uuid.UUID, token_ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """Those of `token_ids` that are neither revoked nor expired: the live fan-out's check, once a second, of the
    API tokens its subscribers came with (one statement for a whole channel)."""
    wanted = list(dict.fromkeys(token_ids))
    if not wanted:
        return set()
    statement = select(ApiToken.id).where(
        ApiToken.id.in_(wanted),
        ApiToken.organization_id == organization_id,
        ApiToken.revoked_at.is_(None),
        ApiToken.expires_at > func.now(),
    )
    async with state.reads.connect() as connection:
        return set((await connection.execute(statement)).scalars())


async def relay(state: AppState, session: AsyncSession) -> None:
    """Relay the events `session` recorded in the transaction that just committed (and start their consequences)."""
    await events.relay(state.broadcast, state.sessionmaker, events.take_recorded(session), state.consequences)


@dataclass
class SystemContext:
    """Background code's Context: a provider webhook or an actor acting for `organization_id` (every query scoped
    to it), or for no organization (a system session, across organizations: only to find ids to act on).
    Events are recorded with no actor and relayed after commit, exactly as a request's."""

    state: AppState
    organization_id: uuid.UUID | None = None

    def for_organization(self, organization_id: uuid.UUID) -> SystemContext:
        return SystemContext(self.state, organization_id)

    def session(self) -> AsyncSession:
        """A new session (the caller closes it; `async with ctx.session() as session`)."""
        if self.organization_id is None:
            return system_session(self.state.sessionmaker)
        return tenant_session(self.state.sessionmaker, self.organization_id)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One write transaction in a new session; rolled back if the block raises, its events relayed after commit."""
        async with self.session() as session:
            try:
                async with session.begin():
                    yield session
            except BaseException:
                events.take_recorded(session)
                raise
            await relay(self.state, session)

    def record(self, session: AsyncSession, event: DomainEvent, organization_id: uuid.UUID | None = None) -> None:
        """Append an event (by no user) to the outbox, in `session`'s transaction."""
        organization = organization_id or self.organization_id
        assert organization is not None, "an event belongs to an organization"
        events.record(session, event, organization_id=organization, actor_id=None)

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def box(self) -> SecretBox:
        return self.state.box
