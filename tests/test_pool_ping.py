"""Pooled connections are pinged at checkout only when they sat idle (banxway.db.session._ping_when_idle).

Real PostgreSQL; a connection is "cut" by terminating its backend, as a restart or an idle timeout would."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from banxway.db import session as db_session
from banxway.db.session import create_engine


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


@pytest.fixture
async def other(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, ping_idle=False, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


async def pooled_pid(engine: AsyncEngine) -> int:
    """The backend of the pool's one connection (used, then returned)."""
    async with engine.begin() as connection:
        return (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()


async def cut(other: AsyncEngine, pid: int) -> None:
    async with other.begin() as connection:
        # (with a timeout, it returns once the backend has exited, not once it was signalled)
        terminated = await connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        assert terminated.scalar_one()


async def test_an_idle_connection_that_was_cut_is_replaced_before_use(
    engine: AsyncEngine, other: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a pooled connection counted as idle (any time since its return is past the threshold), cut meanwhile
    monkeypatch.setattr(db_session, "PING_IDLE_SECONDS", 0.0)
    pid = await pooled_pid(engine)
    await cut(other, pid)
    # when a transaction takes it, then it works, on a new connection
    assert await pooled_pid(engine) != pid


async def test_a_connection_just_returned_is_not_pinged_and_one_cut_in_that_window_fails_once(
    engine: AsyncEngine, other: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a connection returned moments ago (well within the threshold), cut meanwhile
    monkeypatch.setattr(db_session, "PING_IDLE_SECONDS", 3600.0)
    pid = await pooled_pid(engine)
    await cut(other, pid)
    # when a transaction takes it, then it is used unpinged, and its statement fails as a disconnection
    with pytest.raises(DBAPIError) as failed:
        await pooled_pid(engine)
    assert failed.value.connection_invalidated
    # and the next transaction has a new connection
    assert await pooled_pid(engine) != pid
