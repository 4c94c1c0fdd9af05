"""Signing in and out: `authLogin`, `authRefresh`, `authLogout`."""

from __future__ import annotations

import strawberry

from banxway.resolvers import auth as auth_use_cases
from banxway.schema.errors import error_type, mutate
from banxway.schema.nodes import Ctx
from banxway.schema.users import User

AuthError, AuthErrorCode = error_type(
    "Auth", ["INVALID", "INVALID_CREDENTIALS", "RATE_LIMITED", "INVALID_TOKEN", "TOKEN_REUSED", "ORGANIZATION_REQUIRED"]
)


@strawberry.input
class AuthLoginInput:
    email: str
    password: str
    organization: str | None = strawberry.field(
        default=None,
        description="Organization slug; needed only when the email belongs to several.",
    )


@strawberry.input
class AuthRefreshInput:
    refresh_token: str


@strawberry.input
class AuthLogoutInput:
    refresh_token: str


@strawberry.type
class AuthPayload:
    access_token: str | None = strawberry.field(
        default=None, description="JWT for `Authorization: Bearer`; 15 minutes."
    )
    refresh_token: str | None = strawberry.field(default=None, description="Single use; exchange with authRefresh.")
    user: User | None = None
    user_errors: list[AuthError]  # type: ignore[valid-type]


@strawberry.type
class AuthLogoutPayload:
    ok: bool | None = None
    user_errors: list[AuthError]  # type: ignore[valid-type]


async def _signed_in(info: Ctx, result: auth_use_cases.AuthResult) -> dict:
    """The payload's fields; the rest of the operation reads as the user who signed in (without it the payload's
    `user { organization }` failed UNAUTHENTICATED: the request carried no token yet)."""
    await info.context.sign_in(result.user)
    return {
        "access_token": result.access_token,
        "refresh_token": result.refresh_token,
        "user": result.user,
    }


@strawberry.type
class AuthMutation:
    @strawberry.mutation(description="Sign in with email and password.")
    async def auth_login(self, info: Ctx, input: AuthLoginInput) -> AuthPayload:
        async def call() -> dict:
            return await _signed_in(
                info, await auth_use_cases.auth_login(info.context, input.email, input.password, input.organization)
            )

        return await mutate(AuthPayload, AuthError, AuthErrorCode, call)

    @strawberry.mutation(description="Exchange a refresh token for new tokens; the old one stops working.")
    async def auth_refresh(self, info: Ctx, input: AuthRefreshInput) -> AuthPayload:
        async def call() -> dict:
            return await _signed_in(info, await auth_use_cases.auth_refresh(info.context, input.refresh_token))

        return await mutate(AuthPayload, AuthError, AuthErrorCode, call)

    @strawberry.mutation(description="Sign out: revoke the login that this refresh token belongs to.")
    async def auth_logout(self, info: Ctx, input: AuthLogoutInput) -> AuthLogoutPayload:
        async def call() -> dict:
            await auth_use_cases.auth_logout(info.context, input.refresh_token)
            return {"ok": True}

        return await mutate(AuthLogoutPayload, AuthError, AuthErrorCode, call)
