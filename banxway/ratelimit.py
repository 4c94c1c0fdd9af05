"""Sliding-window rate limits in Redis: one place for the concept.

A window is a sorted set of hits scored by the time they were counted (Redis's own clock, so that every process
counts alike). One Lua script drops the hits older than the window, checks each limit and counts the new hit in all
of its windows or in none: concurrent requests cannot all pass a count read before any of them was recorded, and a
refused hit takes no room. A refusal says how long until the fullest window has room again.

Used by the failed-login limits (`banxway.resolvers.auth`) and the limits on GraphQL requests, webhooks and
WebSocket operations (`banxway.middleware`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.exceptions import NoScriptError

if TYPE_CHECKING:
    import redis.asyncio as aioredis

# KEYS: the windows; ARGV: the window in microseconds, the hit's member, then each window's limit.
# Returns 0 when the hit was counted, else {microseconds until the fullest window has room, its index (1-based)}.
_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local window = tonumber(ARGV[1])
local wait, fullest = 0, 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[i + 2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local free = tonumber(oldest[2]) + window - now
    if free > wait then
      wait, fullest = free, i
    end
  end
end
if fullest > 0 then
  return {wait, fullest}
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
end
return 0
"""
_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts by their SHA-1


@dataclass(frozen=True)
class Limited:
    """A refused hit: the window that is full, and the seconds until it has room."""

    key: str
    retry_after: float


async def hit_many(
    redis: aioredis.Redis, limits: Mapping[str, int], window_seconds: float, *, member: str | None = None
) -> Limited | None:
    """Count one hit in each window of `limits` (key -> most hits in `window_seconds`), or in none when any of them
    is full: then the fullest one is returned. A limit of 0 or less means no limit for that key. `member` names the
    hit (unique; default a random one), for `give_back`."""
    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be positive, not {window_seconds!r}")
    counted = {key: limit for key, limit in limits.items() if limit > 0}
    if not counted:
        return None
    keys = list(counted)
    args = [round(window_seconds * 1_000_000), member or uuid.uuid4().hex, *counted.values()]
    try:
        result = await redis.evalsha(_SHA, len(keys), *keys, *args)  # type: ignore[misc]
    except NoScriptError:  # a new or restarted server: send the script itself (it is cached from then on)
        result = await redis.eval(_SCRIPT, len(keys), *keys, *args)  # type: ignore[misc]
    if not result:
        return None
    wait, index = result
    return Limited(keys[int(index) - 1], int(wait) / 1_000_000)


async def hit(redis: aioredis.Redis, key: str, limit: int, window_seconds: float) -> float | None:
    """Count one hit of `key`: None when it is within `limit` hits in `window_seconds`, else the seconds to wait
    (the hit was not counted)."""
    limited = await hit_many(redis, {key: limit}, window_seconds)
    return limited.retry_after if limited is not None else None


async def take(redis: aioredis.Redis, key: str, limit: int, window_seconds: float) -> str | None:
    """Count one attempt of `key` before doing what it limits: the attempt's member, to `give_back` when it turns out
    not to count (a successful login), or None when the window is full (nothing was counted)."""
    member = uuid.uuid4().hex
    return None if await hit_many(redis, {key: limit}, window_seconds, member=member) else member


async def give_back(redis: aioredis.Redis, key: str, member: str) -> None:
    """Uncount the attempt that `take` counted."""
    await redis.zrem(key, member)


async def reset(redis: aioredis.Redis, key: str) -> None:
    """Empty a window."""
    await redis.delete(key)
