"""What the organizations of a batch of relayed events have that some of the events need a job for (an active
workflow, an enabled AI agent, webhook subscriptions): asked in one statement per batch (`tasks.consequences.start`),
each module saying what its own fact is (`is_automated`, `has_enabled_agent`, `subscribed_types`)."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from banxway.resolvers.ai_agent import has_enabled_agent
from banxway.resolvers.webhook_endpoints import subscribed_types
from banxway.resolvers.workflow_engine import is_automated

_IDS = ARRAY(UUID(as_uuid=True))  # one instance: a type made per statement has its cache key worked out every time


@dataclass(frozen=True)
class Facts:
    automated: bool = False  # an active workflow or a waiting instance
    has_agent: bool = False  # an enabled AI agent
    webhook_types: frozenset[str] = frozenset()  # the event types its enabled endpoints subscribe to


async def organization_facts(
    session: AsyncSession, organization_ids: set[uuid.UUID], *, workflows: bool, agents: bool, webhooks: bool
) -> dict[uuid.UUID, Facts]:
    """What the batch's organizations have that some events need a job for: one statement, asking only what the
    batch's events need (most batches: nothing, or the webhook subscriptions alone)."""
    facts = {organization: Facts() for organization in organization_ids}
    if not organization_ids or not (workflows or agents or webhooks):
        return facts
    query = _facts_query(workflows, agents, webhooks)
    for organization_id, automated, has_agent, types in await session.execute(query, {"ids": sorted(organization_ids)}):
        facts[organization_id] = Facts(bool(automated), bool(has_agent), frozenset(types or ()))
    return facts


@functools.cache
def _facts_query(workflows: bool, agents: bool, webhooks: bool) -> Any:
    """The question for `:ids`, one per combination of what is asked; built once (building it and working out its
    cache key took ~0.5 ms, at every relay). The ids are one array parameter (a VALUES list would make every batch
    a statement of its own to compile)."""
    organizations = func.unnest(bindparam("ids", type_=_IDS)).alias("batch")
    organization = organizations.column
    return select(
        organization,
        is_automated(organization) if workflows else literal(False),
        has_enabled_agent(organization) if agents else literal(False),
        subscribed_types(organization) if webhooks else literal(None),
    ).select_from(organizations)
