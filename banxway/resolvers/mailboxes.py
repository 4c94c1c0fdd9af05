"""An email account's connection settings for the IMAP and SMTP adapters (its passwords decrypted).

An OAuth account (Gmail, Microsoft 365) logs in with an access token instead: await
`banxway.resolvers.email_oauth.access_token(ctx, account)` (which refreshes it when it is about to expire, and
raises `ReauthorizationRequired` when the grant is gone) and pass it as `access_token`."""

from __future__ import annotations

from banxway.db.models import EmailAccount
from banxway.enums import EmailAuthMethod, MailSecurity
from banxway.integrations.email.imap import ImapConfig
from banxway.integrations.email.smtp import SmtpConfig
from banxway.secrets import SecretBox
from banxway.settings import Settings


def _oauth_token(account: EmailAccount, access_token: str | None) -> str | None:
    if account.auth_method == EmailAuthMethod.OAUTH:
        if access_token is None:
            raise ValueError(f"Email account {account.email!r} logs in with OAuth: pass its access token")
        return access_token
    return None


def imap_config(
    account: EmailAccount, box: SecretBox, settings: Settings, *, access_token: str | None = None
) -> ImapConfig:
    token = _oauth_token(account, access_token)
    return ImapConfig(
        host=account.imap_host,
        port=account.imap_port,
        security=MailSecurity(account.imap_security),
        username=account.imap_username,
        password=box.decrypt(account.imap_password) if account.imap_password and token is None else None,
        folder=account.imap_folder,
        timeout=settings.email_timeout_seconds,
        ca_file=settings.email_ca_file,
        access_token=token,
    )


def smtp_config(
    account: EmailAccount, box: SecretBox, settings: Settings, *, access_token: str | None = None
) -> SmtpConfig:
    token = _oauth_token(account, access_token)
    return SmtpConfig(
        host=account.smtp_host,
        port=account.smtp_port,
        security=MailSecurity(account.smtp_security),
        username=account.smtp_username,
        password=box.decrypt(account.smtp_password) if account.smtp_password and token is None else None,
        timeout=settings.email_timeout_seconds,
        ca_file=settings.email_ca_file,
        access_token=token,
    )
