"""Helpers shared by the use-cases."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.db.models import User
from banxway.errors import DomainError

M = TypeVar("M")


async def get_or_error(
    session: AsyncSession, model: type[M], id_: uuid.UUID | None, field: str, *, lock: bool = False, label: str = ""
) -> M:
    """The row (scoped to the session's organization) or NOT_FOUND naming `field`."""
    if id_ is None:
        raise DomainError("NOT_FOUND", f"No such {label or model.__name__.lower()}.", field)
    query = select(model).where(model.id == id_)  # type: ignore[attr-defined]
    if lock:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        raise DomainError("NOT_FOUND", f"No such {label or model.__name__.lower()}.", field)
    return row


async def active_user(session: AsyncSession, user_id: uuid.UUID | None, field: str) -> User:
    user = await get_or_error(session, User, user_id, field, label="user")
    if not user.active:
        raise DomainError("INVALID", "That user is deactivated.", field)
    return user


def apply_changes(row: Any, changes: dict[str, Any]) -> list[str]:
    """Set attributes that differ; return the names of those that changed."""
    changed = []
    for name, value in changes.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)
    return changed
