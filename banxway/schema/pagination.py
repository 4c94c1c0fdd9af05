"""Relay connections with `totalCount`, filled from a keyset `Page`.

Our own small Connection/Edge/PageInfo types (the Relay shapes): a cursor is
encoded only when the client selects it.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import strawberry

from banxway.resolvers.pagination import Page

NodeType = TypeVar("NodeType")


@strawberry.type(description="Pagination data for a connection.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="When paginating forwards, are there more items?")
    has_previous_page: bool = strawberry.field(description="When paginating backwards, are there more items?")
    _page: strawberry.Private[Page]

    @strawberry.field(description="The cursor of the first item of this page.")
    def start_cursor(self) -> str | None:
        return self._page.cursor(0) if self._page.rows else None

    @strawberry.field(description="The cursor of the last item of this page.")
    def end_cursor(self) -> str | None:
        return self._page.cursor(len(self._page.rows) - 1) if self._page.rows else None


@strawberry.type(name="Edge", description="An edge in a connection.")
class Edge(Generic[NodeType]):
    node: NodeType = strawberry.field(description="The item at the end of the edge.")
    _page: strawberry.Private[Page]
    _index: strawberry.Private[int]

    @strawberry.field(description="A cursor for use in pagination.")
    def cursor(self) -> str:
        return self._page.cursor(self._index)


@strawberry.type(name="Connection", description="A page of a keyset-paginated list.")
class Connection(Generic[NodeType]):
    page_info: PageInfo = strawberry.field(description="Pagination data for this connection.")
    edges: list[Edge[NodeType]] = strawberry.field(description="Contains the nodes in this connection.")
    total_count: int = strawberry.field(description="Number of items in the whole list, not just this page.")


def connection(page: Page) -> Connection:
    return Connection(
        edges=[Edge(node=row, _page=page, _index=index) for index, row in enumerate(page.rows)],
        page_info=PageInfo(has_next_page=page.has_next_page, has_previous_page=page.has_previous_page, _page=page),
        total_count=page.total_count,
    )
