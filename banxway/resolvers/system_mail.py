"""Mail Banxway sends on its own behalf (invitations, notification emails), through the organization's first
active email account's SMTP server: the oldest one, so that adding a mailbox does not change where these come
from. With no email account, nothing is sent (`NoMailAccount`)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select

from banxway.db.models import EmailAccount
from banxway.integrations.email import smtp
from banxway.integrations.email.system import SystemMail, compose_system_mail
from banxway.resolvers.mailboxes import smtp_config

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import SystemContext


class NoMailAccount(Exception):
    """The organization has no active email account to send from."""


async def first_smtp_account(session: AsyncSession, organization_id: uuid.UUID) -> EmailAccount | None:
    """The organization's oldest active email account."""
    return await session.scalar(
        select(EmailAccount)
        .where(EmailAccount.organization_id == organization_id, EmailAccount.active.is_(True))
        .order_by(EmailAccount.created_at, EmailAccount.id)
        .limit(1)
    )


async def send_system_mail(
    ctx: SystemContext, session: AsyncSession, organization_id: uuid.UUID, *, to: str, subject: str, body: str
) -> str:
    """Send one plain-text mail to `to` from the organization's first email account; returns the server's reply.
    Raises NoMailAccount, ValueError (an address that is none), smtp.PermanentSendError or
    smtp.TransientSendError (worth a retry)."""
    account = await first_smtp_account(session, organization_id)
    if account is None:
        raise NoMailAccount(f"Organization {organization_id} has no active email account to send from.")
    _, raw = compose_system_mail(
        SystemMail(from_address=account.email, from_name=account.from_name, to=to, subject=subject, body=body)
    )
    config = smtp_config(account, ctx.box, ctx.settings)
    return await smtp.asend_mail(config, sender=account.email, recipients=[to], raw=raw)
