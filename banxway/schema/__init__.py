"""The GraphQL schema: `build_schema(settings)`."""

from __future__ import annotations

import strawberry
from strawberry.schema.config import StrawberryConfig

from banxway.schema.extensions import schema_extensions
from banxway.schema.live import LiveSubscription
from banxway.schema.root import Mutation, Query
from banxway.schema.subscriptions import EventSubscription
from banxway.schema.types import NODE_TYPES
from banxway.settings import Settings


@strawberry.type
class Subscription(EventSubscription, LiveSubscription):
    pass


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
