"""Files: uploading one to send (`attachment_upload`, and `prepare_uploads` for messageSend's `files`), finding one
to download with the viewer's token (`attachment_file`) or through a short-lived signed URL (`signed_query`,
`attachment_file_signed`)."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from banxway.auth import Permission
from banxway.db.models import Attachment
from banxway.errors import DomainError, PermissionDenied
from banxway.integrations.storage import attachment_path, store_attachment_bytes
from banxway.resolvers.signed_links import LinkExpired, LinkInvalid, LinkSigner

if TYPE_CHECKING:
    from banxway.context import Context, SystemContext


@dataclass(frozen=True)
class FileUpload:
    """A file as a client sent it (a raw POST /attachments body, or a part of a multipart GraphQL request)."""

    filename: str
    content_type: str
    data: bytes


# what an uploaded Content-Type is kept as: a bare media type (no parameters), else application/octet-stream
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")


# Shown in the page (`<img src>`, opened in a tab): raster images only. Everything else — HTML, SVG (it runs
# scripts), XML, PDF, text — is a download, so that a file a customer sent never runs as a page of this origin; and
# every answer is sandboxed by its own Content-Security-Policy besides (banxway.downloads). The one list: the
# attachment downloads, the web chat visitor's files (`inline`) and their downloads all use it.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"})


def media_type(content_type: str | None) -> str:
    """The bare, lower-case media type of a Content-Type (`text/plain; charset=utf-8` → `text/plain`)."""
    value = (content_type or "").split(";")[0].strip().lower()
    return value if _MEDIA_TYPE.fullmatch(value) else "application/octet-stream"


def _checked(ctx: Context, upload: FileUpload, field: str) -> FileUpload:
    """The upload with a safe name and type; INVALID or TOO_LARGE naming `field`. Writes nothing."""
    name = upload.filename.strip().replace("/", "_").replace("\\", "_")
    if not name or len(name) > 255 or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise DomainError(
            "INVALID",
            "The file needs a name of at most 255 characters, without control characters (raw uploads: "
            "?filename=; multipart: the part's filename).",
            field,
        )
    if not upload.data:
        raise DomainError("INVALID", f"The file {name!r} is empty.", field)
    limit = ctx.settings.attachment_max_bytes
    if len(upload.data) > limit:
        raise DomainError("TOO_LARGE", f"The file {name!r} is larger than the {limit}-byte limit.", field)
    return FileUpload(name, media_type(upload.content_type), upload.data)


async def prepare_uploads(ctx: Context, uploads: list[tuple[FileUpload, str]]) -> list[Attachment]:
    """Check every (upload, field) — the first bad one is a DomainError naming its field, and then nothing at all is
    written — then store their bytes. The rows are new and unlinked: the caller adds them in its own transaction
    (the send they go with), so that a failed send leaves no attachment behind."""
    viewer = ctx.require(Permission.MESSAGE_SEND)
    checked = [_checked(ctx, upload, field) for upload, field in uploads]
    rows = []
    for upload in checked:
        digest = await asyncio.to_thread(store_attachment_bytes, ctx.settings.data_dir, upload.data)
        rows.append(
            Attachment(
                organization_id=viewer.organization_id,
                filename=upload.filename,
                content_type=upload.content_type,
                size=len(upload.data),
                sha256=digest,
            )
        )
    return rows


async def attachment_upload(
    ctx: Context, *, filename: str, content_type: str, data: bytes, field: str = "file"
) -> Attachment:
    """Store a file to send (messageSend's attachmentIds) for a user who may send messages: POST /attachments and
    the attachmentUpload mutation. INVALID (no name, empty) or TOO_LARGE naming `field`; nothing written then."""
    [row] = await prepare_uploads(ctx, [(FileUpload(filename, content_type, data), field)])
    async with ctx.transaction() as session:
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


# -- signed download URLs -----------------------------------------------------------------------------------------
#
# `<img src>` and `<a href>` cannot send an Authorization header, so an attachment also downloads with
# `?expires=<unix time>&signature=<HMAC-SHA256>` (banxway.resolvers.signed_links): the MAC of (attachment id, its
# organization, expiry) under a key for this purpose only, so a link is good for that one file until it expires
# (BANXWAY_ATTACHMENT_URL_TTL).

ATTACHMENT_LINKS = LinkSigner(salt=b"banxway/attachment-urls/v1", info=b"banxway:attachment-urls")


def sign_attachment(secret_key: str, attachment_id: uuid.UUID, organization_id: uuid.UUID, expires: int) -> str:
    """The signature of a download link of the attachment valid until `expires` (unix seconds)."""
    return ATTACHMENT_LINKS.signature(secret_key, (attachment_id, organization_id), expires)


def signed_query(ctx: Context, attachment: Attachment) -> str:
    """`expires=...&signature=...` for a download link of `attachment`, valid for at most the configured time
    (the same link for a while: `LinkSigner.query`)."""
    fields = (attachment.id, attachment.organization_id)
    return ATTACHMENT_LINKS.query(ctx.state.secret_key, fields, ctx.settings.attachment_url_ttl_seconds)


EXPIRED_LINK = "This download link has expired; ask for a new one (Attachment.downloadUrl)."
INVALID_LINK = "This download link is not valid (it was altered, or is for another file)."


async def attachment_file_signed(
    ctx: SystemContext, attachment_id: uuid.UUID | None, expires: str | None, signature: str | None
) -> tuple[Attachment, Path, int] | None:
    """The attachment a signed link stands for, where its bytes are, and the seconds the link stays valid; None when
    the file is gone. PermissionDenied (with the reason) for a link that was altered, is for another attachment, or
    expired."""
    if attachment_id is None or not expires or not signature:
        raise PermissionDenied(INVALID_LINK)
    async with ctx.session() as session:  # across organizations: the signature says which one
        row = await session.get(Attachment, attachment_id)
    fields = (row.id, row.organization_id) if row is not None else ("-",)
    try:
        left = ATTACHMENT_LINKS.seconds_left(ctx.state.secret_key, fields, expires, signature)
    except LinkInvalid:
        raise PermissionDenied(INVALID_LINK) from None
    except LinkExpired:
        raise PermissionDenied(EXPIRED_LINK) from None
    if row is None:
        raise PermissionDenied(INVALID_LINK)
    path = attachment_path(ctx.settings.data_dir, row.sha256)
    return (row, path, left) if path.is_file() else None
