"""Internal notes on a thread, with @mentions that notify colleagues."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select

from banxway.auth import Permission
from banxway.db.models import (
    Note,
    Thread,
    User,
)
from banxway.enums import (
    NotificationType,
)
from banxway.events import NoteAdded
from banxway.resolvers import validation as v
from banxway.resolvers.common import active_user, get_or_error

if TYPE_CHECKING:
    from banxway.context import Context

from banxway.resolvers.notifications import notify

_MENTION = re.compile(r"(?<![\w.])@([\w.+-]+@[\w-]+(?:\.[\w-]+)+)")


async def note_add(
    ctx: Context, *, thread_id: uuid.UUID | None, body: str, mentioned_user_ids: list[uuid.UUID] | None = None
) -> Note:
    """An internal note. Mentions: the given user ids, plus every `@email` of a colleague in the body."""
    viewer = ctx.require(Permission.NOTE_ADD)
    clean = v.text(body, "body", max_length=100_000, required=True)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
        mentioned: list[uuid.UUID] = []
        for index, user_id in enumerate(mentioned_user_ids or []):
            user = await active_user(session, user_id, f"mentionedUserIds.{index}")
            if user.id not in mentioned:
                mentioned.append(user.id)
        emails = {match.lower() for match in _MENTION.findall(clean or "")}
        if emails:
            for user_id in await session.scalars(select(User.id).where(User.email.in_(emails), User.active.is_(True))):
                if user_id not in mentioned:
                    mentioned.append(user_id)
        note = Note(
            organization_id=viewer.organization_id,
            thread_id=thread.id,
            author_id=viewer.user_id,
            body=clean,
            mentioned_user_ids=mentioned,
        )
        session.add(note)
        await session.flush()
        ctx.record(session, NoteAdded(thread_id=thread.id, note_id=note.id, mentioned_user_ids=mentioned))
        await notify(
            session,
            thread,
            mentioned,
            NotificationType.MENTION,
            f"{viewer.name} mentioned you on {thread.reference}: {clean}",
            actor_id=viewer.user_id,
            note_id=note.id,
        )
    return note
