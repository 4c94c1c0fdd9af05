"""Typing and presence in a thread: the use-cases over `banxway.presence` (ephemeral, in Redis only).

The `typing` and `threadViewers` subscriptions stream the thread's typing channel themselves; what they
and the `threadTyping` mutation write goes through here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from banxway import presence
from banxway.auth import Permission
from banxway.db.models import Thread, User
from banxway.errors import DomainError

if TYPE_CHECKING:
    from banxway.context import Context


@dataclass(frozen=True)
class ThreadViewer:
    """A colleague with the thread open, or writing in it."""

    user: User
    viewing: bool
    composing: bool
    since: datetime


async def _thread(ctx: Context, thread_id: uuid.UUID | None) -> Thread:
    thread = await ctx.loaders.thread_by_id.load(thread_id) if thread_id else None
    if thread is None:
        raise DomainError("NOT_FOUND", "No such thread.", "threadId")
    return thread


async def watched_thread(ctx: Context, thread_id: uuid.UUID | None) -> Thread:
    """The thread whose typing and viewers the viewer may follow (READ); NOT_FOUND if there is none."""
    ctx.require(Permission.READ)
    return await _thread(ctx, thread_id)


async def thread_viewers(ctx: Context, thread: Thread) -> list[ThreadViewer]:
    """Who has the thread open or is writing in it now, earliest first (users who no longer exist left out)."""
    found = await presence.viewers(ctx.redis, thread.organization_id, thread.id)
    users = await ctx.loaders.user_by_id.load_many([p.user_id for p in found])
    return [
        ThreadViewer(
            user=user,
            viewing=p.viewing,
            composing=p.composing,
            since=datetime.fromtimestamp(p.since, UTC),
        )
        for p, user in zip(found, users, strict=True)
        if user is not None
    ]


async def thread_typing(ctx: Context, thread_id: uuid.UUID | None, is_typing: bool) -> datetime | None:
    """Say that the viewer is (or stopped) writing in a thread (NOTE_ADD); returns when the signal lapses,
    None when it was cleared."""
    viewer = ctx.require(Permission.NOTE_ADD)
    thread = await _thread(ctx, thread_id)
    until = await presence.set_typing(ctx.redis, viewer.organization_id, thread.id, viewer.user_id, is_typing)
    return datetime.fromtimestamp(until, UTC) if until else None


async def set_viewing(
    ctx: Context, thread: Thread, connection_id: str, viewing: bool, *, announce: bool = True
) -> None:
    """Count the viewer as viewing the thread on this connection (renew it every `presence.REFRESH` / 2
    seconds), or no longer."""
    viewer = ctx.viewer
    await presence.set_viewing(
        ctx.redis, viewer.organization_id, thread.id, viewer.user_id, connection_id, viewing, announce=announce
    )
