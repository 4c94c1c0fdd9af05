"""Pooled connections are pinged at checkout only when they sat idle (banxway.db.session._ping_when_idle).

Real PostgreSQL; a connection is "cut" by terminating its backend, as a restart or an idle timeout would."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from banxway.db import session as db_session
from banxway.db.models import Organization
from banxway.db.session import create_engine, read, read_object, system_session
from banxway.resolvers.users import organization_create
from banxway.state import AppState


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


async def test_an_object_read_on_the_reads_engine_is_detached_and_survives_a_cut_connection(
    state: AppState, other: AsyncEngine
) -> None:
    # given an organization, and the reads engine's one pooled connection
    async with system_session(state.sessionmaker) as session:
        organization, _ = await organization_create(
            session, name="Reads", slug="reads-org", admin_email="admin@reads.test", admin_password="a-long-password-1"
        )
    wanted = select(Organization).where(Organization.slug == "reads-org")
    found = await read_object(state.sessionmaker, state.reads, wanted)
    # then it is found, and belongs to no session (what a webhook's integration is)
    assert found.id == organization.id and inspect(found).detached
    # when that connection is cut (a database restart) and the object is read again
    [pid] = await read(state.reads, "SELECT pg_backend_pid()", ())
    await cut(other, pid)
    again = await read_object(state.sessionmaker, state.reads, wanted)
    # then the read is retried on a new connection, not failed
    assert again.id == organization.id
    [new_pid] = await read(state.reads, "SELECT pg_backend_pid()", ())
    assert new_pid != pid
    # and nothing is found where nothing matches
    assert (
        await read_object(state.sessionmaker, state.reads, select(Organization).where(Organization.slug == "-")) is None
    )
