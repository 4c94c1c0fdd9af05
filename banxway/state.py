"""One AppState for the API, the worker and the scheduler: settings, the database engine and sessions, Redis,
the broadcast, the SecretBox and what runs after an event is relayed. Built once per process (per event loop)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from banxway.broadcast import Broadcast
from banxway.db.session import create_engine, create_reads_engine, create_sessionmaker
from banxway.events import Consequences
from banxway.redis_client import redis_client
from banxway.secrets import SecretBox
from banxway.settings import Settings


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    reads: AsyncEngine  # single-statement reads outside a transaction (db.session.create_reads_engine)
    redis: aioredis.Redis
    secret_key: str
    box: SecretBox
    broadcast: Broadcast
    consequences: Consequences | None = None
    # process-wide caches of the live features (see banxway.schema.subscriptions)
    shared: dict[str, Any] = field(default_factory=dict)

    async def aclose(self) -> None:
        await self.broadcast.disconnect()
        await self.redis.aclose()
        await self.engine.dispose()
        await self.reads.dispose()


def new_state(
    settings: Settings, *, consequences: Consequences | None = None, pool_size: int = 10, max_overflow: int = 20
) -> AppState:
    """The state, with nothing connected yet (a worker builds it before its event loop runs)."""
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("Banxway needs DATABASE_URL and REDIS_URL (serve fills them in embedded mode)")
    engine = create_engine(settings.database_url, pool_size=pool_size, max_overflow=max_overflow)
    secret_key = settings.resolved_secret_key()
    return AppState(
        settings=settings,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        reads=create_reads_engine(settings.database_url),
        redis=redis_client(settings.redis_url),
        secret_key=secret_key,
        box=SecretBox(secret_key),
        broadcast=Broadcast(settings.redis_url),
        consequences=consequences,
    )
