"""How a stored file is answered over HTTP, the same way wherever it is downloaded (`GET /attachments/{id}`,
a web chat visitor's `GET /widget/{key}/attachments/{id}`): as its bare media type (`media_type`), shown in the
page only for raster images (`INLINE_TYPES`), a download (`Content-Disposition: attachment`) for everything else,
never sniffed (`nosniff`), and sandboxed by its own Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse

from banxway.middleware import STRICT_POLICY
from banxway.resolvers.attachments import INLINE_TYPES, media_type

SANDBOX_POLICY = f"{STRICT_POLICY}; sandbox"


def sandboxed_file(
    path: Path,
    *,
    content_type: str | None,
    filename: str,
    max_age: int,
    opaque: bool = False,
    headers: dict[str, str] | None = None,
) -> FileResponse:
    """The file's answer, cacheable privately for `max_age` seconds (a signed link: no longer than it stays
    valid). `opaque`: what is not shown inline is served as application/octet-stream (a visitor's page never
    learns more than it shows). `headers`: added to these."""
    media = media_type(content_type)
    inline = media in INLINE_TYPES
    return FileResponse(
        path,
        media_type=media if inline or not opaque else "application/octet-stream",
        filename=filename,
        content_disposition_type="inline" if inline else "attachment",
        headers={
            "x-content-type-options": "nosniff",
            "cache-control": f"private, max-age={max_age}",
            "content-security-policy": SANDBOX_POLICY,
            **(headers or {}),
        },
    )
