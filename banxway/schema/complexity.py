"""How big an operation is once its fragments are expanded, counted in linear time.

GraphQL's validation rules (and Strawberry's depth limiter among them) walk a fragment again at every place it is
spread, so a document of a few hundred bytes whose fragments each spread the next one four times costs 4^levels
steps. This counts the same thing with each fragment counted once (memoised), before any rule runs, so that such a
document is refused at once (`ValidationCache.on_validate`)."""

from __future__ import annotations

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)


def expanded_fields(document: DocumentNode, limit: int) -> int:
    """The fields the document's operations select with every fragment spread expanded; any number above `limit`
    means "too many" (the count stops early, and a document nested past Python's recursion limit counts as too many)."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    counted: dict[str, int] = {}
    counting: set[str] = set()  # a fragment that spreads itself: validation reports the cycle, it counts 0 here

    def count(selection_set: SelectionSetNode | None) -> int:
        total = 0
        for selection in selection_set.selections if selection_set is not None else ():
            if isinstance(selection, FieldNode):
                total += 1 + count(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                total += count(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment(selection.name.value)
            if total > limit:
                break
        return total

    def fragment(name: str) -> int:
        if name not in counted:
            definition = fragments.get(name)
            if definition is None or name in counting:
                return 0
            counting.add(name)
            counted[name] = count(definition.selection_set)
            counting.discard(name)
        return counted[name]

    try:
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        return sum(count(operation.selection_set) for operation in operations)
    except RecursionError:
        return limit + 1
