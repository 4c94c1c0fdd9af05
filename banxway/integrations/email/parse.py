"""Turn the raw bytes of one RFC 5322 message into a `ParsedEmail`.

A pure module: no I/O, no database, no settings. The MIME structure comes from
the standard library (`BytesParser(policy=email.policy.default)`), the HTML is
sanitised with nh3, and everything else (header decoding, charsets, address and
Message-ID extraction, the reply/quote split) is done here, defensively: real
mail is broken, so every step falls back to something usable and notes what it
had to repair in `ParsedEmail.defects`. `parse_email` raises nothing but
`MalformedEmail`, and that only for bytes that are plainly not an email.

Decoded strings never contain NUL characters or lone surrogates (PostgreSQL
text columns accept neither); attachment bytes are kept exactly as decoded.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import io
import mimetypes
import quopri
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email import policy as email_policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import TypeVar

import nh3

__all__ = [
    "DEFAULT_MAX_ATTACHMENT_BYTES",
    "NESTED_MESSAGE_DEPTH_LIMIT",
    "MalformedEmail",
    "ParsedAttachment",
    "ParsedEmail",
    "SkippedAttachment",
    "html_to_text",
    "parse_email",
    "reply_part",
    "sanitize_html",
]

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
NESTED_MESSAGE_DEPTH_LIMIT = 3
# Deeper multipart nesting than this is not walked (a defect says so); real mail stays far below it.
_MULTIPART_DEPTH_LIMIT = 32
_MAX_FILENAME_CHARS = 255

_T = TypeVar("_T")


# --- the result ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str  # sanitised: no path separators, no control chars; "attachment-N.ext" when missing
    content_type: str  # e.g. "application/pdf"
    data: bytes = field(repr=False)
    content_id: str | None  # for inline parts, without the angle brackets (matches `cid:` urls)
    inline: bool

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class SkippedAttachment:
    filename: str
    content_type: str
    size: int
    reason: str  # e.g. "larger than the 10485760-byte limit"


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str | None  # normalised "<local@domain>", None when missing/unparseable
    in_reply_to: list[str]  # normalised message-ids
    references: list[str]  # normalised message-ids, in order, deduplicated
    subject: str  # decoded (RFC 2047), "" when missing
    from_address: str | None  # lower-cased addr-spec, None when missing/unparseable
    from_name: str | None
    to: list[str]  # lower-cased addr-specs
    cc: list[str]
    reply_to: list[str]
    date: datetime | None  # aware datetime, None when missing/bad
    text: str  # the text/plain body, or text derived from the HTML body when there is no text part
    html: str | None  # the HTML body sanitised with nh3
    reply_text: str  # `text` without quoted history and signature; never "" when `text` is not
    headers: dict[str, list[str]]  # every header, name lower-cased, values decoded to str
    attachments: list[ParsedAttachment]
    skipped_attachments: list[SkippedAttachment]
    nested_messages: list[ParsedEmail]  # message/rfc822 parts, parsed recursively (depth limit 3)
    content_hash: str  # sha256 hex of from, date header, subject and text: dedupes mail without Message-ID
    defects: list[str]  # human-readable MIME defects (every part) and repairs, for the quarantine view


class MalformedEmail(ValueError):
    """The bytes cannot be used as an email at all (e.g. empty, not a message, no headers and no body).

    The message says why.
    """


# --- small helpers -------------------------------------------------------------------------------


def _attempt(fn: Callable[[], _T], default: _T) -> _T:
    """`fn()`, or `default` when it raises: the standard library's email code has odd corners."""
    try:
        return fn()
    except Exception:
        return default


def _scrub(text: str) -> str:
    """No NUL characters, no lone surrogates (neither survives a PostgreSQL text column)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --- charsets ------------------------------------------------------------------------------------

# Names that mean "unknown" rather than a charset.
_UNKNOWN_CHARSETS = {"", "unknown", "unknown-8bit", "x-unknown", "x-user-defined", "default", "none", "charset"}
# Labels that mail software uses loosely for a superset (as browsers do, per the WHATWG encoding standard).
_CHARSET_SUPERSETS = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-8-i": "iso8859-8",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "big5": "big5hkscs",
}
# Codecs that are text encodings in Python's registry but no charset a message may declare.
_REFUSED_CODECS = {"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined", "rot-13", "mbcs", "oem"}
# ASCII-compatible single-byte charsets: bytes that are valid UTF-8 under such a label are UTF-8.
_SINGLE_BYTE_PREFIXES = ("ascii", "iso8859", "cp125", "cp437", "cp850", "cp874", "latin", "koi8", "mac-")


def _codec_name(charset: str | None) -> str | None:
    """Python's codec name for a declared charset, or None when it is unknown or refused."""
    if charset is None:
        return None
    label = charset.strip().strip("\"'").strip().lower()
    if label in _UNKNOWN_CHARSETS:
        return None
    label = _CHARSET_SUPERSETS.get(label, label)
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError, TypeError):
        return None
    if name.replace("_", "-") in _REFUSED_CODECS:
        return None
    return name


def _mostly_utf8(data: bytes) -> str | None:
    """`data` as UTF-8 with replacement characters, when its valid multi-byte sequences outnumber the bad bytes."""
    text = data.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
    return text if good > bad else None


def _decode_bytes(data: bytes, charset: str | None = None) -> tuple[str, str | None]:
    """Decode `data` declared as `charset`; returns the text and a note when the declaration was not followed.

    Never raises. The declared charset is used when the bytes are valid in it; bytes that are valid UTF-8 under
    an ASCII-compatible single-byte label are taken as UTF-8 (the commonest mislabelling); otherwise UTF-8, then
    windows-1252, then latin-1 (which cannot fail). Text that is UTF-8 but for a few bad bytes, or in a declared
    multi-byte charset but for a few bad bytes, is decoded with replacement characters instead.
    """
    declared = None if charset is None else charset.strip().strip("\"'").strip()
    name = _codec_name(declared)
    if name is None:
        unknown = f"unknown charset {declared!r}" if declared else "no charset"
        if data.isascii():
            return _scrub(data.decode("ascii")), None
        try:
            return _scrub(data.decode("utf-8")), f"{unknown}; decoded as utf-8" if declared else None
        except UnicodeDecodeError:
            pass
        text = _mostly_utf8(data)
        if text is not None:
            return _scrub(text), f"{unknown}; decoded as utf-8, invalid bytes replaced"
        for fallback in ("cp1252", "latin-1"):
            try:
                text = data.decode(fallback)
            except UnicodeDecodeError:
                continue
            return _scrub(text), f"{unknown}; decoded as {fallback}" if declared else None
        raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover
    if name != "utf-8" and name.startswith(_SINGLE_BYTE_PREFIXES) and not data.isascii():
        try:
            return _scrub(data.decode("utf-8")), f"declared charset {declared!r} but the bytes are UTF-8"
        except UnicodeDecodeError:
            pass
    text = _attempt(lambda: data.decode(name), None)  # odd codecs raise UnicodeError or ValueError too
    if text is not None:
        return _scrub(text), None
    if name != "utf-8":
        try:
            return _scrub(data.decode("utf-8")), f"bytes are not valid {declared!r}; decoded as utf-8"
        except UnicodeDecodeError:
            pass
    if name != "utf-8" and not name.startswith(_SINGLE_BYTE_PREFIXES):
        text = _attempt(lambda: data.decode(name, "replace"), None)
        if text is not None:
            return _scrub(text), f"bytes are not valid {declared!r}; invalid bytes replaced"
    text = _mostly_utf8(data)
    if text is not None:
        return _scrub(text), f"bytes are not valid {declared!r}; decoded as utf-8, invalid bytes replaced"
    for fallback in ("cp1252", "latin-1"):
        try:
            text = data.decode(fallback)
        except UnicodeDecodeError:
            continue
        return _scrub(text), f"bytes are not valid {declared!r}; decoded as {fallback}"
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


# --- headers -------------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_FOLD = re.compile(r"\r?\n[ \t]+|[ \t]*\r?\n[ \t]*")
_QP_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def _raw_to_str(value: str) -> str:
    """A header value as stored by the parser (8-bit bytes as surrogate escapes) as real text."""
    if value.isascii():
        if "\x1b" in value:  # raw ISO-2022-JP (7-bit, escape sequences), still sent by Japanese mailers
            return _attempt(lambda: value.encode("ascii").decode("iso2022_jp"), value)
        return value
    raw = value.encode("utf-8", "surrogateescape")
    return _decode_bytes(raw)[0]


def _decode_encoded_word(encoding: str, text: str) -> bytes | None:
    payload = text.encode("utf-8", "surrogateescape")
    if encoding in "qQ":
        return _QP_HEX.sub(lambda m: bytes([int(m[1], 16)]), payload.replace(b"_", b" "))
    payload = _NOT_BASE64.sub(b"", payload)
    payload += b"=" * (-len(payload) % 4)
    try:
        return base64.b64decode(payload)
    except (binascii.Error, ValueError):
        return None


def _decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words leniently.

    Adjacent encoded words in one charset are joined before decoding (a multi-byte character may be split
    between them), whitespace between encoded words is dropped, and words that cannot be decoded stay as
    they were.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending_charset: str | None = None
    pending = bytearray()
    pos = 0

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset is not None:
            out.append(_decode_bytes(bytes(pending), pending_charset.split("*", 1)[0])[0])
            pending.clear()
            pending_charset = None

    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        charset, encoding, text = match.groups()
        decoded = _decode_encoded_word(encoding, text)
        if decoded is None:  # not decodable: keep the word as text
            flush()
            out.append(between + match.group(0))
        elif pending_charset is not None and not between.strip():
            if charset.lower() == pending_charset.lower():
                pending.extend(decoded)
            else:
                flush()
                pending_charset = charset
                pending.extend(decoded)
        else:
            flush()
            out.append(between)
            pending_charset = charset
            pending.extend(decoded)
        pos = match.end()
    flush()
    out.append(value[pos:])
    return "".join(out)


def _unfold(value: str) -> str:
    return _FOLD.sub(" ", value).replace("\r", " ").replace("\n", " ")


def _header_text(raw_value: str) -> str:
    """A raw header value decoded for display: 8-bit bytes guessed, unfolded, encoded words decoded."""
    return _scrub(_decode_words(_unfold(_raw_to_str(raw_value))).strip())


def _raw_headers(msg: Message) -> list[tuple[str, str]]:
    return _attempt(lambda: [(str(name), str(value)) for name, value in msg.raw_items()], [])


def _first_raw(msg: Message, name: str) -> str | None:
    name = name.lower()
    for key, value in _raw_headers(msg):
        if key.lower() == name:
            return value
    return None


# --- addresses, message-ids, dates ----------------------------------------------------------------

_ADDR_SPEC = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+")
_BRACKETED_ADDR = re.compile(r"<\s*([^<>\s]+@[^<>\s]+)\s*>")
_MESSAGE_ID_BRACKETED = re.compile(r"<([^<>]*)>")


def _valid_addr(addr: str) -> str | None:
    addr = addr.strip().strip("<>").strip().lower()
    if not _ADDR_SPEC.fullmatch(addr):
        return None
    local, _, domain = addr.rpartition("@")
    if not local or not domain or domain.startswith(".") or domain.endswith("."):
        return None
    return addr


def _addresses(raw_values: list[str]) -> list[tuple[str | None, str]]:
    """(display name, lower-cased addr-spec) pairs from raw header values; unparseable entries are dropped."""
    result: list[tuple[str | None, str]] = []
    for raw_value in raw_values:
        value = _scrub(_unfold(_raw_to_str(raw_value)))
        pairs = _attempt(lambda value=value: getaddresses([value]), [])
        found: list[tuple[str | None, str]] = []
        for name, addr in pairs:
            clean = _valid_addr(addr)
            if clean is None:
                continue
            display = _scrub(_decode_words(name)).strip().strip("\"'").strip() or None
            found.append((display, clean))
        if not found:  # the parser gave up: take what looks like an address
            candidates = _BRACKETED_ADDR.findall(value) or _ADDR_SPEC.findall(value)
            found = [(None, clean) for clean in map(_valid_addr, candidates) if clean]
        result.extend(found)
    return result


def _message_ids(raw_value: str | None) -> list[str]:
    if raw_value is None:
        return []
    value = _raw_to_str(raw_value)
    ids = ["<" + re.sub(r"\s+", "", inner) + ">" for inner in _MESSAGE_ID_BRACKETED.findall(value)]
    ids = [mid for mid in ids if mid != "<>"]
    if not ids and "<" not in value:  # some mailers leave out the angle brackets
        ids = [f"<{token}>" for token in re.split(r"[\s,]+", value) if "@" in token.strip("\"'")]
    return _dedupe(_scrub(mid) for mid in ids)


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except Exception:
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000": the time is UTC, the zone unknown
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


# --- HTML ----------------------------------------------------------------------------------------

_HTML_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "tfoot", "u", "center"}
_HTML_ATTRIBUTES: dict[str, set[str]] = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
for _tag, _attrs in {
    "*": {"style", "title", "dir", "lang", "align"},
    "table": {"border", "cellpadding", "cellspacing", "width", "height", "bgcolor"},
    "td": {"width", "height", "valign", "bgcolor", "nowrap"},
    "th": {"width", "height", "valign", "bgcolor", "nowrap"},
    "tr": {"valign", "bgcolor", "height"},
    "col": {"width"},
    "img": {"title", "border"},
    "a": {"title", "name"},
    "font": {"color", "face", "size"},
}.items():
    _HTML_ATTRIBUTES.setdefault(_tag, set()).update(_attrs)
_HTML_URL_SCHEMES = set(nh3.ALLOWED_URL_SCHEMES) | {"cid"}
# Formatting only: no property that can load a url (background, list-style, content, ...).
_HTML_STYLE_PROPERTIES = {
    "color",
    "background-color",
    "font",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "text-align",
    "text-decoration",
    "text-indent",
    "text-transform",
    "vertical-align",
    "white-space",
    "line-height",
    "letter-spacing",
    "width",
    "height",
    "max-width",
    "min-width",
    "margin",
    "margin-top",
    "margin-bottom",
    "margin-left",
    "margin-right",
    "padding",
    "padding-top",
    "padding-bottom",
    "padding-left",
    "padding-right",
    "border",
    "border-top",
    "border-bottom",
    "border-left",
    "border-right",
    "border-collapse",
    "border-color",
    "border-style",
    "border-width",
    "display",
}


def sanitize_html(html: str) -> str:
    """The HTML with scripts, event handlers, javascript: urls and remote-loading styles removed.

    Basic formatting, links, tables and inline `cid:` images are kept.
    """
    return nh3.clean(
        _scrub(html),
        tags=_HTML_TAGS,
        clean_content_tags={"script", "style", "title"},
        attributes=_HTML_ATTRIBUTES,
        url_schemes=_HTML_URL_SCHEMES,
        filter_style_properties=_HTML_STYLE_PROPERTIES,
        strip_comments=True,
        link_rel="noopener noreferrer",
    )


class _HTMLText(HTMLParser):
    """Collects the visible text; block elements ask for line breaks, which are written before the next text."""

    _PARAGRAPH = {"blockquote", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "ol", "p", "pre", "table", "ul"}
    _LINE = {"address", "article", "dd", "div", "dt", "footer", "header", "hr", "li", "section", "tr"}
    _CELL = {"td", "th"}
    _SKIP = {"script", "style", "title", "head", "template", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping: list[str] = []
        self.pre = 0
        self.newlines = 0  # line breaks asked for before the next text
        self.prefix = ""  # written before the next text on its line ("- " for a list item, a tab between cells)

    def _ask(self, newlines: int) -> None:
        self.newlines = max(self.newlines, newlines)
        self.prefix = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":  # a <head> that was never closed ends here
            self.skipping = [t for t in self.skipping if t in {"script", "style"}]
        if tag in self._SKIP:
            self.skipping.append(tag)
        elif tag == "br":
            self.newlines += 1
            self.prefix = ""
        elif tag in self._PARAGRAPH:
            self._ask(2)
        elif tag in self._LINE:
            self._ask(1)
            if tag == "li":
                self.prefix = "- "
        elif tag in self._CELL and self.out and not self.newlines:
            self.prefix = "\t"
        if tag == "pre":
            self.pre += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self._SKIP:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            if tag in self.skipping:
                while self.skipping and self.skipping.pop() != tag:
                    pass
        elif tag in self._PARAGRAPH:
            self._ask(2)
        elif tag in self._LINE:
            self._ask(1)
        if tag == "pre" and self.pre:
            self.pre -= 1

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
            if self.newlines or not self.out or self.out[-1].endswith("\n"):
                data = data.lstrip()
        if not data:
            return
        if self.out and self.newlines:
            self.out.append("\n" * self.newlines)
        self.out.append(self.prefix + data)
        self.newlines = 0
        self.prefix = ""


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body: block elements become line breaks, scripts and styles vanish."""
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
        raw = "".join(parser.out)
    except Exception:
        raw = re.sub(r"<[^>]*>", " ", html)
    lines = [re.sub(r"[ \u00a0]+", " ", line).strip(" ") for line in raw.replace("\r", "").split("\n")]
    lines = [re.sub(r" ?\t ?", "\t", line).strip() for line in lines]
    return _scrub(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip())


# --- the reply without its history ----------------------------------------------------------------

_ON_WROTE_START = re.compile(r"^\s*(On|Am|Le|El|Op|Il)\s", re.IGNORECASE)
_ON_WROTE = re.compile(
    r"^\s*(?:On\s.+\swrote|Am\s.+\sschrieb|Le\s.+\sa\s+écrit|El\s.+\sescribió|Op\s.+\sschreef|Il\s.+\sha\s+scritto)\s*:\s*$",
    re.IGNORECASE | re.DOTALL,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|Messaggio originale)"
    r"\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(?:From|Von|De|Da)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_SENT = re.compile(r"^\s*\*?(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado|Inviato)\s*:\*?\s*\S", re.IGNORECASE)
_SEPARATOR_LINE = re.compile(r"^\s*_{8,}\s*$")


def _quote_header_at(lines: list[str], index: int) -> bool:
    line = lines[index]
    if line.lstrip().startswith(">"):
        return False
    if _ORIGINAL_MESSAGE.match(line):
        return True
    if _HEADER_FROM.match(line) and any(_HEADER_SENT.match(following) for following in lines[index + 1 : index + 5]):
        return True
    if _ON_WROTE_START.match(line):
        for span in (1, 2, 3):
            candidate = " ".join(part.strip() for part in lines[index : index + span])
            if len(candidate) <= 500 and _ON_WROTE.match(candidate):
                return True
    return False


def reply_part(text: str) -> str:
    """`text` without the quoted history and the trailing signature; `text` itself when nothing would be left."""
    lines = text.split("\n")
    for index in range(len(lines)):
        if _quote_header_at(lines, index):
            cut = index
            previous = cut - 1
            while previous >= 0 and not lines[previous].strip():
                previous -= 1
            if previous >= 0 and _SEPARATOR_LINE.match(lines[previous]):
                cut = previous
            lines = lines[:cut]
            break
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
        lines.pop()
    for index in range(len(lines) - 1, -1, -1):
        if lines[index] == "-- " or (lines[index].rstrip() == "--" and len(lines) - index <= 12):
            lines = lines[:index]
            break
    reply = "\n".join(lines).strip("\n").rstrip()
    return reply if reply.strip() else text


# --- the MIME walk -------------------------------------------------------------------------------

_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/octet-stream": ".bin",
    "application/ics": ".ics",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "text/calendar": ".ics",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/csv": ".csv",
}
_MIMETYPES = mimetypes.MimeTypes()  # the built-in table only, not the host's /etc/mime.types: stable names


def _extension(content_type: str) -> str:
    return _EXTENSIONS.get(content_type) or _attempt(lambda: _MIMETYPES.guess_extension(content_type), None) or ".bin"


_PATH_LIKE = re.compile(r"^[A-Za-z]:[\\/]|^[\\/]|(?:^|[\\/])\.\.(?:[\\/]|$)|[\\/].*[\\/]")


def _clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    name = _decode_words(name) if "=?" in name else name
    name = unicodedata.normalize("NFC", _scrub(name))
    if _PATH_LIKE.search(name):  # a client sent its local path: keep the last component
        name = re.split(r"[\\/]", name)[-1]
    name = name.replace("/", "_").replace("\\", "_")  # "B/L 4471.pdf" is a name, not a path
    name = "".join(ch for ch in name if unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
    name = re.sub(r"\s+", " ", name).strip().strip(".").strip()
    if not name:
        return None
    if len(name) > _MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        ext = dot + ext if dot and len(ext) <= 16 else ""
        name = (stem if ext else name)[: _MAX_FILENAME_CHARS - len(ext)].rstrip() + ext
    return name


@dataclass
class _PartInfo:
    content_type: str
    charset: str | None
    disposition: str | None
    filename: str | None
    content_id: str | None
    transfer_encoding: str


def _param(header_msg: Message, header: str, name: str) -> str | None:
    """A parameter, preferring the RFC 2231 form (`name*=`) over a plain one, decoded to str."""
    params = _attempt(lambda: header_msg.get_params(header=header) or [], [])
    plain: str | None = None
    for key, value in params[1:]:
        if key.lower() != name:
            continue
        if isinstance(value, tuple):
            charset, _language, text = value
            raw = text.encode("latin-1", "replace") if isinstance(text, str) else bytes(text)
            return _decode_bytes(raw, charset or None)[0]
        if plain is None:
            plain = str(value)
    return plain


def _part_info(part: Message) -> _PartInfo:
    headers = Message()  # compat32 parameter parsing, fed with our decoded header values
    for key, value in _raw_headers(part):
        if key.lower() in {"content-type", "content-disposition"} and key not in headers:
            headers[key.lower()] = _scrub(_unfold(_raw_to_str(value)))
    default_type = _attempt(part.get_default_type, "text/plain")
    content_type = default_type
    if "content-type" in headers:
        content_type = _attempt(headers.get_content_type, "text/plain").lower()
    disposition = _attempt(headers.get_content_disposition, None) if "content-disposition" in headers else None
    filename = _param(headers, "content-disposition", "filename") or _param(headers, "content-type", "name")
    charset = _param(headers, "content-type", "charset")
    content_id_raw = _first_raw(part, "content-id")
    content_id = None
    if content_id_raw is not None:
        content_id = re.sub(r"\s+", "", _header_text(content_id_raw)).strip("<>") or None
    transfer_encoding = _header_text(_first_raw(part, "content-transfer-encoding") or "").lower()
    return _PartInfo(content_type, charset, disposition, filename, content_id, transfer_encoding)


def _defect_text(defect: object) -> str:
    doc = (type(defect).__doc__ or "").strip().splitlines()
    description = doc[0].strip() if doc else type(defect).__name__
    detail = _attempt(lambda: str(defect), "").strip()
    if detail and detail != description:
        description = f"{description} ({_scrub(detail)[:200]})"
    return f"{type(defect).__name__}: {description}"


def _flatten(msg: Message, linesep: str) -> bytes:
    """A message part back as bytes, as close to the original as the standard library can write it."""
    for generator_policy in (
        email_policy.compat32.clone(max_line_length=0, linesep=linesep),
        email_policy.default.clone(linesep=linesep),
    ):
        try:
            buffer = io.BytesIO()
            BytesGenerator(buffer, mangle_from_=False, policy=generator_policy).flatten(msg)
            return buffer.getvalue()
        except Exception:  # noqa: S112 - try the next policy
            continue
    return b""


def _transfer_decode(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        cleaned = _NOT_BASE64.sub(b"", data)
        try:
            return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            return data
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data


_BOUNDARY_WITH_HEADER = re.compile(rb"^--([^\s\"]{1,200})[ \t]*\r?\n[A-Za-z][A-Za-z0-9-]*:", re.MULTILINE)
_BOUNDARY_LINE = re.compile(rb"^--([^\s\"]{1,200}?)(?:--)?[ \t]*\r?$", re.MULTILINE)


class _Walk:
    """Collects the bodies, attachments, nested messages and defects of one message."""

    def __init__(self, max_attachment_bytes: int, depth: int, linesep: str) -> None:
        self.max_attachment_bytes = max_attachment_bytes
        self.depth = depth
        self.linesep = linesep
        self.attachments: list[ParsedAttachment] = []
        self.skipped: list[SkippedAttachment] = []
        self.nested: list[ParsedEmail] = []
        self.defects: list[str] = []
        self.count = 0

    def defect(self, where: str, text: str) -> None:
        self.defects.append(f"{where}: {text}")

    def part_defects(self, part: Message, where: str) -> None:
        for defect in _attempt(lambda: list(part.defects), []):
            self.defect(where, _defect_text(defect))

    def walk(self, part: Message, where: str, level: int) -> tuple[list[str], list[str]]:
        """The (plain, html) body pieces of `part`; attachments and nested messages are collected on the way."""
        try:
            return self._walk(part, where, level)
        except Exception as exc:
            self.defect(where, f"the part could not be read ({type(exc).__name__}: {_scrub(str(exc))[:200]})")
            return [], []
        finally:
            self.part_defects(part, where)

    def _walk(self, part: Message, where: str, level: int) -> tuple[list[str], list[str]]:
        info = _part_info(part)
        structural_type = _attempt(part.get_content_type, info.content_type)
        if part.is_multipart():
            children = [child for child in _attempt(part.get_payload, []) if isinstance(child, Message)]
            if structural_type.startswith("message/"):
                self._message_part(part, info, where, children)
                return [], []
            if level >= _MULTIPART_DEPTH_LIMIT:
                self.defect(where, f"multipart nesting deeper than {_MULTIPART_DEPTH_LIMIT} levels; not read")
                return [], []
            return self._multipart(structural_type, children, where, level)
        if info.content_type.startswith("multipart/"):
            return self._broken_multipart(part, info, where, level)
        if info.content_type in {"message/rfc822", "message/global"}:
            self._message_part(part, info, where, [])
            return [], []
        is_body = (
            info.content_type in {"text/plain", "text/html"} and info.disposition != "attachment" and not info.filename
        )
        data = self._payload(part)
        if is_body:
            text, note = _decode_bytes(data, info.charset)
            if note:
                self.defect(where, note)
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            return ([text], []) if info.content_type == "text/plain" else ([], [text])
        self._attachment(info, data)
        return [], []

    @staticmethod
    def _payload(part: Message) -> bytes:
        data = _attempt(lambda: part.get_payload(decode=True), None)
        if isinstance(data, bytes):
            return data
        payload = _attempt(part.get_payload, "")
        return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""

    def _multipart(
        self, content_type: str, children: list[Message], where: str, level: int
    ) -> tuple[list[str], list[str]]:
        prefix = "part " if where == "message" else where + "."
        results = [self.walk(child, f"{prefix}{index}", level + 1) for index, child in enumerate(children, 1)]
        if content_type == "multipart/alternative":  # the last (richest) version of each kind
            plain = next((p for p, _ in reversed(results) if any(s.strip() for s in p)), [])
            html = next((h for _, h in reversed(results) if any(s.strip() for s in h)), [])
            return plain, html
        return [s for p, _ in results for s in p], [s for _, h in results for s in h]

    def _broken_multipart(self, part: Message, info: _PartInfo, where: str, level: int) -> tuple[list[str], list[str]]:
        """A multipart whose boundary is missing or wrong: find the boundary in the body, else read it as text."""
        data = self._payload(part)
        # A "--token" line followed by a header field is a boundary; failing that, any "--token" line.
        match = _BOUNDARY_WITH_HEADER.search(data) or _BOUNDARY_LINE.search(data)
        if match and level < _MULTIPART_DEPTH_LIMIT:
            boundary = match.group(1).decode("ascii", "replace")
            self.defect(where, f"the multipart boundary was recovered from the body ({boundary!r})")
            header = f'Content-Type: {info.content_type}; boundary="{boundary}"\r\n\r\n'.encode()
            try:
                rebuilt = BytesParser(policy=email_policy.default).parsebytes(header + data)
            except Exception:
                rebuilt = None
            if rebuilt is not None and rebuilt.is_multipart():
                children = [child for child in rebuilt.get_payload() if isinstance(child, Message)]
                return self._multipart(info.content_type, children, where, level)
        self.defect(where, "a multipart without readable parts; its body is read as text")
        text, note = _decode_bytes(data, info.charset)
        if note:
            self.defect(where, note)
        return [text.replace("\r\n", "\n").replace("\r", "\n")], []

    def _message_part(self, part: Message, info: _PartInfo, where: str, children: list[Message]) -> None:
        """message/*: an attachment, and for message/rfc822 (and message/global) a nested parsed message too."""
        inner: Message | None = None
        if children and info.transfer_encoding in {"base64", "quoted-printable"} and len(children) == 1:
            # An encoded message/rfc822 (not allowed, but sent): the parser read the encoded text as the message.
            encoded = children[0]
            if not _raw_headers(encoded) and not encoded.is_multipart():
                payload = _attempt(encoded.get_payload, "")
                data = _transfer_decode(str(payload).encode("utf-8", "surrogateescape"), info.transfer_encoding)
                children = []
            else:
                data = b"".join(_flatten(child, self.linesep) for child in children)
        elif children:
            data = b"".join(_flatten(child, self.linesep) for child in children)
            inner = children[0]
        else:
            data = self._payload(part)
        is_message = info.content_type in {"message/rfc822", "message/global"} or (
            _attempt(part.get_content_type, "") in {"message/rfc822", "message/global"}
        )
        nested: ParsedEmail | None = None
        if is_message:
            if self.depth >= NESTED_MESSAGE_DEPTH_LIMIT:
                self.defect(
                    where, f"attached message beyond the nesting limit of {NESTED_MESSAGE_DEPTH_LIMIT}; not parsed"
                )
            else:
                if inner is None:
                    inner = _attempt(lambda: BytesParser(policy=email_policy.default).parsebytes(data), None)
                if inner is not None:
                    nested = _from_message(inner, self.max_attachment_bytes, self.depth + 1, self.linesep)
                    self.nested.append(nested)
                    self.defects.extend(f"{where} (attached message) > {text}" for text in nested.defects)
        if info.filename is None and nested is not None and nested.subject:
            info.filename = nested.subject[:100].replace("/", "_").replace("\\", "_") + ".eml"
        self._attachment(info, data)

    def _attachment(self, info: _PartInfo, data: bytes) -> None:
        self.count += 1
        filename = _clean_filename(info.filename) or f"attachment-{self.count}{_extension(info.content_type)}"
        if len(data) > self.max_attachment_bytes:
            self.skipped.append(
                SkippedAttachment(
                    filename=filename,
                    content_type=info.content_type,
                    size=len(data),
                    reason=f"larger than the {self.max_attachment_bytes}-byte limit",
                )
            )
            return
        inline = info.disposition == "inline" or (info.disposition is None and info.content_id is not None)
        self.attachments.append(
            ParsedAttachment(
                filename=filename, content_type=info.content_type, data=data, content_id=info.content_id, inline=inline
            )
        )


# --- putting it together -------------------------------------------------------------------------


def _content_hash(from_address: str | None, from_raw: str, date_raw: str, subject: str, text: str) -> str:
    body = "\n".join(line.rstrip() for line in text.split("\n")).strip()
    canonical = "\x1f".join(
        [
            "banxway-content-v1",
            from_address or re.sub(r"\s+", " ", from_raw).strip(),
            re.sub(r"\s+", " ", date_raw).strip(),
            subject,
            body,
        ]
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _from_message(msg: Message, max_attachment_bytes: int, depth: int, linesep: str) -> ParsedEmail:
    raw_headers = _raw_headers(msg)
    headers: dict[str, list[str]] = {}
    raw_by_name: dict[str, list[str]] = {}
    for name, value in raw_headers:
        key = name.strip().lower()
        headers.setdefault(key, []).append(_header_text(value))
        raw_by_name.setdefault(key, []).append(value)

    def first(name: str) -> str | None:
        values = raw_by_name.get(name)
        return values[0] if values else None

    walk = _Walk(max_attachment_bytes, depth, linesep)
    plain, html_pieces = walk.walk(msg, "message", 0)

    html_raw = "\n".join(html_pieces) if any(piece.strip() for piece in html_pieces) else None
    html = _attempt(lambda: sanitize_html(html_raw).strip(), None) if html_raw is not None else None
    if html_raw is not None and html is None:
        walk.defect("message", "the HTML body could not be sanitised; it is left out")
    if any(piece.strip() for piece in plain):
        text = "\n".join(piece.rstrip("\n") for piece in plain)
    elif html_raw is not None:
        text = html_to_text(html_raw)
    else:
        text = ""
    text = _scrub(text).strip("\n").rstrip()
    text = re.sub(r"\A(?:[ \t]*\n)+", "", text)

    senders = _addresses(raw_by_name.get("from", []))
    date_raw = headers.get("date", [""])[0]
    date = _parse_date(date_raw)
    if date_raw and date is None:
        walk.defect("message", f"the Date header could not be read ({date_raw[:100]!r})")
    message_ids = _message_ids(first("message-id"))
    subject = headers.get("subject", [""])[0]
    from_address = senders[0][1] if senders else None

    return ParsedEmail(
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=_dedupe(mid for value in raw_by_name.get("in-reply-to", []) for mid in _message_ids(value)),
        references=_dedupe(mid for value in raw_by_name.get("references", []) for mid in _message_ids(value)),
        subject=subject,
        from_address=from_address,
        from_name=senders[0][0] if senders else None,
        to=_dedupe(addr for _, addr in _addresses(raw_by_name.get("to", []))),
        cc=_dedupe(addr for _, addr in _addresses(raw_by_name.get("cc", []))),
        reply_to=_dedupe(addr for _, addr in _addresses(raw_by_name.get("reply-to", []))),
        date=date,
        text=text,
        html=html,
        reply_text=reply_part(text) if text else "",
        headers=headers,
        attachments=walk.attachments,
        skipped_attachments=walk.skipped,
        nested_messages=walk.nested,
        content_hash=_content_hash(from_address, headers.get("from", [""])[0], date_raw, subject, text),
        defects=_dedupe(walk.defects),
    )


_HEADER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")  # not ESC: ISO-2022-JP


def parse_email(raw: bytes, *, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES) -> ParsedEmail:
    """Parse one RFC 5322 message.

    Raises `MalformedEmail` (and nothing else) only for input that is plainly not an email: empty, not
    bytes, or without a header block. Everything else is parsed as well as it can be, and what had to be
    repaired is listed in `ParsedEmail.defects`. Attachments larger than `max_attachment_bytes` are listed
    in `skipped_attachments` without their data.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MalformedEmail(f"expected the bytes of a message, got {type(raw).__name__}")
    data = bytes(raw)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    data = data.lstrip(b"\r\n")
    if not data.strip():
        raise MalformedEmail("the message is empty")
    header_end = re.search(rb"\r?\n\r?\n", data)
    header_block = data[: min(header_end.start() if header_end else len(data), 65536)]
    if len(_CONTROL_BYTES.findall(header_block)) * 20 > len(header_block):
        raise MalformedEmail("binary data where the header block should be: not an email")

    msg, parse_defect = _parse_structure(data)
    if not any(_HEADER_NAME.fullmatch(name) for name, _ in _raw_headers(msg)):
        raise MalformedEmail("no header block: the input does not start with RFC 5322 header fields")

    try:
        linesep = "\r\n" if b"\r\n" in header_block else "\n"
        parsed = _from_message(msg, max_attachment_bytes, 0, linesep)
    except Exception as exc:  # a last resort: every step above is meant to fall back by itself
        raise MalformedEmail(f"the message cannot be read ({type(exc).__name__}: {exc})") from exc
    if parse_defect:
        return _with_defect(parsed, f"message: {parse_defect}")
    return parsed


def _parse_structure(data: bytes) -> tuple[Message, str | None]:
    """The message tree, and a note when the standard parse failed and a simpler one was used.

    The stdlib parser can raise on pathological input (RecursionError for absurd multipart nesting or a
    header of thousands of nested comments); the fallbacks are the compat32 policy (no structured header
    parsing) and, last, the header block alone with the whole body as one text part.
    """
    attempts = (
        (email_policy.default, False),
        (email_policy.compat32, False),
        (email_policy.default, True),
        (email_policy.compat32, True),
    )
    failure: BaseException | None = None
    for number, (parse_policy, headers_only) in enumerate(attempts):
        try:
            msg = BytesParser(policy=parse_policy).parsebytes(data, headersonly=headers_only)
        except Exception as exc:
            failure = failure or exc
            continue
        if number == 0:
            return msg, None
        how = "the body is read as one text part" if headers_only else "parsed without structured headers"
        return msg, f"the MIME structure could not be parsed ({type(failure).__name__}); {how}"
    raise MalformedEmail(f"the message cannot be parsed ({type(failure).__name__}: {failure})") from failure


def _with_defect(parsed: ParsedEmail, defect: str) -> ParsedEmail:
    return replace(parsed, defects=[defect, *parsed.defects])
