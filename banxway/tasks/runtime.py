"""What actors need in a worker process: settings and a database engine, built at boot."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from banxway.broadcast import Broadcast
from banxway.db.session import create_engine, create_sessionmaker
from banxway.settings import Settings


@dataclass
class WorkerRuntime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    broadcast: Broadcast  # publishing only: events of background work reach subscribers
    secret_key: str


_runtime: WorkerRuntime | None = None


def init_runtime(settings: Settings) -> WorkerRuntime:
    global _runtime
    assert settings.database_url
    assert settings.redis_url
    engine = create_engine(settings.database_url, pool_size=5)
    _runtime = WorkerRuntime(
        settings, engine, create_sessionmaker(engine), Broadcast(settings.redis_url), settings.resolved_secret_key()
    )
    return _runtime


def runtime() -> WorkerRuntime:
    if _runtime is None:
        raise RuntimeError("The worker runtime is not initialised; start actors with `banxway worker`")
    return _runtime
