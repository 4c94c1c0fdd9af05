"""Mail Banxway sends on its own behalf (invitations, notification emails), through the organization's first
active email account's SMTP server: the oldest one that can log in (status ACTIVE: an OAuth mailbox that needs
reauthorization is passed over), so that adding a mailbox does not change where these come from. With no such
account, nothing is sent (`NoMailAccount`, naming the mailboxes that need reauthorization, if any)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select

from banxway.db.models import EmailAccount
from banxway.enums import EmailAccountStatus
from banxway.integrations.email import smtp
from banxway.integrations.email.system import SystemMail, compose_system_mail
from banxway.resolvers.email_oauth import smtp_config_for

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import SystemContext


class NoMailAccount(Exception):
    """The organization has no active email account to send from."""


async def first_smtp_account(session: AsyncSession, organization_id: uuid.UUID) -> EmailAccount | None:
    """The organization's oldest active email account that can log in (not waiting for reauthorization)."""
    return await session.scalar(
        select(EmailAccount)
        .where(
            EmailAccount.organization_id == organization_id,
            EmailAccount.active.is_(True),
            EmailAccount.status == EmailAccountStatus.ACTIVE.value,
        )
        .order_by(EmailAccount.created_at, EmailAccount.id)
        .limit(1)
    )


async def _waiting_for_reauthorization(session: AsyncSession, organization_id: uuid.UUID) -> list[str]:
    rows = await session.scalars(
        select(EmailAccount.email)
        .where(
            EmailAccount.organization_id == organization_id,
            EmailAccount.active.is_(True),
            EmailAccount.status == EmailAccountStatus.REAUTHORIZATION_REQUIRED.value,
        )
        .order_by(EmailAccount.created_at, EmailAccount.id)
    )
    return list(rows)


async def send_system_mail(
    ctx: SystemContext, session: AsyncSession, organization_id: uuid.UUID, *, to: str, subject: str, body: str
) -> str:
    """Send one plain-text mail to `to` from the organization's first email account; returns the server's reply.
    Raises NoMailAccount, ValueError (an address that is none), smtp.PermanentSendError or
    smtp.TransientSendError (worth a retry)."""
    account = await first_smtp_account(session, organization_id)
    if account is None:
        waiting = await _waiting_for_reauthorization(session, organization_id)
        why = f" ({', '.join(waiting)} needs to be authorized again: emailAccountOAuthStart)" if waiting else ""
        raise NoMailAccount(f"Organization {organization_id} has no active email account to send from{why}.")
    _, raw = compose_system_mail(
        SystemMail(from_address=account.email, from_name=account.from_name, to=to, subject=subject, body=body)
    )
    config = await smtp_config_for(ctx, account)  # a fresh access token for an OAuth account
    return await smtp.asend_mail(config, sender=account.email, recipients=[to], raw=raw)
