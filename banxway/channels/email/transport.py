"""Email transport: IMAP (connection test, fetch, IDLE) and SMTP (connection test, send).

Blocking implementations with imapclient and the standard library's smtplib, and thin ``async`` wrappers that run
them in a worker thread (``asyncio.to_thread``) for the Dramatiq actors and resolvers.

* Certificates are always verified against the system store (plus ``ca_file`` when given), hostnames included.
* ``test_imap`` / ``test_smtp`` never raise: they report each step with the server's own words.
* ``fetch_since`` and ``wait_for_mail`` raise ``ImapError``; ``send_mail`` raises ``PermanentSendError`` or
  ``TransientSendError``, whose ``reply`` is what the server said.
* Mail is never marked \\Seen: the folder is opened read-only (EXAMINE) and bodies are fetched with BODY.PEEK[].
"""

from __future__ import annotations

import ast
import asyncio
import imaplib
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient import exceptions as imap_exceptions

__all__ = [
    "Delivery",
    "FetchedMail",
    "ImapConfig",
    "ImapError",
    "MailboxPage",
    "PermanentSendError",
    "Security",
    "SendError",
    "SmtpConfig",
    "StepResult",
    "TransientSendError",
    "afetch_all",
    "asend_mail",
    "atest_imap",
    "atest_smtp",
    "await_for_mail",
    "deliver_mail",
    "fetch_since",
    "send_mail",
    "test_imap",
    "test_smtp",
    "wait_for_mail",
]

T = TypeVar("T")


class Security(StrEnum):
    NONE = "NONE"  # plain text (only sensible on a trusted network)
    STARTTLS = "STARTTLS"  # plain connection upgraded with STARTTLS (IMAP 143, SMTP 587)
    TLS = "TLS"  # TLS from the first byte (IMAP 993, SMTP 465)


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    security: Security
    username: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    timeout: float = 30.0  # seconds, for connecting and for each read
    ca_file: str | None = None  # an extra CA to trust (tests); the system store is always trusted

    def __post_init__(self) -> None:
        object.__setattr__(self, "security", Security(self.security))  # accept "TLS" from a database row


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: Security
    username: str | None  # None: no AUTH
    password: str | None = field(repr=False)
    timeout: float = 30.0
    ca_file: str | None = None
    local_hostname: str | None = None  # the EHLO name; None: this machine's FQDN (socket.getfqdn(), may do DNS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "security", Security(self.security))


@dataclass(frozen=True)
class StepResult:
    step: str  # IMAP: connect, tls, login, select. SMTP: connect, tls, ehlo, auth
    ok: bool
    detail: str  # the server's own words (greeting, capabilities, error text)


@dataclass(frozen=True)
class FetchedMail:
    uid: int
    raw: bytes  # b"" when the message is larger than max_size (not downloaded)
    size: int  # RFC822.SIZE
    header: bytes = b""  # for a message not downloaded: its Message-ID, Date, From and Subject header lines


@dataclass(frozen=True)
class MailboxPage:
    uidvalidity: int
    mails: list[FetchedMail]  # in UID order
    highest_uid: int  # the highest UID this page covers: store it as the new last_uid once the page is saved


class ImapError(Exception):
    """An IMAP session failed: ``step`` is connect, tls, login, select, fetch or idle; ``detail`` the server's
    words. ``transient`` is True for network failures and temporary server conditions, worth a retry."""

    def __init__(self, step: str, detail: str, transient: bool = False) -> None:
        super().__init__(step, detail, transient)
        self.step = step
        self.detail = detail
        self.transient = transient

    def __str__(self) -> str:
        return f"IMAP {self.step} failed: {self.detail}"


class SendError(Exception):
    """Sending failed. ``code`` is the SMTP reply code when the server gave one; ``reply`` the server's words
    ("550 5.1.1 mailbox unavailable"), or a description of the network failure; ``stage`` the SMTP stage
    (connect, tls, ehlo, auth, mail, rcpt, data)."""

    def __init__(self, code: int | None, reply: str, stage: str = "") -> None:
        super().__init__(code, reply, stage)
        self.code = code
        self.reply = reply
        self.stage = stage

    def __str__(self) -> str:
        return self.reply


class PermanentSendError(SendError):
    """Retrying will not help: 5xx, authentication failure, every recipient refused permanently, a certificate
    that does not verify, a missing server extension."""


class TransientSendError(SendError):
    """Worth a retry later: 4xx, timeout, connection refused or reset, TLS handshake interrupted."""


@dataclass(frozen=True)
class Delivery:
    reply: str  # the server's reply to the end of DATA ("250 2.0.0 Ok: queued as ...")
    refused: dict[str, str] = field(default_factory=dict)  # recipients refused while others were accepted


# --------------------------------------------------------------------------- shared helpers


def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()  # CERT_REQUIRED, check_hostname, TLS 1.2+
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


_BYTES_LITERAL = re.compile(r"""^b(['"]).*\1$""", re.DOTALL)


def _text(value: Any) -> str:
    """Bytes or an imaplib/imapclient message ("b'[AUTHENTICATIONFAILED] ...'") as plain text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip()
    text = str(value).strip()
    if _BYTES_LITERAL.match(text):
        with suppress(ValueError, SyntaxError):
            return ast.literal_eval(text).decode("utf-8", "replace").strip()
    return text


def _error_words(error: BaseException, timeout: float) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return _reply(error.smtp_code, error.smtp_error)
    if isinstance(error, TimeoutError | socket.timeout):
        return f"timed out after {timeout:g} s"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {error.verify_message or error.reason}"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error.reason or error}"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve host: {error.strerror or error}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return _text(error.args[0]) if len(error.args) == 1 else _text(error) or type(error).__name__


def _tls_words(sock: Any) -> str:
    if not isinstance(sock, ssl.SSLSocket):
        return "no TLS"
    cipher = sock.cipher()
    return f"{sock.version()}, {cipher[0] if cipher else 'unknown cipher'}"


class _StepFailed(Exception):
    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(step, error)
        self.step = step
        self.error = error


def _step(results: list[StepResult], step: str, action: Callable[[], tuple[T, str]], timeout: float) -> T:
    """Run one step, record it, and raise _StepFailed (after recording the failure) if it raised."""
    try:
        value, detail = action()
    except Exception as error:
        results.append(StepResult(step, False, _error_words(error, timeout)))
        raise _StepFailed(step, error) from error
    results.append(StepResult(step, True, detail))
    return value


# --------------------------------------------------------------------------- IMAP


_TRANSIENT_IMAP_CODES = ("[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]", "[EXPUNGEISSUED]")


def _imap_transient(error: BaseException) -> bool:
    if isinstance(error, ssl.SSLCertVerificationError):
        return False
    if isinstance(error, OSError | imaplib.IMAP4.abort | imap_exceptions.IMAPClientAbortError):
        return True
    return any(code in _text(error) for code in _TRANSIENT_IMAP_CODES)


def _imap_login(config: ImapConfig, results: list[StepResult]) -> IMAPClient:
    """Connect, secure and log in, recording each step; raises _StepFailed."""
    timeout = config.timeout
    context = _ssl_context(config.ca_file) if config.security is not Security.NONE else None

    def connect() -> tuple[IMAPClient, str]:
        client = IMAPClient(
            config.host,
            port=config.port,
            ssl=config.security is Security.TLS,
            ssl_context=context,
            timeout=timeout,
        )
        return client, _text(client.welcome)

    try:
        client = _step(results, "connect", connect, timeout)
    except _StepFailed as failed:
        if config.security is Security.TLS and isinstance(failed.error, ssl.SSLError):
            # The TCP connection worked; the handshake did not: report it on the tls step.
            failure = results.pop()
            results.append(StepResult("connect", True, f"connected to {config.host}:{config.port}"))
            results.append(StepResult("tls", False, failure.detail))
            raise _StepFailed("tls", failed.error) from failed.error
        raise

    try:
        if config.security is Security.TLS:
            results.append(StepResult("tls", True, _tls_words(client.socket())))
        elif config.security is Security.STARTTLS:

            def starttls() -> tuple[None, str]:
                if not client.has_capability("STARTTLS"):
                    offered = " ".join(_text(c) for c in client.capabilities())
                    raise imap_exceptions.IMAPClientError(f"the server does not offer STARTTLS ({offered})")
                reply = client.starttls(context)  # imaplib keeps the tagged OK text to itself: often None here
                return None, f"{_text(reply) if reply else 'STARTTLS accepted'} ({_tls_words(client.socket())})"

            _step(results, "tls", starttls, timeout)

        def login() -> tuple[None, str]:
            return None, _text(client.login(config.username, config.password))

        _step(results, "login", login, timeout)
    except BaseException:
        _imap_close(client)
        raise
    return client


def _imap_close(client: IMAPClient, *, logout: bool = True) -> None:
    """LOGOUT (unless the connection is known to be broken: it would wait for the timeout), then close."""
    if logout:
        with suppress(Exception):
            client.logout()
            return
    with suppress(Exception):
        client.shutdown()


def _imap_select(client: IMAPClient, folder: str) -> dict[bytes, Any]:
    return client.select_folder(folder, readonly=True)  # EXAMINE: nothing gets marked \Seen


def test_imap(config: ImapConfig) -> list[StepResult]:
    """Connect, TLS (unless Security.NONE), log in, open the folder read-only. Stops at the first failure; never
    raises."""
    results: list[StepResult] = []
    try:
        client = _imap_login(config, results)
    except _StepFailed:
        return results
    except Exception as error:  # a bug rather than the server: still report it
        results.append(StepResult("connect", False, _error_words(error, config.timeout)))
        return results
    try:

        def select() -> tuple[None, str]:
            info = _imap_select(client, config.folder)
            return None, (
                f"{config.folder}: {int(info.get(b'EXISTS', 0))} messages, UIDVALIDITY {int(info[b'UIDVALIDITY'])}"
            )

        _step(results, "select", select, config.timeout)
    except _StepFailed:
        pass
    finally:
        _imap_close(client)
    return results


test_imap.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, despite the name


@contextmanager
def _imap_session(config: ImapConfig) -> Iterator[IMAPClient]:
    """A logged-in client; ImapError for any failure inside, logged out at the end."""
    try:
        client = _imap_login(config, [])
    except _StepFailed as failed:
        raise ImapError(
            failed.step, _error_words(failed.error, config.timeout), _imap_transient(failed.error)
        ) from failed.error
    try:
        yield client
    except ImapError as error:
        _imap_close(client, logout=not error.transient)
        raise
    except BaseException:
        _imap_close(client)
        raise
    else:
        _imap_close(client)


def _imap_failure(step: str, error: Exception, config: ImapConfig) -> ImapError:
    return ImapError(step, _error_words(error, config.timeout), _imap_transient(error))


_IMAP_ERRORS = (imaplib.IMAP4.error, imap_exceptions.IMAPClientError, OSError)


_SKIPPED_HEADER = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)]"


def fetch_since(
    config: ImapConfig,
    *,
    uidvalidity: int | None,
    last_uid: int,
    page_size: int = 100,
    max_size: int | None = None,
    max_page_bytes: int | None = 64 * 1024 * 1024,
) -> Iterator[MailboxPage]:
    """The folder's messages after ``last_uid``, in pages, over one connection.

    If the server's UIDVALIDITY is not ``uidvalidity`` (or that is None), the UIDs the caller knows mean
    nothing any more: everything is fetched again from UID 1 (the caller dedupes, e.g. by Message-ID) and the
    pages carry the new UIDVALIDITY. Sizes (RFC822.SIZE) come first; messages larger than ``max_size`` are
    yielded with ``raw=b""`` and their size, without being downloaded. A page holds at most ``page_size``
    messages and, past its first message, at most ``max_page_bytes`` of them. When nothing is new, one empty
    page is yielded, so the caller always learns the UIDVALIDITY. Messages are never marked \\Seen.

    Raises ImapError. Closing the generator early logs out.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    with _imap_session(config) as client:
        try:
            info = _imap_select(client, config.folder)
        except _IMAP_ERRORS as error:
            raise _imap_failure("select", error, config) from error
        server_uidvalidity = int(info[b"UIDVALIDITY"])
        first = last_uid + 1 if uidvalidity == server_uidvalidity else 1
        try:
            uids: list[int] = []
            uidnext = info.get(b"UIDNEXT")
            if int(info.get(b"EXISTS", 0)) and (uidnext is None or int(uidnext) > first):
                # "first:*" also matches the highest UID when it is below first: filter.
                uids = sorted(uid for uid in client.search(["UID", f"{first}:*"]) if uid >= first)
        except _IMAP_ERRORS as error:
            raise _imap_failure("fetch", error, config) from error
        if not uids:
            yield MailboxPage(server_uidvalidity, [], first - 1)
            return
        for start in range(0, len(uids), page_size):
            chunk = uids[start : start + page_size]
            try:
                sizes = {
                    uid: int(data[b"RFC822.SIZE"])
                    for uid, data in client.fetch(chunk, ["RFC822.SIZE"]).items()
                    if b"RFC822.SIZE" in data
                }
            except _IMAP_ERRORS as error:
                raise _imap_failure("fetch", error, config) from error
            present = [uid for uid in chunk if uid in sizes]  # a message expunged meanwhile is simply gone
            batches = _split_by_bytes(present, sizes, max_size, max_page_bytes)
            for index, batch in enumerate(batches):
                wanted = [uid for uid in batch if max_size is None or sizes[uid] <= max_size]
                skipped = [uid for uid in batch if uid not in wanted]
                try:
                    bodies = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
                    headers = client.fetch(skipped, [_SKIPPED_HEADER]) if skipped else {}
                except _IMAP_ERRORS as error:
                    raise _imap_failure("fetch", error, config) from error
                mails = []
                for uid in batch:
                    if uid in wanted:
                        raw = bodies.get(uid, {}).get(b"BODY[]")
                        if raw is None:  # expunged between the two fetches
                            continue
                        mails.append(FetchedMail(uid, bytes(raw), sizes[uid]))
                    else:
                        fields = headers.get(uid, {})
                        header = next((bytes(v) for k, v in fields.items() if k.startswith(b"BODY[HEADER")), b"")
                        mails.append(FetchedMail(uid, b"", sizes[uid], header))
                # The last batch covers the whole chunk, expunged UIDs included, so the caller moves past them.
                highest = chunk[-1] if index == len(batches) - 1 else batch[-1]
                yield MailboxPage(server_uidvalidity, mails, highest)


def _split_by_bytes(
    uids: list[int], sizes: dict[int, int], max_size: int | None, max_page_bytes: int | None
) -> list[list[int]]:
    """Split one page's UIDs so that no batch downloads more than max_page_bytes; each holds at least one
    message, and there is always at least one (possibly empty) batch."""
    batches: list[list[int]] = [[]]
    total = 0
    for uid in uids:
        cost = sizes[uid] if max_size is None or sizes[uid] <= max_size else 0
        if max_page_bytes is not None and batches[-1] and total + cost > max_page_bytes:
            batches.append([])
            total = 0
        batches[-1].append(uid)
        total += cost
    return batches


def wait_for_mail(
    config: ImapConfig, *, timeout: float, uidvalidity: int | None = None, last_uid: int | None = None
) -> bool:
    """IMAP IDLE on the folder until the server signals new mail (EXISTS/RECENT) or ``timeout`` seconds pass.

    Returns True when new mail was signalled, False after the timeout, and False at once when the server lacks
    the IDLE capability (the caller then polls). Pass the ``last_uid`` (and ``uidvalidity``) already fetched to
    return True at once for mail that arrived since that fetch, before IDLE started. Raises ImapError.
    """
    deadline = time.monotonic() + timeout
    with _imap_session(config) as client:
        try:
            if not client.has_capability("IDLE"):
                return False
            info = _imap_select(client, config.folder)
        except _IMAP_ERRORS as error:
            raise _imap_failure("select", error, config) from error
        if uidvalidity is not None and int(info[b"UIDVALIDITY"]) != uidvalidity:
            return True
        uidnext = info.get(b"UIDNEXT")
        if last_uid is not None and uidnext is not None and int(uidnext) > last_uid + 1:
            return True
        try:
            client.idle()
        except _IMAP_ERRORS as error:
            raise _imap_failure("idle", error, config) from error
        closed = False
        try:
            early_empty = 0
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    responses = client.idle_check(timeout=remaining)
                except _IMAP_ERRORS as error:
                    closed = True
                    raise _imap_failure("idle", error, config) from error
                for response in responses:
                    if response and response[0] == b"BYE":
                        closed = True
                        raise ImapError("idle", _text(response[1]) if len(response) > 1 else "BYE", transient=True)
                    if len(response) >= 2 and isinstance(response[0], int):
                        if response[1] == b"EXISTS" or (response[1] == b"RECENT" and response[0] > 0):
                            return True
                # imapclient returns nothing, at once, from a socket closed under it: do not spin on that.
                early_empty = early_empty + 1 if not responses and deadline - time.monotonic() > 0.01 else 0
                if early_empty >= 20:
                    closed = True
                    raise ImapError("idle", "the server closed the connection", transient=True)
                if early_empty:
                    time.sleep(0.01)
            return False
        finally:
            if not closed:
                with suppress(Exception):
                    client.idle_done()


# --------------------------------------------------------------------------- SMTP


def _reply(code: int, message: bytes | str) -> str:
    text = " ".join(_text(message).split("\n")).strip()
    return f"{code} {text}".strip()


def _smtp_open(config: SmtpConfig, results: list[StepResult]) -> smtplib.SMTP:
    """Connect, EHLO, TLS, AUTH, recording each step; raises _StepFailed."""
    timeout = config.timeout
    context = _ssl_context(config.ca_file) if config.security is not Security.NONE else None
    if config.security is Security.TLS:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(local_hostname=config.local_hostname, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(local_hostname=config.local_hostname, timeout=timeout)
    # smtplib verifies the certificate against the host given to the constructor, which would also connect and
    # drop the greeting: name it here, and connect below.
    smtp._host = config.host

    def connect() -> tuple[None, str]:
        code, message = smtp.connect(config.host, config.port)
        if code != 220:  # e.g. "421 4.3.2 too busy": smtplib's connect() returns it rather than raising
            raise smtplib.SMTPConnectError(code, message)
        return None, _reply(code, message)

    def ehlo() -> tuple[None, str]:
        code, message = smtp.ehlo()
        if not 200 <= code <= 299:
            code, message = smtp.helo()
            if not 200 <= code <= 299:
                raise smtplib.SMTPHeloError(code, message)
        return None, _reply(code, message).replace("\n", " ")

    try:
        try:
            _step(results, "connect", connect, timeout)
        except _StepFailed as failed:
            if config.security is Security.TLS and isinstance(failed.error, ssl.SSLError):
                failure = results.pop()
                results.append(StepResult("connect", True, f"connected to {config.host}:{config.port}"))
                results.append(StepResult("tls", False, failure.detail))
                raise _StepFailed("tls", failed.error) from failed.error
            raise
        if config.security is Security.TLS:
            results.append(StepResult("tls", True, _tls_words(smtp.sock)))
        _step(results, "ehlo", ehlo, timeout)
        if config.security is Security.STARTTLS:

            def starttls() -> tuple[None, str]:
                code, message = smtp.starttls(context=context)
                detail = f"{_reply(code, message)} ({_tls_words(smtp.sock)})"
                smtp.ehlo()  # the capabilities may differ under TLS (AUTH often appears only now)
                return None, detail

            _step(results, "tls", starttls, timeout)
        if config.username is not None:

            def auth() -> tuple[None, str]:
                code, message = smtp.login(config.username or "", config.password or "")
                return None, _reply(code, message)

            _step(results, "auth", auth, timeout)
    except BaseException:
        smtp.close()
        raise
    return smtp


def test_smtp(config: SmtpConfig) -> list[StepResult]:
    """Connect (greeting), EHLO, TLS (implicit, or STARTTLS after EHLO), AUTH (when a username is set). Stops at
    the first failure; never raises."""
    results: list[StepResult] = []
    try:
        smtp = _smtp_open(config, results)
    except _StepFailed:
        return results
    except Exception as error:
        results.append(StepResult("connect", False, _error_words(error, config.timeout)))
        return results
    _smtp_close(smtp)
    return results


test_smtp.__test__ = False  # type: ignore[attr-defined]


def _smtp_close(smtp: smtplib.SMTP) -> None:
    with suppress(Exception):
        smtp.quit()
    with suppress(Exception):
        smtp.close()


def _send_error(error: BaseException, stage: str, timeout: float) -> SendError:
    """Classify a failure: PermanentSendError when retrying cannot help, TransientSendError otherwise."""
    if isinstance(error, SendError):
        return error
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        reply = "; ".join(
            f"{address}: {_reply(code, message)}" for address, (code, message) in error.recipients.items()
        )
        kind = PermanentSendError if codes and all(code >= 500 for code in codes) else TransientSendError
        return kind(codes[0] if codes else None, reply, "rcpt")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        # smtplib reports a read timeout as a disconnection ("Connection unexpectedly closed: timed out").
        return TransientSendError(None, _text(error) or "the server closed the connection", stage)
    if isinstance(error, smtplib.SMTPResponseException):
        code, reply = error.smtp_code, _reply(error.smtp_code, error.smtp_error)
        if isinstance(error, smtplib.SMTPAuthenticationError):
            # 535 and friends: wrong credentials. Only an explicit 4xx ("454 4.7.0 Temporary authentication
            # failure", RFC 4954) is worth a retry.
            kind = TransientSendError if 400 <= code <= 499 else PermanentSendError
        else:
            kind = PermanentSendError if code >= 500 else TransientSendError
        return kind(code, reply, stage)
    if isinstance(error, ssl.SSLCertVerificationError):
        return PermanentSendError(None, _error_words(error, timeout), stage)
    if isinstance(error, OSError):  # refused, reset, timeout, DNS, TLS handshake interrupted
        return TransientSendError(None, _error_words(error, timeout), stage)
    if isinstance(error, smtplib.SMTPException | ValueError):  # no STARTTLS/AUTH offered, non-ASCII address, ...
        return PermanentSendError(None, _error_words(error, timeout), stage)
    return TransientSendError(None, _error_words(error, timeout), stage)


def _needs_smtputf8(*addresses: str) -> bool:
    return any(not address.isascii() for address in addresses)


def deliver_mail(config: SmtpConfig, *, sender: str, recipients: list[str], raw: bytes) -> Delivery:
    """Send ``raw`` (a complete RFC 5322 message, CRLF line endings preferred) to ``recipients`` with the envelope
    sender ``sender``. Returns the server's final reply and the recipients refused while others were accepted.
    Raises PermanentSendError / TransientSendError."""
    if not recipients:
        raise PermanentSendError(None, "no recipients", "rcpt")
    stage = "connect"
    smtp: smtplib.SMTP | None = None
    try:
        try:
            smtp = _smtp_open(config, [])
        except _StepFailed as failed:
            raise _send_error(failed.error, failed.step, config.timeout) from failed.error
        options: list[str] = []
        if _needs_smtputf8(sender, *recipients):
            if not smtp.has_extn("smtputf8"):
                raise PermanentSendError(None, "the server does not offer SMTPUTF8, needed for these addresses", "mail")
            options.append("SMTPUTF8")
        if not raw.isascii() and smtp.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")

        stage = "mail"
        code, message = smtp.mail(sender, options)
        if code != 250:
            raise _send_error(smtplib.SMTPSenderRefused(code, message, sender), stage, config.timeout)

        stage = "rcpt"
        refused: dict[str, tuple[int, bytes]] = {}
        for recipient in recipients:
            code, message = smtp.rcpt(recipient)
            if code not in (250, 251):
                refused[recipient] = (code, message)
        if len(refused) == len(recipients):
            raise _send_error(smtplib.SMTPRecipientsRefused(refused), stage, config.timeout)

        stage = "data"
        code, message = smtp.data(raw)
        if code != 250:
            raise _send_error(smtplib.SMTPDataError(code, message), stage, config.timeout)
        return Delivery(
            _reply(code, message),
            {address: _reply(refusal_code, text) for address, (refusal_code, text) in refused.items()},
        )
    except SendError:
        raise
    except Exception as error:
        raise _send_error(error, stage, config.timeout) from error
    finally:
        if smtp is not None:
            _smtp_close(smtp)


def send_mail(config: SmtpConfig, *, sender: str, recipients: list[str], raw: bytes) -> str:
    """Send one message; returns the server's final reply ("250 ..."). Raises PermanentSendError /
    TransientSendError. Recipients refused while others were accepted are not an error (see deliver_mail)."""
    return deliver_mail(config, sender=sender, recipients=recipients, raw=raw).reply


# --------------------------------------------------------------------------- async wrappers


async def atest_imap(config: ImapConfig) -> list[StepResult]:
    return await asyncio.to_thread(test_imap, config)


async def atest_smtp(config: SmtpConfig) -> list[StepResult]:
    return await asyncio.to_thread(test_smtp, config)


async def afetch_all(
    config: ImapConfig,
    *,
    uidvalidity: int | None,
    last_uid: int,
    page_size: int = 100,
    max_size: int | None = None,
    max_page_bytes: int | None = 64 * 1024 * 1024,
) -> list[MailboxPage]:
    """Every page of fetch_since at once (all of it in memory)."""

    def fetch() -> list[MailboxPage]:
        return list(
            fetch_since(
                config,
                uidvalidity=uidvalidity,
                last_uid=last_uid,
                page_size=page_size,
                max_size=max_size,
                max_page_bytes=max_page_bytes,
            )
        )

    return await asyncio.to_thread(fetch)


async def await_for_mail(
    config: ImapConfig,
    *,
    timeout: float,  # noqa: ASYNC109 - how long to IDLE, not a cancellation deadline
    uidvalidity: int | None = None,
    last_uid: int | None = None,
) -> bool:
    """wait_for_mail in a worker thread. The thread stays busy until the timeout even if this coroutine is
    cancelled: keep timeouts short (minutes) and mind the default executor's size."""
    return await asyncio.to_thread(wait_for_mail, config, timeout=timeout, uidvalidity=uidvalidity, last_uid=last_uid)


async def asend_mail(config: SmtpConfig, *, sender: str, recipients: list[str], raw: bytes) -> str:
    return await asyncio.to_thread(send_mail, config, sender=sender, recipients=recipients, raw=raw)
