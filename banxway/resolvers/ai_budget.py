"""The AI budget: tokens an organization spends with the external provider, metered per calendar month (UTC), and
the check composeStart makes against BANXWAY_AI_MONTHLY_TOKEN_BUDGET. The built-in composer and rules cost
nothing and are never metered."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from banxway.db.models import AiUsage
from banxway.errors import DomainError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.settings import Settings


def uses_provider(settings: Settings) -> bool:
    """Whether AI work goes to the external provider (a key is configured), rather than the built-in one."""
    return bool(settings.openai_api_key)


def month_of(at: datetime) -> date:
    return at.astimezone(UTC).date().replace(day=1)


async def used(session: AsyncSession, organization_id: uuid.UUID, at: datetime) -> int:
    tokens = await session.scalar(
        select(AiUsage.tokens).where(AiUsage.organization_id == organization_id, AiUsage.month == month_of(at))
    )
    return int(tokens or 0)


async def check(session: AsyncSession, settings: Settings, organization_id: uuid.UUID) -> None:
    """BUDGET_EXCEEDED when the organization has spent its tokens for the month (nothing to check without a
    provider, or with no limit)."""
    budget = settings.ai_monthly_token_budget
    if not budget or not uses_provider(settings):
        return
    spent = await used(session, organization_id, datetime.now(UTC))
    if spent >= budget:
        raise DomainError(
            "BUDGET_EXCEEDED",
            f"The organization has used its {budget:,} AI tokens for this month ({spent:,}); drafts resume next "
            "month, or when the budget is raised (BANXWAY_AI_MONTHLY_TOKEN_BUDGET).",
        )


async def charge(session: AsyncSession, organization_id: uuid.UUID, tokens: int, at: datetime) -> None:
    """Add tokens spent with the external provider to the organization's meter for the month of `at`."""
    statement = insert(AiUsage).values(organization_id=organization_id, month=month_of(at), tokens=tokens)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[AiUsage.organization_id, AiUsage.month], set_={"tokens": AiUsage.tokens + tokens}
        )
    )
