"""Notifications by email: the `send_notification_email` actor mails a notification (NOTIFICATION_CREATED with
`email`) through the organization's first email account (`system_mail`) — at the end of the user's quiet hours
when it falls in them. Apart from `notifications`, which records them: mail may log in through an OAuth mailbox
(`email_oauth`), whose refused token is itself a notification (`notify`), and resolver modules import no cycles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select

from banxway.db.models import Notification, Organization, Thread, User
from banxway.integrations.email import smtp
from banxway.logs import get_logger
from banxway.resolvers.notifications import wants
from banxway.resolvers.system_mail import NoMailAccount, send_system_mail

if TYPE_CHECKING:
    from banxway.context import SystemContext

log = get_logger("banxway.notifications")


def quiet_until(quiet_hours: dict[str, str] | None, now: datetime) -> datetime | None:
    """The end of the quiet hours `now` falls in (UTC), or None when `now` is outside them (or there are none).
    Quiet hours may span midnight (22:00 → 07:00)."""
    if not quiet_hours:
        return None
    zone = ZoneInfo(quiet_hours["timezone"])
    local = now.astimezone(zone)
    start = [int(part) for part in quiet_hours["start"].split(":")]
    end = [int(part) for part in quiet_hours["end"].split(":")]
    minute = local.hour * 60 + local.minute
    start_minute, end_minute = start[0] * 60 + start[1], end[0] * 60 + end[1]
    if start_minute < end_minute:
        inside = start_minute <= minute < end_minute
    else:
        inside = minute >= start_minute or minute < end_minute
    if not inside:
        return None
    day = local.date() if minute < end_minute else local.date() + timedelta(days=1)
    wall = datetime(day.year, day.month, day.day, end[0], end[1])
    return wall.replace(tzinfo=zone).astimezone(UTC)


def notification_mail_text(
    notification: Notification, thread: Thread | None, organization: str, link: str | None
) -> str:
    lines = [notification.summary, ""]
    if thread is not None:
        lines.append(f"Thread {thread.reference}: {thread.subject}")
    if link:
        lines.append(link)
    kind = notification.type.name.replace("_", " ").lower()
    lines += ["", "-- ", f"Banxway · {organization}. You asked for {kind} notifications by email (your profile)."]
    return "\n".join(lines) + "\n"


async def notification_email_send(ctx: SystemContext, notification_id: uuid.UUID) -> datetime | None:
    """Mail a notification to its user (the `send_notification_email` actor), if they still want this type by
    email; at most once (`emailed_at`). During the user's quiet hours nothing is sent and the end of the quiet
    hours is returned: the actor tries again then. A transient SMTP failure raises (smtp.TransientSendError: the
    actor retries); a permanent one, or no email account, is logged and ends it."""
    async with ctx.session() as session, session.begin():
        notification = await session.scalar(
            select(Notification).where(Notification.id == notification_id).with_for_update(skip_locked=True)
        )
        if notification is None or notification.emailed_at is not None:
            return None
        user = await session.get(User, notification.user_id)
        if user is None or not user.active or not wants(user.notification_preferences, notification.type)[1]:
            return None
        later = quiet_until(user.quiet_hours, datetime.now(UTC))
        if later is not None:
            return later
        organization = await session.get(Organization, notification.organization_id)
        thread = await session.get(Thread, notification.thread_id) if notification.thread_id else None
        assert organization is not None
        public = ctx.settings.public_url
        link = f"{public.rstrip('/')}/threads/{thread.reference}" if public and thread is not None else None
        subject = f"[Banxway] {notification.summary}"
        if len(subject) > 150:
            subject = subject[:149] + "…"
        try:
            await send_system_mail(
                ctx,
                session,
                notification.organization_id,
                to=user.email,
                subject=subject,
                body=notification_mail_text(notification, thread, organization.name, link),
            )
        except (NoMailAccount, smtp.PermanentSendError, ValueError) as exc:
            log.warning("notification not emailed", notification=str(notification.id), error=str(exc))
            return None
        notification.emailed_at = datetime.now(UTC)
    return None
