"""What the benchmarks share: a PostgreSQL database and a Redis to measure on."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from banxway.db.migrate import upgrade
from banxway.db.session import create_engine
from banxway.embedded import EmbeddedPostgres, EmbeddedRedis


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def database_and_redis(
    temp: Path, label: str, say: Callable[[str], None] = print
) -> AsyncIterator[tuple[str, str]]:
    """(database URL, Redis URL), migrated: a fresh database `banxway_bench_<label>_<pid>` on DATABASE_URL's
    server (dropped after), or an embedded PostgreSQL; REDIS_URL, or an embedded Redis."""
    external, name, embedded_pg, embedded_redis = os.environ.get("DATABASE_URL"), None, None, None
    try:
        if external:
            name = f"banxway_bench_{label}_{os.getpid()}"
            admin = await asyncpg.connect(asyncpg_dsn(external))
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await admin.execute(f'CREATE DATABASE "{name}"')
            await admin.close()
            url = make_url(external).set(database=name).render_as_string(hide_password=False)
        else:
            say("starting embedded PostgreSQL…")
            embedded_pg = EmbeddedPostgres(temp / "postgres")
            url = await asyncio.to_thread(embedded_pg.start)
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            embedded_redis = EmbeddedRedis(temp / "redis")
            redis_url = await asyncio.to_thread(embedded_redis.start)
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        yield url, redis_url
    finally:
        if embedded_redis is not None:
            embedded_redis.stop()
        if embedded_pg is not None:
            embedded_pg.stop()
        if name is not None and external:
            admin = await asyncpg.connect(asyncpg_dsn(external))
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
