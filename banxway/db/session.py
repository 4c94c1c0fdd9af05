"""Engines, sessions and the tenancy scope.

A session made by `tenant_session(maker, organization_id)` adds
`organization_id = :org` to every ORM SELECT, UPDATE and DELETE on a
`TenantMixin` model (SQLAlchemy's `with_loader_criteria`). A session with no
organization refuses such statements unless it was made by `system_session`
or the statement carries `execution_options(unscoped=True)`: the unscoped
query is the one that takes extra words to write.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError, SADeprecationWarning
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.sql.util import find_tables

from banxway.db.models import Base, TenantMixin


class UnscopedQueryError(RuntimeError):
    """A tenant table was queried from a session bound to no organization."""


def async_url(url: str) -> str:
    """`postgresql://…` as the SQLAlchemy asyncpg URL."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_engine(url: str, *, ping_idle: bool = True, **kwargs: object) -> AsyncEngine:
    """An engine whose pooled connections are checked before use when they sat idle (`ping_idle`)."""
    kwargs.setdefault("json_serializer", lambda value: orjson.dumps(value).decode())
    kwargs.setdefault("json_deserializer", orjson.loads)
    engine = create_async_engine(async_url(url), **kwargs)  # type: ignore[arg-type]
    if ping_idle:
        _ping_when_idle(engine)
    return engine


PING_IDLE_SECONDS = 5.0
_RETURNED_AT = "banxway_returned_at"


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection at checkout only when it was idle for more than `PING_IDLE_SECONDS`.

    SQLAlchemy's `pool_pre_ping` pings at every checkout, and with asyncpg a ping is three round trips (BEGIN, `;`,
    ROLLBACK): every transaction and every relay paid them, 12 per message sent by a worker. A connection returned
    moments ago is as alive as a ping would find it; one that sat idle may have been cut (a database restart, an
    idle timeout of PostgreSQL, a proxy or a load balancer) and is pinged as before. A failed ping invalidates the
    pool's older connections and the checkout goes on with a new one (the pre-ping's own recovery); a connection
    that dies within the window fails its statement, and SQLAlchemy invalidates the pool the same way."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None:
            record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _taken(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned <= PING_IDLE_SECONDS:
            return  # a new connection, or one just used
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise InvalidatePoolError(f"a pooled connection idle for {PING_IDLE_SECONDS:g} s was dead: {exc}") from exc


def create_reads_engine(url: str) -> AsyncEngine:
    """The engine of single-statement reads outside a transaction (authentication, the compiled path).

    AUTOCOMMIT: no BEGIN/ROLLBACK around a read. No ping when a connection is taken from the pool (a round trip
    per read): `read` retries a read once on a connection that turns out dead instead. No overflow: a connection
    past pool_size is closed when it is returned, and a new one costs a TLS attempt, type introspection and a
    cold statement cache (a third of the CPU at 32 concurrent requests); past 20 reads at once a request waits.

    Its statements are prepared once per connection and always run with PostgreSQL's generic plan: the compiled
    inbox statement takes ~3.5 ms to plan, and with custom plans (PostgreSQL's default choice for it) it was
    planned again at every execution (8.1 → 6.6 ms per statement on the bench's data)."""
    return create_engine(
        url,
        ping_idle=False,
        isolation_level="AUTOCOMMIT",
        pool_size=20,
        max_overflow=0,
        pool_timeout=10,
        connect_args={"server_settings": {"plan_cache_mode": "force_generic_plan"}},
    )


async def read(engine: AsyncEngine, statement: Any, parameters: Any = None) -> Any:
    """The first row of a read on `engine`, retried once on a fresh connection when the pooled one was dead
    (the database restarted: SQLAlchemy then drops the pool's other connections too). `statement` is a
    SQLAlchemy statement, or driver SQL with a tuple of `parameters`."""

    async def first_row() -> Any:
        async with engine.connect() as connection:
            if isinstance(statement, str):
                result = await connection.exec_driver_sql(statement, parameters)
            else:
                result = await connection.execute(statement, parameters)
            return result.first()

    return await _retried_if_dead(first_row)


async def read_object(maker: async_sessionmaker[AsyncSession], engine: AsyncEngine, statement: Any) -> Any:
    """The first ORM object a single-statement read (`statement`, a select of one entity) finds on the AUTOCOMMIT
    `engine`, detached, or None. A session on that engine sends no BEGIN and no ROLLBACK around the statement (two
    round trips of a system session's read); like `read`, retried once on a fresh connection when the pooled one
    was dead. The read sees every organization (a system session's)."""

    async def first_object() -> Any:
        async with system_session(maker, bind=engine) as session:
            found = await session.scalar(statement)
            if found is not None:
                session.expunge(found)
            return found

    return await _retried_if_dead(first_object)


async def _retried_if_dead(work: Callable[[], Awaitable[Any]]) -> Any:
    """`work`, once more if it failed on a pooled connection found dead (SQLAlchemy invalidated it)."""
    for attempt in (1, 2):
        try:
            return await work()
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class OrderedSession(Session):
    """A session whose flush inserts new rows table by table in foreign-key order.

    Our models declare foreign keys but no relationships, so SQLAlchemy's unit of work does not know that a message
    must be inserted before its attachments. Use-cases used to flush after each row another depends on (a round trip
    each); with this order they add a batch of rows (a page of mail: threads, messages, attachments, events) and one
    flush writes each table's rows in one multi-row INSERT."""

    def flush(self, objects: Any = None) -> None:
        if objects is None and not self._flushing:
            pending = list(self.new)
            tables = {_table_of(obj) for obj in pending}
            if len(tables) > 1:
                # a table's changed rows go with its new ones: within a table the unit of work updates before it
                # inserts (a target closed before its successor opens, under a partial unique index); deletions go
                # last, with the final flush, as before
                changed = list(self.dirty)
                with warnings.catch_warnings():
                    # deprecated in SQLAlchemy 2.1 "for an extremely narrow set of use cases": this is one (no
                    # relationship() tells the unit of work the tables' order); tests/test_ingest_statements.py fails
                    # if it stops working
                    warnings.simplefilter("ignore", SADeprecationWarning)
                    for table in _insert_order():
                        if table in tables:
                            super().flush([obj for obj in (*pending, *changed) if _table_of(obj) is table])
        super().flush(objects)


def _table_of(obj: Any) -> Any:
    return type(obj).__table__


_INSERT_ORDER: list[Any] = []


def _insert_order() -> list[Any]:
    if not _INSERT_ORDER:
        _INSERT_ORDER.extend(Base.metadata.sorted_tables)
    return _INSERT_ORDER


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=OrderedSession)


def tenant_session(maker: async_sessionmaker[AsyncSession], organization_id: uuid.UUID) -> AsyncSession:
    session = maker()
    session.info["organization_id"] = organization_id
    return session


def system_session(maker: async_sessionmaker[AsyncSession], bind: AsyncEngine | None = None) -> AsyncSession:
    """A session that sees every organization: for login, the CLI and background work (on `bind` instead of the
    maker's engine when given)."""
    session = maker() if bind is None else maker(bind=bind)
    session.info["unscoped"] = True
    return session


class SerialSession:
    """One request's session, shared by resolvers that run concurrently.

    GraphQL resolves sibling fields concurrently, but a session (one connection)
    runs one statement at a time; every use goes through this lock.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.lock = asyncio.Lock()

    async def scalars(self, statement: Any, **kwargs: Any) -> list[Any]:
        async with self.lock:
            return list(await self.session.scalars(statement, **kwargs))

    async def scalar(self, statement: Any, **kwargs: Any) -> Any:
        async with self.lock:
            return await self.session.scalar(statement, **kwargs)

    async def execute(self, statement: Any, **kwargs: Any) -> Any:
        async with self.lock:
            return await self.session.execute(statement, **kwargs)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.lock, write_transaction(self.session) as session:
            yield session


@asynccontextmanager
async def write_transaction(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Begin a write transaction, first ending the implicit read transaction of earlier queries.

    Commits when the block ends, rolls back if it raises: nothing is half-written.
    """
    if session.in_transaction():
        await session.commit()
    async with session.begin():
        yield session


def transaction_memo(session: AsyncSession, name: str) -> dict[Any, Any]:
    """A dict that lives as long as the session's current (outermost) transaction: what a use-case may remember
    between calls in one transaction (the SLA policies read, the contacts resolved, the threads locked) without
    carrying it into the next. Empty when there is no transaction yet."""
    root = session.sync_session.get_transaction()  # the outermost: its savepoints share the memo
    memos = session.info.get(_MEMOS)
    if memos is None or memos[0] is not root:
        memos = (root, {})
        session.info[_MEMOS] = memos
    return memos[1].setdefault(name, {})


_MEMOS = "banxway_transaction_memos"


@event.listens_for(Session, "after_soft_rollback")
def _forget_memos(session: Session, previous_transaction: Any) -> None:
    """A rollback, of a savepoint too, may have undone what a memo remembers (a contact created in it)."""
    session.info.pop(_MEMOS, None)


def _tenant_mappers() -> list[Any]:
    return [m for m in Base.registry.mappers if issubclass(m.class_, TenantMixin)]


def _touches_tenant_table(state: ORMExecuteState) -> bool:
    if any(issubclass(mapper.class_, TenantMixin) for mapper in state.all_mappers):
        return True
    tenant = {mapper.local_table for mapper in _tenant_mappers()}
    found = find_tables(state.statement, include_aliases=True, include_joins=True, check_columns=True)
    return any(table in tenant for table in found)


@event.listens_for(Session, "do_orm_execute")
def _scope_to_organization(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the parent row was already scoped
    if state.session.info.get("unscoped") or state.execution_options.get("unscoped"):
        return
    organization_id = state.session.info.get("organization_id")
    if organization_id is None:
        if _touches_tenant_table(state):
            raise UnscopedQueryError(
                "Query on a tenant table from a session with no organization; use tenant_session() "
                "or, where every organization is meant, system_session()."
            )
        return
    if state.is_select:
        # A page query may load only some columns of a row (look-ahead); a later query in the
        # same session that returns that row must fill it in, not hand back the partial one.
        state.update_execution_options(populate_existing=True)
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantMixin,
            lambda cls: cls.organization_id == organization_id,
            include_aliases=True,
        )
    )
