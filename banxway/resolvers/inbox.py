"""Reading pages of threads with everything the page shows, in a constant number of queries.

The schema layer looks at the selection and says what to prefetch
(`ThreadPrefetch`); many-to-one links come joined into the page query, unread
counts in one grouped query, and the first/last N messages of every thread of
the page in one `LATERAL … LIMIT n` query. Prefetched values are kept on the
ORM rows, so nested fields resolve synchronously.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, true
from sqlalchemy.orm import aliased, joinedload, load_only

from banxway.auth import Permission
from banxway.dataloaders import unread_counts
from banxway.db.models import Action, Message, Note, Thread
from banxway.resolvers.pagination import Page, paginate
from banxway.resolvers.threads import ORDERINGS, ThreadFilter, ordering_key, threads_query

if TYPE_CHECKING:
    from banxway.context import Context

THREAD_LINKS = {
    "customer": Thread.customer,
    "contact": Thread.contact,
    "shipment": Thread.shipment,
    "assignee": Thread.assignee,
}

# Attributes set on prefetched Thread rows.
UNREAD_ATTR = "_bx_unread_count"
MESSAGES_ATTR = "_bx_message_pages"


@dataclass(frozen=True)
class MessageWindow:
    """The first or last `size` messages of a thread (no cursor); `columns` to load, None for all."""

    size: int
    from_end: bool
    columns: tuple[str, ...] | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[int, bool]:
        return (self.size, self.from_end)


@dataclass(frozen=True)
class ThreadPrefetch:
    """What a page shows: links to join (name -> columns, None for all), unread counts, message windows."""

    links: tuple[tuple[str, tuple[str, ...] | None], ...] = ()
    unread: bool = False
    message_windows: tuple[MessageWindow, ...] = field(default=())


def _only(entity: Any, columns: tuple[str, ...] | None, keys: tuple[str, ...] = ()) -> Any:
    """load_only() of `columns` plus `keys`; attributes left out raise if read, never lazy-load."""
    names = sorted({*(columns or ()), *keys})
    return load_only(*(getattr(entity, name) for name in names), raiseload=True)


async def threads_page(
    ctx: Context,
    where: ThreadFilter | None,
    order: str,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    prefetch: ThreadPrefetch,
    count: bool,
) -> Page[Thread]:
    ordering = ORDERINGS[order]
    query = threads_query(ctx, where)
    for name, columns in prefetch.links:
        option = joinedload(THREAD_LINKS[name])
        if columns is not None:
            option = option.options(_only(THREAD_LINKS[name].property.mapper.class_, columns))
        query = query.options(option)
    page = await paginate(
        ctx.db,
        query,
        ordering.keys,
        first=first,
        after=after,
        last=last,
        before=before,
        descending=ordering.descending,
        key_of=lambda thread: ordering_key(ordering, thread),
        count=count,
    )
    await prefetch_threads(ctx, page.rows, prefetch)
    return page


async def prefetch_threads(ctx: Context, threads: list[Thread], prefetch: ThreadPrefetch) -> None:
    if not threads:
        return
    ids = [thread.id for thread in threads]
    if prefetch.unread:
        counts = await unread_counts(ctx.db, ids, ctx.viewer.user_id)
        for thread in threads:
            setattr(thread, UNREAD_ATTR, counts.get(thread.id, 0))
    for window in prefetch.message_windows:
        pages = await message_windows(ctx, ids, window)
        for thread in threads:
            cache = thread.__dict__.setdefault(MESSAGES_ATTR, {})
            cache[window.key] = pages[thread.id]


def message_key(message: Message) -> list[Any]:
    return [message.created_at, message.id]


async def message_windows(ctx: Context, thread_ids: list[uuid.UUID], window: MessageWindow) -> dict[uuid.UUID, Page]:
    """The first/last `window.size` messages of each thread, with each thread's total, in one query."""
    ctx.require(Permission.READ)
    parents = select(Thread.id).where(Thread.id.in_(thread_ids)).subquery("parents")
    order = (Message.created_at.desc(), Message.id.desc()) if window.from_end else (Message.created_at, Message.id)
    inner = (
        select(Message, func.count().over().label("total"))
        .where(Message.thread_id == parents.c.id)
        .order_by(*order)
        .limit(window.size + 1)
        .lateral("recent")
    )
    recent = aliased(Message, inner)
    statement = select(recent, inner.c.total).select_from(parents).join(inner, true())
    if window.columns is not None:
        statement = statement.options(_only(recent, window.columns, ("thread_id", "created_at")))
    grouped: dict[uuid.UUID, list[Message]] = {thread_id: [] for thread_id in thread_ids}
    totals: dict[uuid.UUID, int] = {}
    for message, total in (await ctx.db.execute(statement)).all():
        grouped[message.thread_id].append(message)
        totals[message.thread_id] = total
    pages: dict[uuid.UUID, Page] = {}
    for thread_id, rows in grouped.items():
        more = len(rows) > window.size
        rows = rows[: window.size]
        if window.from_end:
            rows.reverse()
        pages[thread_id] = Page(
            rows=rows,
            keys=[message_key(m) for m in rows],
            has_next_page=more and not window.from_end,
            has_previous_page=more and window.from_end,
            total_count=totals.get(thread_id, 0),
        )
    return pages


async def messages_page(
    ctx: Context,
    thread_id: uuid.UUID,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    count: bool,
) -> Page[Message]:
    ctx.require(Permission.READ)
    return await paginate(
        ctx.db,
        select(Message).where(Message.thread_id == thread_id),
        (Message.created_at, Message.id),
        first=first,
        after=after,
        last=last,
        before=before,
        count=count,
    )


async def message_full_body(ctx: Context, message_id: uuid.UUID) -> str | None:
    """An inbound email's whole text, quoted history included (not loaded with the message row)."""
    ctx.require(Permission.READ)
    return await ctx.db.scalar(select(Message.full_body).where(Message.id == message_id))


async def notes_page(ctx: Context, thread_id: uuid.UUID, *, first: int | None, after: str | None) -> Page[Note]:
    """A thread's internal notes, oldest first; deleted ones are left out."""
    ctx.require(Permission.READ)
    query = select(Note).where(Note.thread_id == thread_id, Note.deleted_at.is_(None))
    return await paginate(ctx.db, query, (Note.created_at, Note.id), first=first, after=after)


async def actions_page(ctx: Context, thread_id: uuid.UUID, *, first: int | None, after: str | None) -> Page[Action]:
    """A thread's actions (tasks), oldest first."""
    ctx.require(Permission.READ)
    query = select(Action).where(Action.thread_id == thread_id)
    return await paginate(ctx.db, query, (Action.created_at, Action.id), first=first, after=after)
