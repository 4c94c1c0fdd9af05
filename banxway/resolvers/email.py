"""Email accounts (create, update, delete, test) and the quarantine of mail that could not be stored.

An admin's change of an account records EMAIL_ACCOUNT_CREATED / _UPDATED (with `changed`) / _DELETED; what the
poller writes on an account (its cursor, `last_error`: banxway.resolvers.email_ingest) records nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from banxway.auth import Permission
from banxway.db.models import EmailAccount, EmailQuarantine, Message
from banxway.enums import EmailAuthMethod, MailSecurity
from banxway.errors import DomainError
from banxway.events import EmailAccountCreated, EmailAccountDeleted, EmailAccountUpdated
from banxway.integrations.email import imap, smtp
from banxway.integrations.email.connection import StepResult
from banxway.integrations.email.parse import MalformedEmail
from banxway.resolvers import validation as v
from banxway.resolvers.audit import audit_change
from banxway.resolvers.common import get_or_error
from banxway.resolvers.email_ingest import ingest_mail
from banxway.resolvers.email_oauth import imap_config_for, smtp_config_for
from banxway.resolvers.inbox_events import to_global_id
from banxway.resolvers.pagination import Page, paginate
from banxway.secrets import SecretBox

if TYPE_CHECKING:
    from banxway.context import Context

SECURITIES = {s.value for s in MailSecurity}
_PLAIN = ("name", "from_name", "signature", "imap_host", "imap_username", "imap_folder", "smtp_host", "smtp_username")
_LIMITS = {
    "name": 200,
    "from_name": 200,
    "signature": 10_000,
    "imap_host": 255,
    "imap_username": 320,
    "imap_folder": 255,
    "smtp_host": 255,
    "smtp_username": 320,
}
_REQUIRED = {"name", "email", "imap_host", "imap_port", "imap_security", "imap_username", "imap_password"}
_REQUIRED |= {"smtp_host", "smtp_port", "smtp_security"}
_PASSWORDS = ("imap_password", "smtp_password")


def _audited(account: EmailAccount, names: Any) -> dict[str, Any]:
    """The audit log's view of an account's fields: a password as whether one is set, never its value."""
    return {
        name: (getattr(account, name) is not None if name in _PASSWORDS else getattr(account, name)) for name in names
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _clean(fields: dict[str, Any], box: SecretBox, *, creating: bool) -> dict[str, Any]:
    """Validated column values; passwords encrypted. A field set to None is cleared (when it may be)."""
    values: dict[str, Any] = {}
    for name, value in fields.items():
        field = _camel(name)
        if value is None:
            if name in _REQUIRED:
                raise DomainError("INVALID", f"{field} is required.", field)
            values[name] = None
        elif name in _PLAIN:
            values[name] = v.text(value, field, max_length=_LIMITS[name], required=name in _REQUIRED)
        elif name == "email":
            values[name] = v.email(value, field)
            if values[name] is None:
                raise DomainError("INVALID", f"{field} is required.", field)
        elif name in ("imap_port", "smtp_port"):
            if not 1 <= int(value) <= 65535:
                raise DomainError("INVALID", f"{field} must be a port number (1-65535).", field)
            values[name] = int(value)
        elif name in ("imap_security", "smtp_security"):
            values[name] = str(getattr(value, "value", value))
            if values[name] not in SECURITIES:
                raise DomainError("INVALID", f"{field} must be one of {sorted(SECURITIES)}.", field)
        elif name in ("imap_password", "smtp_password"):
            if not value:
                raise DomainError("INVALID", f"{field} must not be empty.", field)
            values[name] = box.encrypt(value)
        elif name == "active":
            values[name] = bool(value)
        else:
            raise DomainError("INVALID", f"Unknown field {field}.", field)
    if creating:
        for name in sorted(_REQUIRED):
            if name not in values:
                raise DomainError("INVALID", f"{_camel(name)} is required.", _camel(name))
        values.setdefault("imap_folder", "INBOX")
    return values


async def email_account_create(ctx: Context, fields: dict[str, Any]) -> EmailAccount:
    viewer = ctx.require(Permission.ORG_MANAGE)
    values = _clean(fields, ctx.box, creating=True)
    try:
        async with ctx.transaction() as session:
            account = EmailAccount(organization_id=viewer.organization_id, **values)
            session.add(account)
            await session.flush()
            ctx.record(session, EmailAccountCreated(email_account_id=account.id))
            await audit_change(
                ctx,
                session,
                action="emailAccountCreate",
                target=to_global_id("EmailAccount", account.id),
                after=_audited(account, values),
            )
    except IntegrityError:
        raise DomainError("TAKEN", "This organization already has an account for that address.", "email") from None
    return account


# Where each kept password is sent: changing any of these needs the password again in the same update, or the
# account's test would send the kept one to a server of the caller's choosing (issue 16, item 7).
_SECRET_DESTINATIONS = {
    "imap_password": ("imap_host", "imap_port", "imap_security", "imap_username"),
    "smtp_password": ("smtp_host", "smtp_port", "smtp_security", "smtp_username"),
}


def _secret_follows_its_server(account: EmailAccount, values: dict[str, Any]) -> None:
    for secret, destination in _SECRET_DESTINATIONS.items():
        moved = [name for name in destination if name in values and values[name] != getattr(account, name)]
        if moved and getattr(account, secret) is not None and values.get(secret) is None:
            field = "imapPassword" if secret == "imap_password" else "smtpPassword"
            raise DomainError(
                "INVALID",
                f"Changing {', '.join(moved)} sends the password to another server: give {field} again in the same "
                "update.",
                field,
            )


# An OAuth account's servers are the provider's (banxway.resolvers.email_oauth): its access token is never sent
# anywhere else, and it has no password.
_OAUTH_FIXED = (*_SECRET_DESTINATIONS["imap_password"], *_SECRET_DESTINATIONS["smtp_password"], *_PASSWORDS)


def _oauth_servers_stay(account: EmailAccount, values: dict[str, Any]) -> None:
    if account.auth_method != EmailAuthMethod.OAUTH:
        return
    for name in _OAUTH_FIXED:
        if name in values and (name in _PASSWORDS or values[name] != getattr(account, name)):
            raise DomainError(
                "INVALID",
                f"{_camel(name)} of a {account.oauth_provider} OAuth mailbox is set by the provider and cannot be "
                "changed.",
                _camel(name),
            )


async def email_account_update(ctx: Context, account_id: uuid.UUID | None, fields: dict[str, Any]) -> EmailAccount:
    """Change the fields given; records EMAIL_ACCOUNT_UPDATED naming those that differ (none: no event)."""
    ctx.require(Permission.ORG_MANAGE)
    values = _clean(fields, ctx.box, creating=False)
    try:
        async with ctx.transaction() as session:
            account = await get_or_error(session, EmailAccount, account_id, "id", lock=True, label="email account")
            _secret_follows_its_server(account, values)
            _oauth_servers_stay(account, values)
            server_changed = any(
                name in values and values[name] != getattr(account, name)
                for name in ("imap_host", "imap_port", "imap_username", "imap_folder")
            )
            changed = []
            before = _audited(account, values)
            for name, value in values.items():
                if name in _PASSWORDS:  # encrypted anew each time: compare what they hide
                    old = getattr(account, name)
                    same = (old is None and fields[name] is None) or (
                        old is not None and fields[name] is not None and ctx.box.decrypt(old) == fields[name]
                    )
                else:
                    same = getattr(account, name) == value
                if not same:
                    setattr(account, name, value)
                    changed.append(name)
            if server_changed:  # another mailbox: its UIDs mean nothing to the old cursor
                account.uidvalidity = None
                account.last_uid = 0
            if changed:
                ctx.record(session, EmailAccountUpdated(email_account_id=account.id, changed=changed))
                after = _audited(account, changed)
                if any(name in _PASSWORDS for name in changed):  # a new password: say so, never what it is
                    after.update({name: "changed" for name in changed if name in _PASSWORDS})
                await audit_change(
                    ctx,
                    session,
                    action="emailAccountUpdate",
                    target=to_global_id("EmailAccount", account.id),
                    before={name: before[name] for name in changed},
                    after=after,
                )
    except IntegrityError:
        raise DomainError("TAKEN", "This organization already has an account for that address.", "email") from None
    return account


async def email_account_delete(ctx: Context, account_id: uuid.UUID | None) -> uuid.UUID:
    """Delete the account; its messages stay (they no longer name an account)."""
    ctx.require(Permission.ORG_MANAGE)
    async with ctx.transaction() as session:
        account = await get_or_error(session, EmailAccount, account_id, "id", lock=True, label="email account")
        await audit_change(
            ctx,
            session,
            action="emailAccountDelete",
            target=to_global_id("EmailAccount", account.id),
            before={"name": account.name, "email": account.email},
        )
        await session.delete(account)
        ctx.record(session, EmailAccountDeleted(email_account_id=account.id))
    return account.id


async def email_account_test(ctx: Context, account_id: uuid.UUID | None) -> list[tuple[str, StepResult]]:
    """Log in to IMAP and SMTP; each step's result in the server's own words."""
    ctx.require(Permission.ORG_MANAGE)
    account = await get_or_error(ctx.db.session, EmailAccount, account_id, "id", label="email account")
    try:
        imap_steps = await imap.atest_imap(await imap_config_for(ctx, account))
    except imap.ImapError as exc:  # an OAuth account without a usable access token
        imap_steps = [StepResult("login", False, exc.detail)]
    try:
        smtp_steps = await smtp.atest_smtp(await smtp_config_for(ctx, account))
    except smtp.SendError as exc:
        smtp_steps = [StepResult("auth", False, exc.reply)]
    return [("IMAP", step) for step in imap_steps] + [("SMTP", step) for step in smtp_steps]


async def email_accounts(ctx: Context) -> list[EmailAccount]:
    ctx.require(Permission.ORG_MANAGE)
    return list(await ctx.db.scalars(select(EmailAccount).order_by(EmailAccount.created_at, EmailAccount.id)))


def quarantine_query(ctx: Context) -> Any:
    ctx.require(Permission.ORG_MANAGE)
    return select(EmailQuarantine)


async def quarantine_reprocess(ctx: Context, quarantine_id: uuid.UUID | None) -> tuple[EmailQuarantine, Message | None]:
    """Try a quarantined mail again (after a fix): stored → linked to its message; still failing → DomainError."""
    ctx.require(Permission.ORG_MANAGE)
    async with ctx.transaction() as session:
        item = await get_or_error(session, EmailQuarantine, quarantine_id, "id", lock=True, label="quarantined mail")
        raw = await session.scalar(select(EmailQuarantine.raw).where(EmailQuarantine.id == item.id))
        if raw is None:
            raise DomainError("INVALID", "This mail was too large to download; it cannot be reprocessed.", "id")
        if item.reprocessed_at is not None:
            raise DomainError("INVALID", "This mail was reprocessed already.", "id")
        account = await get_or_error(session, EmailAccount, item.account_id, "id", label="email account")
        try:
            async with session.begin_nested():
                message = await ingest_mail(session, account, raw, ctx.settings, uid=item.uid)
        except Exception as exc:  # still not storable: say why, change nothing
            reason = str(exc) if isinstance(exc, MalformedEmail) else f"{type(exc).__name__}: {exc}"
            raise DomainError("INVALID", f"It still cannot be stored: {reason}"[:2000], "id") from None
        item.reprocessed_at = datetime.now(UTC)
        item.message_id = message.id if message is not None else None
    return item, message


async def quarantine_page(ctx: Context, *, first: int | None, after: str | None) -> Page[EmailQuarantine]:
    """Mail that could not be stored, newest first (admins); a `Page` of EmailQuarantine rows."""
    query = quarantine_query(ctx)
    keys = (EmailQuarantine.created_at, EmailQuarantine.id)
    return await paginate(ctx.db, query, keys, first=first, after=after, descending=True)
