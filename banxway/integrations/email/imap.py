"""IMAP with imapclient: connection test, fetch from a (UIDVALIDITY, last UID) cursor, IDLE.

Blocking functions, with thin ``async`` wrappers that run them in a worker thread.

* ``test_imap`` never raises: it reports each step with the server's own words.
* ``fetch_since`` and ``wait_for_mail`` raise ``ImapError``.
* Mail is never marked \\Seen: the folder is opened read-only (EXAMINE) and bodies are fetched with BODY.PEEK[].
"""

from __future__ import annotations

import asyncio
import imaplib
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from imapclient import IMAPClient
from imapclient import exceptions as imap_exceptions

from banxway.enums import MailSecurity
from banxway.integrations.email.connection import (
    StepResult,
    _error_words,
    _ssl_context,
    _step,
    _StepFailed,
    _text,
    _tls_words,
)
from banxway.integrations.email.oauth import XOAuth2Mechanism


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    security: MailSecurity
    username: str
    password: str | None = field(repr=False)
    folder: str = "INBOX"
    timeout: float = 30.0  # seconds, for connecting and for each read
    ca_file: str | None = None  # an extra CA to trust (tests); the system store is always trusted
    access_token: str | None = field(default=None, repr=False)  # OAuth: AUTHENTICATE XOAUTH2 instead of LOGIN

    def __post_init__(self) -> None:
        object.__setattr__(self, "security", MailSecurity(self.security))  # accept "TLS" from a database row


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
    context = _ssl_context(config.ca_file) if config.security is not MailSecurity.NONE else None

    def connect() -> tuple[IMAPClient, str]:
        client = IMAPClient(
            config.host,
            port=config.port,
            ssl=config.security is MailSecurity.TLS,
            ssl_context=context,
            timeout=timeout,
        )
        return client, _text(client.welcome)

    try:
        client = _step(results, "connect", connect, timeout)
    except _StepFailed as failed:
        if config.security is MailSecurity.TLS and isinstance(failed.error, ssl.SSLError):
            # The TCP connection worked; the handshake did not: report it on the tls step.
            failure = results.pop()
            results.append(StepResult("connect", True, f"connected to {config.host}:{config.port}"))
            results.append(StepResult("tls", False, failure.detail))
            raise _StepFailed("tls", failed.error) from failed.error
        raise

    try:
        if config.security is MailSecurity.TLS:
            results.append(StepResult("tls", True, _tls_words(client.socket())))
        elif config.security is MailSecurity.STARTTLS:

            def starttls() -> tuple[None, str]:
                if not client.has_capability("STARTTLS"):
                    offered = " ".join(_text(c) for c in client.capabilities())
                    raise imap_exceptions.IMAPClientError(f"the server does not offer STARTTLS ({offered})")
                reply = client.starttls(context)  # imaplib keeps the tagged OK text to itself: often None here
                return None, f"{_text(reply) if reply else 'STARTTLS accepted'} ({_tls_words(client.socket())})"

            _step(results, "tls", starttls, timeout)

        def login() -> tuple[None, str]:
            if config.access_token is not None:
                mechanism = XOAuth2Mechanism(config.username, config.access_token)
                return None, f"XOAUTH2: {_text(client.sasl_login('XOAUTH2', mechanism))}"
            return None, _text(client.login(config.username, config.password or ""))

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
    """Connect, TLS (unless MailSecurity.NONE), log in, open the folder read-only. Stops at the first failure; never
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


def supports_idle(config: ImapConfig) -> bool:
    """Whether the server announces IDLE."""
    with _imap_session(config) as client:
        return client.has_capability("IDLE")


# --------------------------------------------------------------------------- async wrappers


async def atest_imap(config: ImapConfig) -> list[StepResult]:
    return await asyncio.to_thread(test_imap, config)


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
