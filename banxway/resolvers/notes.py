"""Internal notes on a thread, with @mentions that notify colleagues: added, edited by their author, deleted by
their author or a moderator (NOTE_MODERATE: ADMIN, MANAGER)."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from banxway import events
from banxway.auth import Permission
from banxway.db.models import (
    Note,
    Notification,
    Thread,
    User,
)
from banxway.enums import (
    NotificationType,
)
from banxway.errors import DomainError, PermissionDenied
from banxway.events import NoteAdded, NoteDeleted, NoteUpdated
from banxway.resolvers import validation as v
from banxway.resolvers.common import active_user, get_or_error

if TYPE_CHECKING:
    from banxway.context import Context, Viewer

from banxway.resolvers.notifications import notify

_MENTION = re.compile(r"(?<![\w.])@([\w.+-]+@[\w-]+(?:\.[\w-]+)+)")
_MAX_BODY = 100_000


async def _mentions(
    session: AsyncSession, body: str, mentioned_user_ids: list[uuid.UUID] | None, *, field: str = "mentionedUserIds"
) -> list[uuid.UUID]:
    """The users a note mentions: the given ids (active users, else an error naming `field.<index>`), then every
    `@email` of an active colleague in the body, each once, in that order."""
    mentioned: list[uuid.UUID] = []
    for index, user_id in enumerate(mentioned_user_ids or []):
        user = await active_user(session, user_id, f"{field}.{index}")
        if user.id not in mentioned:
            mentioned.append(user.id)
    for user_id in await _body_mentions(session, body):
        if user_id not in mentioned:
            mentioned.append(user_id)
    return mentioned


async def _body_mentions(session: AsyncSession, body: str) -> list[uuid.UUID]:
    emails = {match.lower() for match in _MENTION.findall(body or "")}
    if not emails:
        return []
    query = select(User.id).where(User.email.in_(emails), User.active.is_(True)).order_by(User.email)
    return list(await session.scalars(query))


async def _notify_mentioned(
    ctx: Context, session: AsyncSession, thread: Thread, note: Note, user_ids: list[uuid.UUID]
) -> None:
    viewer = ctx.viewer
    await notify(
        session,
        thread,
        user_ids,
        NotificationType.MENTION,
        f"{viewer.name} mentioned you on {thread.reference}: {note.body}",
        actor_id=viewer.user_id,
        note_id=note.id,
    )


async def note_add(
    ctx: Context, *, thread_id: uuid.UUID | None, body: str, mentioned_user_ids: list[uuid.UUID] | None = None
) -> Note:
    """An internal note. Mentions: the given user ids, plus every `@email` of a colleague in the body."""
    viewer = ctx.require(Permission.NOTE_ADD)
    clean = v.text(body, "body", max_length=_MAX_BODY, required=True)
    async with ctx.transaction() as session:
        thread = await get_or_error(session, Thread, thread_id, "threadId", lock=True, label="thread")
        mentioned = await _mentions(session, clean or "", mentioned_user_ids)
        note = await add_note(session, thread, author_id=viewer.user_id, body=clean or "", mentioned_user_ids=mentioned)
        await _notify_mentioned(ctx, session, thread, note, mentioned)
    return note


async def add_note(
    session: AsyncSession,
    thread: Thread,
    *,
    author_id: uuid.UUID | None,
    body: str,
    mentioned_user_ids: list[uuid.UUID] | None = None,
) -> Note:
    """The one write of a note and its NOTE_ADDED (by its author), in the caller's transaction: noteAdd, and an
    agent task's answer posted for whoever asked for it."""
    mentioned = list(mentioned_user_ids or [])
    note = Note(
        organization_id=thread.organization_id,
        thread_id=thread.id,
        author_id=author_id,
        body=body,
        mentioned_user_ids=mentioned,
    )
    session.add(note)
    await session.flush()
    events.record(
        session,
        NoteAdded(thread_id=thread.id, note_id=note.id, mentioned_user_ids=mentioned),
        organization_id=thread.organization_id,
        actor_id=author_id,
    )
    return note


async def _live_note(session: AsyncSession, note_id: uuid.UUID | None) -> Note:
    """The note, locked; a deleted one is NOT_FOUND, as one that never was."""
    note = await get_or_error(session, Note, note_id, "noteId", lock=True, label="note")
    if note.deleted_at is not None:
        raise DomainError("NOT_FOUND", "No such note.", "noteId")
    return note


def _may_write(viewer: Viewer, note: Note, *, moderate: bool) -> None:
    """The author may change their own note (with NOTE_ADD); anyone else only delete it, with NOTE_MODERATE."""
    if note.author_id == viewer.user_id:
        if not viewer.can(Permission.NOTE_ADD):
            raise PermissionDenied(f"Role {viewer.role.name} may not {Permission.NOTE_ADD.value}")
        return
    if not moderate:
        raise PermissionDenied("Only its author may edit a note")
    if not viewer.can(Permission.NOTE_MODERATE):
        raise PermissionDenied("Only its author, an ADMIN or a MANAGER may delete a note")


async def note_update(
    ctx: Context, *, note_id: uuid.UUID | None, body: str, mentioned_user_ids: list[uuid.UUID] | None = None
) -> Note:
    """The author's new text for their note. Mentions are read again from it: `@email`s in the new body, plus the
    given user ids (left out: the ones given before, which the old body did not name). Only users the note never
    mentioned before are notified; `editedAt` is set when the text or the mentions changed (NOTE_UPDATED)."""
    viewer = ctx.require(Permission.NOTE_ADD)
    clean = v.text(body, "body", max_length=_MAX_BODY, required=True) or ""
    async with ctx.transaction() as session:
        note = await _live_note(session, note_id)
        _may_write(viewer, note, moderate=False)
        if mentioned_user_ids is None:  # keep those mentioned by id, not by the old body
            named = set(await _body_mentions(session, note.body))
            kept = [user_id for user_id in note.mentioned_user_ids if user_id not in named]
            mentioned_user_ids = list(
                await session.scalars(select(User.id).where(User.id.in_(kept), User.active.is_(True)))
            )
            mentioned_user_ids.sort(key=kept.index)
        mentioned = await _mentions(session, clean, mentioned_user_ids)
        changed = [
            name
            for name, old, new in (
                ("body", note.body, clean),
                ("mentioned_user_ids", sorted(note.mentioned_user_ids), sorted(mentioned)),
            )
            if old != new
        ]
        if not changed:
            return note
        already = set(note.mentioned_user_ids)
        already |= set(
            await session.scalars(
                select(Notification.user_id).where(
                    Notification.note_id == note.id, Notification.type == NotificationType.MENTION
                )
            )
        )
        note.body = clean
        note.mentioned_user_ids = mentioned
        note.edited_at = func.now()
        await session.flush()
        await session.refresh(note, ["edited_at"])
        ctx.record(session, NoteUpdated(thread_id=note.thread_id, note_id=note.id, changed=changed))
        newly = [user_id for user_id in mentioned if user_id not in already]
        if newly:
            thread = await get_or_error(session, Thread, note.thread_id, "noteId", label="thread")
            await _notify_mentioned(ctx, session, thread, note, newly)
    return note


async def note_delete(ctx: Context, *, note_id: uuid.UUID | None) -> Note:
    """Delete a note: by its author, or by a moderator (NOTE_MODERATE). The row stays, so that the events and
    notifications that name it stay consistent, but its body and mentions are cleared and it is gone from the
    thread's notes and from `node` (NOTE_DELETED)."""
    viewer = ctx.viewer
    if not (viewer.can(Permission.NOTE_ADD) or viewer.can(Permission.NOTE_MODERATE)):
        ctx.require(Permission.NOTE_ADD)  # raises, naming the permission
    async with ctx.transaction() as session:
        note = await _live_note(session, note_id)
        _may_write(viewer, note, moderate=True)
        note.body = ""
        note.mentioned_user_ids = []
        note.deleted_at = func.now()
        await session.flush()
        await session.refresh(note, ["deleted_at"])
        ctx.record(session, NoteDeleted(thread_id=note.thread_id, note_id=note.id))
    return note
