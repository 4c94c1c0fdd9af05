"""The audit log: one row per call an agent makes over MCP (tool, target, outcome, the API token's name), written
in its own transaction so that a refused or failed call is recorded too; read by admins (`auditLog`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from banxway.auth import Permission
from banxway.db.models import ApiToken, AuditEntry
from banxway.resolvers.pagination import Page, paginate

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context


async def audit(
    ctx: Context, *, channel: str, action: str, target: str | None, outcome: str, details: dict[str, Any] | None = None
) -> None:
    """Record what the viewer just did (or tried), in a transaction of its own: `outcome` is OK or the error's
    code."""
    async with ctx.transaction() as session:
        await _add(ctx, session, channel=channel, action=action, target=target, outcome=outcome, details=details)


async def audit_change(
    ctx: Context,
    session: AsyncSession,
    *,
    action: str,
    target: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    channel: str = "GRAPHQL",
) -> None:
    """Record an administrative change inside the transaction that makes it (so it exists exactly when the change
    was committed): who (the viewer and their API token), what (`action`, e.g. "organizationUpdate", and `target`,
    a global id), and the changed fields' values before and after. Secrets never go in `before`/`after`."""
    details = {"before": before or {}, "after": after or {}}
    await _add(ctx, session, channel=channel, action=action, target=target, outcome="OK", details=details)


async def _add(
    ctx: Context,
    session: AsyncSession,
    *,
    channel: str,
    action: str,
    target: str | None,
    outcome: str,
    details: dict[str, Any] | None,
) -> None:
    viewer = ctx.viewer
    token_name = None
    if viewer.api_token_id is not None:
        token_name = await session.scalar(select(ApiToken.name).where(ApiToken.id == viewer.api_token_id))
    session.add(
        AuditEntry(
            organization_id=viewer.organization_id,
            actor_id=viewer.user_id,
            api_token_id=viewer.api_token_id,
            token_name=token_name,
            channel=channel,
            action=action[:100],
            target=target[:200] if target else None,
            outcome=outcome[:40],
            details=details or {},
        )
    )


async def audit_log_page(
    ctx: Context,
    *,
    first: int | None,
    after: str | None,
    channel: str | None = None,
    actor_id: uuid.UUID | None = None,
    action: str | None = None,
    since: datetime | None = None,
) -> Page[AuditEntry]:
    """The organization's audit log, newest first (ORG_MANAGE: admins only)."""
    ctx.require(Permission.ORG_MANAGE)
    query = select(AuditEntry)
    if channel:
        query = query.where(AuditEntry.channel == channel.strip().upper())
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if action:
        query = query.where(AuditEntry.action == action.strip())
    if since is not None:
        query = query.where(AuditEntry.created_at >= since)
    keys = (AuditEntry.created_at, AuditEntry.id)
    return await paginate(ctx.db, query, keys, first=first, after=after, descending=True)
