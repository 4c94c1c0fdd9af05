"""The one scheduler: enqueues periodic actors, leader-elected through Redis.

Every scheduler process ticks; only the one holding the Redis lease
(`SET banxway:scheduler:leader <id> NX PX <ttl>`, renewed by its holder)
enqueues, so several schedulers never double fire.
"""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from banxway.logs import get_logger
from banxway.settings import Settings
from banxway.tasks import actors

log = get_logger("banxway.scheduler")

LEADER_KEY = "banxway:scheduler:leader"
LEASE_MS = 30_000


def schedule(settings: Settings) -> list[tuple[object, float]]:
    """(actor, seconds between runs)"""
    return [
        (actors.prune_refresh_tokens, 3600),
        (actors.rollup_analytics, 3600),  # yesterday's rollups soon after midnight in every time zone
        (actors.poll_mailboxes, settings.email_poll_interval_seconds),
        (actors.requeue_messages, 60),
        (actors.requeue_agent_tasks, 60),
        (actors.requeue_webhook_deliveries, 60),
        (actors.check_slas, 60),
        (actors.wake_threads, 60),
        (actors.release_messages, 60),
        (actors.remind_actions, 60),
        (actors.resume_workflows, 60),
        (actors.run_scheduled_workflows, 60),
        (actors.refresh_meta_tokens, 3600),  # Meta page tokens expiring within ten days
        (actors.send_chat_transcripts, 60),  # web chat visitors who left replies unseen
    ]


_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


class LeaderLease:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.identity = uuid.uuid4().hex
        self._renew = redis.register_script(_RENEW)

    async def hold(self) -> bool:
        """Take or renew the lease; True while this process is the leader."""
        return bool(await self._renew(keys=[LEADER_KEY], args=[self.identity, LEASE_MS]))

    async def release(self) -> None:
        if (await self.redis.get(LEADER_KEY)) == self.identity.encode():
            await self.redis.delete(LEADER_KEY)


def build_scheduler(redis: aioredis.Redis, settings: Settings) -> tuple[AsyncIOScheduler, LeaderLease]:
    lease = LeaderLease(redis)
    scheduler = AsyncIOScheduler(timezone="UTC")

    def job(actor: object):
        async def run() -> None:
            if await lease.hold():
                await asyncio.to_thread(actor.send)  # type: ignore[attr-defined]
                log.info("enqueued", actor=actor.actor_name)  # type: ignore[attr-defined]

        return run

    async def keep_lease() -> None:
        await lease.hold()

    for actor, seconds in schedule(settings):
        scheduler.add_job(job(actor), "interval", seconds=seconds, id=actor.actor_name, coalesce=True)
    scheduler.add_job(keep_lease, "interval", seconds=LEASE_MS // 3000, id="leader-lease")
    return scheduler, lease
