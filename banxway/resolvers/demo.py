"""The demo organization that `serve --demo` and `seed --demo` create (idempotent)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.auth import hash_password
from banxway.db.models import Organization, Role, User
from banxway.db.session import write_transaction
from banxway.resolvers.users import organization_create

DEMO_SLUG = "demo"
DEMO_ADMIN_EMAIL = "admin@demo.banxway.dev"
DEMO_PASSWORD = "banxway-demo"

DEMO_TEAM = [
    ("manager@demo.banxway.dev", "Meera Manager", Role.MANAGER),
    ("validator@demo.banxway.dev", "Victor Validator", Role.VALIDATOR),
    ("support@demo.banxway.dev", "Sana Support", Role.SUPPORT),
    ("viewer@demo.banxway.dev", "Vikram Viewer", Role.VIEWER),
]


@dataclass(frozen=True)
class DemoLogin:
    organization: str
    email: str
    password: str


async def seed_demo(session: AsyncSession) -> DemoLogin:
    """Create the demo organization, its admin and a user of every role, unless they exist."""
    organization = await session.scalar(select(Organization).where(Organization.slug == DEMO_SLUG))
    if organization is None:
        organization, _ = await organization_create(
            session,
            name="Demo Freight Forwarders",
            slug=DEMO_SLUG,
            admin_email=DEMO_ADMIN_EMAIL,
            admin_password=DEMO_PASSWORD,
            admin_name="Asha Admin",
        )
    async with write_transaction(session):
        existing = set(await session.scalars(select(User.email).where(User.organization_id == organization.id)))
        for email, name, role in DEMO_TEAM:
            if email not in existing:
                session.add(
                    User(
                        organization_id=organization.id,
                        email=email,
                        name=name,
                        role=role,
                        password_hash=hash_password(DEMO_PASSWORD),
                    )
                )
    return DemoLogin(DEMO_SLUG, DEMO_ADMIN_EMAIL, DEMO_PASSWORD)
