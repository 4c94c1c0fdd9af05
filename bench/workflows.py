"""Benchmark: the workflow engine next to its floor — the same writes made by the use-cases directly.

    uv run python bench/workflows.py                 # 300 threads
    uv run python bench/workflows.py --threads 100 --json

A PostgreSQL and a Redis (DATABASE_URL / REDIS_URL when set, a throw-away database; otherwise embedded ones), an
organization, and a workflow on THREAD_CREATED with two steps: SET (priority HIGH, a tag) and CREATE_ACTION ("Call
back", due in 2 hours). Then, in one run:

1. The floor: for N threads, what those steps write, through the same use-cases the mutations call
   (`thread_update`, `action_create`): threads/s.
2. The engine: for N other threads, `workflows_start` on each THREAD_CREATED event (the `start_workflows` actor's
   work: matching, conditions, the instance) and `workflow_run` (the `run_workflow` actor's: each step in its
   transaction with its history row and event): threads/s, the ratio to the floor, SQL statements per thread
   for each, p50/p99 per thread.

Actors are called in this process (no broker hop), so the numbers are the engine's own cost on top of the writes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banxway import events  # noqa: E402
from banxway.app import build_state  # noqa: E402
from banxway.context import Context, SystemContext, Viewer  # noqa: E402
from banxway.db.models import Event  # noqa: E402
from banxway.db.session import system_session  # noqa: E402
from banxway.enums import ActionType, Priority, Role  # noqa: E402
from banxway.logs import configure_logging  # noqa: E402
from banxway.resolvers import actions, threads, workflows  # noqa: E402
from banxway.resolvers.users import organization_create  # noqa: E402
from banxway.resolvers.workflow_engine import workflow_run, workflows_start  # noqa: E402
from banxway.settings import Settings  # noqa: E402
from bench.services import database_and_redis  # noqa: E402

SECRET = "bench-workflows-secret-key-0123456789abcdef"
DEFINITION = {
    "trigger": {"type": "THREAD_CREATED"},
    "steps": [
        {"type": "SET", "priority": "HIGH", "addTags": ["callback"]},
        {"type": "CREATE_ACTION", "title": "Call back", "actionType": "CALL_BACK", "dueInMinutes": 120},
    ],
}


class Statements:
    def __init__(self, engine: Any) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._one)

    def _one(self, *args: Any) -> None:
        self.count += 1


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _threads(ctx: Context, n: int, label: str) -> list[uuid.UUID]:
    return [(await threads.thread_create(ctx, subject=f"{label} {i}")).id for i in range(n)]


async def _measure(args: argparse.Namespace, state: Any) -> dict[str, Any]:
    async with system_session(state.sessionmaker) as session:
        organization, admin = await organization_create(
            session,
            name="Bench Workflows",
            slug="bench-workflows",
            admin_email="admin@bench.test",
            admin_password="bench-password-123",
        )
        await session.commit()
    viewer = Viewer(admin.id, organization.id, Role.ADMIN, admin.email, admin.name)
    ctx = Context(state, viewer_or_none=viewer)
    counter = Statements(state.engine)
    n = args.threads

    # 1. the floor: the writes of the two steps, through the use-cases
    floor_ids = await _threads(ctx, n, "Floor")
    times: list[float] = []
    before, started = counter.count, time.perf_counter()
    for thread_id in floor_ids:
        t0 = time.perf_counter()
        await threads.thread_update(ctx, thread_id, {"priority": Priority.HIGH, "tags": ["callback"]})
        await actions.action_create(
            ctx,
            thread_id=thread_id,
            title="Call back",
            type=ActionType.CALL_BACK,
            due_at=datetime.now(UTC) + timedelta(hours=2),
        )
        await ctx.aclose()
        times.append(time.perf_counter() - t0)
    floor_s, floor_statements, floor_times = time.perf_counter() - started, counter.count - before, times

    # 2. the engine: the workflow on N other threads' THREAD_CREATED events
    await workflows.workflow_create(ctx, name="Call back", description=None, definition=DEFINITION, active=True)
    engine_ids = await _threads(ctx, n, "Engine")
    await ctx.aclose()
    async with system_session(state.sessionmaker) as session:
        created = dict(
            (row.thread_id, row.id)
            for row in await session.execute(
                select(Event.thread_id, Event.id).where(
                    Event.type == events.ThreadCreated.type, Event.thread_id.in_(engine_ids)
                )
            )
        )
    system = SystemContext(state)
    times = []
    statuses: dict[str, int] = {}
    before, started = counter.count, time.perf_counter()
    for thread_id in engine_ids:
        t0 = time.perf_counter()
        for instance_id in await workflows_start(system, created[thread_id]):
            status = await workflow_run(system, instance_id)
            statuses[status] = statuses.get(status, 0) + 1
        times.append(time.perf_counter() - t0)
    engine_s, engine_statements = time.perf_counter() - started, counter.count - before
    return {
        "threads": n,
        "cores": os.cpu_count(),
        "floor_per_s": round(n / floor_s, 1),
        "engine_per_s": round(n / engine_s, 1),
        "ratio_to_floor": round(floor_s / engine_s, 3),
        "floor_statements_per_thread": round(floor_statements / n, 1),
        "engine_statements_per_thread": round(engine_statements / n, 1),
        "floor_p50_ms": round(statistics.median(floor_times) * 1000, 1),
        "floor_p99_ms": round(_percentile(floor_times, 0.99) * 1000, 1),
        "engine_p50_ms": round(statistics.median(times) * 1000, 1),
        "engine_p99_ms": round(_percentile(times, 0.99) * 1000, 1),
        "instances": statuses,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    temp = Path(tempfile.mkdtemp(prefix="banxway-bench-workflows-"))
    async with database_and_redis(temp, "workflows", lambda line: None if args.json else print(line)) as (url, redis):
        settings = Settings(
            database_url=url,
            redis_url=redis,
            data_dir=temp / "data",
            secret_key=SECRET,
            env="development",
            log_level="WARNING",
        )
        configure_logging(settings)
        state = await build_state(settings)
        try:
            return await _measure(args, state)
        finally:
            await state.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=300)
    parser.add_argument("--json", action="store_true", help="one JSON line instead of the report")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    print(f"workflow engine, {result['threads']} threads, {result['cores']} cores (everything on this machine)")
    print(
        f"  floor (the same writes through the use-cases): {result['floor_per_s']} threads/s, "
        f"p50 {result['floor_p50_ms']} ms, p99 {result['floor_p99_ms']} ms, "
        f"{result['floor_statements_per_thread']} statements/thread"
    )
    print(
        f"  engine (start + run, 2 steps):                  {result['engine_per_s']} threads/s, "
        f"p50 {result['engine_p50_ms']} ms, p99 {result['engine_p99_ms']} ms, "
        f"{result['engine_statements_per_thread']} statements/thread"
    )
    print(f"  ratio engine / floor: {result['ratio_to_floor']}   instances: {result['instances']}")


if __name__ == "__main__":
    main()
