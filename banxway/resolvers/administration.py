"""Administration: the organization's settings (organizationUpdate), a user's own profile and preferences
(meUpdate), invitations (userInvite → email → invitationAccept), and deactivating / reactivating users.

Every change is audited (`audit_change`, in the transaction of the change, before → after of the fields that
changed; never a password or a token). Decisions:

* organizationUpdate records no event: the organization is not part of the live state clients keep (the audit log
  has the change); its business hours are the same calendar `businessHoursSet` sets (the SLA calendar is the
  organization's default).
* A password change (meUpdate) signs the user out everywhere (as userUpdate does: the session version moves on,
  refresh tokens are revoked) and hands the client that made it a new pair of tokens, so that it stays signed in.
* An invitation's token is 256 random bits, stored as its SHA-256; an encrypted copy lives only until the
  `send_invitation` actor has mailed it (then it is erased). The token is also returned once to the admin who
  invited (userInvite's payload), for an organization without an email account. It expires after 7 days and
  works once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from banxway import events
from banxway.auth import ApiTokenScope, Permission, ahash_password, averify_password
from banxway.calendar import BusinessCalendar
from banxway.db.models import Attachment, Invitation, Organization, User
from banxway.enums import NotificationType, Role
from banxway.errors import DomainError, PermissionDenied
from banxway.events import InvitationCreated, InvitationUpdated, UserCreated, UserUpdated
from banxway.integrations.email import smtp
from banxway.logs import get_logger
from banxway.resolvers.audit import audit_change
from banxway.resolvers.auth import AuthResult, issue_tokens, revoke_user_tokens
from banxway.resolvers.inbox_events import to_global_id
from banxway.resolvers.system_mail import NoMailAccount, send_system_mail
from banxway.resolvers.users import _check_email, _check_name, _check_password, user_update

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context, SystemContext

log = get_logger("banxway.administration")

INVITATION_TTL = timedelta(days=7)
SIGNATURE_LIMIT = 10_000
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class InvitationStatus:
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    ALL = ("PENDING", "ACCEPTED", "REVOKED", "EXPIRED")


def _json(value: Any) -> Any:
    """A value as the audit log stores it."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Role):
        return value.name
    return value


def _timezone(value: str, field: str) -> str:
    name = (value or "").strip()
    try:
        if not name:
            raise ZoneInfoNotFoundError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError("INVALID", f"'{name}' is not an IANA time zone (e.g. Asia/Kolkata).", field) from None
    return name


# -- the organization ---------------------------------------------------------------------------------------------


async def organization_update(ctx: Context, changes: dict[str, Any]) -> Organization:
    """Change the viewer's organization; `changes` (given fields only): `name`, `timezone`, `business_hours` (the
    calendar's JSON form, or None: around the clock), `signature` (None or blank: none), `logo_attachment_id`
    (an image attachment of the organization, or None)."""
    viewer = ctx.require(Permission.ORG_MANAGE)
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = _check_name(changes["name"] or "")
    if "timezone" in changes:
        values["timezone"] = _timezone(changes["timezone"], "timezone")
    if "business_hours" in changes:
        data = changes["business_hours"]
        try:
            values["business_hours"] = BusinessCalendar.from_dict(data).to_dict() if data is not None else None
        except DomainError as exc:
            raise DomainError(exc.code, exc.message, ["businessHours", *(exc.field or [])]) from None
    if "signature" in changes:
        signature = (changes["signature"] or "").strip()
        if len(signature) > SIGNATURE_LIMIT:
            raise DomainError("TOO_LONG", f"At most {SIGNATURE_LIMIT} characters.", "signature")
        values["signature"] = signature or None
    async with ctx.transaction() as session:
        if "logo_attachment_id" in changes:
            values["logo_attachment_id"] = await _logo(session, changes.get("logo_attachment_id"))
        organization = await session.scalar(
            select(Organization)
            .where(Organization.id == viewer.organization_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert organization is not None
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for key, value in values.items():
            old = getattr(organization, key)
            if old != value:
                before[key], after[key] = _json(old), _json(value)
                setattr(organization, key, value)
        if after:
            await audit_change(
                ctx,
                session,
                action="organizationUpdate",
                target=to_global_id("Organization", organization.id),
                before=before,
                after=after,
            )
    return organization


async def _logo(session: AsyncSession, attachment_id: uuid.UUID | None) -> uuid.UUID | None:
    if attachment_id is None:
        return None
    attachment = await session.scalar(select(Attachment).where(Attachment.id == attachment_id))
    if attachment is None:
        raise DomainError("NOT_FOUND", "No such attachment.", "logoAttachmentId")
    if not attachment.content_type.lower().startswith("image/"):
        raise DomainError("INVALID", f"A logo is an image, not {attachment.content_type}.", "logoAttachmentId")
    return attachment.id


# -- the viewer's own profile -------------------------------------------------------------------------------------


def notification_preferences(user: User) -> list[tuple[NotificationType, bool, bool]]:
    """(type, in app, by email) for every notification type; a type not set is in-app only."""
    stored = user.notification_preferences or {}
    found = []
    for kind in NotificationType:
        setting = stored.get(kind.name) or {}
        found.append((kind, bool(setting.get("in_app", True)), bool(setting.get("email", False))))
    return found


def _preferences(value: list[dict[str, Any]], stored: dict[str, Any]) -> dict[str, Any]:
    merged = {key: dict(setting) for key, setting in (stored or {}).items()}
    seen: set[str] = set()
    for index, item in enumerate(value):
        kind = item.get("type")
        name = kind.name if isinstance(kind, NotificationType) else str(kind)
        if name not in NotificationType.__members__:
            raise DomainError(
                "INVALID", f"Unknown notification type {name!r}.", f"notificationPreferences.{index}.type"
            )
        if name in seen:
            raise DomainError("INVALID", f"{name} is given twice.", f"notificationPreferences.{index}.type")
        seen.add(name)
        merged[name] = {"in_app": bool(item.get("in_app", True)), "email": bool(item.get("email", False))}
    return merged


def _quiet_hours(value: dict[str, Any] | None) -> dict[str, str] | None:
    if value is None:
        return None
    checked = {}
    for key in ("start", "end"):
        clock = (value.get(key) or "").strip()
        if not _CLOCK.match(clock):
            raise DomainError("INVALID", f"Expected HH:MM from 00:00 to 23:59, got {clock!r}.", f"quietHours.{key}")
        checked[key] = clock
    if checked["start"] == checked["end"]:
        raise DomainError("INVALID", "Quiet hours must not start and end at the same time.", "quietHours.end")
    checked["timezone"] = _timezone(value.get("timezone") or "", "quietHours.timezone")
    return checked


async def me_update(ctx: Context, changes: dict[str, Any]) -> tuple[User, AuthResult | None]:
    """Change the viewer's own `name`, password (`current_password` and `new_password`),
    `notification_preferences` ([{type, in_app, email}], merged into what was set) and `quiet_hours`
    ({start, end, timezone}, or None). Returns the user and, after a password change, the new tokens."""
    viewer = ctx.viewer
    if viewer.scopes is not None:
        if "new_password" in changes or "current_password" in changes:
            raise PermissionDenied("A password is changed in a signed-in session, not with an API token")
        if ApiTokenScope.WRITE not in viewer.scopes:
            raise PermissionDenied("This API token may not change its user's profile (it needs the WRITE scope)")
    values: dict[str, Any] = {}
    if changes.get("name") is not None:
        values["name"] = _check_name(changes["name"])
    new_password = changes.get("new_password")
    current_password = changes.get("current_password")
    if new_password is not None:
        if not current_password:
            raise DomainError("INVALID", "Give your current password to set a new one.", "currentPassword")
        _check_password_field(new_password)
    if "quiet_hours" in changes:
        values["quiet_hours"] = _quiet_hours(changes["quiet_hours"])
    tokens: AuthResult | None = None
    async with ctx.transaction() as session:
        user = await session.scalar(
            select(User).where(User.id == viewer.user_id).with_for_update().execution_options(populate_existing=True)
        )
        if user is None:
            raise DomainError("NOT_FOUND", "No such user.", "id")
        if changes.get("notification_preferences") is not None:
            values["notification_preferences"] = _preferences(
                changes["notification_preferences"], user.notification_preferences
            )
        if new_password is not None:
            if not await averify_password(user.password_hash, current_password or ""):
                raise DomainError("INVALID", "The current password is not right.", "currentPassword")
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for key, value in values.items():
            old = getattr(user, key)
            if old != value:
                before[key], after[key] = _json(old), _json(value)
                setattr(user, key, value)
        if new_password is not None:
            user.password_hash = await ahash_password(new_password)
            await revoke_user_tokens(session, user.id)
            await session.refresh(user, ["session_version"])
            after["password"] = "changed"  # the fact, never the value
            tokens = await issue_tokens(ctx, session, user)
        if "name" in after:
            ctx.record(session, UserUpdated(user_id=user.id, changed=["name"]))
        if after:
            await audit_change(
                ctx, session, action="meUpdate", target=to_global_id("User", user.id), before=before, after=after
            )
    return user, tokens


def _check_password_field(password: str) -> None:
    try:
        _check_password(password)
    except DomainError as exc:
        raise DomainError(exc.code, exc.message, "newPassword") from None


# -- users ----------------------------------------------------------------------------------------------------


async def user_deactivate(ctx: Context, user_id: uuid.UUID) -> User:
    """Deactivate a user (signed out everywhere, their API tokens revoked); not oneself, not the last admin."""
    return await user_update(ctx, user_id, active=False, action="userDeactivate")


async def user_reactivate(ctx: Context, user_id: uuid.UUID) -> User:
    """Let a deactivated user sign in again (with their password; their old sessions stay ended)."""
    return await user_update(ctx, user_id, active=True, action="userReactivate")


# -- invitations ------------------------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def invitation_status(invitation: Invitation, now: datetime | None = None) -> str:
    """PENDING, ACCEPTED, REVOKED, or EXPIRED (a pending one past its expiry)."""
    if invitation.status == InvitationStatus.PENDING and invitation.expires_at <= (now or datetime.now(UTC)):
        return InvitationStatus.EXPIRED
    return invitation.status


async def user_invite(ctx: Context, *, email: str, name: str, role: Role) -> tuple[Invitation, str]:
    """Invite someone to the organization: a PENDING invitation valid 7 days, emailed by the `send_invitation`
    actor (INVITATION_CREATED). Returns it with its token. TAKEN when a user of the organization has the email
    or a pending invitation does."""
    viewer = ctx.require(Permission.USER_MANAGE)
    email = _check_email(email)
    name = _check_name(name)
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    try:
        async with ctx.transaction() as session:
            if await session.scalar(select(User.id).where(User.email == email)):
                raise DomainError("TAKEN", f"A user with email '{email}' already exists.", "email")
            pending = await session.scalar(
                select(Invitation)
                .where(Invitation.email == email, Invitation.status == InvitationStatus.PENDING)
                .with_for_update()
            )
            if pending is not None:
                if pending.expires_at > now:
                    raise DomainError("TAKEN", f"'{email}' already has a pending invitation.", "email")
                pending.status = InvitationStatus.EXPIRED  # room for the new one
                pending.token_secret = None
                await session.flush()
            invitation = Invitation(
                organization_id=viewer.organization_id,
                email=email,
                name=name,
                role=role,
                token_hash=_token_hash(token),
                token_secret=ctx.box.encrypt(token),
                expires_at=now + INVITATION_TTL,
                invited_by_id=viewer.user_id,
            )
            session.add(invitation)
            await session.flush()
            ctx.record(session, InvitationCreated(invitation_id=invitation.id))
            await audit_change(
                ctx,
                session,
                action="userInvite",
                target=to_global_id("Invitation", invitation.id),
                after={"email": email, "name": name, "role": role.name, "status": InvitationStatus.PENDING},
            )
    except IntegrityError:  # a concurrent invitation of the same email won the race
        raise DomainError("TAKEN", f"'{email}' already has a pending invitation.", "email") from None
    return invitation, token


async def invitations(ctx: Context, status: str | None = None) -> list[Invitation]:
    """The organization's invitations, newest first (USER_MANAGE); `status` filters (EXPIRED: pending ones past
    their expiry, and those replaced by a new invitation)."""
    ctx.require(Permission.USER_MANAGE)
    query = select(Invitation).order_by(Invitation.created_at.desc(), Invitation.id.desc())
    now = datetime.now(UTC)
    if status == InvitationStatus.PENDING:
        query = query.where(Invitation.status == status, Invitation.expires_at > now)
    elif status == InvitationStatus.EXPIRED:
        query = query.where(
            or_(
                Invitation.status == status,
                and_(Invitation.status == InvitationStatus.PENDING, Invitation.expires_at <= now),
            )
        )
    elif status is not None:
        query = query.where(Invitation.status == status)
    return await ctx.db.scalars(query)


async def invitation_revoke(ctx: Context, invitation_id: uuid.UUID | None) -> Invitation:
    """Revoke a pending invitation: its token stops working."""
    ctx.require(Permission.USER_MANAGE)
    async with ctx.transaction() as session:
        invitation = None
        if invitation_id is not None:
            invitation = await session.scalar(
                select(Invitation)
                .where(Invitation.id == invitation_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        if invitation is None:
            raise DomainError("NOT_FOUND", "No such invitation.", "id")
        status = invitation_status(invitation)
        if status != InvitationStatus.PENDING:
            raise DomainError("INVALID", f"The invitation is {status.lower()}, not pending.", "id")
        invitation.status = InvitationStatus.REVOKED
        invitation.revoked_at = datetime.now(UTC)
        invitation.token_secret = None
        ctx.record(session, InvitationUpdated(invitation_id=invitation.id, changed=["status"]))
        await audit_change(
            ctx,
            session,
            action="invitationRevoke",
            target=to_global_id("Invitation", invitation.id),
            before={"status": InvitationStatus.PENDING},
            after={"status": InvitationStatus.REVOKED},
        )
    return invitation


_BAD_TOKEN = {
    InvitationStatus.ACCEPTED: "This invitation was already used.",
    InvitationStatus.REVOKED: "This invitation was revoked.",
    InvitationStatus.EXPIRED: "This invitation has expired; ask for a new one.",
}


async def invitation_accept(ctx: Context, token: str, password: str, name: str | None = None) -> AuthResult:
    """Accept an invitation (no sign-in needed: the token is the credential): creates the active user with the
    invitation's email and role and signs them in. The invitation then works no more."""
    from banxway.context import relay  # the relay of a transaction on a session of our own

    try:
        _check_password(password)
    except DomainError as exc:
        raise DomainError(exc.code, exc.message, "password") from None
    token_hash = _token_hash((token or "").strip())
    now = datetime.now(UTC)
    async with ctx.system_session() as session:
        async with session.begin():
            invitation = await session.scalar(
                select(Invitation).where(Invitation.token_hash == token_hash).with_for_update()
            )
            if invitation is None:
                raise DomainError("INVALID_TOKEN", "Unknown invitation token.", "token")
            status = invitation_status(invitation, now)
            if status != InvitationStatus.PENDING:
                raise DomainError("INVALID_TOKEN", _BAD_TOKEN[status], "token")
            user_name = _check_name(name) if name and name.strip() else invitation.name
            taken = await session.scalar(
                select(User.id).where(
                    User.organization_id == invitation.organization_id, User.email == invitation.email
                )
            )
            if taken:
                raise DomainError("TAKEN", f"A user with email '{invitation.email}' already exists.", "token")
            user = User(
                organization_id=invitation.organization_id,
                email=invitation.email,
                name=user_name,
                role=invitation.role,
                password_hash=await ahash_password(password),
            )
            session.add(user)
            await session.flush()
            invitation.status = InvitationStatus.ACCEPTED
            invitation.accepted_at = now
            invitation.user_id = user.id
            invitation.token_secret = None
            for event in (
                UserCreated(user_id=user.id),
                InvitationUpdated(invitation_id=invitation.id, changed=["status"]),
            ):
                events.record(session, event, organization_id=user.organization_id, actor_id=user.id)
            result = await issue_tokens(ctx, session, user)
            await ctx.sign_in(user)  # the audit entry (and the payload) are the new user's
            await audit_change(
                ctx,
                session,
                action="invitationAccept",
                target=to_global_id("Invitation", invitation.id),
                before={"status": InvitationStatus.PENDING},
                after={"status": InvitationStatus.ACCEPTED, "user": to_global_id("User", user.id)},
            )
        await relay(ctx.state, session)
    return result


def invitation_text(
    organization: str, inviter: str | None, invitation: Invitation, token: str, link: str | None
) -> str:
    lines = [
        f"Hello {invitation.name},",
        "",
        f"{inviter or 'An administrator'} invited you to join {organization} on Banxway as {invitation.role.name.lower()}.",
        "",
    ]
    if link:
        lines += ["Accept the invitation here:", link, ""]
    lines += [
        "Your invitation token (invitationAccept):",
        token,
        "",
        f"It works once and expires on {invitation.expires_at.strftime('%Y-%m-%d %H:%M UTC')}.",
    ]
    return "\n".join(lines) + "\n"


async def invitation_email_send(ctx: SystemContext, invitation_id: uuid.UUID) -> bool:
    """Mail a pending invitation's token through the organization's first email account (the `send_invitation`
    actor); True when sent. Once sent, the token's encrypted copy is erased, so a redelivered job sends nothing.
    A transient SMTP failure raises (smtp.TransientSendError: the actor retries); a permanent one, or an
    organization without an email account, is logged and ends it."""
    async with ctx.session() as session, session.begin():
        invitation = await session.scalar(
            select(Invitation).where(Invitation.id == invitation_id).with_for_update(skip_locked=True)
        )
        if invitation is None or invitation.token_secret is None or invitation.emailed_at is not None:
            return False
        if invitation_status(invitation) != InvitationStatus.PENDING:
            return False
        organization = await session.get(Organization, invitation.organization_id)
        inviter = await session.get(User, invitation.invited_by_id) if invitation.invited_by_id else None
        assert organization is not None
        token = ctx.box.decrypt(invitation.token_secret)
        public = ctx.settings.public_url
        link = f"{public.rstrip('/')}/invitations/accept?token={token}" if public else None
        body = invitation_text(organization.name, inviter.name if inviter else None, invitation, token, link)
        try:
            await send_system_mail(
                ctx,
                session,
                invitation.organization_id,
                to=invitation.email,
                subject=f"You are invited to join {organization.name} on Banxway",
                body=body,
            )
        except (NoMailAccount, smtp.PermanentSendError, ValueError) as exc:
            log.warning("invitation not emailed", invitation=str(invitation.id), error=str(exc))
            return False
        invitation.emailed_at = datetime.now(UTC)
        invitation.token_secret = None
    return True


async def organization_logo(ctx: Context, attachment_id: uuid.UUID | None) -> Attachment | None:
    """The organization's logo attachment (None when unset or gone)."""
    if attachment_id is None:
        return None
    ctx.require(Permission.READ)
    return await ctx.db.scalar(select(Attachment).where(Attachment.id == attachment_id))
