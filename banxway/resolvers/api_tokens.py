"""Personal API tokens: a user's named tokens for scripts and agents (`apiTokenCreate`, `apiTokens`,
`apiTokenRevoke`). The secret (`bxp_...`) is returned once, when created; only its SHA-256 and a display prefix are
stored. Authentication with one, and what its scopes allow, are `banxway.context`'s (`authenticate_claims`,
`Viewer.can`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.auth import ROLE_PERMISSIONS, SCOPE_PERMISSIONS, ApiTokenScope, Permission, new_api_token
from banxway.context import Context, Viewer
from banxway.db.models import ApiToken
from banxway.errors import DomainError, PermissionDenied
from banxway.resolvers import validation as v
from banxway.resolvers.common import get_or_error
from banxway.resolvers.pagination import Page, paginate

DEFAULT_LIFETIME = timedelta(days=90)  # when apiTokenCreate gives no expiresAt
MAX_LIFETIME = timedelta(days=366)
NAME_LIMIT = 100
MAX_ACTIVE_PER_USER = 50  # unrevoked, unexpired tokens of one user


def _session_only(viewer: Viewer) -> None:
    """Tokens are made and revoked by a signed-in user, never with an API token: a token cannot mint a wider one."""
    if viewer.api_token_id is not None:
        raise PermissionDenied("API tokens are created and revoked by a signed-in user, not with an API token")


def _scopes(viewer: Viewer, scopes: list[ApiTokenScope] | None) -> list[ApiTokenScope]:
    """The scopes asked for, each of which must give the user's role something to do."""
    chosen = list(dict.fromkeys(scopes or []))
    if not chosen:
        raise DomainError("INVALID", "Choose at least one scope: READ, WRITE or SEND.", "scopes")
    role = ROLE_PERMISSIONS[viewer.role]
    for index, scope in enumerate(chosen):
        if not role & SCOPE_PERMISSIONS[scope]:
            raise DomainError(
                "INVALID", f"Role {viewer.role.name} has nothing that scope {scope.name} allows.", f"scopes.{index}"
            )
    return sorted(chosen, key=list(ApiTokenScope).index)


def _expiry(expires_at: datetime | None, now: datetime) -> datetime:
    if expires_at is None:
        return now + DEFAULT_LIFETIME
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at <= now + timedelta(minutes=1):
        raise DomainError("INVALID", "expiresAt must be in the future.", "expiresAt")
    if expires_at > now + MAX_LIFETIME:
        raise DomainError("INVALID", f"A token lives at most {MAX_LIFETIME.days} days.", "expiresAt")
    return expires_at


async def api_token_create(
    ctx: Context, *, name: str, scopes: list[ApiTokenScope] | None, expires_at: datetime | None
) -> tuple[ApiToken, str]:
    """A new token of the viewer and its secret, which is shown this once (only its hash is kept)."""
    viewer = ctx.viewer
    _session_only(viewer)
    checked_name = v.text(name, "name", max_length=NAME_LIMIT, required=True)
    chosen = _scopes(viewer, scopes)
    now = datetime.now(UTC)
    expiry = _expiry(expires_at, now)
    async with ctx.transaction() as session:
        active = await session.scalar(
            select(func.count())
            .select_from(ApiToken)
            .where(ApiToken.user_id == viewer.user_id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > now)
        )
        if (active or 0) >= MAX_ACTIVE_PER_USER:
            raise DomainError("TOO_MANY", f"You have {MAX_ACTIVE_PER_USER} tokens in force; revoke one first.", "name")
        secret, token_hash, prefix = new_api_token()
        token = ApiToken(
            organization_id=viewer.organization_id,
            user_id=viewer.user_id,
            name=checked_name,
            token_hash=token_hash,
            prefix=prefix,
            scopes=[scope.name for scope in chosen],
            expires_at=expiry,
        )
        session.add(token)
        await session.flush()
    return token, secret


async def api_tokens_page(
    ctx: Context,
    *,
    everyone: bool,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Page[ApiToken]:
    """The viewer's own tokens, newest first (revoked and expired ones too); with `everyone`, those of every user
    of the organization (admins: USER_MANAGE)."""
    viewer = ctx.require(Permission.USER_MANAGE if everyone else Permission.READ)
    query = select(ApiToken)
    if not everyone:
        query = query.where(ApiToken.user_id == viewer.user_id)
    keys = (ApiToken.created_at, ApiToken.id)
    return await paginate(ctx.db, query, keys, first=first, after=after, last=last, before=before, descending=True)


async def api_token_revoke(ctx: Context, token_id: uuid.UUID | None) -> ApiToken:
    """Revoke one of the viewer's tokens (an admin: any of the organization's); it stops working at once, on HTTP
    and on open WebSockets. Revoking a revoked token changes nothing. Another user's token is NOT_FOUND to anyone
    but an admin, as is another organization's to everyone."""
    viewer = ctx.viewer
    _session_only(viewer)
    async with ctx.transaction() as session:
        token = await get_or_error(session, ApiToken, token_id, "id", lock=True, label="API token")
        if token.user_id != viewer.user_id and not viewer.can(Permission.USER_MANAGE):
            raise DomainError("NOT_FOUND", "No such API token.", "id")
        if token.revoked_at is None:
            token.revoked_at = datetime.now(UTC)
    return token


async def revoke_user_api_tokens(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Revoke every token of a user (on deactivation; a new password leaves them alone): they stay revoked if the
    user is reactivated."""
    await session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC)),
        execution_options={"synchronize_session": False},
    )
