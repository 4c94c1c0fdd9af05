"""Relay connections with `totalCount`, filled from a keyset `Page`."""

from __future__ import annotations

from typing import Generic, TypeVar

import strawberry
from strawberry import relay

from banxway.resolvers.pagination import Page

NodeType = TypeVar("NodeType")


@strawberry.type(name="Connection", description="A page of a keyset-paginated list.")
class Connection(relay.Connection[NodeType], Generic[NodeType]):
    total_count: int = strawberry.field(description="Number of items in the whole list, not just this page.")


def connection(page: Page) -> Connection:
    edges = [relay.Edge(node=row, cursor=cursor) for row, cursor in zip(page.rows, page.cursors, strict=True)]
    return Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.cursors[0] if page.cursors else None,
            end_cursor=page.cursors[-1] if page.cursors else None,
        ),
        total_count=page.total_count,
    )
