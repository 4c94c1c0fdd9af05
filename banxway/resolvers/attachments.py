"""Files: uploading one to send (`attachment_upload`), and finding one to download (`attachment_file`)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from banxway.auth import Permission
from banxway.db.models import Attachment
from banxway.errors import DomainError
from banxway.integrations.storage import attachment_path, store_attachment_bytes

if TYPE_CHECKING:
    from banxway.context import Context


async def attachment_upload(ctx: Context, *, filename: str, content_type: str, data: bytes) -> Attachment:
    """Store a file to send (messageSend's attachmentIds) for a user who may send messages."""
    viewer = ctx.require(Permission.MESSAGE_SEND)
    name = filename.strip().replace("/", "_").replace("\\", "_")
    if not name or len(name) > 255 or any(ord(c) < 32 for c in name):
        raise DomainError("INVALID", "Give the file's name as ?filename= (at most 255 characters).", "filename")
    if not data:
        raise DomainError("INVALID", "The file is empty.", "file")
    digest = await asyncio.to_thread(store_attachment_bytes, ctx.settings.data_dir, data)
    async with ctx.transaction() as session:
        row = Attachment(
            organization_id=viewer.organization_id,
            filename=name,
            content_type=content_type[:255] or "application/octet-stream",
            size=len(data),
            sha256=digest,
        )
        session.add(row)
        await session.flush()
    return row


async def attachment_file(ctx: Context, attachment_id: uuid.UUID | None) -> tuple[Attachment, Path] | None:
    """An attachment of the viewer's organization and where its bytes are; None when there is no such file."""
    ctx.require(Permission.READ)
    row = await ctx.db.session.get(Attachment, attachment_id) if attachment_id is not None else None
    if row is None:
        return None
    path = attachment_path(ctx.settings.data_dir, row.sha256)
    return (row, path) if path.is_file() else None
