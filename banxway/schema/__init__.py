"""The GraphQL schema: `build_schema(settings)`."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from banxway.schema.extensions import schema_extensions
from banxway.schema.root import Mutation, Query
from banxway.schema.subscriptions import Subscription
from banxway.schema.types import NODE_TYPES
from banxway.settings import Settings


def build_schema(settings: Settings) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=list(NODE_TYPES.values()),
        extensions=schema_extensions(settings),
        config=StrawberryConfig(relay_max_results=100),
    )


def schema_sdl() -> str:
    """The SDL that `banxway export-schema` writes to schema.graphql."""
    return build_schema(Settings()).as_str() + "\n"


__all__ = ["build_schema", "schema_sdl"]
