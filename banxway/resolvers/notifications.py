"""Notifications: a mention, an assignment, a customer's message on one's thread.

`notify` is called by the use-cases that cause them, inside their transaction; each notification
is also a private NOTIFICATION_CREATED event, which `notificationReceived` delivers live.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from banxway import events
from banxway.auth import Permission
from banxway.db.models import Notification, Thread, User
from banxway.enums import NotificationType
from banxway.errors import DomainError
from banxway.resolvers.pagination import Page, paginate

if TYPE_CHECKING:
    from banxway.context import Context

_SUMMARY_LIMIT = 300


async def notify(
    session: AsyncSession,
    thread: Thread,
    user_ids: Iterable[uuid.UUID | None],
    type_: NotificationType,
    summary: str,
    *,
    actor_id: uuid.UUID | None,
    message_id: uuid.UUID | None = None,
    note_id: uuid.UUID | None = None,
) -> list[Notification]:
    """One notification per active user among `user_ids`, except the actor (nobody is told what they did)."""
    wanted = {user_id for user_id in user_ids if user_id is not None and user_id != actor_id}
    if not wanted:
        return []
    active = set(await session.scalars(select(User.id).where(User.id.in_(wanted), User.active.is_(True))))
    created = []
    for user_id in sorted(active):
        notification = Notification(
            organization_id=thread.organization_id,
            user_id=user_id,
            type=type_,
            thread_id=thread.id,
            message_id=message_id,
            note_id=note_id,
            actor_id=actor_id,
            summary=_clip(summary),
        )
        session.add(notification)
        created.append(notification)
    await session.flush()
    for notification in created:
        events.record(
            session,
            events.NotificationCreated(user_id=notification.user_id, notification_id=notification.id),
            organization_id=thread.organization_id,
            actor_id=actor_id,
        )
    return created


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SUMMARY_LIMIT else text[: _SUMMARY_LIMIT - 1] + "…"


def notifications_query(ctx: Context, unread_only: bool) -> Select:
    viewer = ctx.require(Permission.READ)
    query = select(Notification).where(Notification.user_id == viewer.user_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return query


async def unread_count(ctx: Context) -> int:
    viewer = ctx.require(Permission.READ)
    return await ctx.db.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == viewer.user_id, Notification.read_at.is_(None))
    )


async def mark_read(ctx: Context, ids: list[uuid.UUID | None] | None) -> list[Notification]:
    """Mark the viewer's notifications `ids` read (all unread ones when `ids` is None)."""
    viewer = ctx.require(Permission.READ)
    async with ctx.transaction() as session:
        query = select(Notification).where(Notification.user_id == viewer.user_id)
        if ids is not None:
            for index, notification_id in enumerate(ids):
                if notification_id is None:
                    raise DomainError("NOT_FOUND", "No such notification.", f"ids.{index}")
            found = {n.id: n for n in await session.scalars(query.where(Notification.id.in_(ids)).with_for_update())}
            for index, notification_id in enumerate(ids):
                if notification_id not in found:
                    raise DomainError("NOT_FOUND", "No such notification.", f"ids.{index}")
            rows = [found[i] for i in dict.fromkeys(ids) if i is not None]
        else:
            rows = list(await session.scalars(query.where(Notification.read_at.is_(None)).with_for_update()))
        unread = [n for n in rows if n.read_at is None]
        if unread:
            now = datetime.now(UTC)
            for notification in unread:
                notification.read_at = now
            ctx.record(
                session, events.NotificationsRead(user_id=viewer.user_id, notification_ids=[n.id for n in unread])
            )
    return rows


async def notifications_page(
    ctx: Context, unread_only: bool, *, first: int | None, after: str | None
) -> Page[Notification]:
    """The viewer's notifications, newest first."""
    query = notifications_query(ctx, unread_only)
    keys = (Notification.created_at, Notification.id)
    return await paginate(ctx.db, query, keys, first=first, after=after, descending=True)
