"""Reading the selection of a field (`info.selected_fields`), fragments included."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import inspect as sa_inspect
from strawberry.types.nodes import SelectedField


def fields(selections: Iterable[Any]) -> Iterator[SelectedField]:
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        else:  # FragmentSpread or InlineFragment
            yield from fields(selection.selections)


def children(parents: Iterable[SelectedField], name: str) -> list[SelectedField]:
    return [child for parent in parents for child in fields(parent.selections) if child.name == name]


def connection_nodes(field: SelectedField) -> list[SelectedField]:
    """The selections of `edges { node { … } }` under a connection field."""
    return children(children([field], "edges"), "node")


def selects(parents: Iterable[SelectedField], name: str) -> bool:
    return bool(children(parents, name))


def int_argument(arguments: dict[str, Any], name: str) -> int | None:
    """An Int argument as given in the document (literals arrive as text) or by a variable."""
    value = arguments.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _snake(name: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in name)


def columns_for(
    model: type, parents: Iterable[SelectedField], extra: dict[str, tuple[str, ...]]
) -> tuple[str, ...] | None:
    """The columns of `model` read by the fields selected under `parents`, or None when one is not known.

    A field reads its own column (`createdAt` -> created_at), or a link its key (`author` ->
    author_id); `extra` names the columns of the other fields (`origin` -> origin_code,
    origin_name; a list resolved by the row's id -> ()). The id is always loaded.
    """
    columns = {column.key for column in sa_inspect(model).column_attrs}
    needed = {"id"}
    for field in (child for parent in parents for child in fields(parent.selections)):
        name = _snake(field.name)
        if field.name == "__typename":
            continue
        if field.name in extra:
            needed.update(extra[field.name])
        elif name in columns:
            needed.add(name)
        elif f"{name}_id" in columns:
            needed.add(f"{name}_id")
        else:
            return None
    return tuple(sorted(needed))
