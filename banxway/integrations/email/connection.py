"""What IMAP and SMTP share: the connection security, each step's result in the server's words, TLS contexts,
and the step runner that turns a failure into a report.

* Certificates are always verified against the system store (plus ``ca_file`` when given), hostnames included.
"""

from __future__ import annotations

import ast
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class StepResult:
    step: str  # IMAP: connect, tls, login, select. SMTP: connect, tls, ehlo, auth
    ok: bool
    detail: str  # the server's own words (greeting, capabilities, error text)


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


def _reply(code: int, message: bytes | str) -> str:
    text = " ".join(_text(message).split("\n")).strip()
    return f"{code} {text}".strip()


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
