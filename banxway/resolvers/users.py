"""Organizations and users: creation, updates, listing."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from banxway.auth import MIN_PASSWORD_LENGTH, Permission, ahash_password
from banxway.db.models import Organization, User
from banxway.db.session import write_transaction
from banxway.enums import Role
from banxway.errors import DomainError
from banxway.events import UserCreated, UserUpdated
from banxway.resolvers.api_tokens import revoke_user_api_tokens
from banxway.resolvers.audit import audit_change
from banxway.resolvers.auth import normalize_email, revoke_user_tokens
from banxway.resolvers.inbox_events import to_global_id
from banxway.resolvers.pagination import Page, paginate

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def _check_email(email: str) -> str:
    email = normalize_email(email)
    if len(email) > 320 or not _EMAIL.match(email):
        raise DomainError("INVALID", f"'{email}' is not a valid email address.", "email")
    return email


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DomainError(
            "INVALID",
            f"The password must have at least {MIN_PASSWORD_LENGTH} characters.",
            "password",
        )


def _check_name(name: str, field: str = "name") -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise DomainError("INVALID", f"The {field} must have 1 to 200 characters.", field)
    return name


async def organization_create(
    session: AsyncSession,
    *,
    name: str,
    slug: str,
    admin_email: str,
    admin_password: str,
    admin_name: str = "",
) -> tuple[Organization, User]:
    """Create an organization and its first admin (system-level: used by the CLI and the demo).

    Records no USER_CREATED for the admin: no one can be subscribed to an organization that does not exist
    yet, and this runs without the relay (the sweeper would publish it later, into the first subscriptions)."""
    name = _check_name(name)
    slug = slug.strip().lower()
    if not _SLUG.match(slug):
        raise DomainError(
            "INVALID",
            f"Slug '{slug}' must be lower-case letters, digits and hyphens.",
            "slug",
        )
    email = _check_email(admin_email)
    _check_password(admin_password)
    async with write_transaction(session):
        if await session.scalar(select(Organization.id).where(Organization.slug == slug)):
            raise DomainError("TAKEN", f"An organization with slug '{slug}' already exists.", "slug")
        organization = Organization(name=name, slug=slug)
        session.add(organization)
        await session.flush()
        admin = User(
            organization_id=organization.id,
            email=email,
            name=admin_name.strip() or email.split("@")[0],
            role=Role.ADMIN,
            password_hash=await ahash_password(admin_password),
        )
        session.add(admin)
    return organization, admin


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:63].strip("-") or "org"


async def _add_user(
    session: AsyncSession, organization_id: uuid.UUID, *, email: str, name: str, role: Role, password_hash: str
) -> User:
    """Insert a user (checked arguments) in the session's open transaction; TAKEN if the email is."""
    if await session.scalar(select(User.id).where(User.email == email)):
        raise DomainError("TAKEN", f"A user with email '{email}' already exists.", "email")
    user = User(organization_id=organization_id, email=email, name=name, role=role, password_hash=password_hash)
    session.add(user)
    await session.flush()
    return user


async def create_user(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    email: str,
    name: str,
    role: Role,
    password: str,
) -> User:
    """Create a user in `organization_id` (`session` must be scoped to it). System-level (the CLI, tests):
    records no event, as it has no relay; `user_create` (the API) records USER_CREATED."""
    email = _check_email(email)
    name = _check_name(name)
    _check_password(password)
    try:
        async with write_transaction(session):
            user = await _add_user(
                session,
                organization_id,
                email=email,
                name=name,
                role=role,
                password_hash=await ahash_password(password),
            )
    except IntegrityError:  # a concurrent create won the race
        raise DomainError("TAKEN", f"A user with email '{email}' already exists.", "email") from None
    return user


async def user_create(ctx: Context, *, email: str, name: str, role: Role, password: str) -> User:
    """Create a user in the viewer's organization; records USER_CREATED."""
    viewer = ctx.require(Permission.USER_MANAGE)
    email = _check_email(email)
    name = _check_name(name)
    _check_password(password)
    password_hash = await ahash_password(password)
    try:
        async with ctx.transaction() as session:
            user = await _add_user(
                session, viewer.organization_id, email=email, name=name, role=role, password_hash=password_hash
            )
            ctx.record(session, UserCreated(user_id=user.id))
            await audit_change(
                ctx,
                session,
                action="userCreate",
                target=to_global_id("User", user.id),
                after={"email": email, "name": name, "role": role.name, "active": True},
            )
    except IntegrityError:  # a concurrent create won the race
        raise DomainError("TAKEN", f"A user with email '{email}' already exists.", "email") from None
    return user


async def user_update(
    ctx: Context,
    user_id: uuid.UUID,
    *,
    name: str | None = None,
    role: Role | None = None,
    active: bool | None = None,
    password: str | None = None,
    action: str = "userUpdate",
) -> User:
    """Change a user; records USER_UPDATED naming what changed of name, role and active (a password is no event),
    and audits it as `action` (before → after; a new password as the fact, never the value).

    A new password revokes all the user's refresh tokens, as deactivation does."""
    viewer = ctx.require(Permission.USER_MANAGE)
    may_remove_an_admin = (role is not None and role != Role.ADMIN) or active is False
    async with ctx.transaction() as session:
        if may_remove_an_admin:
            # Before the user's own row: every such update takes the admins in one order (see below).
            await _lock_active_admins(session, viewer.organization_id)
        user = await session.scalar(
            select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
        )
        if user is None:
            raise DomainError("NOT_FOUND", "No such user.", "id")
        changed: list[str] = []
        before = {"name": user.name, "role": user.role.name, "active": user.active}
        if name is not None:
            name = _check_name(name)
            if name != user.name:
                user.name = name
                changed.append("name")
        if password is not None:
            _check_password(password)
            user.password_hash = await ahash_password(password)
        demoted = role is not None and role != Role.ADMIN and user.role == Role.ADMIN
        deactivated = active is False and user.active
        if (demoted or deactivated) and user.role == Role.ADMIN:
            # Counted after _lock_active_admins: a concurrent demotion has committed or waits for this one.
            admins = await session.scalar(
                select(func.count())
                .select_from(User)
                .where(User.organization_id == viewer.organization_id, User.role == Role.ADMIN, User.active.is_(True))
            )
            if admins <= 1:
                raise DomainError(
                    "INVALID",
                    "The organization's last active admin cannot be demoted or deactivated.",
                    "role",
                )
        if deactivated and user.id == viewer.user_id:
            raise DomainError("INVALID", "You cannot deactivate yourself.", "active")
        if role is not None and role != user.role:
            user.role = role
            changed.append("role")
        if active is not None and active != user.active:
            user.active = active
            changed.append("active")
        if deactivated or password is not None:
            await revoke_user_tokens(session, user.id)
        if deactivated:  # a new password leaves the user's personal API tokens alone; deactivation revokes them
            await revoke_user_api_tokens(session, user.id)
        if changed:
            ctx.record(session, UserUpdated(user_id=user.id, changed=changed))
        if changed or password is not None:
            after = {"name": user.name, "role": user.role.name, "active": user.active}
            audited_before = {key: before[key] for key in changed}
            audited_after = {key: after[key] for key in changed}
            if password is not None:
                audited_after["password"] = "changed"
            await audit_change(
                ctx,
                session,
                action=action,
                target=to_global_id("User", user.id),
                before=audited_before,
                after=audited_after,
            )
    return user


async def _lock_active_admins(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Lock the organization's active admins until the transaction ends, in id order (no deadlock between two
    updates). Two admins demoting or deactivating each other then run one after the other, and the second sees
    the first's change when it counts, instead of both counting two admins and leaving none."""
    await session.execute(
        select(User.id)
        .where(User.organization_id == organization_id, User.role == Role.ADMIN, User.active.is_(True))
        .order_by(User.id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE: conflicts with itself, not with foreign keys
    )


async def users_page(
    ctx: Context, *, first: int | None, after: str | None, last: int | None, before: str | None
) -> Page[User]:
    """The organization's users, oldest first."""
    ctx.viewer  # noqa: B018 - authentication required
    keys = (User.created_at, User.id)
    return await paginate(ctx.db, select(User), keys, first=first, after=after, last=last, before=before)
