"""Background work: the Dramatiq broker, actors and the scheduler.

`setup_broker(redis_url)` must run before actors are sent or consumed; it binds
every actor declared in `banxway.tasks.actors` to a Redis broker (a `StubBroker`
stands in until then, so importing the actors never needs a server).
"""

from __future__ import annotations

import asyncio
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware.asyncio import AsyncIO

_placeholder = StubBroker()
_placeholder.add_middleware(AsyncIO())
dramatiq.set_broker(_placeholder)


def setup_broker(redis_url: str) -> dramatiq.Broker:
    from banxway.tasks import actors

    broker = RedisBroker(url=redis_url, namespace="banxway")
    broker.add_middleware(AsyncIO())
    dramatiq.set_broker(broker)
    for actor in actors.ALL:
        actor.broker = broker
        broker.declare_actor(actor)
    return broker


async def enqueue(actor: Any, *args: Any) -> bool:
    """Send a job without blocking the event loop. False when the broker is unreachable: the work is
    not lost (the rows stay QUEUED and `requeue_messages` sends them again), so callers go on."""
    from banxway.logs import get_logger

    try:
        await asyncio.to_thread(actor.send, *args)
    except Exception as exc:  # Redis down: the periodic requeue picks it up
        get_logger("banxway.tasks").warning("enqueue failed", actor=actor.actor_name, error=str(exc))
        return False
    return True
