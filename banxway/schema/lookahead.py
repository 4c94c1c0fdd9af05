"""Reading the selection of a field (`info.selected_fields`), fragments included."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

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
