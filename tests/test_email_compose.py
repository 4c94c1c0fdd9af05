"""Composing outbound email: the produced bytes are parsed back with the standard library and checked exactly.

No database, no services.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from banxway.integrations.email.compose import (
    REFERENCE_TOKEN,
    Outbound,
    OutboundAttachment,
    compose,
    find_reference,
    new_message_id,
    subject_with_reference,
)

NOW = datetime(2026, 3, 2, 9, 30, 15, tzinfo=UTC)


def outbound(**changes: object) -> Outbound:
    base = Outbound(
        from_address="ops@forwarder.example",
        from_name="Ops Desk",
        to=["customer@shipper.example"],
        subject="Quote request Hamburg-Shanghai",
        reference="BX-2026-0042",
        body="Hello,\nplease find our quote below.\n",
    )
    return dataclasses.replace(base, **changes)


def build(out: Outbound, *, now: datetime | None = NOW) -> tuple[str, bytes, EmailMessage]:
    message_id, raw = compose(out, now=now)
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return message_id, raw, parsed


def ids(count: int, prefix: str = "m") -> list[str]:
    return [f"<{prefix}{i}@mail.example>" for i in range(count)]


# --- headers ---------------------------------------------------------------------------------------


def test_a_new_message_has_exactly_the_expected_headers() -> None:
    # given a first message of a thread to two recipients and one cc
    out = outbound(to=["customer@shipper.example", "Jane Buyer <jane@shipper.example>"], cc=["sales@forwarder.example"])

    # when it is composed
    message_id, _, mail = build(out)

    # then the headers carry the sender, recipients, referenced subject, date and ids
    assert str(mail["From"]) == "Ops Desk <ops@forwarder.example>"
    assert mail["From"].addresses[0].display_name == "Ops Desk"
    assert mail["From"].addresses[0].addr_spec == "ops@forwarder.example"
    assert [a.addr_spec for a in mail["To"].addresses] == ["customer@shipper.example", "jane@shipper.example"]
    assert [a.display_name for a in mail["To"].addresses] == ["", "Jane Buyer"]
    assert [a.addr_spec for a in mail["Cc"].addresses] == ["sales@forwarder.example"]
    assert str(mail["Subject"]) == "Quote request Hamburg-Shanghai [BX-2026-0042]"
    assert str(mail["Date"]) == "Mon, 02 Mar 2026 09:30:15 +0000"
    assert mail["Date"].datetime == NOW
    assert str(mail["Message-ID"]) == message_id
    assert str(mail["X-Banxway-Reference"]) == "BX-2026-0042"
    assert str(mail["MIME-Version"]) == "1.0"
    # and it is not marked as auto-generated (a human reply), nor threaded (nothing to answer)
    assert "Auto-Submitted" not in mail
    assert "In-Reply-To" not in mail
    assert "References" not in mail
    assert "Bcc" not in mail


def test_without_cc_there_is_no_cc_header_and_without_name_a_bare_from() -> None:
    # given a message without cc and without a sender name
    out = outbound(from_name=None)

    # when it is composed
    _, _, mail = build(out)

    # then From is the bare address and there is no Cc header
    assert str(mail["From"]) == "ops@forwarder.example"
    assert "Cc" not in mail


def test_the_date_defaults_to_now_and_a_naive_now_is_utc() -> None:
    # given no explicit time
    before = datetime.now(UTC).replace(microsecond=0)
    _, _, mail = build(outbound(), now=None)
    after = datetime.now(UTC)

    # then the Date is the current time
    assert before <= mail["Date"].datetime <= after

    # and given a naive time, it is taken as UTC (not written as "-0000", the unknown zone)
    _, _, mail = build(outbound(), now=datetime(2026, 1, 5, 8, 0, 0))
    assert str(mail["Date"]) == "Mon, 05 Jan 2026 08:00:00 +0000"

    # and given an aware time in another zone, its offset is kept
    _, _, mail = build(outbound(), now=datetime(2026, 1, 5, 8, 0, 0, tzinfo=timezone(timedelta(hours=8))))
    assert str(mail["Date"]) == "Mon, 05 Jan 2026 08:00:00 +0800"


def test_a_quoted_display_name_with_a_comma_stays_one_recipient() -> None:
    # given recipients whose names contain a comma and an escaped quote
    out = outbound(to=['"Buyer, Jane" <jane@shipper.example>'], cc=['"O\\"Brien, Tom" <tom@shipper.example>'])

    # when it is composed
    _, _, mail = build(out)

    # then each entry is one recipient with its full name
    assert [(a.display_name, a.addr_spec) for a in mail["To"].addresses] == [("Buyer, Jane", "jane@shipper.example")]
    assert [(a.display_name, a.addr_spec) for a in mail["Cc"].addresses] == [('O"Brien, Tom', "tom@shipper.example")]


@pytest.mark.parametrize(
    "changes",
    [
        {"to": [], "cc": []},
        {"to": ["not-an-address"]},
        {"to": ["customer@shipper.example\r\nBcc: victim@example.com"]},
        {"from_address": "ops"},
        {"reference": "42"},
        {"in_reply_to": "<has space@example>"},
        {"message_id": "<a@b> <c@d>"},
    ],
)
def test_unusable_input_is_refused(changes: dict[str, object]) -> None:
    # given an outbound with no recipients, a malformed address, reference or id, or a header injection attempt
    # when it is composed
    # then it is refused rather than sent malformed
    with pytest.raises(ValueError):  # noqa: PT011 - the message differs per case
        compose(outbound(**changes), now=NOW)


def test_line_breaks_in_names_and_subject_cannot_inject_headers() -> None:
    # given a sender name and a subject with line breaks followed by header-like text
    out = outbound(from_name="Ops\r\nBcc: victim@example.com", subject="Quote\r\nBcc: victim@example.com")

    # when it is composed
    _, _, mail = build(out)

    # then no header was injected; the text is kept on one line
    assert "Bcc" not in mail
    assert str(mail["Subject"]) == "Quote Bcc: victim@example.com [BX-2026-0042]"
    assert mail["From"].addresses[0].display_name == "Ops Bcc: victim@example.com"
    assert mail["From"].addresses[0].addr_spec == "ops@forwarder.example"


# --- threading -------------------------------------------------------------------------------------


def test_a_reply_carries_in_reply_to_and_the_references_chain() -> None:
    # given a reply to the newest message of a thread of three
    chain = ["<first@shipper.example>", "<second@forwarder.example>"]
    out = outbound(in_reply_to="<third@shipper.example>", references=chain)

    # when it is composed
    _, _, mail = build(out)

    # then In-Reply-To names the answered message and References is the chain with it at the end
    assert str(mail["In-Reply-To"]) == "<third@shipper.example>"
    assert str(mail["References"]).split() == [
        "<first@shipper.example>",
        "<second@forwarder.example>",
        "<third@shipper.example>",
    ]


def test_references_are_deduplicated_and_in_reply_to_is_not_repeated() -> None:
    # given a chain with a repeated id that already ends with the answered message
    chain = ["<a@x>", "<b@x>", "<a@x>", "<c@x>"]
    out = outbound(in_reply_to="<c@x>", references=chain)

    # when it is composed
    _, _, mail = build(out)

    # then each id appears once, in first-seen order
    assert str(mail["References"]).split() == ["<a@x>", "<b@x>", "<c@x>"]
    assert str(mail["In-Reply-To"]) == "<c@x>"


def test_in_reply_to_alone_starts_the_references() -> None:
    # given a reply to a message that had no References of its own
    out = outbound(in_reply_to="<only@shipper.example>")

    # when it is composed
    _, _, mail = build(out)

    # then References holds just that id
    assert str(mail["References"]).split() == ["<only@shipper.example>"]


def test_references_without_in_reply_to_are_kept() -> None:
    # given a chain but no message being answered (a new message in an existing thread)
    out = outbound(references=["<a@x>", "<b@x>"])

    # when it is composed
    _, _, mail = build(out)

    # then References is the chain and there is no In-Reply-To
    assert str(mail["References"]).split() == ["<a@x>", "<b@x>"]
    assert "In-Reply-To" not in mail


def test_long_chains_are_capped_to_20_keeping_the_first() -> None:
    # given a thread of 30 messages, answering the 31st
    chain = ids(30)
    out = outbound(in_reply_to="<newest@mail.example>", references=chain)

    # when it is composed
    _, _, mail = build(out)

    # then References holds the first id and the last 19 (the newest being the answered one)
    refs = str(mail["References"]).split()
    assert len(refs) == 20
    assert refs == ["<m0@mail.example>", *chain[-18:], "<newest@mail.example>"]


def test_exactly_20_references_are_not_cut() -> None:
    # given a chain of exactly 20 ids
    chain = ids(20)

    # when it is composed
    _, _, mail = build(outbound(references=chain))

    # then all are kept
    assert str(mail["References"]).split() == chain


def test_ids_without_angle_brackets_are_bracketed_and_junk_is_dropped() -> None:
    # given a chain from a sloppy mailer: bare ids, blanks and an id with whitespace inside
    out = outbound(in_reply_to="bare@x", references=["  <a@x>  ", "", "b@x", "<broken id@x>"])

    # when it is composed
    _, _, mail = build(out)

    # then the ids are normalised and the unusable ones left out
    assert str(mail["In-Reply-To"]) == "<bare@x>"
    assert str(mail["References"]).split() == ["<a@x>", "<b@x>", "<bare@x>"]


def test_long_message_ids_are_written_verbatim_not_encoded() -> None:
    # given ids longer than a header line (as Outlook and Gmail produce)
    long_ids = [f"<{'a' * 40}{i}.{'b' * 60}@mail.example.com>" for i in range(3)]
    out = outbound(in_reply_to=long_ids[-1], references=long_ids[:-1], message_id=long_ids[0].replace("a", "c"))

    # when it is composed
    message_id, raw, mail = build(out)

    # then the raw headers contain the ids literally (no RFC 2047 "=?utf-8?q?" words), folded only between ids
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?" not in head
    assert f"\r\nIn-Reply-To: {long_ids[-1]}\r\n".encode() in head
    assert f"\r\nReferences: {long_ids[0]}\r\n {long_ids[1]}\r\n {long_ids[2]}\r\n".encode() in head
    assert f"\r\nMessage-ID: {message_id}\r\n".encode() in head
    assert str(mail["References"]).split() == long_ids


def test_short_references_are_folded_within_78_columns() -> None:
    # given a chain of 20 short ids
    chain = ids(20)

    # when it is composed
    _, raw, _ = build(outbound(references=chain))

    # then no header line is longer than 78 characters
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78


# --- message ids -----------------------------------------------------------------------------------


def test_a_given_message_id_is_reused() -> None:
    # given a retry of a send that already has a Message-ID
    out = outbound(message_id="<retry-1234@forwarder.example>")

    # when it is composed (twice, as on a retry)
    first_id, _, first = build(out)
    second_id, _, second = build(out)

    # then the same id is returned and written both times
    assert first_id == second_id == "<retry-1234@forwarder.example>"
    assert str(first["Message-ID"]) == str(second["Message-ID"]) == "<retry-1234@forwarder.example>"


def test_a_generated_message_id_is_new_each_time_on_the_sender_domain() -> None:
    # given an outbound without a Message-ID
    out = outbound(from_address="Ops@Forwarder.Example")

    # when it is composed twice
    first_id, _, first = build(out)
    second_id, _, _ = build(out)

    # then each id is fresh, bracketed, on the sender's domain, and the one written in the header
    assert first_id != second_id
    for mid in (first_id, second_id):
        assert mid.startswith("<")
        assert mid.endswith("@forwarder.example>")
    assert str(first["Message-ID"]) == first_id


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("ops@forwarder.example", "forwarder.example"),
        ("Ops Desk <ops@Sub.Forwarder.Example>", "sub.forwarder.example"),
        ("ops@bücher.example", "xn--bcher-kva.example"),
        ("no-domain", "banxway.invalid"),
    ],
)
def test_new_message_id_uses_the_domain_of_the_address(address: str, domain: str) -> None:
    # given a sender address
    # when a Message-ID is made for it
    mid = new_message_id(address)

    # then it is "<unique@domain>" with the (lower-cased, ASCII) domain of the address
    local, _, right = mid.removeprefix("<").removesuffix(">").rpartition("@")
    assert mid.startswith("<")
    assert mid.endswith(">")
    assert local
    assert right == domain
    assert mid != new_message_id(address)


# --- subject and reference -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Quote", "Quote [BX-2026-0042]"),
        ("Re: Quote", "Re: Quote [BX-2026-0042]"),
        ("RE: AW: Quote", "RE: AW: Quote [BX-2026-0042]"),
        ("Re: Quote [BX-2026-0042]", "Re: Quote [BX-2026-0042]"),
        ("Re: Quote [bx-2026-0042]", "Re: Quote [bx-2026-0042]"),
        ("[BX-2026-0042] Booking", "[BX-2026-0042] Booking"),
        ("Booking BX-2026-0042", "Booking BX-2026-0042 [BX-2026-0042]"),
        ("Re: Quote [BX-2026-0001]", "Re: Quote [BX-2026-0001] [BX-2026-0042]"),
        ("Re: Quote [BX-2026-00420]", "Re: Quote [BX-2026-00420] [BX-2026-0042]"),
        ("", "[BX-2026-0042]"),
        ("   ", "[BX-2026-0042]"),
        ("  Quote  ", "Quote [BX-2026-0042]"),
        ("Quote\r\n for 2 TEU", "Quote for 2 TEU [BX-2026-0042]"),
    ],
)
def test_subject_with_reference(subject: str, expected: str) -> None:
    # given a subject, with or without the thread's token
    # when the reference is added
    # then the token appears exactly once, prefixes are kept as written, other tokens are left alone
    assert subject_with_reference(subject, "BX-2026-0042") == expected


def test_subject_with_reference_is_idempotent_and_normalises_the_reference() -> None:
    # given a subject already referenced once
    once = subject_with_reference("Quote", "bx-2026-0042")

    # when the reference is added again (e.g. a reply to a reply)
    twice = subject_with_reference(f"Re: {once}", "BX-2026-0042")

    # then the token is upper-cased and still appears once
    assert once == "Quote [BX-2026-0042]"
    assert twice == "Re: Quote [BX-2026-0042]"
    assert len(REFERENCE_TOKEN.findall(twice)) == 1


def test_subject_with_reference_refuses_something_that_is_not_a_reference() -> None:
    # given a reference the ingest could never find again
    # when it is added to a subject
    # then it is refused
    with pytest.raises(ValueError, match="not a thread reference"):
        subject_with_reference("Quote", "ORDER-42")


def test_compose_writes_the_token_once_into_an_already_referenced_subject() -> None:
    # given a reply whose subject already has the token in lower case
    out = outbound(subject="Re: Quote [bx-2026-0042]")

    # when it is composed
    _, _, mail = build(out)

    # then the subject stays exactly as it was
    assert str(mail["Subject"]) == "Re: Quote [bx-2026-0042]"
    assert find_reference(str(mail["Subject"])) == "BX-2026-0042"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("RE: FW: [BX-2026-0042] booking", "BX-2026-0042"),
        ("Re: Quote [bx-2026-0042]", "BX-2026-0042"),
        ("AW: Angebot [BX-2026-12345]", "BX-2026-12345"),
        ("Quote [BX-2026-0001] [BX-2026-0042]", "BX-2026-0042"),
        ("Booking BX-2026-0042 without brackets", None),
        ("Quote [BX-2026-042]", None),
        ("Quote [BX-26-0042]", None),
        ("Quote (BX-2026-0042)", None),
        ("Quote", None),
        ("", None),
    ],
)
def test_find_reference(subject: str, expected: str | None) -> None:
    # given an incoming subject
    # when the reference is looked for
    # then the bracketed token is found (upper-cased), and nothing else counts as one
    assert find_reference(subject) == expected


def test_find_reference_reads_what_compose_writes() -> None:
    # given a composed message in an existing thread
    _, _, mail = build(outbound(subject="RE: FW: booking 2x40HC", reference="BX-2026-0777"))

    # when the ingest looks for the reference in a reply's subject
    # then it finds the thread's reference
    assert find_reference("Re: " + str(mail["Subject"])) == "BX-2026-0777"


# --- bodies ----------------------------------------------------------------------------------------


def test_a_plain_message_is_single_part_text() -> None:
    # given a plain-text message without attachments
    # when it is composed
    _, _, mail = build(outbound())

    # then it is one text/plain UTF-8 part with the body
    assert mail.get_content_type() == "text/plain"
    assert not mail.is_multipart()
    assert mail.get_content_charset() == "utf-8"
    assert mail.get_content() == "Hello,\r\nplease find our quote below.\r\n"


def test_non_ascii_names_and_bodies() -> None:
    # given a German sender name with a comma, a Chinese recipient name, and non-ASCII subject and body
    out = outbound(
        from_name="Jörg Müller, Export",
        to=["王小明 <wang@shipper.example>"],
        subject="Angebot für 2×40' HC 🚢",
        body="Grüße aus Hamburg — Preis: 1.250 €\n您好\n",
    )

    # when it is composed
    _, raw, mail = build(out)

    # then the raw message is 7-bit ASCII (encoded words, an ASCII-safe transfer encoding)
    assert raw.isascii()
    # and it decodes back to exactly the original text
    assert mail["From"].addresses[0].display_name == "Jörg Müller, Export"
    assert mail["From"].addresses[0].addr_spec == "ops@forwarder.example"
    assert mail["To"].addresses[0].display_name == "王小明"
    assert str(mail["Subject"]) == "Angebot für 2×40' HC 🚢 [BX-2026-0042]"
    assert mail.get_content_charset() == "utf-8"
    assert mail["Content-Transfer-Encoding"].cte in ("quoted-printable", "base64")
    assert mail.get_content() == "Grüße aus Hamburg — Preis: 1.250 €\r\n您好\r\n"


def test_html_makes_a_multipart_alternative() -> None:
    # given a message with an HTML version
    out = outbound(html="<html><body><p>Hello,</p><p>please find our <b>quote</b> below.</p></body></html>")

    # when it is composed
    _, _, mail = build(out)

    # then it is multipart/alternative with the text first and the HTML second
    assert mail.get_content_type() == "multipart/alternative"
    parts = list(mail.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content() == "Hello,\r\nplease find our quote below.\r\n"
    assert parts[1].get_content() == (
        "<html><body><p>Hello,</p><p>please find our <b>quote</b> below.</p></body></html>\r\n"
    )
    assert parts[1].get_content_charset() == "utf-8"
    # and MIME-Version is only on the top level
    assert all("MIME-Version" not in p for p in parts)


def test_signature_is_appended_to_text_and_html() -> None:
    # given a message with a two-line signature containing HTML-special characters
    out = outbound(
        body="Hello,\nsee below.",
        html="<html><body><p>Hello,</p></body></html>",
        signature="Jörg Müller\nForwarder <Export> & Co",
    )

    # when it is composed
    _, _, mail = build(out)
    text, html = (p.get_content() for p in mail.iter_parts())

    # then the text ends with the standard "-- " delimiter line and the signature
    assert text == "Hello,\r\nsee below.\r\n-- \r\nJörg Müller\r\nForwarder <Export> & Co\r\n"
    # and the HTML has the escaped signature inside the body
    assert html == (
        "<html><body><p>Hello,</p>"
        '<div class="banxway-signature">-- <br>\r\nJörg Müller<br>\r\nForwarder &lt;Export&gt; &amp; Co</div>\r\n'
        "</body></html>\r\n"
    )


def test_signature_after_a_body_ending_in_a_newline_and_on_an_html_fragment() -> None:
    # given a body that ends with a newline and an HTML fragment without <body>
    out = outbound(body="Hello,\n", html="<p>Hello,</p>", signature="Ops")

    # when it is composed
    _, _, mail = build(out)
    text, html = (p.get_content() for p in mail.iter_parts())

    # then no blank line is added before the delimiter, and the HTML signature is appended at the end
    assert text == "Hello,\r\n-- \r\nOps\r\n"
    assert html == '<p>Hello,</p>\r\n<div class="banxway-signature">-- <br>\r\nOps</div>\r\n'


def test_without_signature_the_body_is_unchanged() -> None:
    # given no signature
    # when it is composed
    _, _, mail = build(outbound(signature=None))

    # then there is no delimiter
    assert "-- " not in mail.get_content()


# --- attachments -----------------------------------------------------------------------------------


PDF = b"%PDF-1.4\n\x00\xff\xfe binary \r\n\x80 bytes %%EOF"


def test_attachments_make_a_multipart_mixed_with_their_exact_bytes() -> None:
    # given a plain message with a PDF and a non-ASCII-named spreadsheet
    xlsx = bytes(range(256)) * 4
    out = outbound(
        attachments=[
            OutboundAttachment("quote.pdf", "application/pdf", PDF),
            OutboundAttachment(
                "Frachtkosten Übersicht.xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                xlsx,
            ),
        ]
    )

    # when it is composed
    _, raw, mail = build(out)

    # then it is multipart/mixed: the text, then each attachment with its name, type and exact bytes
    assert raw.isascii()
    assert mail.get_content_type() == "multipart/mixed"
    body, first, second = mail.iter_parts()
    assert body.get_content_type() == "text/plain"
    assert body.get_content() == "Hello,\r\nplease find our quote below.\r\n"
    assert [a.get_filename() for a in mail.iter_attachments()] == ["quote.pdf", "Frachtkosten Übersicht.xlsx"]
    assert first.get_content_type() == "application/pdf"
    assert first.get_content_disposition() == "attachment"
    assert first.get_content() == PDF
    assert second.get_content_type() == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert second.get_content() == xlsx


def test_attachments_with_html_wrap_the_alternative() -> None:
    # given a message with HTML and an attachment
    out = outbound(html="<p>Hello</p>", attachments=[OutboundAttachment("quote.pdf", "application/pdf", PDF)])

    # when it is composed
    _, _, mail = build(out)

    # then the structure is mixed[alternative[plain, html], pdf]
    assert mail.get_content_type() == "multipart/mixed"
    alternative, pdf = mail.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert pdf.get_filename() == "quote.pdf"
    assert pdf.get_content() == PDF
    assert mail.get_body(("html",)).get_content() == "<p>Hello</p>\r\n"


def test_text_attachments_keep_their_bytes_and_odd_content_types_become_octet_stream() -> None:
    # given a CSV attachment with CRLF-free LF lines and latin-1 bytes, and one with a junk content type
    csv = b"container;weight\nMSCU1234567;21.5\n\xe9\n"
    out = outbound(
        attachments=[
            OutboundAttachment("manifest.csv", "text/csv", csv),
            OutboundAttachment("blob", "not a type", b"\x00\x01"),
            OutboundAttachment("nested.eml", "message/rfc822", b"Subject: x\r\n\r\nbody\r\n"),
        ]
    )

    # when it is composed
    _, _, mail = build(out)
    csv_part, junk_part, eml_part = mail.iter_attachments()

    # then the CSV bytes come back unchanged (no line-ending conversion), and unusable types are octet-stream
    assert csv_part.get_content_type() == "text/csv"
    assert csv_part.get_payload(decode=True) == csv
    assert junk_part.get_content_type() == "application/octet-stream"
    assert junk_part.get_content() == b"\x00\x01"
    assert eml_part.get_content_type() == "application/octet-stream"
    assert eml_part.get_filename() == "nested.eml"
    assert eml_part.get_content() == b"Subject: x\r\n\r\nbody\r\n"


# --- wire format -----------------------------------------------------------------------------------


def test_every_line_ends_with_crlf() -> None:
    # given a message with every kind of part and threading headers
    out = outbound(
        body="line one\nline two\r\nline three\n",
        html="<p>one</p>\n<p>two</p>",
        signature="Ops",
        in_reply_to="<a@x>",
        references=ids(15),
        attachments=[OutboundAttachment("quote.pdf", "application/pdf", PDF * 50)],
    )

    # when it is composed
    _, raw, _ = build(out)

    # then there is no bare LF or CR anywhere: every line ends with CRLF
    assert raw.endswith(b"\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert raw.count(b"\r") == raw.count(b"\r\n")
    # and the headers end with an empty line
    assert b"\r\n\r\n" in raw


def test_attachment_names_are_kept_on_one_line_and_never_empty() -> None:
    # given attachment names with a line break (which a header cannot hold) and an empty one
    out = outbound(
        attachments=[
            OutboundAttachment("Quote\r\nMarch.pdf", "application/pdf", PDF),
            OutboundAttachment("", "application/pdf", PDF),
        ]
    )

    # when it is composed
    _, _, mail = build(out)

    # then the names are usable filenames
    assert [a.get_filename() for a in mail.iter_attachments()] == ["Quote March.pdf", "attachment"]
