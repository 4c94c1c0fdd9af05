"""The audit log in the schema: `auditLog` (ADMIN), newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from banxway import db
from banxway.resolvers import audit as audit_use_cases
from banxway.schema.ids import filter_id
from banxway.schema.nodes import Ctx, _model_type_of, related
from banxway.schema.pagination import Connection, connection
from banxway.schema.users import User


@strawberry.type(description="One thing someone did (today: every call an agent made over MCP).")
class AuditEntry:
    channel: str = strawberry.field(description="How: MCP (an agent with a personal API token).")
    action: str = strawberry.field(description="What: the tool, `read_resource`, or the prompt's name.")
    target: str | None = strawberry.field(description="On what: a thread's reference, a global id, a URI.")
    outcome: str = strawberry.field(description="OK, or the error's code (FORBIDDEN, NOT_FOUND, …).")
    token_name: str | None = strawberry.field(description="The personal API token's name.")
    created_at: datetime

    is_type_of = _model_type_of(db.AuditEntry)

    @strawberry.field(description="The arguments (texts as their length).")
    def details(self) -> JSON:
        value: Any = self.details  # type: ignore[attr-defined]
        return value

    @strawberry.field(description="The user (the API token's owner).")
    def actor(self, info: Ctx) -> User | None:
        return related(self, info, "actor", "user_by_id", self.actor_id)  # type: ignore[attr-defined]


@strawberry.input
class AuditLogFilter:
    channel: str | None = None
    actor_id: strawberry.ID | None = None
    action: str | None = None
    since: datetime | None = None


@strawberry.type
class AuditQuery:
    @strawberry.field(description="The organization's audit log, newest first (ADMIN).")
    async def audit_log(
        self, info: Ctx, first: int | None = None, after: str | None = None, filter: AuditLogFilter | None = None
    ) -> Connection[AuditEntry]:
        where = filter or AuditLogFilter()
        page = await audit_use_cases.audit_log_page(
            info.context,
            first=first,
            after=after,
            channel=where.channel,
            actor_id=filter_id(where.actor_id, "User"),
            action=where.action,
            since=where.since,
        )
        return connection(page)  # type: ignore[return-value]
