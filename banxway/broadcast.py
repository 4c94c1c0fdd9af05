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
import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from banxway.logs import get_logger

log = get_logger("banxway.broadcast")

QUEUE_SIZE = 1000


class SubscriberTooSlow(Exception):
    """A subscriber's queue filled up: it stopped reading, and is dropped."""


class Signal(enum.Enum):
    RESYNC = "resync"  # the Redis connection dropped and came back: messages may have been missed
    TOO_SLOW = "too_slow"


@dataclass
class Subscriber:
    queue: asyncio.Queue[str | Signal]

    def __aiter__(self) -> AsyncIterator[str | Signal]:
        return self._iterate()

    async def next(self, wait: float | None) -> str | Signal | None:
        """The next message, or None after `wait` seconds without one."""
        try:
            message = await asyncio.wait_for(self.queue.get(), wait)
        except TimeoutError:
            return None
        if message is Signal.TOO_SLOW:
            raise SubscriberTooSlow("the subscriber fell too far behind")
        return message

    async def _iterate(self) -> AsyncIterator[str | Signal]:
        """The messages of the channel, and `Signal.RESYNC` where some may have been lost."""
        while True:
            message = await self.queue.get()
            if message is Signal.TOO_SLOW:
                raise SubscriberTooSlow("the subscriber fell too far behind")
            yield message


class _PubSub(PubSub):
    """redis-py reconnects and resubscribes by itself, sometimes inside one read; this notices each time.
    (`on_connect` is registered after the first connection is made, so every call is a reconnection.)"""

    reconnected = False

    async def on_connect(self, connection) -> None:  # type: ignore[no-untyped-def]
        await super().on_connect(connection)
        self.reconnected = True


class Broadcast:
    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._pubsub = _PubSub(self._redis.connection_pool, ignore_subscribe_messages=True)
        self._subscribers: dict[str, set[asyncio.Queue[str | Signal]]] = {}
        self._resyncing: set[asyncio.Queue[str | Signal]] = set()
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

    async def publish_all(self, channel: str, messages: Sequence[str]) -> None:
        """Publish in this order, in one round trip (a pipeline: one connection runs its commands in turn)."""
        if len(messages) == 1:
            await self.publish(channel, messages[0])
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(channel, message)
            await pipe.execute()

    @contextlib.asynccontextmanager
    async def subscribe(
        self, channel: str, *, size: int | None = None, resync_on_overflow: bool = False
    ) -> AsyncIterator[Subscriber]:
        """A bounded queue of the channel's messages (`QUEUE_SIZE`, or `size`). A subscriber that lets it fill up
        is dropped (`SubscriberTooSlow`), or with `resync_on_overflow` keeps its place: what it had not read is
        replaced by one `Signal.RESYNC` (for a reader that can catch up from the event log)."""
        queue: asyncio.Queue[str | Signal] = asyncio.Queue(maxsize=QUEUE_SIZE if size is None else size)
        if resync_on_overflow:
            self._resyncing.add(queue)
        async with self._lock:
            if channel not in self._subscribers:
                await self._pubsub.subscribe(channel)
                self._subscribers[channel] = set()
            self._subscribers[channel].add(queue)
        try:
            yield Subscriber(queue)
        finally:
            self._resyncing.discard(queue)
            async with self._lock:
                queues = self._subscribers.get(channel)
                if queues is not None:  # (a dropped slow subscriber may leave after the others)
                    queues.discard(queue)
                    if not queues:
                        del self._subscribers[channel]
                        await self._pubsub.unsubscribe(channel)

    async def _listen(self) -> None:
        lost = False  # only for the log
        while True:
            if not self._pubsub.subscribed:
                await asyncio.sleep(0.01)
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except Exception as exc:  # the connection dropped; redis-py reconnects and resubscribes on the next read
                if not lost:
                    log.warning("pub/sub connection lost", error=str(exc))
                lost = True
                await asyncio.sleep(0.5)
                continue
            if lost:
                log.info("pub/sub connection restored")
                lost = False
            if self._pubsub.reconnected:  # subscribed again: tell every subscriber to catch up from the event log
                self._pubsub.reconnected = False
                for channel, queues in list(self._subscribers.items()):
                    for queue in list(queues):
                        self._deliver(channel, queue, Signal.RESYNC)
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"].decode()
            data = message["data"].decode()
            for queue in list(self._subscribers.get(channel, ())):
                self._deliver(channel, queue, data)

    def _deliver(self, channel: str, queue: asyncio.Queue[str | Signal], item: str | Signal) -> None:
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            if queue in self._resyncing:  # it fell behind: it reads the log instead of what it missed
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(Signal.RESYNC)
                return
            # a subscriber that stopped reading: end it, keep the rest
            self._subscribers.get(channel, set()).discard(queue)
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            queue.put_nowait(Signal.TOO_SLOW)
