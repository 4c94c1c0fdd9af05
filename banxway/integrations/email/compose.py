"""Build the RFC 5322 bytes of one outbound (human-written) email.

A pure module: no I/O, no database, no settings. The MIME structure comes from the standard library
(`email.message.EmailMessage` with the SMTP policy: CRLF line endings); the output is 7-bit clean
(non-ASCII headers as RFC 2047 encoded words, non-ASCII bodies as UTF-8 in quoted-printable or
base64), so it can be handed as is to any SMTP server, with or without 8BITMIME.

Threading: every message carries the thread reference twice, as a `[BX-YYYY-NNNN]` token in the
subject (which survives in the replies of mailers that drop the threading headers) and in an
`X-Banxway-Reference` header; replies also carry In-Reply-To and References. The threading headers
are written verbatim (folded between ids only): the standard library's generic folding would turn a
long Message-ID into RFC 2047 encoded words, which mailers do not decode, and the thread would break.

`Auto-Submitted` is deliberately never set: these are replies written by people, and marking them
auto-generated would make the customer's mail system suppress its own auto-replies and filters.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

__all__ = [
    "MAX_REFERENCES",
    "REFERENCE_TOKEN",
    "Outbound",
    "OutboundAttachment",
    "compose",
    "find_reference",
    "new_message_id",
    "subject_with_reference",
]

REFERENCE_TOKEN = re.compile(r"\[(BX-\d{4}-\d{4,})\]", re.I)
_REFERENCE = re.compile(r"BX-\d{4}-\d{4,}", re.I)
# A msg-id as written on the wire: printable ASCII, no whitespace, one "<...>" pair.
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+>")
MAX_REFERENCES = 20
_FOLD_AT = 78
_FALLBACK_DOMAIN = "banxway.invalid"

# The SMTP policy (CRLF, 78-column folding), 7-bit transfer encodings for the bodies, and headers set
# with `set_raw` (the threading headers) written exactly as given instead of being refolded.
_POLICY = email_policy.SMTP.clone(cte_type="7bit", refold_source="none")


@dataclass(frozen=True)
class OutboundAttachment:
    filename: str
    content_type: str  # "application/pdf"; unparseable, multipart/* and message/* are sent as application/octet-stream
    data: bytes


@dataclass(frozen=True, kw_only=True)
class Outbound:
    from_address: str
    from_name: str | None
    to: list[str]  # "a@b.c" or "Name <a@b.c>"
    cc: list[str] = field(default_factory=list)
    subject: str  # the thread subject or the message subject
    reference: str  # the thread reference, e.g. "BX-2026-0042"
    body: str  # plain text
    html: str | None = None
    signature: str | None = None  # appended to the text ("-- \n" + signature) and to the HTML
    in_reply_to: str | None = None  # the Message-ID ("<...>") of the message being answered
    references: list[str] = field(default_factory=list)  # the References chain of the thread, oldest first
    attachments: list[OutboundAttachment] = field(default_factory=list)
    message_id: str | None = None  # reused when given (a retry must keep the same Message-ID); else generated


# --- references and ids ----------------------------------------------------------------------------


def find_reference(subject: str) -> str | None:
    """The upper-cased `BX-YYYY-NNNN` of a `[BX-...]` token in `subject`, or None.

    With several tokens the last one wins: `subject_with_reference` appends its token at the end, so in
    "Re: [BX-2026-0001] vs [BX-2026-0042]" the one Banxway added most recently is the last.
    """
    found = REFERENCE_TOKEN.findall(subject or "")
    return found[-1].upper() if found else None


def subject_with_reference(subject: str, reference: str) -> str:
    """`subject` with " [REF]" appended, unless that token is already in it (in any case).

    The subject is otherwise kept as is ("Re:"/"Fwd:" prefixes included), except that line breaks and
    surrounding whitespace are removed; an empty subject becomes "[REF]".
    """
    ref = _normalise_reference(reference)
    clean = re.sub(r"[ \t]*[\r\n]+[ \t]*", " ", subject or "").strip()
    if any(found.upper() == ref for found in REFERENCE_TOKEN.findall(clean)):
        return clean
    token = f"[{ref}]"
    return f"{clean} {token}" if clean else token


def new_message_id(from_address: str) -> str:
    """A fresh "<unique@domain>" Message-ID on the domain of the sender's address."""
    _, addr = parseaddr(from_address or "")
    domain = addr.rpartition("@")[2].strip().strip(".").lower() if "@" in addr else ""
    if domain and not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            domain = ""
    if not domain or not re.fullmatch(r"[a-z0-9.\-\[\]:]+", domain):
        domain = _FALLBACK_DOMAIN
    return make_msgid(domain=domain)


def _normalise_reference(reference: str) -> str:
    ref = (reference or "").strip().strip("[]").upper()
    if not _REFERENCE.fullmatch(ref):
        raise ValueError(f"not a thread reference (BX-YYYY-NNNN): {reference!r}")
    return ref


def _normalise_id(value: str | None) -> str | None:
    """ "<local@domain>" from "<local@domain>" or "local@domain"; None when it is not a usable msg-id."""
    if value is None:
        return None
    candidate = value.strip()
    if candidate and not candidate.startswith("<"):
        candidate = f"<{candidate}>"
    return candidate if _MESSAGE_ID.fullmatch(candidate) else None


def _references_chain(references: list[str], in_reply_to: str | None) -> list[str]:
    """The chain, deduplicated in order, `in_reply_to` appended if missing, capped to the first id + the last 19."""
    chain: list[str] = []
    for value in [*references, in_reply_to]:
        mid = _normalise_id(value)
        if mid is not None and mid not in chain:
            chain.append(mid)
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
    return chain


def _fold_ids(name: str, ids: list[str]) -> str:
    """The ids joined by spaces, folded (between ids only) to keep lines within 78 columns where possible."""
    lines: list[str] = []
    current = ""
    width = len(name) + 2  # "Name: "
    for mid in ids:
        if current and width + len(current) + 1 + len(mid) > _FOLD_AT:
            lines.append(current)
            current, width = mid, 1  # continuation lines start with one space
        else:
            current = f"{current} {mid}" if current else mid
    lines.append(current)
    return "\n ".join(lines)


# --- addresses -------------------------------------------------------------------------------------


def _address(display_name: str | None, addr_spec: str) -> Address:
    addr_spec = addr_spec.strip()
    local, at, domain = addr_spec.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {addr_spec!r}")
    if not local.isascii():
        raise ValueError(f"non-ASCII local part needs SMTPUTF8, which is not supported: {addr_spec!r}")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"invalid domain in email address: {addr_spec!r}") from exc
    return Address(display_name=(display_name or "").strip(), addr_spec=f"{local}@{domain}")


_NAME_ADDR = re.compile(r"\s*(.*?)\s*<([^<>]*)>\s*", re.S)


def _recipients(values: list[str]) -> list[Address]:
    """One Address per entry: "a@b.c", "Name <a@b.c>" or '"Last, First" <a@b.c>' (a comma in the name is kept)."""
    result: list[Address] = []
    for value in values:
        if any(c in value for c in "\r\n"):
            raise ValueError(f"line break in an email address: {value!r}")
        match = _NAME_ADDR.fullmatch(value)
        if match:
            name = match[1].strip()
            if len(name) >= 2 and name[0] == name[-1] == '"':
                name = re.sub(r"\\(.)", r"\1", name[1:-1])
            result.append(_address(name, match[2]))
        else:
            result.append(_address(None, value))
    return result


def _single_line(value: str) -> str:
    return " ".join(value.split())


# --- bodies ----------------------------------------------------------------------------------------


def _text_with_signature(body: str, signature: str | None) -> str:
    if not signature:
        return body
    separator = "" if body.endswith("\n") or not body else "\n"
    return f"{body}{separator}-- \n{signature}"


def _html_with_signature(html: str, signature: str | None) -> str:
    if not signature:
        return html
    escaped = "<br>\n".join(html_lib.escape(line) for line in signature.splitlines())
    block = f'<div class="banxway-signature">-- <br>\n{escaped}</div>'
    closing = list(re.finditer(r"</body\s*>", html, re.I))
    if closing:
        at = closing[-1].start()
        return f"{html[:at]}{block}\n{html[at:]}"
    return f"{html}\n{block}"


def _content_type(value: str) -> tuple[str, str]:
    maintype, slash, subtype = (value or "").split(";", 1)[0].strip().lower().partition("/")
    token = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+\-]*")
    if slash and token.fullmatch(maintype) and token.fullmatch(subtype) and maintype not in ("multipart", "message"):
        return maintype, subtype
    return "application", "octet-stream"


# --- compose ---------------------------------------------------------------------------------------


def compose(outbound: Outbound, *, now: datetime | None = None) -> tuple[str, bytes]:
    """(Message-ID, the message's bytes with CRLF line endings). Raises ValueError for unusable input
    (a malformed address, reference or Message-ID, no recipients)."""
    to = _recipients(list(outbound.to))
    cc = _recipients(list(outbound.cc))
    if not to and not cc:
        raise ValueError("an email needs at least one recipient")
    sender = _address(outbound.from_name and _single_line(outbound.from_name), outbound.from_address)
    reference = _normalise_reference(outbound.reference)

    if outbound.message_id is not None:
        message_id = _normalise_id(outbound.message_id)
        if message_id is None:
            raise ValueError(f"not a Message-ID: {outbound.message_id!r}")
    else:
        message_id = new_message_id(sender.addr_spec)
    in_reply_to = None
    if outbound.in_reply_to is not None:
        in_reply_to = _normalise_id(outbound.in_reply_to)
        if in_reply_to is None:
            raise ValueError(f"not a Message-ID: {outbound.in_reply_to!r}")
    chain = _references_chain(list(outbound.references), in_reply_to)

    when = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)

    msg = EmailMessage(policy=_POLICY)
    msg["From"] = sender
    if to:
        msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject_with_reference(outbound.subject, reference)
    msg["Date"] = format_datetime(when)
    msg.set_raw("Message-ID", message_id)
    if in_reply_to is not None:
        msg.set_raw("In-Reply-To", in_reply_to)
    if chain:
        msg.set_raw("References", _fold_ids("References", chain))
    msg["X-Banxway-Reference"] = reference

    msg.set_content(_text_with_signature(outbound.body, outbound.signature))
    if outbound.html is not None:
        msg.add_alternative(_html_with_signature(outbound.html, outbound.signature), subtype="html")
    for attachment in outbound.attachments:
        maintype, subtype = _content_type(attachment.content_type)
        msg.add_attachment(
            bytes(attachment.data),
            maintype=maintype,
            subtype=subtype,
            filename=_single_line(attachment.filename) or "attachment",
        )
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]  # add_alternative/add_attachment repeat it in the parts; it belongs at the top
    return message_id, msg.as_bytes(policy=_POLICY)
