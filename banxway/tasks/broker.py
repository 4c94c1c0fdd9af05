"""The Dramatiq broker, and the state actors run with in this process.

A `StubBroker` stands in until `banxway.tasks.actors.setup_broker(redis_url)` binds every actor to a Redis broker,
so importing the actors never needs a server. A worker process builds its `AppState` once (`set_state`) and each
actor acts through a `SystemContext` on it.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.asyncio import AsyncIO

from banxway.context import SystemContext
from banxway.state import AppState

_placeholder = StubBroker()
_placeholder.add_middleware(AsyncIO())
dramatiq.set_broker(_placeholder)

_state: AppState | None = None


def redis_broker(redis_url: str) -> RedisBroker:
    broker = RedisBroker(url=redis_url, namespace="banxway")
    broker.add_middleware(AsyncIO())
    dramatiq.set_broker(broker)
    return broker


def set_state(state: AppState) -> None:
    global _state
    _state = state


def context() -> SystemContext:
    """What an actor acts through: the worker's state, no organization (the resolver scopes itself)."""
    if _state is None:
        raise RuntimeError("The worker state is not set; start actors with `banxway worker`")
    return SystemContext(_state)
