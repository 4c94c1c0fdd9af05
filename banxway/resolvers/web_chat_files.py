"""Files an agent sends a web chat visitor (`messageSend(channel: WEB_CHAT, attachmentIds)`, within the WEB_CHAT row
of `media_limits`): what the visitor's API lists with each reply (`visitor_files`), and their download by that
visitor only (`visitor_file`). Visitors send no files.

A visitor downloads a file of their own conversation (an agent's WEB_CHAT reply of their current thread, once it is
SENT) at `GET /widget/<widgetKey>/attachments/<id>` (`banxway.webchat`), either

* with `Authorization: Bearer <visitor token>` (an API client), or
* through the link `visitorMessages` gives (`?visitor=&expires=&signature=`): what `<img src>` and `<a href>` use,
  as the widget's page cannot add a header to them. Its signature is the MAC of (attachment, visitor, expiry) under
  a key derived from BANXWAY_SECRET_KEY for this purpose only (not the key of `Attachment.downloadUrl`), valid for
  BANXWAY_ATTACHMENT_URL_TTL; at download the visitor must still exist, belong to the widget of the path, and have
  the file in their conversation. A link of one visitor opens no file of another, and no organization-wide link
  is ever given to a visitor.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from banxway.context import SystemContext
from banxway.db.models import Attachment, ChatVisitor, ChatWidget, Message
from banxway.db.session import system_session
from banxway.enums import Channel, Direction
from banxway.integrations.storage import attachment_path
from banxway.resolvers.attachments import INLINE_TYPES, media_type
from banxway.resolvers.inbox_events import to_global_id
from banxway.resolvers.signed_links import LinkExpired, LinkInvalid, LinkSigner
from banxway.resolvers.web_chat import VISIBLE_OUTBOUND, VisitorClaims

if TYPE_CHECKING:
    from banxway.state import AppState

# the visitor's links: bound to (attachment, visitor), under a key of their own (not Attachment.downloadUrl's)
VISITOR_LINKS = LinkSigner(salt=b"banxway/visitor-attachment-urls/v1", info=b"banxway:visitor-attachments")
_INVALID = "This download link is not valid (it was altered, or is for another file)."


class LinkRefused(Exception):
    """A download link that was altered, is for another file or visitor, or expired (403)."""


@dataclass(frozen=True)
class VisitorFile:
    id: str  # the attachment's global id
    message_id: uuid.UUID
    filename: str
    content_type: str
    size: int
    inline: bool
    path: str  # /widget/<key>/attachments/<id>?visitor=&expires=&signature= (the server's origin is prepended)


def _link(state: AppState, widget_key: str, attachment_id: uuid.UUID, visitor_id: uuid.UUID) -> str:
    """The visitor's download link, valid between 2/3 of BANXWAY_ATTACHMENT_URL_TTL and all of it (the same link
    for a while: the browser's cached image stays cached)."""
    ttl = state.settings.attachment_url_ttl_seconds
    query = VISITOR_LINKS.query(state.secret_key, (attachment_id, visitor_id), ttl)
    global_id = to_global_id("Attachment", attachment_id)
    return f"/widget/{widget_key}/attachments/{global_id}?visitor={visitor_id}&{query}"


def _theirs(thread_id: uuid.UUID) -> Any:
    """Attachments of the agents' visible WEB_CHAT replies on the visitor's thread (join Message first)."""
    return (
        (Message.thread_id == thread_id)
        & (Message.channel == Channel.WEB_CHAT)
        & (Message.direction == Direction.OUTBOUND)
        & Message.status.in_(VISIBLE_OUTBOUND)
    )


async def visitor_files(
    state: AppState, claims: VisitorClaims, message_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[VisitorFile]]:
    """The files of the given messages of the visitor's conversation (others are left out), by message, oldest
    first; two queries whatever the number of messages."""
    if not message_ids:
        return {}
    async with SystemContext(state, claims.organization_id).session() as session:
        found = (
            await session.execute(
                select(ChatVisitor.thread_id, ChatWidget.widget_key)
                .join(ChatWidget, ChatWidget.id == ChatVisitor.widget_id)
                .where(ChatVisitor.id == claims.visitor_id, ChatVisitor.widget_id == claims.widget_id)
            )
        ).first()
        if found is None or found[0] is None:
            return {}
        thread_id, widget_key = found
        rows = await session.scalars(
            select(Attachment)
            .join(Message, Message.id == Attachment.message_id)
            .where(Attachment.message_id.in_(message_ids), _theirs(thread_id))
            .order_by(Attachment.created_at, Attachment.id)
        )
        files: dict[uuid.UUID, list[VisitorFile]] = {}
        for row in rows:
            assert row.message_id is not None
            kind = media_type(row.content_type)
            files.setdefault(row.message_id, []).append(
                VisitorFile(
                    id=to_global_id("Attachment", row.id),
                    message_id=row.message_id,
                    filename=row.filename,
                    content_type=kind,
                    size=row.size,
                    inline=kind in INLINE_TYPES,
                    path=_link(state, widget_key, row.id, claims.visitor_id),
                )
            )
    return files


async def visitor_file(
    state: AppState,
    widget_key: str,
    attachment_id: uuid.UUID | None,
    *,
    claims: VisitorClaims | None = None,
    visitor: str | None = None,
    expires: str | None = None,
    signature: str | None = None,
) -> tuple[Attachment, Path, int] | None:
    """A file of the visitor's conversation, where its bytes are, and how long the browser may cache it: for the
    visitor of `claims` (a visitor token), or of a signed link (`visitor`, `expires`, `signature`; LinkRefused when
    it was altered or expired). None when there is no such file for this visitor on this widget."""
    if attachment_id is None:
        return None
    max_age = 3600
    if claims is None:
        try:
            visitor_id = uuid.UUID(visitor or "")
        except ValueError:
            raise LinkRefused(_INVALID) from None
        try:
            max_age = VISITOR_LINKS.seconds_left(state.secret_key, (attachment_id, visitor_id), expires, signature)
        except LinkInvalid:
            raise LinkRefused(_INVALID) from None
        except LinkExpired:
            raise LinkRefused("This download link has expired; reopen the chat for a new one.") from None
    else:
        visitor_id = claims.visitor_id
    async with system_session(state.sessionmaker) as session:  # the widget's key says which organization
        widget = (
            await session.execute(
                select(ChatWidget.id, ChatWidget.organization_id).where(ChatWidget.widget_key == widget_key[:64])
            )
        ).first()
    if widget is None or (claims is not None and claims.widget_id != widget[0]):
        return None
    async with SystemContext(state, widget[1]).session() as session:
        thread_id = await session.scalar(
            select(ChatVisitor.thread_id).where(ChatVisitor.id == visitor_id, ChatVisitor.widget_id == widget[0])
        )
        if thread_id is None:
            return None
        row = await session.scalar(
            select(Attachment)
            .join(Message, Message.id == Attachment.message_id)
            .where(Attachment.id == attachment_id, _theirs(thread_id))
        )
    if row is None:
        return None
    path = attachment_path(state.settings.data_dir, row.sha256)
    return (row, path, min(max_age, 3600)) if path.is_file() else None
