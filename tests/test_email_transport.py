"""The email transport against real servers: Dovecot for IMAP, aiosmtpd for SMTP (tests/standins/mailservers.py)."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from banxway.enums import MailSecurity
from banxway.integrations.email import imap, smtp
from banxway.integrations.email.imap import ImapConfig, ImapError
from banxway.integrations.email.smtp import PermanentSendError, SmtpConfig, TransientSendError
from tests.standins import mailservers
from tests.standins.mailservers import DovecotServer, SmtpServer, free_ports

# The fixtures, until tests/conftest.py loads tests.standins.mailservers as a plugin (harmless afterwards).


def imap_config(server: DovecotServer, security: MailSecurity = MailSecurity.NONE, **changes: object) -> ImapConfig:
    port = server.tls_port if security is MailSecurity.TLS else server.port
    config = ImapConfig(
        host=server.host,
        port=port,
        security=security,
        username=server.user,
        password=server.password,
        timeout=10,
        ca_file=server.cert_path,
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def smtp_config(server: SmtpServer, security: MailSecurity = MailSecurity.NONE, **changes: object) -> SmtpConfig:
    port = server.tls_port if security is MailSecurity.TLS else server.port
    config = SmtpConfig(
        host=server.host,
        port=port,
        security=security,
        username=server.user,
        password=server.password,
        timeout=10,
        ca_file=server.cert_path,
        local_hostname="client.test",
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def message(number: int, body: bytes = b"Hello.\r\n") -> bytes:
    return (
        f"From: Shipper <shipper@example.com>\r\n"
        f"To: Ops <ops@banxway.test>\r\n"
        f"Subject: Booking {number}\r\n"
        f"Message-ID: <booking-{number}@example.com>\r\n"
        f"\r\n"
    ).encode() + body


def fetch_all(config: ImapConfig, **kwargs: object) -> list[imap.MailboxPage]:
    kwargs.setdefault("uidvalidity", None)
    kwargs.setdefault("last_uid", 0)
    return list(imap.fetch_since(config, **kwargs))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the fixture


def test_without_dovecot_the_fixture_skips_but_fails_under_ci(
    mail_certs: mailservers.MailCerts, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a machine without Dovecot
    monkeypatch.setattr(mailservers, "find_dovecot", lambda: None)

    # When the fixture starts outside CI, then the test is skipped with the install hint
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install dovecot-imapd"):
        with mailservers.run_dovecot(mail_certs):
            pass

    # And under CI it fails instead
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="dovecot is not installed"):
        with mailservers.run_dovecot(mail_certs):
            pass


def _processes_mentioning(*needles: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(needle in cmdline for needle in needles):
                found.append(f"{entry.name}: {cmdline}")
    return found


def test_dovecot_fixture_starts_fast_and_leaves_no_process(mail_certs: mailservers.MailCerts) -> None:
    # When a server starts, serves a login, and stops
    started = time.monotonic()
    with mailservers.run_dovecot(mail_certs) as server:
        startup = time.monotonic() - started
        assert imap.test_imap(imap_config(server))[-1].ok
        # Dovecot's processes name themselves after instance_name; the master's command line names the config.
        needles = (f"banxway-test-{server.port}/", str(server.root))
        assert len(_processes_mentioning(*needles)) >= 3
        root = server.root

    # Then it started well within a second, and nothing of it is left
    assert startup < 1, startup
    assert not root.exists()
    assert _processes_mentioning(*needles) == []


# --------------------------------------------------------------------------- test_imap


@pytest.mark.parametrize("security", [MailSecurity.NONE, MailSecurity.STARTTLS, MailSecurity.TLS])
def test_imap_reports_every_step_ok(dovecot: DovecotServer, security: MailSecurity) -> None:
    # Given a running Dovecot and the right credentials
    config = imap_config(dovecot, security)

    # When the connection is tested
    steps = imap.test_imap(config)

    # Then every step passed, with the server's own words
    expected = (
        ["connect", "login", "select"] if security is MailSecurity.NONE else ["connect", "tls", "login", "select"]
    )
    assert [step.step for step in steps] == expected
    assert all(step.ok for step in steps), steps
    assert "Dovecot ready" in steps[0].detail
    assert "Logged in" in steps[-2].detail
    assert steps[-1].detail.startswith("INBOX: 0 messages, UIDVALIDITY ")
    if security is not MailSecurity.NONE:
        assert "TLSv1." in steps[1].detail


def test_imap_bad_password_fails_at_login_with_dovecots_words(dovecot: DovecotServer) -> None:
    # Given a wrong password
    config = imap_config(dovecot, MailSecurity.STARTTLS, password="wrong")

    # When the connection is tested
    steps = imap.test_imap(config)

    # Then connect and TLS passed, the login failed with Dovecot's reply, and nothing ran after it
    assert [(step.step, step.ok) for step in steps] == [("connect", True), ("tls", True), ("login", False)]
    assert "Authentication failed" in steps[-1].detail
    assert "AUTHENTICATIONFAILED" in steps[-1].detail
    assert not steps[-1].detail.startswith("b'")


def test_imap_missing_folder_fails_at_select(dovecot: DovecotServer) -> None:
    # Given a folder that does not exist
    config = imap_config(dovecot, folder="Shipments/Nope")

    # When the connection is tested
    steps = imap.test_imap(config)

    # Then the select step fails with the server's words
    assert [(step.step, step.ok) for step in steps] == [("connect", True), ("login", True), ("select", False)]
    assert "doesn't exist" in steps[-1].detail


def test_imap_unreachable_port_fails_at_connect() -> None:
    # Given a port nobody listens on
    (port,) = free_ports(1)
    config = ImapConfig(host="127.0.0.1", port=port, security=MailSecurity.TLS, username="a", password="b", timeout=5)

    # When the connection is tested
    steps = imap.test_imap(config)

    # Then only the connect step ran, and it failed
    assert [(step.step, step.ok) for step in steps] == [("connect", False)]
    assert "refused" in steps[0].detail.lower()


def test_imap_untrusted_certificate_fails_at_tls(dovecot: DovecotServer) -> None:
    # Given no extra CA: the test certificate is not in the system store
    config = imap_config(dovecot, MailSecurity.TLS, ca_file=None)

    # When the connection is tested
    steps = imap.test_imap(config)

    # Then the TCP connection worked and the certificate was refused
    assert [(step.step, step.ok) for step in steps] == [("connect", True), ("tls", False)]
    assert "certificate" in steps[-1].detail


def test_imap_plain_client_on_the_tls_port_fails_cleanly(dovecot: DovecotServer) -> None:
    # Given the TLS port configured as a plain one
    config = imap_config(dovecot, MailSecurity.NONE, port=dovecot.tls_port, timeout=0.5)

    # When the connection is tested
    steps = imap.test_imap(config)

    # Then the connect step fails (no greeting in plain text) and nothing raised
    assert steps[0].step == "connect"
    assert not steps[-1].ok


# --------------------------------------------------------------------------- test_smtp


@pytest.mark.parametrize("security", [MailSecurity.NONE, MailSecurity.STARTTLS, MailSecurity.TLS])
def test_smtp_reports_every_step_ok(smtp_server: SmtpServer, security: MailSecurity) -> None:
    # Given a running SMTP server and the right credentials
    config = smtp_config(smtp_server, security)

    # When the connection is tested
    steps = smtp.test_smtp(config)

    # Then every step passed, with the server's words
    expected = {
        MailSecurity.NONE: ["connect", "ehlo", "auth"],
        MailSecurity.STARTTLS: ["connect", "ehlo", "tls", "auth"],
        MailSecurity.TLS: ["connect", "tls", "ehlo", "auth"],
    }[security]
    assert [step.step for step in steps] == expected
    assert all(step.ok for step in steps), steps
    assert steps[0].detail.startswith("220 ")
    assert "AUTH" in next(step.detail for step in steps if step.step == "ehlo")
    assert steps[-1].detail.startswith("235 ")


def test_smtp_bad_password_fails_at_auth(smtp_server: SmtpServer) -> None:
    # Given a wrong password
    config = smtp_config(smtp_server, MailSecurity.STARTTLS, password="wrong")

    # When the connection is tested
    steps = smtp.test_smtp(config)

    # Then the auth step fails with the server's reply
    assert [(step.step, step.ok) for step in steps] == [
        ("connect", True),
        ("ehlo", True),
        ("tls", True),
        ("auth", False),
    ]
    assert steps[-1].detail.startswith("535")


def test_smtp_without_username_skips_auth(smtp_server: SmtpServer) -> None:
    # Given no credentials
    config = smtp_config(smtp_server, username=None, password=None)

    # When the connection is tested
    steps = smtp.test_smtp(config)

    # Then there is no auth step
    assert [(step.step, step.ok) for step in steps] == [("connect", True), ("ehlo", True)]


def test_smtp_unreachable_port_fails_at_connect() -> None:
    # Given a port nobody listens on
    (port,) = free_ports(1)
    config = SmtpConfig(
        host="127.0.0.1", port=port, security=MailSecurity.NONE, username=None, password=None, timeout=5
    )

    # When the connection is tested
    steps = smtp.test_smtp(config)

    # Then the connect step failed
    assert [(step.step, step.ok) for step in steps] == [("connect", False)]
    assert "refused" in steps[0].detail.lower()


# --------------------------------------------------------------------------- fetch_since


@pytest.mark.parametrize("count", [0, 1, 250])
def test_fetch_since_returns_every_mail_once_in_uid_order(dovecot: DovecotServer, count: int) -> None:
    # Given `count` messages in the INBOX
    raws = [message(number) for number in range(count)]
    uids = dovecot.append_many(None, raws) if raws else []
    uidvalidity = dovecot.uidvalidity()

    # When everything is fetched from scratch
    pages = fetch_all(imap_config(dovecot))

    # Then every message came exactly once, in UID order, in pages of at most 100, with the mailbox's UIDVALIDITY
    fetched = [mail for page in pages for mail in page.mails]
    assert [mail.uid for mail in fetched] == uids
    assert [mail.raw for mail in fetched] == raws
    assert [mail.size for mail in fetched] == [len(raw) for raw in raws]
    assert all(page.uidvalidity == uidvalidity for page in pages)
    if count == 0:
        assert [(page.mails, page.highest_uid) for page in pages] == [([], 0)]
    else:
        assert [len(page.mails) for page in pages] == [min(100, count - start) for start in range(0, count, 100)]
        assert [page.highest_uid for page in pages] == [page.mails[-1].uid for page in pages]


def test_fetch_since_after_last_uid_returns_only_newer_mail(dovecot: DovecotServer) -> None:
    # Given three messages, of which the caller already has the first two
    uids = dovecot.append_many(None, [message(1), message(2), message(3)])
    uidvalidity = dovecot.uidvalidity()

    # When fetching after the second one
    pages = fetch_all(imap_config(dovecot), uidvalidity=uidvalidity, last_uid=uids[1])

    # Then only the third comes back
    assert [mail.uid for page in pages for mail in page.mails] == [uids[2]]
    assert pages[-1].highest_uid == uids[2]

    # And when nothing is newer, one empty page says so (keeping last_uid)
    pages = fetch_all(imap_config(dovecot), uidvalidity=uidvalidity, last_uid=uids[2])
    assert [(page.uidvalidity, page.mails, page.highest_uid) for page in pages] == [(uidvalidity, [], uids[2])]


def test_fetch_since_restarts_from_uid_1_when_uidvalidity_changes(dovecot: DovecotServer) -> None:
    # Given three messages the caller has fetched under the current UIDVALIDITY
    raws = [message(1), message(2), message(3)]
    dovecot.append_many(None, raws)
    first = fetch_all(imap_config(dovecot))
    old_uidvalidity, last_uid = first[-1].uidvalidity, first[-1].highest_uid

    # When the server's mailbox starts over with a new UIDVALIDITY
    new_uidvalidity = dovecot.change_uidvalidity()
    pages = fetch_all(imap_config(dovecot), uidvalidity=old_uidvalidity, last_uid=last_uid)

    # Then the new UIDVALIDITY is reported and everything is fetched again from UID 1
    assert new_uidvalidity != old_uidvalidity
    assert {page.uidvalidity for page in pages} == {new_uidvalidity}
    fetched = [mail for page in pages for mail in page.mails]
    assert [mail.uid for mail in fetched] == [1, 2, 3]
    assert sorted(mail.raw for mail in fetched) == sorted(raws)


def test_fetch_since_with_no_known_uidvalidity_fetches_everything(dovecot: DovecotServer) -> None:
    # Given two messages
    dovecot.append_many(None, [message(1), message(2)])

    # When the caller knows no UIDVALIDITY (a new mailbox) but passes a last_uid anyway
    pages = fetch_all(imap_config(dovecot), uidvalidity=None, last_uid=1)

    # Then everything is fetched
    assert [mail.uid for page in pages for mail in page.mails] == [1, 2]


def test_fetch_since_skips_the_body_of_oversized_mail(dovecot: DovecotServer) -> None:
    # Given a small message and one larger than the limit
    small = message(1)
    big = message(2, (b"y" * 998 + b"\r\n") * 60)
    uids = dovecot.append_many(None, [small, big])

    # When fetching with a 10 kB limit
    pages = fetch_all(imap_config(dovecot), max_size=10_000)

    # Then the big one comes with its size and no body, the small one whole
    fetched = [mail for page in pages for mail in page.mails]
    assert [(mail.uid, mail.raw, mail.size) for mail in fetched] == [
        (uids[0], small, len(small)),
        (uids[1], b"", len(big)),
    ]


def test_fetch_since_splits_pages_by_bytes(dovecot: DovecotServer) -> None:
    # Given three messages of about 3 kB
    raws = [message(number, b"z" * 3000 + b"\r\n") for number in range(3)]
    uids = dovecot.append_many(None, raws)

    # When a page may hold at most 5 kB
    pages = fetch_all(imap_config(dovecot), max_page_bytes=5000)

    # Then each message comes in its own page, in order, nothing lost
    assert [[mail.uid for mail in page.mails] for page in pages] == [[uid] for uid in uids]
    assert [page.highest_uid for page in pages] == uids


def test_fetch_since_leaves_mail_unseen(dovecot: DovecotServer) -> None:
    # Given two unread messages
    uids = dovecot.append_many(None, [message(1), message(2)])

    # When they are fetched
    fetch_all(imap_config(dovecot))

    # Then neither was marked \Seen
    flags = dovecot.flags()
    assert set(flags) == set(uids)
    assert all(b"\\Seen" not in message_flags for message_flags in flags.values())
    assert dovecot.status()["UNSEEN"] == 2


def test_fetch_since_reads_another_folder(dovecot: DovecotServer) -> None:
    # Given a message in a folder other than the INBOX
    dovecot.append(None, message(1), folder="Bookings")
    dovecot.append(None, message(2))

    # When that folder is fetched
    pages = fetch_all(imap_config(dovecot, folder="Bookings"))

    # Then only its message comes back
    assert [mail.raw for page in pages for mail in page.mails] == [message(1)]


def test_fetch_since_raises_imap_error_on_bad_password(dovecot: DovecotServer) -> None:
    # Given a wrong password
    config = imap_config(dovecot, password="wrong")

    # When fetching, then an ImapError names the login step and carries Dovecot's words
    with pytest.raises(ImapError) as caught:
        fetch_all(config)
    assert caught.value.step == "login"
    assert "Authentication failed" in caught.value.detail
    assert not caught.value.transient


def test_fetch_since_raises_transient_imap_error_when_unreachable() -> None:
    (port,) = free_ports(1)
    config = ImapConfig(host="127.0.0.1", port=port, security=MailSecurity.NONE, username="a", password="b", timeout=5)
    with pytest.raises(ImapError) as caught:
        fetch_all(config)
    assert caught.value.step == "connect"
    assert caught.value.transient


# --------------------------------------------------------------------------- wait_for_mail


def test_wait_for_mail_returns_true_when_another_connection_appends(dovecot: DovecotServer) -> None:
    # Given a client idling on the INBOX
    config = imap_config(dovecot, MailSecurity.STARTTLS)
    result: list[bool] = []
    started = time.monotonic()
    waiter = threading.Thread(target=lambda: result.append(imap.wait_for_mail(config, timeout=10)))
    waiter.start()
    time.sleep(0.3)

    # When another connection appends a message
    appended = time.monotonic()
    dovecot.append(None, message(1))
    waiter.join(timeout=10)

    # Then the waiter wakes up with True, well within a second of the append
    assert result == [True]
    assert time.monotonic() - appended < 1.5, time.monotonic() - started


def test_wait_for_mail_returns_false_after_the_timeout(dovecot: DovecotServer) -> None:
    # Given an INBOX where nothing arrives
    config = imap_config(dovecot)

    # When waiting half a second
    started = time.monotonic()
    result = imap.wait_for_mail(config, timeout=0.5)

    # Then it returns False after about that long
    elapsed = time.monotonic() - started
    assert result is False
    assert 0.5 <= elapsed < 2.5


def test_wait_for_mail_returns_at_once_for_mail_newer_than_last_uid(dovecot: DovecotServer) -> None:
    # Given a message that arrived after the caller's last fetch
    uid = dovecot.append(None, message(1))
    uidvalidity = dovecot.uidvalidity()
    config = imap_config(dovecot)

    # When waiting with the caller's position, then it answers True at once (no IDLE)
    started = time.monotonic()
    assert imap.wait_for_mail(config, timeout=5, uidvalidity=uidvalidity, last_uid=uid - 1) is True
    assert time.monotonic() - started < 1

    # And with the caller up to date, it waits for the timeout
    assert imap.wait_for_mail(config, timeout=0.3, uidvalidity=uidvalidity, last_uid=uid) is False

    # And a changed UIDVALIDITY also answers True at once
    assert imap.wait_for_mail(config, timeout=5, uidvalidity=uidvalidity - 1, last_uid=uid) is True


def test_wait_for_mail_raises_a_transient_error_when_the_server_goes_away(dovecot: DovecotServer) -> None:
    # Given a client idling on the INBOX
    config = imap_config(dovecot)
    outcome: list[BaseException | bool] = []

    def wait() -> None:
        try:
            outcome.append(imap.wait_for_mail(config, timeout=10))
        except BaseException as error:
            outcome.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)

    # When the server dies
    stopped = time.monotonic()
    dovecot.stop()
    waiter.join(timeout=10)

    # Then the waiter gets a transient ImapError soon, instead of spinning until its timeout
    [error] = outcome
    assert isinstance(error, ImapError), error
    assert error.transient
    assert error.step == "idle"
    assert time.monotonic() - stopped < 2


# --------------------------------------------------------------------------- send_mail


@pytest.mark.parametrize("security", [MailSecurity.NONE, MailSecurity.STARTTLS, MailSecurity.TLS])
def test_send_mail_delivers_the_exact_bytes_and_envelope(smtp_server: SmtpServer, security: MailSecurity) -> None:
    # Given a message with a line starting with a dot (SMTP dot-stuffing) and 8-bit text
    raw = message(7, ".leading dot\r\nCaf\xc3\xa9 \xe2\x82\xac\r\n".encode("latin-1"))

    # When it is sent to two recipients
    reply = smtp.send_mail(
        smtp_config(smtp_server, security),
        sender="ops@banxway.test",
        recipients=["a@example.com", "b@example.com"],
        raw=raw,
    )

    # Then the server received exactly those bytes, from that sender, for those recipients
    assert reply.startswith("250 ")
    [received] = smtp_server.messages
    assert received.mail_from == "ops@banxway.test"
    assert received.rcpt_tos == ["a@example.com", "b@example.com"]
    assert received.raw == raw
    assert received.authenticated_as == smtp_server.user
    assert received.tls is (security is not MailSecurity.NONE)
    assert "BODY=8BITMIME" in received.mail_options


def test_send_mail_550_is_permanent(smtp_server: SmtpServer) -> None:
    # Given a server that refuses the next message for good
    smtp_server.reply_next("550 5.1.1 mailbox unavailable")

    # When sending, then a PermanentSendError carries the code and the server's words
    with pytest.raises(PermanentSendError) as caught:
        smtp.send_mail(
            smtp_config(smtp_server), sender="ops@banxway.test", recipients=["a@example.com"], raw=message(1)
        )
    assert caught.value.code == 550
    assert "550" in str(caught.value)
    assert "mailbox unavailable" in caught.value.reply
    assert caught.value.stage == "data"
    assert smtp_server.messages == []

    # And the next message goes through again
    smtp.send_mail(smtp_config(smtp_server), sender="ops@banxway.test", recipients=["a@example.com"], raw=message(2))
    assert len(smtp_server.messages) == 1


def test_send_mail_451_is_transient(smtp_server: SmtpServer) -> None:
    # Given a server that asks to try again later
    smtp_server.reply_always("451 4.3.0 try again later")

    # When sending, then a TransientSendError carries the server's words
    with pytest.raises(TransientSendError) as caught:
        smtp.send_mail(
            smtp_config(smtp_server), sender="ops@banxway.test", recipients=["a@example.com"], raw=message(1)
        )
    assert caught.value.code == 451
    assert "try again later" in str(caught.value)


def test_send_mail_all_recipients_refused(smtp_server: SmtpServer) -> None:
    # Given a server that refuses the only recipient for good
    smtp_server.refuse_recipient("gone@example.com")

    # When sending, then a PermanentSendError names the recipient and the reply
    with pytest.raises(PermanentSendError) as caught:
        smtp.send_mail(
            smtp_config(smtp_server), sender="ops@banxway.test", recipients=["gone@example.com"], raw=message(1)
        )
    assert caught.value.stage == "rcpt"
    assert "gone@example.com: 550 5.1.1 mailbox unavailable" in caught.value.reply

    # And when one refusal is temporary, the whole failure is transient
    smtp_server.refuse_recipient("busy@example.com", "450 4.2.1 mailbox busy")
    with pytest.raises(TransientSendError):
        smtp.send_mail(
            smtp_config(smtp_server),
            sender="ops@banxway.test",
            recipients=["gone@example.com", "busy@example.com"],
            raw=message(1),
        )


def test_send_mail_partly_refused_recipients_still_deliver(smtp_server: SmtpServer) -> None:
    # Given one refused recipient among two
    smtp_server.refuse_recipient("gone@example.com")

    # When sending
    delivery = smtp.deliver_mail(
        smtp_config(smtp_server),
        sender="ops@banxway.test",
        recipients=["a@example.com", "gone@example.com"],
        raw=message(1),
    )

    # Then the other recipient got it, and the refusal is reported
    assert delivery.reply.startswith("250 ")
    assert delivery.refused == {"gone@example.com": "550 5.1.1 mailbox unavailable"}
    assert smtp_server.messages[0].rcpt_tos == ["a@example.com"]


def test_send_mail_bad_password_is_permanent(smtp_server: SmtpServer) -> None:
    with pytest.raises(PermanentSendError) as caught:
        smtp.send_mail(
            smtp_config(smtp_server, password="wrong"),
            sender="ops@banxway.test",
            recipients=["a@example.com"],
            raw=b"x",
        )
    assert caught.value.code == 535
    assert caught.value.stage == "auth"
    assert smtp_server.messages == []


def test_send_mail_refused_connection_is_transient() -> None:
    (port,) = free_ports(1)
    config = SmtpConfig(
        host="127.0.0.1", port=port, security=MailSecurity.NONE, username=None, password=None, timeout=5
    )
    with pytest.raises(TransientSendError) as caught:
        smtp.send_mail(config, sender="ops@banxway.test", recipients=["a@example.com"], raw=message(1))
    assert caught.value.code is None
    assert "refused" in caught.value.reply.lower()


def test_send_mail_slow_server_beyond_timeout_is_transient(smtp_server: SmtpServer) -> None:
    # Given a server that takes 3 s to accept a message, and a client that waits 0.5 s
    smtp_server.slow(3)
    config = smtp_config(smtp_server, timeout=0.5)

    # When sending, then the timeout is a transient failure, raised after about the timeout
    started = time.monotonic()
    with pytest.raises(TransientSendError) as caught:
        smtp.send_mail(config, sender="ops@banxway.test", recipients=["a@example.com"], raw=message(1))
    assert time.monotonic() - started < 2.5
    assert "timed out" in caught.value.reply


def test_send_mail_untrusted_certificate_is_permanent(smtp_server: SmtpServer) -> None:
    config = smtp_config(smtp_server, MailSecurity.TLS, ca_file=None)
    with pytest.raises(PermanentSendError) as caught:
        smtp.send_mail(config, sender="ops@banxway.test", recipients=["a@example.com"], raw=message(1))
    assert caught.value.stage == "tls"
    assert "certificate" in caught.value.reply
    assert smtp_server.messages == []


def test_send_errors_survive_pickling() -> None:
    import pickle

    error = PermanentSendError(550, "550 5.1.1 mailbox unavailable", "data")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.code, copy.reply, copy.stage, str(copy)) == (
        PermanentSendError,
        550,
        "550 5.1.1 mailbox unavailable",
        "data",
        "550 5.1.1 mailbox unavailable",
    )


# --------------------------------------------------------------------------- async wrappers


async def test_async_wrappers(dovecot: DovecotServer, smtp_server: SmtpServer) -> None:
    # Given one message in the INBOX
    dovecot.append(None, message(1))

    # When the async wrappers run
    imap_steps = await imap.atest_imap(imap_config(dovecot, MailSecurity.TLS))
    smtp_steps = await smtp.atest_smtp(smtp_config(smtp_server, MailSecurity.STARTTLS))
    pages = await imap.afetch_all(imap_config(dovecot), uidvalidity=None, last_uid=0)
    waited = await imap.await_for_mail(imap_config(dovecot), timeout=5, last_uid=0)
    reply = await smtp.asend_mail(
        smtp_config(smtp_server), sender="ops@banxway.test", recipients=["a@example.com"], raw=message(2)
    )

    # Then they give what the blocking functions give
    assert all(step.ok for step in imap_steps + smtp_steps)
    assert [mail.raw for page in pages for mail in page.mails] == [message(1)]
    assert waited is True
    assert reply.startswith("250 ")
    assert smtp_server.messages[0].raw == message(2)
