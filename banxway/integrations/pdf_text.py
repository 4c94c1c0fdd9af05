"""A shipment document's text: pypdf's text layer for PDFs, plain text as it is, nothing for images (`read_text`).

Bytes in, our own dataclass out: no database, no files, no network. Bounded: at most `max_pages` pages are read and
at most `max_chars` characters kept, and a file pypdf cannot open (encrypted with a password, broken) gives FAILED
with the reason, never an exception. Scanned images (and PDFs of scans, with no text layer) give NO_TEXT: OCR
through an external service is a later option.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from typing import Literal

from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PyPdfError

TextState = Literal["EXTRACTED", "NO_TEXT", "FAILED"]

# pypdf logs every oddity of a broken file as a warning; the outcome is reported in the result instead
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True, slots=True)
class DocumentText:
    state: TextState
    text: str | None  # None unless EXTRACTED
    pages: int | None  # the PDF's page count (all of them, also those past the limit)
    error: str | None  # why there is no text (FAILED, NO_TEXT), or what was cut (EXTRACTED past a limit)


def _kind(content_type: str, filename: str, data: bytes) -> str:
    name = filename.lower()
    media = content_type.lower()
    if media == "application/pdf" or name.endswith(".pdf") or data[:5] == b"%PDF-":
        return "pdf"
    if media.startswith("image/"):
        return "image"
    if media.startswith("text/") or name.endswith((".txt", ".csv")):
        return "text"
    return "other"


def _clean(text: str) -> str:
    """No NUL (PostgreSQL text cannot hold one), no trailing blanks, at most two newlines in a row."""
    text = text.replace("\x00", "")
    text = re.sub(r"[ \t\r\f\v]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _pdf_text(data: bytes, max_pages: int, max_chars: int) -> DocumentText:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # an owner password only (printing, copying) still opens with ""
            except (NotImplementedError, PyPdfError) as exc:
                return DocumentText("FAILED", None, None, f"The PDF is encrypted and could not be opened: {exc}")
            if not opened:
                return DocumentText("FAILED", None, None, "The PDF is protected by a password.")
        count = len(reader.pages)
        parts: list[str] = []
        size = 0
        for page in reader.pages[:max_pages]:
            part = page.extract_text() or ""
            parts.append(part)
            size += len(part)
            if size >= max_chars:
                break
    except FileNotDecryptedError:
        return DocumentText("FAILED", None, None, "The PDF is protected by a password.")
    except RecursionError:
        return DocumentText("FAILED", None, None, "The PDF could not be read: its structure nests too deeply.")
    except Exception as exc:  # pypdf raises many kinds on a broken file (PdfReadError, ValueError, KeyError, ...)
        detail = str(exc).strip() or type(exc).__name__
        return DocumentText("FAILED", None, None, f"The PDF could not be read: {detail[:300]}")
    text = _clean("\n\n".join(parts))
    if not text:
        return DocumentText("NO_TEXT", None, count, "The PDF has no text layer (a scan?); OCR is not done here.")
    notes = []
    if count > max_pages:
        notes.append(f"only the first {max_pages} of {count} pages were read")
    if len(text) > max_chars:
        text = text[:max_chars]
        notes.append(f"the text was cut at {max_chars} characters")
    return DocumentText("EXTRACTED", text, count, "; ".join(notes).capitalize() + "." if notes else None)


def read_text(data: bytes, content_type: str, filename: str, *, max_pages: int, max_chars: int) -> DocumentText:
    """The text of a document's file (see the module docstring)."""
    kind = _kind(content_type, filename, data)
    if kind == "pdf":
        return _pdf_text(data, max_pages, max_chars)
    if kind == "text":
        text = _clean(data[: max_chars * 4].decode("utf-8", errors="replace"))[:max_chars]
        if not text:
            return DocumentText("NO_TEXT", None, None, "The file is empty.")
        return DocumentText("EXTRACTED", text, None, None)
    if kind == "image":
        return DocumentText("NO_TEXT", None, None, "An image has no text layer; OCR is not done here.")
    return DocumentText("NO_TEXT", None, None, f"No text is read from {content_type or 'this kind of file'}.")
