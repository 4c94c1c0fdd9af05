from banxway.db.models import Base, Organization, RefreshToken, Role, TenantMixin, User
from banxway.db.session import (
    UnscopedQueryError,
    create_engine,
    create_sessionmaker,
    system_session,
    tenant_session,
)

__all__ = [
    "Base",
    "Organization",
    "RefreshToken",
    "Role",
    "TenantMixin",
    "UnscopedQueryError",
    "User",
    "create_engine",
    "create_sessionmaker",
    "system_session",
    "tenant_session",
]
