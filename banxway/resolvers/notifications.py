"""Notifications: a mention, an assignment, a customer's message on one's thread.

`notify` is called by the use-cases that cause them, inside their transaction; each notification
is also a private NOTIFICATION_CREATED event, which `notificationReceived` delivers live.

Each user chooses per notification type (meUpdate's notificationPreferences): in app (the default), by email
(off by default), both or neither. Neither: no notification. Email only: the notification is kept, already read
(no badge). By email: NOTIFICATION_CREATED carries `email`, and the `send_notification_email` actor mails it
(`banxway.resolvers.notification_emails`; apart, so that what mail logs in through — `email_oauth`, which notifies
the admins of a refused token — may call `notify`).
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
    thread: Thread | None,
    user_ids: Iterable[uuid.UUID | None],
    type_: NotificationType,
    summary: str,
    *,
    actor_id: uuid.UUID | None,
    message_id: uuid.UUID | None = None,
    note_id: uuid.UUID | None = None,
    organization_id: uuid.UUID | None = None,
) -> list[Notification]:
    """One notification per active user among `user_ids`, except the actor (nobody is told what they did).
    Without a thread (an outbound webhook endpoint disabled), `organization_id` says whose they are."""
    organization = thread.organization_id if thread is not None else organization_id
    assert organization is not None, "a notification belongs to an organization"
    wanted = {user_id for user_id in user_ids if user_id is not None and user_id != actor_id}
    if not wanted:
        return []
    rows = await session.execute(
        select(User.id, User.notification_preferences).where(User.id.in_(wanted), User.active.is_(True))
    )
    channels = {user_id: wants(preferences, type_) for user_id, preferences in rows}
    created = []
    emailed: set[uuid.UUID] = set()
    now = datetime.now(UTC)
    for user_id in sorted(channels):  # as each asked for this type (the module's docstring)
        in_app, by_email = channels[user_id]
        if not in_app and not by_email:
            continue
        if by_email:
            emailed.add(user_id)
        notification = Notification(
            organization_id=organization,
            user_id=user_id,
            type=type_,
            thread_id=thread.id if thread is not None else None,
            message_id=message_id,
            note_id=note_id,
            actor_id=actor_id,
            summary=_clip(summary),
            read_at=None if in_app else now,
        )
        session.add(notification)
        created.append(notification)
    await session.flush()
    for notification in created:
        events.record(
            session,
            events.NotificationCreated(
                user_id=notification.user_id,
                notification_id=notification.id,
                email=notification.user_id in emailed,
            ),
            organization_id=organization,
            actor_id=actor_id,
        )
    return created


def wants(preferences: dict | None, type_: NotificationType) -> tuple[bool, bool]:
    """(in app, by email) for a notification of `type_`, from a user's stored preferences."""
    setting = (preferences or {}).get(type_.name) or {}
    return bool(setting.get("in_app", True)), bool(setting.get("email", False))


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
