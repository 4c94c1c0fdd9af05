"""Who has a thread open and who is writing in it: ephemeral state, kept in Redis only.

* Viewing: a `threadViewers` subscription counts its user as viewing the thread while it is open; it
  refreshes its entry every `REFRESH` seconds, and an entry not refreshed for `STALE` seconds (a crashed
  process) no longer counts.
* Composing: `threadTyping(threadId, isTyping: true)` marks the user composing until `TYPING_TTL` seconds
  after the last signal; `isTyping: false` ends it at once.

Entries live in one hash per thread (`banxway:presence:<org>:<thread>`, field = user id + connection);
every change is announced on the thread's typing channel so that subscribers update at once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

TYPING_TTL = 5.0
REFRESH = 10.0
STALE = 30.0


def _key(organization_id: uuid.UUID, thread_id: uuid.UUID) -> str:
    return f"banxway:presence:{organization_id}:{thread_id}"


def typing_channel(organization_id: uuid.UUID, thread_id: uuid.UUID) -> str:
    return f"banxway:typing:{organization_id}:{thread_id}"


@dataclass(frozen=True)
class Presence:
    user_id: uuid.UUID
    viewing: bool
    composing: bool
    since: float  # epoch seconds


def _typing_field(user_id: uuid.UUID) -> str:
    return f"typing:{user_id}"


def _viewing_field(user_id: uuid.UUID, connection: str) -> str:
    return f"viewing:{user_id}:{connection}"


async def _announce(
    redis: aioredis.Redis, organization_id: uuid.UUID, thread_id: uuid.UUID, user_id: uuid.UUID, typing: bool | None
) -> None:
    message = {"user_id": str(user_id), "typing": typing, "at": time.time()}
    await redis.publish(typing_channel(organization_id, thread_id), orjson.dumps(message))


async def set_typing(
    redis: aioredis.Redis, organization_id: uuid.UUID, thread_id: uuid.UUID, user_id: uuid.UUID, typing: bool
) -> float | None:
    """Record a typing signal; returns when it expires (epoch seconds), or None when it was cleared."""
    key = _key(organization_id, thread_id)
    field = _typing_field(user_id)
    if typing:
        until = time.time() + TYPING_TTL
        previous = await redis.hget(key, field)
        since = orjson.loads(previous)["since"] if previous else time.time()
        await redis.hset(key, field, orjson.dumps({"until": until, "since": since}))
    else:
        until = None
        await redis.hdel(key, field)
    await redis.expire(key, int(STALE * 2))
    await _announce(redis, organization_id, thread_id, user_id, typing)
    return until


async def set_viewing(
    redis: aioredis.Redis,
    organization_id: uuid.UUID,
    thread_id: uuid.UUID,
    user_id: uuid.UUID,
    connection: str,
    viewing: bool,
    *,
    announce: bool = True,
) -> None:
    key = _key(organization_id, thread_id)
    field = _viewing_field(user_id, connection)
    if viewing:
        previous = await redis.hget(key, field)
        since = orjson.loads(previous)["since"] if previous else time.time()
        await redis.hset(key, field, orjson.dumps({"until": time.time() + STALE, "since": since}))
        await redis.expire(key, int(STALE * 2))
    else:
        await redis.hdel(key, field)
    if announce:
        await _announce(redis, organization_id, thread_id, user_id, None)


async def viewers(redis: aioredis.Redis, organization_id: uuid.UUID, thread_id: uuid.UUID) -> list[Presence]:
    """Everyone viewing or composing in the thread now, earliest first; expired entries are dropped."""
    key = _key(organization_id, thread_id)
    now = time.time()
    found: dict[uuid.UUID, dict[str, float | bool]] = {}
    expired = []
    for raw_field, raw_value in (await redis.hgetall(key)).items():
        field = raw_field.decode()
        value = orjson.loads(raw_value)
        if value["until"] < now:
            expired.append(field)
            continue
        kind, user = field.split(":")[:2]
        entry = found.setdefault(uuid.UUID(user), {"viewing": False, "composing": False, "since": value["since"]})
        entry["viewing" if kind == "viewing" else "composing"] = True
        entry["since"] = min(float(entry["since"]), value["since"])
    if expired:
        await redis.hdel(key, *expired)
    return sorted(
        (
            Presence(user_id=user, viewing=bool(e["viewing"]), composing=bool(e["composing"]), since=float(e["since"]))
            for user, e in found.items()
        ),
        key=lambda p: (p.since, str(p.user_id)),
    )
