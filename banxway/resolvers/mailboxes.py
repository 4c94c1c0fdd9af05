"""An email account's connection settings for the IMAP and SMTP adapters (its passwords decrypted)."""

from __future__ import annotations

from banxway.db.models import EmailAccount
from banxway.enums import MailSecurity
from banxway.integrations.email.imap import ImapConfig
from banxway.integrations.email.smtp import SmtpConfig
from banxway.secrets import SecretBox
from banxway.settings import Settings


def imap_config(account: EmailAccount, box: SecretBox, settings: Settings) -> ImapConfig:
    return ImapConfig(
        host=account.imap_host,
        port=account.imap_port,
        security=MailSecurity(account.imap_security),
        username=account.imap_username,
        password=box.decrypt(account.imap_password),
        folder=account.imap_folder,
        timeout=settings.email_timeout_seconds,
        ca_file=settings.email_ca_file,
    )


def smtp_config(account: EmailAccount, box: SecretBox, settings: Settings) -> SmtpConfig:
    return SmtpConfig(
        host=account.smtp_host,
        port=account.smtp_port,
        security=MailSecurity(account.smtp_security),
        username=account.smtp_username,
        password=box.decrypt(account.smtp_password) if account.smtp_password else None,
        timeout=settings.email_timeout_seconds,
        ca_file=settings.email_ca_file,
    )
