"""Attachment storage: files under the data directory, content-addressed by SHA-256 (the same file attached
twice is stored once), written atomically so that a reader never sees half a file."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path


def attachment_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "attachments" / sha256[:2] / sha256


def store_attachment_bytes(data_dir: Path, data: bytes) -> str:
    """Store `data`; its SHA-256 (hex), by which it is found again."""
    digest = hashlib.sha256(data).hexdigest()
    path = attachment_path(data_dir, digest)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{uuid.uuid4().hex}.part")
        partial.write_bytes(data)
        partial.replace(path)  # atomic: a reader never sees half a file
    return digest
