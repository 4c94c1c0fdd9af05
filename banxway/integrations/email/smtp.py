"""SMTP with the standard library's smtplib: connection test and sending.

* ``test_smtp`` never raises: it reports each step with the server's own words.
* ``send_mail`` raises ``PermanentSendError`` or ``TransientSendError``, whose ``reply`` is what the server said.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from contextlib import suppress
from dataclasses import dataclass, field

from banxway.enums import MailSecurity
from banxway.integrations.email.connection import (
    StepResult,
    _error_words,
    _reply,
    _ssl_context,
    _step,
    _StepFailed,
    _text,
    _tls_words,
)
from banxway.integrations.email.oauth import XOAuth2Mechanism


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: MailSecurity
    username: str | None  # None: no AUTH
    password: str | None = field(repr=False)
    timeout: float = 30.0
    ca_file: str | None = None
    local_hostname: str | None = None  # the EHLO name; None: this machine's FQDN (socket.getfqdn(), may do DNS)
    access_token: str | None = field(default=None, repr=False)  # OAuth: AUTH XOAUTH2 as `username` instead of LOGIN

    def __post_init__(self) -> None:
        object.__setattr__(self, "security", MailSecurity(self.security))


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


# --------------------------------------------------------------------------- SMTP


def _smtp_open(config: SmtpConfig, results: list[StepResult]) -> smtplib.SMTP:
    """Connect, EHLO, TLS, AUTH, recording each step; raises _StepFailed."""
    timeout = config.timeout
    context = _ssl_context(config.ca_file) if config.security is not MailSecurity.NONE else None
    if config.security is MailSecurity.TLS:
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
            if config.security is MailSecurity.TLS and isinstance(failed.error, ssl.SSLError):
                failure = results.pop()
                results.append(StepResult("connect", True, f"connected to {config.host}:{config.port}"))
                results.append(StepResult("tls", False, failure.detail))
                raise _StepFailed("tls", failed.error) from failed.error
            raise
        if config.security is MailSecurity.TLS:
            results.append(StepResult("tls", True, _tls_words(smtp.sock)))
        _step(results, "ehlo", ehlo, timeout)
        if config.security is MailSecurity.STARTTLS:

            def starttls() -> tuple[None, str]:
                code, message = smtp.starttls(context=context)
                detail = f"{_reply(code, message)} ({_tls_words(smtp.sock)})"
                smtp.ehlo()  # the capabilities may differ under TLS (AUTH often appears only now)
                return None, detail

            _step(results, "tls", starttls, timeout)
        if config.username is not None:

            def auth() -> tuple[None, str]:
                if config.access_token is not None:
                    mechanism = XOAuth2Mechanism(config.username or "", config.access_token)
                    code, message = smtp.auth("XOAUTH2", mechanism, initial_response_ok=True)
                    return None, _reply(code, message)
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


async def atest_smtp(config: SmtpConfig) -> list[StepResult]:
    return await asyncio.to_thread(test_smtp, config)


async def asend_mail(config: SmtpConfig, *, sender: str, recipients: list[str], raw: bytes) -> str:
    return await asyncio.to_thread(send_mail, config, sender=sender, recipients=recipients, raw=raw)
