"""Issue 16, item 12: after Redis closes the pooled connections (a restart), the next command succeeds."""

from __future__ import annotations

import redis.asyncio as aioredis

from banxway.redis_client import redis_client


async def _close_every_connection(url: str) -> int:
    """What a Redis restart does to this test's clients: the server closes their connections (those on this
    test's database, so that tests running beside it on a shared server keep theirs; pub/sub ones too)."""
    admin = aioredis.Redis.from_url(url)
    try:
        me = await admin.client_id()
        db = admin.connection_pool.connection_kwargs.get("db", 0)
        closed = 0
        for client in await admin.client_list():
            if int(client["db"]) == db and int(client["id"]) != me and "P" not in client["flags"]:
                closed += await admin.client_kill_filter(_id=client["id"])
        return closed
    finally:
        await admin.aclose()


async def test_a_command_after_the_server_closed_its_connection_succeeds(clean_redis: str) -> None:
    client = redis_client(clean_redis)  # (a plain client fails here with "Connection closed by server")
    try:
        await client.set("k", "v")
        assert await _close_every_connection(clean_redis) >= 1
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()
