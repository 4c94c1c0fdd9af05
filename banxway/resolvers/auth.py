"""Login, refresh-token rotation with reuse detection, logout."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from banxway import ratelimit
from banxway.auth import (
    DUMMY_PASSWORD_HASH,
    averify_password,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
)
from banxway.db.models import Organization, RefreshToken, User
from banxway.errors import DomainError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context, SystemContext

INVALID_CREDENTIALS_MESSAGE = "Email or password is incorrect."


@dataclass(frozen=True)
class AuthResult:
    access_token: str
    refresh_token: str
    user: User


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _failures_key(email: str) -> str:
    return "banxway:login-failures:" + hashlib.sha256(email.encode()).hexdigest()


def _address_key(address: str) -> str:
    return "banxway:login-failures-ip:" + hashlib.sha256(address.encode()).hexdigest()


async def _take_attempt(ctx: Context, key: str, limit: int) -> str | None:
    """Count a login attempt in the window before its password is checked (`ratelimit.take`: atomic, so that
    concurrent guesses cannot all pass a count read before any of them was recorded). The attempt's member, or None
    when the window is full (the attempt is not counted then). A successful login clears the email's count."""
    return await ratelimit.take(ctx.redis, key, limit, ctx.settings.login_failure_window_seconds)


def _client_address(ctx: Context) -> str | None:
    request = ctx.request
    client = getattr(request, "client", None)
    return client.host if client is not None else None


async def _issue(ctx: Context, session: AsyncSession, user: User, family_id: uuid.UUID) -> AuthResult:
    token, token_hash = new_refresh_token()
    session.add(
        RefreshToken(
            organization_id=user.organization_id,
            user_id=user.id,
            family_id=family_id,
            token_hash=token_hash,
            expires_at=datetime.now(UTC) + timedelta(days=ctx.settings.refresh_token_ttl_days),
        )
    )
    access = issue_access_token(
        ctx.state.secret_key,
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role,
        session_version=user.session_version,
        ttl_seconds=ctx.settings.access_token_ttl_seconds,
    )
    return AuthResult(access, token, user)


async def issue_tokens(ctx: Context, session: AsyncSession, user: User) -> AuthResult:
    """A new login (token family) for `user`, in `session`'s transaction: invitationAccept, and meUpdate after a
    password change (which ended the user's other sessions)."""
    return await _issue(ctx, session, user, uuid.uuid4())


async def auth_login(ctx: Context, email: str, password: str, organization: str | None = None) -> AuthResult:
    email = normalize_email(email)
    key = _failures_key(email)
    minutes = ctx.settings.login_failure_window_seconds // 60
    address = _client_address(ctx)
    address_key = _address_key(address) if address is not None else None
    address_attempt = None
    if address_key is not None:
        address_attempt = await _take_attempt(ctx, address_key, ctx.settings.login_max_failures_per_ip)
        if address_attempt is None:
            raise DomainError(
                "RATE_LIMITED", f"Too many failed logins from this address; try again in {minutes} minutes."
            )
    if await _take_attempt(ctx, key, ctx.settings.login_max_failures) is None:
        raise DomainError("RATE_LIMITED", f"Too many failed logins for this email; try again in {minutes} minutes.")
    async with ctx.system_session() as session, session.begin():
        query = select(User).where(User.email == email, User.active.is_(True))
        if organization:
            query = query.join(Organization, Organization.id == User.organization_id).where(
                Organization.slug == organization.strip().lower()
            )
        candidates = list(await session.scalars(query))
        matches = [user for user in candidates if await averify_password(user.password_hash, password)]
        if not candidates:
            await averify_password(DUMMY_PASSWORD_HASH, password)  # same cost as a wrong password
        if not matches:  # the attempt stays counted as a failure
            raise DomainError("INVALID_CREDENTIALS", INVALID_CREDENTIALS_MESSAGE)
        if len(matches) > 1:
            raise DomainError(
                "ORGANIZATION_REQUIRED",
                "This email belongs to several organizations; give the organization's slug.",
                "organization",
            )
        result = await _issue(ctx, session, matches[0], uuid.uuid4())
    await ratelimit.reset(ctx.redis, key)
    if address_key is not None and address_attempt is not None:
        await ratelimit.give_back(ctx.redis, address_key, address_attempt)  # a success is no failure of the address
    return result


async def auth_refresh(ctx: Context, refresh_token: str) -> AuthResult:
    token_hash = hash_refresh_token(refresh_token)
    now = datetime.now(UTC)
    reused_family: uuid.UUID | None = None
    async with ctx.system_session() as session, session.begin():
        stored = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
        )
        if stored is None or stored.revoked_at is not None or stored.expires_at <= now:
            raise DomainError(
                "INVALID_TOKEN",
                "The refresh token is invalid, expired or revoked.",
                "refreshToken",
            )
        if stored.rotated_at is not None:
            # Presented twice: someone holds a copy. Revoke the whole family.
            reused_family = stored.family_id
            await _revoke_family(session, stored.family_id, now)
        else:
            user = await session.get(User, stored.user_id)
            if user is None or not user.active:
                raise DomainError(
                    "INVALID_TOKEN",
                    "The user of this refresh token is deactivated.",
                    "refreshToken",
                )
            stored.rotated_at = now
            result = await _issue(ctx, session, user, stored.family_id)
    if reused_family is not None:
        raise DomainError(
            "TOKEN_REUSED",
            "This refresh token was already used; every session of this login has been signed out.",
            "refreshToken",
        )
    return result


async def auth_logout(ctx: Context, refresh_token: str) -> None:
    """Revoke the login (token family) that `refresh_token` belongs to."""
    async with ctx.system_session() as session, session.begin():
        stored = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
        )
        if stored is None:
            raise DomainError("INVALID_TOKEN", "Unknown refresh token.", "refreshToken")
        await _revoke_family(session, stored.family_id, datetime.now(UTC))


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_user_tokens(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Sign a user out everywhere (on deactivation and on a password change): revoke all their refresh tokens,
    and move their session version on, which ends their access tokens (HTTP and open WebSockets)."""
    await session.execute(
        update(User).where(User.id == user_id).values(session_version=User.session_version + 1),
        execution_options={"synchronize_session": False},
    )
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


async def prune_refresh_tokens(ctx: SystemContext) -> int:
    """Delete tokens (of every organization) expired for more than a day; returns how many."""
    async with ctx.transaction() as session:
        result = await session.execute(
            delete(RefreshToken).where(RefreshToken.expires_at < datetime.now(UTC) - timedelta(days=1))
        )
    return result.rowcount or 0
