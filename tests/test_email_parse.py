"""The email parser against a corpus of real-looking (and really broken) freight-forwarding mail.

Every file in tests/mail_corpus/ stands for one case; the expected values (texts, addresses, attachment
names, sizes and sha256 of the original attachment bytes) were written down from the source of the file,
not from the parser's output. No database, no services.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from banxway.integrations.email.parse import (
    MalformedEmail,
    ParsedAttachment,
    ParsedEmail,
    SkippedAttachment,
    parse_email,
)

CORPUS = Path(__file__).parent / "mail_corpus"


def load(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def parse(name: str, **options: int) -> ParsedEmail:
    return parse_email(load(name), **options)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- threading, addresses, dates ------------------------------------------------------------------


def test_gmail_reply_headers_are_decoded_and_normalised() -> None:
    # given a Gmail reply with folded References (one id repeated) and mixed-case addresses
    # when it is parsed
    mail = parse("plain_reply_gmail.eml")

    # then the ids are normalised, the references deduplicated in order, the addresses lower-cased
    assert mail.message_id == "<CAF3kq9x7Yb2=Lr+QzW1pO_8s@mail.gmail.com>"
    assert mail.in_reply_to == ["<quote-88213.1741012345@banxway.example>"]
    assert mail.references == ["<rfq-5521@oceanic-logistics.in>", "<quote-88213.1741012345@banxway.example>"]
    assert mail.subject == "Re: Quote request 40HC Nhava Sheva -> Rotterdam"
    assert mail.from_address == "priya.shah@oceanic-logistics.in"
    assert mail.from_name == "Priya Shah"
    assert mail.to == ["quotes@banxway.example"]
    assert mail.cc == ["ops@oceanic-logistics.in", "rahul.mehta@oceanic-logistics.in"]
    assert mail.reply_to == []
    assert mail.date == datetime(2025, 3, 4, 15, 12, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert mail.date.utcoffset() == timedelta(hours=5, minutes=30)
    # and every header is kept, lower-cased, unfolded, in order
    assert len(mail.headers["received"]) == 2
    assert mail.headers["received"][1] == (
        "by mail-sor-f41.google.com with SMTP id 2adb3069b0e04 "
        "for <quotes@banxway.example>; Tue, 04 Mar 2025 01:42:16 -0800 (PST)"
    )
    assert mail.headers["cc"] == ['ops@oceanic-logistics.in, "Mehta, Rahul" <Rahul.Mehta@oceanic-logistics.in>']
    assert mail.defects == []


def test_gmail_reply_text_drops_the_wrapped_attribution_the_quote_and_the_signature() -> None:
    # given a reply whose "On ... wrote:" line is wrapped, with quoted history and a "-- " signature
    # when it is parsed
    mail = parse("plain_reply_gmail.eml")

    # then text is the whole body and reply_text only what Priya wrote
    assert mail.text.startswith("Hi Anna,\n\nThanks for the rate.")
    assert mail.text.endswith("> Kind regards,\n> Anna")
    assert mail.reply_text == (
        "Hi Anna,\n\n"
        "Thanks for the rate. We accept USD 2,150 all-in for the 40HC, ETD 14 March.\n"
        "Please go ahead with the booking and send the draft B/L once available.\n\n"
        "Regards,\n"
        "Priya"
    )
    assert mail.html is None
    assert mail.attachments == []


def test_outlook_original_message_block_is_cut_from_the_reply() -> None:
    # given an Outlook reply (CRLF) with a "-----Original Message-----" block
    # when it is parsed
    mail = parse("outlook_original_message.eml")

    # then the reply stops before the block, and the line endings are normalised
    assert mail.reply_text == (
        "Hello,\n\n"
        "please amend the consignee as below and re-issue the booking confirmation.\n\n"
        "Consignee: Shanghai Sunrise Trading Co., Ltd.\n\n"
        "Best regards\n"
        "Klaus Becker"
    )
    assert "-----Original Message-----\nFrom: Banxway Bookings <bookings@banxway.example>\n" in mail.text
    assert "\r" not in mail.text
    assert mail.from_name == "Klaus Becker"
    assert mail.message_id == "<000001db8d9a$3c2e1f40$b48a5dc0$@hafen-spedition.de>"
    assert mail.to == ["bookings@banxway.example"]


def test_outlook_from_sent_header_block_is_cut_from_the_reply() -> None:
    # given a new-Outlook reply: an underscore line, then From:/Sent:/To:/Subject: and the old message
    # when it is parsed
    mail = parse("outlook_header_block.eml")

    # then the reply ends before the separator line
    assert mail.reply_text == (
        "Hi team,\n\nCargo is ready for pick-up on Friday 10:00 at our warehouse, dock 4.\n\nThanks,\nMaria"
    )
    assert mail.text.endswith("Subject: Pick-up request REF 7781\n\nHi Maria, when is the cargo ready?")


# --- bodies: alternative, HTML only, related, calendar ------------------------------------------


def test_multipart_alternative_takes_text_from_the_plain_part_and_keeps_the_sanitised_html() -> None:
    # given a multipart/alternative (quoted-printable plain and HTML versions)
    # when it is parsed
    mail = parse("outlook_header_block.eml")

    # then text is the plain version (the HTML one has no underscore line), html the cleaned HTML version
    assert "\n________________________________\nFrom: Banxway Ops <ops@banxway.example>\n" in mail.text
    assert mail.html is not None
    assert mail.html.startswith('<div style="font-family:Calibri;font-size:11pt">Hi team,<br><br>Cargo is ready')
    assert "<b>From:</b> Banxway Ops &lt;ops@banxway.example&gt;" in mail.html
    assert "<style" not in mail.html
    assert "p {margin:0}" not in mail.html
    assert "<meta" not in mail.html
    assert mail.attachments == []


def test_html_only_mail_gets_its_text_from_the_html() -> None:
    # given a text/html-only rate sheet with a table, entities and a <style> and <title> in its head
    # when it is parsed
    mail = parse("html_only.eml")

    # then text is readable plain text: paragraphs, one line per table row, cells separated by tabs
    assert mail.text == (
        "Dear customer,\n\n"
        "Our LCL rates for March:\n\n"
        "Route\tRate\n"
        "Hamburg → New York\tUSD 45/cbm\n"
        "Göteborg → Santos\tUSD 52/cbm\n\n"
        "Valid until 31 March 2025."
    )
    assert mail.reply_text == mail.text
    # and html keeps the formatting and the table, without the head
    assert mail.html is not None
    assert "<b>LCL rates</b>" in mail.html
    assert '<table border="1">' in mail.html
    assert "<td>Göteborg → Santos</td>" in mail.html
    assert "Rate sheet" not in mail.html
    assert "padding" not in mail.html


def test_html_sanitiser_removes_scripts_event_handlers_and_javascript_urls() -> None:
    # given HTML with <script>, on* handlers, javascript: links (mixed case, leading space), an iframe, a
    # form, and a style that loads a remote image
    # when it is parsed
    mail = parse("html_malicious.eml")

    # then none of the active content is left
    assert mail.html is not None
    html = mail.html.lower()
    assert "<script" not in html
    assert "fetch(" not in html
    assert "onclick" not in html
    assert "onerror" not in html
    assert "onmouseover" not in html
    assert "onload" not in html
    assert "javascript:" not in html
    assert "<iframe" not in html
    assert "<form" not in html
    assert "<input" not in html
    assert "evil.example" not in html
    # and the harmless parts stay: links, inline cid: images, basic styles
    assert '<a href="https://track.banxway.example/BKG-1" rel="noopener noreferrer">Track shipment</a>' in mail.html
    assert '<img src="cid:sig@invoice-portal.example" alt="signature">' in mail.html
    assert '<p style="color:#003366">Kind regards</p>' in mail.html
    assert "<p>Please review the <a" in mail.html
    # and the text has the words, not the script
    assert mail.text == "Please review the updated invoice.\n\nTrack shipment pay now details\n\nKind regards"


def test_multipart_related_inline_images_are_attachments_with_content_ids() -> None:
    # given multipart/related: an alternative (plain + HTML referring to two cid: images) and the two images,
    # one with a filename and inline disposition, one with only a Content-ID
    # when it is parsed
    mail = parse("related_inline_image.eml")

    # then text comes from the plain part, html keeps the cid: references
    assert mail.text == (
        "Dear Priya,\n\nbooking BKG-2025-0398 is confirmed: 1x40HC, MSC ANNA, ETD 14 March 2025.\n\nKind regards,\nAnna"
    )
    assert mail.html is not None
    assert '<img src="cid:image001.png@01DB8E2F.5C3A1B20" alt="Banxway" width="120">' in mail.html
    assert '<img src="cid:spacer">' in mail.html
    # and both images are inline attachments, named, typed and hashed
    logo, spacer = mail.attachments
    assert (logo.filename, logo.content_type, logo.content_id, logo.inline) == (
        "image001.png",
        "image/png",
        "image001.png@01DB8E2F.5C3A1B20",
        True,
    )
    assert logo.size == 72
    assert logo.sha256 == "dc831eca06c5cc4892cc3717a5f7da8949d1becc6f0fed5e697545306b903465"
    assert logo.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert (spacer.filename, spacer.content_type, spacer.content_id, spacer.inline) == (
        "attachment-2.gif",
        "image/gif",
        "spacer",
        True,
    )
    assert spacer.size == 43
    assert spacer.sha256 == "b1442e85b03bdcaf66dc58c7abb98745dd2687d86350be9a298a1d9382ac849b"
    assert mail.skipped_attachments == []


def test_calendar_invite_is_an_attachment_not_the_body() -> None:
    # given a Google invite: alternative of plain, HTML and text/calendar, plus an invite.ics attachment
    # when it is parsed
    mail = parse("calendar_invite.eml")

    # then the body is the plain text, and both calendar parts are attachments
    assert mail.text == (
        "You have been invited to the following event.\n\n"
        "Weekly shipment review - Oceanic / Banxway\n"
        "When: Wed 12 Mar 2025 10am - 10:30am (CET)\n"
        "Joining info: https://meet.google.com/abc-defg-hij"
    )
    assert "BEGIN:VCALENDAR" not in mail.text
    assert [(a.filename, a.content_type, a.inline) for a in mail.attachments] == [
        ("attachment-1.ics", "text/calendar", False),
        ("invite.ics", "application/ics", False),
    ]
    calendar, invite = mail.attachments
    assert calendar.data.startswith(b"BEGIN:VCALENDAR\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\n")
    assert b"METHOD:REQUEST\n" in calendar.data
    assert calendar.data.endswith(b"END:VEVENT\nEND:VCALENDAR")
    assert (calendar.size, calendar.sha256) == (
        380,
        "b9418ee1a612b5fd9eb0a09ac8fdddd443639f8cfbc5fc14db4c3c0dc84d42b7",
    )
    assert (invite.size, invite.sha256) == (394, "0b64172ce956d20231f39edc32e051b2f53d3b0f2d2efc7e06e29dbb2688dfd4")
    assert mail.reply_to == ["priya.shah@oceanic-logistics.in"]
    assert mail.date == datetime(2025, 3, 10, 8, 0, tzinfo=UTC)


# --- charsets and encodings ----------------------------------------------------------------------


def test_unknown_charset_is_decoded_as_utf8_and_noted() -> None:
    # given a text part declared charset="x-unknown" whose bytes are UTF-8
    # when it is parsed
    mail = parse("unknown_charset.eml")

    # then the text is right and the defect list says what happened
    assert mail.text == "Die Zollabfertigung in Köln ist erledigt – Lieferung an Müller GmbH morgen früh."
    assert mail.defects == ["message: unknown charset 'x-unknown'; decoded as utf-8"]


def test_charset_that_does_not_match_the_bytes_is_overridden() -> None:
    # given latin-1 bytes declared utf-8, UTF-8 bytes declared iso-8859-1, and UTF-8 with one stray byte
    # when it is parsed
    mail = parse("charset_mismatch.eml")

    # then all three read correctly (no mojibake; one replacement character for the stray byte), and the
    # repairs are noted
    assert mail.text == (
        "Grüße aus Düsseldorf, der LKW ist unterwegs.\n"
        "Santos – São Paulo: entrega confirmada.\n"
        "Ankunft in 上海 (Yangshan) am Montag\ufffd."
    )
    assert mail.defects == [
        "part 1: bytes are not valid 'utf-8'; decoded as cp1252",
        "part 2: declared charset 'iso-8859-1' but the bytes are UTF-8",
        "part 3: bytes are not valid 'utf-8'; decoded as utf-8, invalid bytes replaced",
    ]


def test_raw_8bit_headers_are_decoded() -> None:
    # given a raw UTF-8 subject and recipient name, and a raw latin-1 sender name (no encoded words)
    # when it is parsed
    mail = parse("raw_8bit_headers.eml")

    # then every header reads correctly
    assert mail.subject == "Angebot für Seefracht Hamburg → Shanghai (20’GP)"
    assert mail.from_name == "Jürgen Weiß"
    assert mail.from_address == "j.weiss@spedition-weiss.example"
    assert mail.to == ["zoe.mueller@banxway.example"]
    assert mail.headers["to"] == ["Zoë Müller <zoe.mueller@banxway.example>"]
    assert mail.headers["from"] == ["Jürgen Weiß <J.Weiss@Spedition-Weiss.example>"]
    assert mail.text == "Anbei unser Angebot: EUR 1.480,– pro 20’GP, Abfahrt KW 12."


def test_rfc2047_encoded_words_in_subject_and_names() -> None:
    # given a subject of two base64 words that split "ä" between them, a Q-encoded ISO-8859-1 sender name,
    # a GB2312 name, and an encoded word inside quotes (not allowed, but sent)
    # when it is parsed
    mail = parse("encoded_words.eml")

    # then all of them decode
    assert mail.subject == "Buchungsbestätigung BKG-2025-0412 – Hamburg → 上海"
    assert mail.from_name == "Jörg Müller"
    assert mail.from_address == "joerg.mueller@example-spedition.de"
    assert mail.to == ["bookings@banxway.example"]
    assert mail.headers["to"] == ['"Bookings – Banxway" <Bookings@Banxway.example>']
    assert mail.cc == ["wang.lei@sh-forwarding.example", "dispo@example-spedition.de"]
    assert mail.headers["cc"] == [
        "王磊 <wang.lei@sh-forwarding.example>, Dispo Düsseldorf <dispo@example-spedition.de>"
    ]
    assert mail.reply_to == ["buchhaltung@example-spedition.de"]
    assert mail.headers["reply-to"] == ["Buchhaltung Müller <buchhaltung@example-spedition.de>"]
    assert mail.text == "Danke für die Bestätigung."


def test_base64_with_bad_padding_and_stray_characters_still_decodes() -> None:
    # given a base64 text part without its padding, and a base64 PDF with a stray "!" and no padding
    # when it is parsed
    mail = parse("bad_base64.eml")

    # then both decode to the original bytes and the defects are listed
    assert mail.text == "Container MSCU1234567 released, pick-up ref PU-55120 at gate 3."
    (release,) = mail.attachments
    assert (release.filename, release.content_type, release.size) == ("release_PU-55120.pdf", "application/pdf", 174)
    assert release.sha256 == "834efd45f6aa525dabc1f7e93c0d487422c0a738b408dc07a104aec977fb85c2"
    assert release.data.startswith(b"%PDF-1.4\n")
    assert any(d.startswith("part 1: InvalidBase64PaddingDefect") for d in mail.defects)
    assert any(d.startswith("part 2: InvalidBase64CharactersDefect") for d in mail.defects)


def test_quoted_printable_text_and_html() -> None:
    # given quoted-printable plain and HTML parts (soft line breaks, =C3=BC, a literal "=")
    # when it is parsed
    mail = parse("quoted_printable.eml")

    # then the soft breaks are joined and the bytes decoded; trailing ">" lines are cut from the reply
    sentence = (
        "Noted, we will inform the consignee. The demurrage free time at Rotterdam ends on 18.03.2025 "
        "and the terminal charges are EUR 145,– per day (ref=DEM-1192)."
    )
    assert mail.text == (
        f"{sentence}\n\nGrüße\nJörg\n\n> Vessel MSC ANNA is delayed by two days.\n> New ETA Rotterdam: 21 March 2025."
    )
    assert mail.reply_text == f"{sentence}\n\nGrüße\nJörg"
    assert mail.html == f"<p>{sentence}</p><p>Grüße<br>Jörg</p>"
    assert mail.from_name == "Jörg Müller"
    assert mail.defects == []


# --- broken structure ----------------------------------------------------------------------------


def test_boundary_never_closed() -> None:
    # given a multipart whose closing boundary never comes
    # when it is parsed
    mail = parse("unclosed_boundary.eml")

    # then the text and the (complete) attachment are there, and the defect is reported
    assert mail.text == "Please find the cargo manifest attached."
    (manifest,) = mail.attachments
    assert (manifest.filename, manifest.content_type, manifest.size) == (
        "manifest_112E.pdf",
        "application/pdf",
        188,
    )
    assert manifest.sha256 == "d6cba9b9f54b3e8492a02386d24b302b3c4593c4021c9e71ee4547480a721105"
    assert mail.defects == [
        "message: CloseBoundaryNotFoundDefect: A start boundary was found, but not the corresponding close boundary."
    ]


@pytest.mark.parametrize(
    ("name", "stdlib_defect"),
    [("missing_boundary.eml", "NoBoundaryInMultipartDefect"), ("wrong_boundary.eml", "StartBoundaryNotFoundDefect")],
)
def test_missing_or_wrong_boundary_is_recovered_from_the_body(name: str, stdlib_defect: str) -> None:
    # given a multipart/mixed with no boundary parameter, or with one that the body never uses (and a line of
    # dashes in the preamble that is no boundary)
    # when it is parsed
    mail = parse(name)

    # then the boundary the body does use is found, so text and attachment are both there
    assert mail.text == "Packing list for shipment 7781 attached."
    (packing,) = mail.attachments
    assert (packing.filename, packing.content_type, packing.size) == ("packing-list.csv", "text/csv", 67)
    assert packing.data == b"carton;description;gross kg\n1;Brake discs;412.5\n2;Brake pads;133.0\n"
    assert packing.sha256 == "8e258c3e131bc85274ee23f735941d48e29ba8ae5e91746afdb7eaf7e545451c"
    assert "message: the multipart boundary was recovered from the body ('=_b42_packing')" in mail.defects
    assert any(d.startswith(f"message: {stdlib_defect}: ") for d in mail.defects)


def test_absurdly_deep_multipart_nesting_is_read_as_text_instead_of_crashing() -> None:
    # given 1,000 multiparts nested in each other (the standard library's parser recurses on them)
    raw = (
        b"From: a@example.org\nSubject: deep\n"
        + b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(1000))
        + b"Content-Type: text/plain\n\nthe leaf\n"
    )

    # when it is parsed
    mail = parse_email(raw)

    # then it is still a message: headers read, the body kept as text, the problem noted
    assert mail.subject == "deep"
    assert mail.from_address == "a@example.org"
    assert "the leaf" in mail.text
    assert mail.defects[0].startswith("message: the MIME structure could not be parsed (RecursionError)")


def test_content_type_with_thousands_of_nested_comments_is_parsed_without_structured_headers() -> None:
    # given a Content-Type whose parameter is 100,000 opening parentheses (the standard library's structured
    # header parser recurses on comments)
    raw = load("unknown_charset.eml").replace(
        b'Content-Type: text/plain; charset="x-unknown"', b"Content-Type: text/plain; charset=" + b"(" * 100_000
    )

    # when it is parsed
    mail = parse_email(raw)

    # then the message and its MIME parts are still read, and the fallback is noted
    assert mail.subject == "Zollabfertigung Sendung 4471"
    assert mail.text == "Die Zollabfertigung in Köln ist erledigt – Lieferung an Müller GmbH morgen früh."
    assert mail.defects[0] == (
        "message: the MIME structure could not be parsed (RecursionError); parsed without structured headers"
    )


# --- Message-ID and the content hash --------------------------------------------------------------


def test_missing_message_id_is_none() -> None:
    # given a message without a Message-ID header
    # when it is parsed
    mail = parse("no_message_id.eml")

    # then message_id is None and the rest is read as usual
    assert mail.message_id is None
    assert "message-id" not in mail.headers
    assert mail.subject == "Daily container status 2025-03-07"
    assert mail.text == (
        "Container   Status       Location\nMSCU1234567 Gate in      CTA Hamburg\nTGHU7654321 Loaded       MSC ANNA"
    )


def test_same_message_fetched_twice_has_the_same_content_hash_and_another_body_does_not() -> None:
    # given one message without Message-ID, fetched twice: once as stored (CRLF), once re-delivered with LF
    # line endings and an extra Received header
    raw = load("no_message_id.eml")
    refetched = b"Received: from relay.banxway.example by mx2.banxway.example\n" + raw.replace(b"\r\n", b"\n")

    # when both are parsed (and the first one twice)
    first, again, second = parse_email(raw), parse_email(raw), parse_email(refetched)

    # then the content hashes agree
    assert len(first.content_hash) == 64
    assert int(first.content_hash, 16) >= 0
    assert first.content_hash == again.content_hash == second.content_hash
    # and a different body, subject, sender or date gives a different hash
    changed = [
        raw.replace(b"TGHU7654321 Loaded", b"TGHU7654321 Discharged"),
        raw.replace(b"Subject: Daily container status 2025-03-07", b"Subject: Daily container status 2025-03-08"),
        raw.replace(b"noreply@harbour-cargo.example", b"erp@harbour-cargo.example"),
        raw.replace(b"Date: Fri, 7 Mar 2025 06:01:00", b"Date: Sat, 8 Mar 2025 06:01:00"),
    ]
    hashes = {parse_email(variant).content_hash for variant in changed}
    assert len(hashes) == 4
    assert first.content_hash not in hashes


def test_message_ids_without_angle_brackets_or_with_whitespace_are_normalised() -> None:
    # given a Message-ID without brackets and an In-Reply-To with whitespace inside the brackets and a comment
    raw = load("outlook_original_message.eml").replace(
        b"Message-ID: <000001db8d9a$3c2e1f40$b48a5dc0$@hafen-spedition.de>",
        b"Message-ID: 000001db8d9a$3c2e1f40$b48a5dc0$@hafen-spedition.de",
    )
    raw = raw.replace(
        b"In-Reply-To: <bkg-2025-0412.confirm@banxway.example>",
        b"In-Reply-To: < bkg-2025-0412.confirm@banxway.example > (Bookings's message of 4 March)",
    )

    # when it is parsed
    mail = parse_email(raw)

    # then both come out in the <local@domain> form
    assert mail.message_id == "<000001db8d9a$3c2e1f40$b48a5dc0$@hafen-spedition.de>"
    assert mail.in_reply_to == ["<bkg-2025-0412.confirm@banxway.example>"]


def test_bad_or_missing_date_is_none_and_a_zoneless_date_is_utc() -> None:
    # given the same message with a garbage Date, with none, and with the "-0000" (zone unknown) form
    raw = load("no_message_id.eml")
    garbage = raw.replace(b"Date: Fri, 7 Mar 2025 06:01:00 +0100", b"Date: next Friday morning")
    missing = raw.replace(b"Date: Fri, 7 Mar 2025 06:01:00 +0100\r\n", b"")
    zoneless = raw.replace(b"Date: Fri, 7 Mar 2025 06:01:00 +0100", b"Date: Fri, 7 Mar 2025 06:01:00 -0000")

    # when they are parsed
    # then the date is None (noted for the garbage one), or an aware UTC datetime
    assert parse_email(garbage).date is None
    assert parse_email(garbage).defects == ["message: the Date header could not be read ('next Friday morning')"]
    assert parse_email(missing).date is None
    assert parse_email(missing).defects == []
    assert parse_email(zoneless).date == datetime(2025, 3, 7, 6, 1, tzinfo=UTC)


# --- attachments ---------------------------------------------------------------------------------


def test_nested_rfc822_is_parsed_and_still_listed_as_an_eml_attachment() -> None:
    # given a forward whose carrier confirmation is attached as message/rfc822 with its own PDF
    # when it is parsed
    mail = parse("forwarded_rfc822.eml")

    # then the outer text is the forwarder's, and the inner message is parsed on its own
    assert mail.text == "FYI, the carrier confirmation is attached."
    (inner,) = mail.nested_messages
    assert inner.subject == "Booking Confirmation 177BKG0412 / MSCU1234567"
    assert inner.from_address == "booking@msc-carrier.example"
    assert inner.from_name == "MSC Booking Desk"
    assert inner.message_id == "<bc-177bkg0412@msc-carrier.example>"
    assert inner.text == "Booking 177BKG0412 confirmed. Equipment release: MSCU1234567."
    (confirmation,) = inner.attachments
    assert (confirmation.filename, confirmation.size) == ("BC_177BKG0412.pdf", 184)
    assert confirmation.sha256 == "d78c7b55875e249895db854d44261785c2997eb0cd7b29a802b1a53b25d36132"
    # and the outer message lists it as an .eml attachment holding exactly the original bytes (not the PDF)
    (eml,) = mail.attachments
    assert (eml.filename, eml.content_type, eml.inline) == (
        "Booking Confirmation 177BKG0412 _ MSCU1234567.eml",
        "message/rfc822",
        False,
    )
    source = load("forwarded_rfc822.eml")
    start = source.index(b"From: MSC Booking Desk")
    end = source.index(b"--inner-1--\n") + len(b"--inner-1--\n")
    assert eml.data == source[start:end]
    assert parse_email(eml.data).attachments[0].sha256 == confirmation.sha256


def test_nested_messages_stop_at_depth_three() -> None:
    # given a message forwarding a message forwarding ... five levels deep
    # when it is parsed
    mail = parse("nested_depth.eml")

    # then levels 1 to 3 are parsed, level 4 is only an attachment of level 3, and that is noted
    level1 = mail.nested_messages[0]
    level2 = level1.nested_messages[0]
    level3 = level2.nested_messages[0]
    assert [m.subject for m in (mail, level1, level2, level3)] == ["Level 0", "Level 1", "Level 2", "Level 3"]
    assert [m.text for m in (level1, level2, level3)] == ["This is level 1.", "This is level 2.", "This is level 3."]
    assert level3.nested_messages == []
    assert [a.filename for a in level3.attachments] == ["attachment-1.eml"]
    assert level3.attachments[0].data.startswith(b"From: Level 4 <level4@example.org>\n")
    assert [a.filename for a in mail.attachments] == ["Level 1.eml"]
    assert level3.defects == ["part 2: attached message beyond the nesting limit of 3; not parsed"]
    assert mail.defects == [
        "part 2 (attached message) > part 2 (attached message) > part 2 (attached message) > "
        "part 2: attached message beyond the nesting limit of 3; not parsed"
    ]


def test_attachment_over_the_limit_is_skipped_and_listed() -> None:
    # given a 6,000-byte invoice and a 29-byte text attachment
    # when the message is parsed with a 4,096-byte limit
    mail = parse("oversized_attachment.eml", max_attachment_bytes=4096)

    # then the invoice is listed as skipped, with its size and why, and the small one is kept
    assert mail.skipped_attachments == [
        SkippedAttachment(
            filename="Commercial_Invoice_INV-7781.pdf",
            content_type="application/pdf",
            size=6000,
            reason="larger than the 4096-byte limit",
        )
    ]
    (marks,) = mail.attachments
    assert (marks.filename, marks.content_type, marks.data) == (
        "shipping_marks.txt",
        "text/plain",
        b"Shipping marks: BXW/7781/1-12",
    )
    assert mail.text == "Invoice and shipping marks attached."


def test_attachment_under_the_default_limit_is_kept() -> None:
    # given the same message
    # when it is parsed with the default limit (10 MiB)
    mail = parse("oversized_attachment.eml")

    # then both attachments are there, the invoice byte for byte
    assert mail.skipped_attachments == []
    invoice, marks = mail.attachments
    assert (invoice.filename, invoice.size) == ("Commercial_Invoice_INV-7781.pdf", 6000)
    assert invoice.sha256 == "118aef648134d4bf74786fea00014b86f711de9191948ac7c6d927d95a2cc5fd"
    assert marks.filename == "shipping_marks.txt"


def test_rfc2231_and_hostile_filenames() -> None:
    # given ten attachments whose names use RFC 2231 (plain, continuations, latin-1), RFC 2047 inside
    # quotes, both a plain and an RFC 2231 name, a Windows path, a "B/L" name, a path traversal, control
    # and bidi characters, and no name at all
    # when it is parsed
    mail = parse("rfc2231_filenames.eml")

    # then every name is decoded and safe, and the unnamed one gets a generated name
    assert [a.filename for a in mail.attachments] == [
        "Rechnung Müller € 120.pdf",
        "提单草稿.pdf",
        "Zollanmeldung_Köln.xlsx",
        "Frachtbrief Nr. 5 – Lyon.pdf",
        "Packliste Übersee.pdf",
        "HBL 4471.pdf",
        "B_L draft MAEU240311.pdf",
        "passwd",
        "invoicefdp.exe",
        "attachment-10.pdf",
    ]
    for index, attachment in enumerate(mail.attachments, 1):
        assert attachment.data == f"file {index}\n".encode()
        assert attachment.sha256 == sha256(f"file {index}\n".encode())
        assert "/" not in attachment.filename
        assert "\\" not in attachment.filename
        assert all(ch.isprintable() for ch in attachment.filename)
    assert mail.attachments[2].content_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert mail.text == "Ten documents attached."


def test_huge_header() -> None:
    # given 3,100 References (100 repeated) and a 200 kB header line
    # when it is parsed
    mail = parse("huge_header.eml")

    # then all of it is read
    assert len(mail.references) == 3000
    assert mail.references[0] == "<msg-00000.00000@shipping-mailer.example>"
    assert mail.references[-1] == "<msg-02999.49081@shipping-mailer.example>"
    (trace,) = mail.headers["x-routing-trace"]
    assert len(trace) == 199_999
    assert trace.startswith("PORT00000>PORT00001>")
    assert trace.endswith(">PORT19999")
    assert mail.subject == "Status digest 2025-03-07"
    assert mail.text == "Digest attached in the portal."


# --- what is not an email, and what must never happen ---------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"\r\n\r\n  \n", "empty"),
        (random.Random(7).randbytes(4096), "header"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x04" + bytes(range(256)), "header"),
        (b"Hello, this is just some text.\nNo headers here.\n", "header"),
    ],
    ids=["empty", "blank-lines", "random-bytes", "png", "text-without-headers"],
)
def test_bytes_that_are_not_an_email_raise_malformed_email(raw: bytes, reason: str) -> None:
    # given bytes that are plainly not an email
    # when they are parsed
    # then MalformedEmail (a ValueError) says why
    with pytest.raises(MalformedEmail, match=reason):
        parse_email(raw)
    assert issubclass(MalformedEmail, ValueError)


def test_headers_without_a_body_are_an_email() -> None:
    # given only a header block
    raw = b"From: Ops <ops@banxway.example>\r\nSubject: ETA update\r\n"

    # when it is parsed
    mail = parse_email(raw)

    # then it is a message with an empty body
    assert (mail.subject, mail.from_address, mail.text, mail.reply_text, mail.html) == (
        "ETA update",
        "ops@banxway.example",
        "",
        "",
        None,
    )


def test_reply_text_falls_back_to_text_when_everything_is_quoted() -> None:
    # given a message whose whole body is quoted
    raw = load("no_message_id.eml").split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n> Container released.\r\n> Gate 3.\r\n"

    # when it is parsed
    mail = parse_email(raw)

    # then reply_text is not empty: it is the text
    assert mail.text == "> Container released.\n> Gate 3."
    assert mail.reply_text == mail.text


def test_results_are_frozen() -> None:
    # given a parsed message
    mail = parse("related_inline_image.eml")

    # when a field is assigned
    # then it is refused
    with pytest.raises(dataclasses.FrozenInstanceError):
        mail.subject = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        mail.attachments[0].filename = "changed.png"  # type: ignore[misc]
    assert isinstance(mail.attachments[0], ParsedAttachment)
    assert "data" not in repr(mail.attachments[0])


def test_mangled_corpus_never_raises_anything_but_malformed_email() -> None:
    # given every corpus file truncated at many points and with random bytes changed, cut and inserted
    rng = random.Random(20250307)
    insertions = [b"=?utf-8?b?", b"?=", b"\r\n", b"--", b"<", b">", b'"', b"\\", b"=?x-bad?q?=FF?=", b"\x00", b"\xff"]
    variants: list[bytes] = []
    for path in sorted(CORPUS.glob("*.eml")):
        raw = path.read_bytes()
        if len(raw) > 100_000:
            continue
        variants += [raw[:cut] for cut in range(0, len(raw), max(1, len(raw) // 15))]
        for _ in range(40):
            mangled = bytearray(raw)
            for _ in range(rng.randint(1, 12)):
                position = rng.randrange(len(mangled))
                roll = rng.random()
                if roll < 0.5:
                    mangled[position] = rng.randrange(256)
                elif roll < 0.7:
                    del mangled[position : position + rng.randint(1, 40)]
                else:
                    mangled[position:position] = rng.choice(insertions)
            variants.append(bytes(mangled))
    assert len(variants) > 500

    # when each is parsed
    parsed = malformed = 0
    for raw in variants:
        try:
            mail = parse_email(raw)
        except MalformedEmail:
            malformed += 1
            continue
        parsed += 1
        # then what comes back is usable text (no NUL, no lone surrogates) and keeps the reply_text promise
        for value in [mail.subject, mail.text, mail.reply_text, *(v for vs in mail.headers.values() for v in vs)]:
            assert "\x00" not in value
            value.encode("utf-8")
        assert mail.reply_text or not mail.text

    # and almost all of them are still read as email
    assert parsed > malformed * 5
