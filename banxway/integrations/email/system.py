"""The RFC 5322 bytes of a mail Banxway writes itself (an invitation, a notification), as opposed to a reply a
person wrote in a thread (`compose`): plain text, no thread reference, and marked `Auto-Submitted:
auto-generated` (RFC 3834) so that out-of-office replies and mailing lists leave it alone.

A pure module: no I/O, no database, no settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from banxway.integrations.email.compose import new_message_id

__all__ = ["SystemMail", "compose_system_mail"]

_POLICY = email_policy.SMTP.clone(cte_type="7bit")


@dataclass(frozen=True, kw_only=True)
class SystemMail:
    from_address: str
    from_name: str | None
    to: str  # one address
    subject: str
    body: str  # plain text


def _single_line(value: str) -> str:
    return " ".join(value.split())


def compose_system_mail(mail: SystemMail, *, now: datetime | None = None) -> tuple[str, bytes]:
    """(Message-ID, the mail's bytes). Raises ValueError for an address that is none."""
    message = EmailMessage(policy=_POLICY)
    local, _, domain = mail.from_address.rpartition("@")
    if not local or not domain:
        raise ValueError(f"'{mail.from_address}' is not an email address")
    message["From"] = Address(display_name=_single_line(mail.from_name or ""), username=local, domain=domain)
    to_local, _, to_domain = mail.to.strip().rpartition("@")
    if not to_local or not to_domain:
        raise ValueError(f"'{mail.to}' is not an email address")
    message["To"] = Address(username=to_local, domain=to_domain)
    message["Subject"] = _single_line(mail.subject)
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message_id = new_message_id(mail.from_address)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(mail.body, charset="utf-8")
    return message_id, message.as_bytes(policy=_POLICY)
