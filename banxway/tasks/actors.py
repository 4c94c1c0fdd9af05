"""Dramatiq actors: verb-noun, take ids, idempotent, each calls a resolver."""

from __future__ import annotations

import dramatiq

from banxway.db.session import system_session
from banxway.logs import get_logger
from banxway.resolvers.auth import prune_refresh_tokens as prune_refresh_tokens_use_case
from banxway.tasks.runtime import runtime

log = get_logger("banxway.tasks")


@dramatiq.actor(queue_name="maintenance", max_retries=3, time_limit=60_000, max_age=3_600_000)
async def prune_refresh_tokens() -> None:
    """Delete refresh tokens that expired more than a day ago."""
    async with system_session(runtime().sessionmaker) as session, session.begin():
        removed = await prune_refresh_tokens_use_case(session)
    log.info("pruned refresh tokens", removed=removed)


ALL = [prune_refresh_tokens]
