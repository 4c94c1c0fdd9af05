"""The Node interface and what every object type uses: ids computed from the row, `is_type_of` by
SQLAlchemy model, `resolve_nodes` through the request's loaders, many-to-one links, and the
`node`/`nodes` root fields.

Object types map onto one SQLAlchemy model each (`is_type_of`), so resolvers return ORM rows and
plain fields are read as attributes, without resolvers. Relations are synchronous when the list's
root resolver prefetched them, and go through the request's dataloaders otherwise."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import strawberry
from strawberry.types import Info

from banxway.context import Context
from banxway.schema.ids import parse_global_id, to_global_id

Ctx = Info[Context, None]


@strawberry.interface(description="An object with a Globally Unique ID.")
class Node:
    id: strawberry.ID = strawberry.field(description="The Globally Unique ID of this object.")


def _id_field(type_name: str) -> Any:
    """`id` of a node type: computed straight from the row (no GlobalID object per value)."""

    def resolve(root: Any) -> strawberry.ID:
        return strawberry.ID(to_global_id(type_name, root.id))

    return strawberry.field(resolver=resolve, description="The Globally Unique ID of this object.")


def _model_type_of(model: type) -> Any:
    """`is_type_of` of a type that maps onto `model`: the mapping the compiled path reads (`model_of`)."""

    def is_type_of(cls: type, obj: Any, info: Info) -> bool:
        return isinstance(obj, (cls, model))

    is_type_of.model = model  # type: ignore[attr-defined]
    return classmethod(is_type_of)


def model_of(definition: Any) -> type | None:
    """The SQLAlchemy model a Strawberry type definition maps onto, or None.

    The mapping, declared once: the type's `is_type_of` names the model; a plain field reads the column of
    its name; a field returning an object type is the many-to-one link by the foreign key `<name>_id` (its
    resolver is `related`); `id` is the global id of the row's id."""
    origin = getattr(definition, "origin", None)
    is_type_of = getattr(origin, "is_type_of", None)
    return getattr(getattr(is_type_of, "__func__", None), "model", None)


def _node_resolver(loader_name: str) -> Any:
    async def resolve_nodes(cls: type, *, info: Ctx, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids: list[uuid.UUID | None] = []
        for node_id in node_ids:
            try:
                ids.append(uuid.UUID(str(node_id)))
            except ValueError:
                ids.append(None)
        loader = getattr(info.context.loaders, loader_name)
        found = await loader.load_many([i for i in ids if i is not None])
        by_id = {row.id: row for row in found if row is not None}
        return [by_id.get(i) if i is not None else None for i in ids]

    return classmethod(resolve_nodes)


def related(root: Any, info: Ctx, attribute: str, loader_name: str, foreign_key: uuid.UUID | None) -> Any:
    """A many-to-one link: None without a key; the row when a page query joined it into
    `root.<attribute>`; otherwise a batched load through the request's loader."""
    if foreign_key is None:
        return None
    if attribute in root.__dict__:  # loaded by the page query (a joined many-to-one)
        return root.__dict__[attribute]
    return getattr(info.context.loaders, loader_name).load(foreign_key)


def _fetchable(info: Ctx, type_name: str) -> type[Node] | None:
    """The node type named `type_name` if `node(id:)` can fetch it (it has `resolve_nodes`)."""
    definition = info.schema.get_type_by_name(type_name)
    origin = getattr(definition, "origin", None)
    if isinstance(origin, type) and issubclass(origin, Node) and hasattr(origin, "resolve_nodes"):
        return origin
    return None


async def _resolve_nodes(info: Ctx, ids: list[strawberry.ID]) -> list[Node | None]:
    info.context.viewer  # noqa: B018 - authentication required
    parsed = [parse_global_id(str(i)) for i in ids]
    by_type: dict[str, list[str]] = {}
    for item in parsed:
        if item is not None:
            by_type.setdefault(item[0], []).append(item[1])
    resolved: dict[tuple[str, str], object] = {}
    for type_name, node_ids in by_type.items():
        node_type = _fetchable(info, type_name)
        if node_type is None:
            continue
        rows = await node_type.resolve_nodes(info=info, node_ids=node_ids, required=False)  # type: ignore[attr-defined]
        resolved.update({(type_name, node_id): row for node_id, row in zip(node_ids, rows, strict=True)})
    return [resolved.get(item) if item is not None else None for item in parsed]  # type: ignore[misc]


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global id; null if it does not exist or is not yours.")
    async def node(self, info: Ctx, id: strawberry.ID) -> Node | None:
        return (await _resolve_nodes(info, [id]))[0]

    @strawberry.field(description="Objects by global id, in order; null for each one not found.")
    async def nodes(self, info: Ctx, ids: list[strawberry.ID]) -> list[Node | None]:
        return await _resolve_nodes(info, ids)
