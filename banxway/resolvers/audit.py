"""The audit log: one row per call an agent makes over MCP (tool, target, outcome, the API token's name), written
in its own transaction so that a refused or failed call is recorded too."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from banxway.db.models import ApiToken, AuditEntry

if TYPE_CHECKING:
    from banxway.context import Context


async def audit(
    ctx: Context, *, channel: str, action: str, target: str | None, outcome: str, details: dict[str, Any] | None = None
) -> None:
    """Record what the viewer just did (or tried): `outcome` is OK or the error's code."""
    viewer = ctx.viewer
    async with ctx.transaction() as session:
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
