"""Object types. Each maps onto one SQLAlchemy model (`is_type_of`), so resolvers
return ORM rows and plain fields are read as attributes, without resolvers."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from banxway import db
from banxway.context import Context

Role = strawberry.enum(db.Role, description="What a user may do; see the README's permission matrix.")


def _model_type_of(model: type) -> Any:
    def is_type_of(cls: type, obj: Any, info: Info) -> bool:
        return isinstance(obj, (cls, model))

    return classmethod(is_type_of)


def _uuids(node_ids: Iterable[str]) -> list[uuid.UUID | None]:
    result: list[uuid.UUID | None] = []
    for node_id in node_ids:
        try:
            result.append(uuid.UUID(str(node_id)))
        except ValueError:
            result.append(None)
    return result


async def _load_nodes(loader: Any, node_ids: Iterable[str]) -> list[Any]:
    ids = _uuids(node_ids)
    found = await loader.load_many([i for i in ids if i is not None])
    by_id = {row.id: row for row in found if row is not None}
    return [by_id.get(i) if i is not None else None for i in ids]


@strawberry.type
class Organization(relay.Node):
    id: relay.NodeID[uuid.UUID]
    name: str
    slug: str
    created_at: datetime

    is_type_of = _model_type_of(db.Organization)

    @classmethod
    async def resolve_nodes(
        cls,
        *,
        info: Info[Context, None],
        node_ids: Iterable[str],
        required: bool = False,
    ):
        return await _load_nodes(info.context.loaders.organization_by_id, node_ids)


@strawberry.type
class User(relay.Node):
    id: relay.NodeID[uuid.UUID]
    email: str
    name: str
    role: Role
    active: bool
    created_at: datetime

    is_type_of = _model_type_of(db.User)

    @strawberry.field
    def organization(self, info: Info[Context, None]) -> Organization:
        return info.context.loaders.organization_by_id.load(self.organization_id)  # type: ignore[attr-defined,return-value]

    @classmethod
    async def resolve_nodes(
        cls,
        *,
        info: Info[Context, None],
        node_ids: Iterable[str],
        required: bool = False,
    ):
        return await _load_nodes(info.context.loaders.user_by_id, node_ids)


NODE_TYPES: dict[str, type[relay.Node]] = {"Organization": Organization, "User": User}
