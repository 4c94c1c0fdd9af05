"""Users and their organization: `me`, `organization`, `users`, and user management (admins)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry

from banxway import db
from banxway.resolvers import users as user_use_cases
from banxway.schema.errors import error_type, mutate
from banxway.schema.ids import decode
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.pagination import Connection, connection

Role = strawberry.enum(db.Role, description="What a user may do; see the README's permission matrix.")
UserManagementError, UserManagementErrorCode = error_type("UserManagement", ["INVALID", "NOT_FOUND", "TAKEN"])


@strawberry.type
class Organization(Node):
    id: strawberry.ID = _id_field("Organization")
    name: str
    slug: str
    created_at: datetime

    is_type_of = _model_type_of(db.Organization)

    @classmethod
    async def resolve_nodes(cls, *, info: Ctx, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        """Only the viewer's own organization; any other is as absent as a missing one."""
        own = str(info.context.viewer.organization_id)
        return [
            await info.context.loaders.organization_by_id.load(info.context.viewer.organization_id)
            if i == own
            else None
            for i in node_ids
        ]


@strawberry.type
class User(Node):
    id: strawberry.ID = _id_field("User")
    email: str
    name: str
    role: Role
    active: bool
    max_open_threads: int | None = strawberry.field(
        description="Team assignment skips the user at this many open threads (NEW, OPEN, PENDING); null: no cap."
    )
    available: bool = strawberry.field(description="Team assignment skips the user while false (away).")
    created_at: datetime

    is_type_of = _model_type_of(db.User)
    resolve_nodes = _node_resolver("user_by_id")

    @strawberry.field
    def organization(self, info: Ctx) -> Organization:
        return related(self, info, "organization", "organization_by_id", self.organization_id)  # type: ignore[attr-defined]


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
    user_errors: list[UserManagementError]  # type: ignore[valid-type]


@strawberry.type
class UserQuery:
    @strawberry.field(description="The signed-in user.")
    def me(self, info: Ctx) -> User:
        return info.context.loaders.user_by_id.load(info.context.viewer.user_id)  # type: ignore[return-value]

    @strawberry.field(description="The signed-in user's organization.")
    def organization(self, info: Ctx) -> Organization:
        return info.context.loaders.organization_by_id.load(info.context.viewer.organization_id)  # type: ignore[return-value]

    @strawberry.field(description="Users of the organization, oldest first.")
    async def users(
        self,
        info: Ctx,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[User]:
        return connection(
            await user_use_cases.users_page(info.context, first=first, after=after, last=last, before=before)
        )


@strawberry.type
class UserMutation:
    @strawberry.mutation(description="Create a user in your organization (admin).")
    async def user_create(self, info: Ctx, input: UserCreateInput) -> UserPayload:
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
    async def user_update(self, info: Ctx, input: UserUpdateInput) -> UserPayload:
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
