"""Fan-out of Redis pub/sub to the subscribers of this process.

One Redis connection per process listens to the channels that local subscribers
want; each subscriber has a bounded queue. (The `broadcaster` package, named in
ARCHITECTURE.md, loses its listener when it starts before the first SUBSCRIBE
completes — a race with redis-py 5+ — and its queues are unbounded; this is the
same idea in a few lines, with `publish`/`subscribe` as in broadcaster.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis

from banxway.logs import get_logger

log = get_logger("banxway.broadcast")

QUEUE_SIZE = 1000


class SubscriberTooSlow(Exception):
    """A subscriber's queue filled up: it stopped reading, and is dropped."""


@dataclass
class Subscriber:
    queue: asyncio.Queue[str | None]

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        while True:
            message = await self.queue.get()
            if message is None:
                raise SubscriberTooSlow("the subscriber fell too far behind")
            yield message


class Broadcast:
    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._subscribers: dict[str, set[asyncio.Queue[str | None]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        self._listener = asyncio.create_task(self._listen())

    async def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._pubsub.aclose()
        await self._redis.aclose()

    async def publish(self, channel: str, message: str) -> None:
        await self._redis.publish(channel, message)

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscriber]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=QUEUE_SIZE)
        async with self._lock:
            if channel not in self._subscribers:
                await self._pubsub.subscribe(channel)
                self._subscribers[channel] = set()
            self._subscribers[channel].add(queue)
        try:
            yield Subscriber(queue)
        finally:
            async with self._lock:
                self._subscribers[channel].discard(queue)
                if not self._subscribers[channel]:
                    del self._subscribers[channel]
                    await self._pubsub.unsubscribe(channel)

    async def _listen(self) -> None:
        while True:
            if not self._pubsub.subscribed:
                await asyncio.sleep(0.01)
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except Exception as exc:  # the connection dropped; redis-py reconnects and resubscribes
                log.warning("pub/sub read failed", error=str(exc))
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"].decode()
            data = message["data"].decode()
            for queue in list(self._subscribers.get(channel, ())):
                try:
                    queue.put_nowait(data)
                except asyncio.QueueFull:  # a subscriber that stopped reading: end it, keep the rest
                    self._subscribers[channel].discard(queue)
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                    queue.put_nowait(None)
