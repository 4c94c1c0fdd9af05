"""Root Query and Mutation."""

from __future__ import annotations

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from banxway import db
from banxway.context import Context
from banxway.resolvers import auth as auth_use_cases
from banxway.resolvers import users as user_use_cases
from banxway.resolvers.pagination import paginate
from banxway.schema.email import EmailMutation, EmailQuery
from banxway.schema.errors import (
    AuthError,
    AuthErrorCode,
    UserManagementError,
    UserManagementErrorCode,
    mutate,
)
from banxway.schema.ids import decode, parse_global_id
from banxway.schema.inbox import InboxMutation, InboxQuery
from banxway.schema.integrations import IntegrationMutation, IntegrationQuery
from banxway.schema.live import LiveMutation, LiveQuery
from banxway.schema.pagination import Connection, connection
from banxway.schema.types import NODE_TYPES, Node, Organization, Role, User


def _node_key(value: str) -> tuple[str, str] | None:
    parsed = parse_global_id(value)
    return parsed if parsed is not None and parsed[0] in NODE_TYPES else None


async def _resolve_nodes(info: Info[Context, None], ids: list[strawberry.ID]) -> list[Node | None]:
    info.context.viewer  # noqa: B018 - authentication required
    parsed = [_node_key(str(i)) for i in ids]
    by_type: dict[str, list[str]] = {}
    for item in parsed:
        if item is not None:
            by_type.setdefault(item[0], []).append(item[1])
    resolved: dict[tuple[str, str], object] = {}
    for type_name, node_ids in by_type.items():
        rows = await NODE_TYPES[type_name].resolve_nodes(info=info, node_ids=node_ids, required=False)
        resolved.update({(type_name, node_id): row for node_id, row in zip(node_ids, rows, strict=True)})
    return [resolved.get(item) if item is not None else None for item in parsed]  # type: ignore[misc]


@strawberry.type
class Query(InboxQuery, LiveQuery, EmailQuery, IntegrationQuery):
    @strawberry.field(description="Any object by its global id; null if it does not exist or is not yours.")
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> Node | None:
        return (await _resolve_nodes(info, [id]))[0]

    @strawberry.field(description="Objects by global id, in order; null for each one not found.")
    async def nodes(self, info: Info[Context, None], ids: list[strawberry.ID]) -> list[Node | None]:
        return await _resolve_nodes(info, ids)

    @strawberry.field(description="The signed-in user.")
    def me(self, info: Info[Context, None]) -> User:
        return info.context.loaders.user_by_id.load(info.context.viewer.user_id)  # type: ignore[return-value]

    @strawberry.field(description="The signed-in user's organization.")
    def organization(self, info: Info[Context, None]) -> Organization:
        return info.context.loaders.organization_by_id.load(info.context.viewer.organization_id)  # type: ignore[return-value]

    @strawberry.field(description="Users of the organization, oldest first.")
    async def users(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[User]:
        ctx = info.context
        ctx.viewer  # noqa: B018
        page = await paginate(
            ctx.db,
            select(db.User),
            [db.User.created_at, db.User.id],
            first=first,
            after=after,
            last=last,
            before=before,
        )
        return connection(page)


# -- auth -------------------------------------------------------------------------


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
    user_errors: list[AuthError]


@strawberry.type
class AuthLogoutPayload:
    ok: bool | None = None
    user_errors: list[AuthError]


def _auth_fields(result: auth_use_cases.AuthResult) -> dict:
    return {
        "access_token": result.access_token,
        "refresh_token": result.refresh_token,
        "user": result.user,
    }


# -- users ------------------------------------------------------------------------


@strawberry.input
class UserCreateInput:
    email: str
    name: str
    role: Role
    password: str


@strawberry.input
class UserUpdateInput:
    id: strawberry.ID
    name: str | None = None
    role: Role | None = None
    active: bool | None = None
    password: str | None = None


@strawberry.type
class UserPayload:
    user: User | None = None
    user_errors: list[UserManagementError]


@strawberry.type
class Mutation(InboxMutation, LiveMutation, EmailMutation, IntegrationMutation):
    @strawberry.mutation(description="Sign in with email and password.")
    async def auth_login(self, info: Info[Context, None], input: AuthLoginInput) -> AuthPayload:
        async def call() -> dict:
            return _auth_fields(
                await auth_use_cases.auth_login(info.context, input.email, input.password, input.organization)
            )

        return await mutate(AuthPayload, AuthError, AuthErrorCode, call)

    @strawberry.mutation(description="Exchange a refresh token for new tokens; the old one stops working.")
    async def auth_refresh(self, info: Info[Context, None], input: AuthRefreshInput) -> AuthPayload:
        async def call() -> dict:
            return _auth_fields(await auth_use_cases.auth_refresh(info.context, input.refresh_token))

        return await mutate(AuthPayload, AuthError, AuthErrorCode, call)

    @strawberry.mutation(description="Sign out: revoke the login that this refresh token belongs to.")
    async def auth_logout(self, info: Info[Context, None], input: AuthLogoutInput) -> AuthLogoutPayload:
        async def call() -> dict:
            await auth_use_cases.auth_logout(info.context, input.refresh_token)
            return {"ok": True}

        return await mutate(AuthLogoutPayload, AuthError, AuthErrorCode, call)

    @strawberry.mutation(description="Create a user in your organization (admin).")
    async def user_create(self, info: Info[Context, None], input: UserCreateInput) -> UserPayload:
        async def call() -> dict:
            user = await user_use_cases.user_create(
                info.context,
                email=input.email,
                name=input.name,
                role=input.role,
                password=input.password,
            )
            return {"user": user}

        return await mutate(UserPayload, UserManagementError, UserManagementErrorCode, call)

    @strawberry.mutation(description="Change a user's name, role, password or active flag (admin).")
    async def user_update(self, info: Info[Context, None], input: UserUpdateInput) -> UserPayload:
        async def call() -> dict:
            user_id = decode(input.id, "User", "id")
            user = await user_use_cases.user_update(
                info.context,
                user_id,
                name=input.name,
                role=input.role,
                active=input.active,
                password=input.password,
            )
            return {"user": user}

        return await mutate(UserPayload, UserManagementError, UserManagementErrorCode, call)
