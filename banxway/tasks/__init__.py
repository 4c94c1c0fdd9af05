"""Background work: the Dramatiq broker, actors and the scheduler.

`setup_broker(redis_url)` must run before actors are sent or consumed; it binds
every actor declared in `banxway.tasks.actors` to a Redis broker (a `StubBroker`
stands in until then, so importing the actors never needs a server).
"""

from __future__ import annotations

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
