"""The process's Redis clients: commands retried on a fresh connection when a pooled one turns out dead.

After a Redis restart (or an idle timeout on a proxy) every pooled connection is closed by the server, and
without a retry the first command on each fails with "Connection closed by server"."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def redis_client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.01), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,  # a connection idle for 30 s is checked (PING) before it is used
    )
