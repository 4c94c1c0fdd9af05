"""Benchmark: the analytics dashboard's latency for a month and a year, with and without rollups.

    uv run python bench/analytics.py                    # 10k threads, 200k messages over 400 days
    uv run python bench/analytics.py --threads 2000 --messages 40000 --runs 10

Seeds (one INSERT ... SELECT generate_series per table, so seconds, not minutes) an organization with threads
spread over 400 days, 20 messages each, status changes (60 % resolved, a sixth of those reopened), first-response
SLA targets and a business calendar, into an embedded PostgreSQL under .bench-data/analytics/ (or the server in
DATABASE_URL, database banxway_bench_analytics). It then rolls up every day (the `rollup_analytics` actor's
resolver, timed), and calls the dashboard's use-case (`banxway.resolvers.analytics.analytics`, the function the
GraphQL field calls; no HTTP) for the last 30 and 365 days, grouped by nothing and by DAY (with the backlog),
from rollups and on the fly, printing p50 and p99 over `--runs` runs. Issue 15's target: a year < 200 ms with
rollups.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import time
import uuid
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banxway.context import Context, SystemContext, Viewer  # noqa: E402
from banxway.db.migrate import upgrade  # noqa: E402
from banxway.db.session import create_engine  # noqa: E402
from banxway.embedded import EmbeddedPostgres  # noqa: E402
from banxway.enums import Role  # noqa: E402
from banxway.resolvers.analytics import Dimension, analytics, rollup_day  # noqa: E402
from banxway.settings import Settings  # noqa: E402
from banxway.state import new_state  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 120)
SLUG = "bench-analytics"
ZONE = "Asia/Kolkata"
CALENDAR = (
    '{"timezone": "Asia/Kolkata", "hours": {"monday": [["09:00", "18:00"]], "tuesday": [["09:00", "18:00"]], '
    '"wednesday": [["09:00", "18:00"]], "thursday": [["09:00", "18:00"]], "friday": [["09:00", "18:00"]]}}'
)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def seed(url: str, threads: int, messages: int, days: int) -> tuple[uuid.UUID, uuid.UUID, dt.date, bool]:
    """(organization, admin user, the last seeded day, seeded now); the dataset is reused when it is there."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        row = await conn.fetchrow("SELECT id FROM organizations WHERE slug = $1", SLUG)
        if row is not None:
            org = row["id"]
            count = await conn.fetchval("SELECT count(*) FROM threads WHERE organization_id = $1", org)
            if count == threads:
                admin = await conn.fetchval("SELECT id FROM users WHERE organization_id = $1 AND role = 'admin'", org)
                last = await conn.fetchval(
                    "SELECT max(created_at AT TIME ZONE $2)::date FROM threads WHERE organization_id = $1", org, ZONE
                )
                return org, admin, last, False
            await conn.execute("DELETE FROM organizations WHERE id = $1", org)
        org = uuid.uuid4()
        await conn.execute(
            "INSERT INTO organizations (id, name, slug, business_hours) VALUES ($1, 'Bench Analytics', $2, $3::jsonb)",
            org,
            SLUG,
            CALENDAR,
        )
        if await conn.fetchval(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'organizations' AND column_name = 'timezone'"
        ):
            await conn.execute("UPDATE organizations SET timezone = $2 WHERE id = $1", org, ZONE)
        users = [uuid.uuid4() for _ in range(20)]
        await conn.executemany(
            "INSERT INTO users (id, organization_id, email, name, role, password_hash) VALUES ($1, $2, $3, $4, $5, 'x')",
            [
                (u, org, f"agent{i}@bench.test", f"Agent {i}", "admin" if i == 0 else "support")
                for i, u in enumerate(users)
            ],
        )
        customers = [uuid.uuid4() for _ in range(300)]
        await conn.executemany(
            "INSERT INTO customers (id, organization_id, name) VALUES ($1, $2, $3)",
            [(c, org, f"Customer {i}") for i, c in enumerate(customers)],
        )
        start = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=days)
        per_thread = max(1, messages // threads)
        steps = [
            (
                "threads",
                """
                INSERT INTO threads (organization_id, reference, subject, type, status, priority, primary_channel,
                                     assignee_id, customer_id, created_at, last_activity_at, first_response_at)
                SELECT $1, 'BX-A-' || i, 'Enquiry ' || i,
                       (ARRAY['GENERAL','BOOKING','CUSTOMS','QUOTE_REQUEST','DOCUMENTATION'])[1 + i % 5]::thread_type,
                       CASE WHEN i % 10 < 6 AND i % 60 <> 0 THEN 'RESOLVED' ELSE 'OPEN' END::thread_status, 'NORMAL',
                       (ARRAY['EMAIL','WHATSAPP','SMS'])[1 + (i * 7) % 3]::channel,
                       CASE WHEN i % 8 = 0 THEN NULL ELSE ($2::uuid[])[1 + (i * 13) % array_length($2, 1)] END,
                       ($3::uuid[])[1 + (i * 31) % array_length($3, 1)], ts, ts,
                       CASE WHEN i % 10 <> 9 THEN ts + (1 + (i * 37) % 600) * interval '1 minute' END
                FROM generate_series(1, $4) i,
                     LATERAL (SELECT $5::timestamptz + (i::float8 / $4) * ($6 * interval '1 day')
                              + ((i * 17) % 600) * interval '1 minute' AS ts) x
                """,
                (org, users, customers, threads, start, days),
            ),
            (
                "messages",
                """
                INSERT INTO messages (organization_id, thread_id, channel, direction, status, body, author_id,
                                      created_at)
                SELECT $1, t.id, t.primary_channel, CASE WHEN k % 2 = 0 THEN 'INBOUND' ELSE 'OUTBOUND' END::direction,
                       CASE WHEN k % 2 = 0 THEN 'RECEIVED' ELSE 'SENT' END::message_status,
                       'Message ' || k || ' about the booking: container status and ETA update.',
                       CASE WHEN k % 2 = 1 THEN t.assignee_id END, t.created_at + k * interval '3 hours'
                FROM threads t, generate_series(0, $2 - 1) k
                WHERE t.organization_id = $1
                """,
                (org, per_thread),
            ),
            (
                "status changes",
                """
                INSERT INTO events (organization_id, type, thread_id, actor_id, payload, created_at, dispatched_at)
                SELECT $1, 'THREAD_UPDATED', t.id, t.assignee_id,
                       jsonb_build_object('thread_id', t.id, 'changed', jsonb_build_array('status'),
                                          'status', s.status, 'previous_status', s.previous),
                       s.at, s.at
                FROM threads t
                CROSS JOIN LATERAL (VALUES
                    ('RESOLVED', 'OPEN', t.created_at + (30 + abs(hashtext(t.id::text)) % 5000) * interval '1 minute',
                     t.status = 'RESOLVED' OR abs(hashtext(t.id::text)) % 6 = 0),
                    ('OPEN', 'RESOLVED', t.created_at + (30 + abs(hashtext(t.id::text)) % 5000 + 1440)
                     * interval '1 minute', abs(hashtext(t.id::text)) % 6 = 0 AND t.status = 'OPEN')
                ) s(status, previous, at, happened)
                WHERE t.organization_id = $1 AND s.happened
                """,
                (org,),
            ),
            (
                "SLA targets",
                """
                INSERT INTO sla_targets (organization_id, thread_id, kind, minutes, business_hours, started_at,
                                         due_at, met_at, breached_at)
                SELECT $1, t.id, 'FIRST_RESPONSE', 240, false, t.created_at, t.created_at + interval '4 hours',
                       t.first_response_at,
                       CASE WHEN t.first_response_at > t.created_at + interval '4 hours'
                            THEN t.created_at + interval '4 hours' END
                FROM threads t WHERE t.organization_id = $1 AND t.first_response_at IS NOT NULL
                """,
                (org,),
            ),
        ]
        for name, sql, params in steps:
            began = time.perf_counter()
            status = await conn.execute(sql, *params)
            console.print(f"  {name}: {status.split()[-1]} rows in {time.perf_counter() - began:.1f} s")
        await conn.execute("VACUUM ANALYZE")
        last = await conn.fetchval(
            "SELECT max(created_at AT TIME ZONE $2)::date FROM threads WHERE organization_id = $1", org, ZONE
        )
        return org, users[0], last, True
    finally:
        await conn.close()


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=400, help="days the threads are spread over")
    parser.add_argument("--runs", type=int, default=20, help="runs per measurement (a fifth of them on the fly)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".bench-data" / "analytics")
    args = parser.parse_args()

    os.environ.setdefault("BANXWAY_SECRET_KEY", "bench-secret-key-0123456789-abcdefghijklmnop")
    embedded = None
    url = os.environ.get("DATABASE_URL")
    if url:
        admin = await asyncpg.connect(_dsn(url))
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = 'banxway_bench_analytics'"):
            await admin.execute("CREATE DATABASE banxway_bench_analytics")
        await admin.close()
        url = make_url(url).set(database="banxway_bench_analytics").render_as_string(hide_password=False)
    else:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        embedded = EmbeddedPostgres(args.data_dir / "postgres")
        url = embedded.start()
    try:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        began = time.perf_counter()
        org, admin_id, last_day, seeded = await seed(url, args.threads, args.messages, args.days)
        console.print(
            f"dataset: {args.threads:,} threads, {args.messages:,} messages over {args.days} days "
            f"({'seeded in %.0f s' % (time.perf_counter() - began) if seeded else 'reused'})"
        )
        settings = Settings(database_url=url, redis_url="redis://127.0.0.1:1/0")  # Redis is not used here
        state = new_state(settings)
        try:
            await run(state, org, admin_id, last_day, args)
        finally:
            await state.engine.dispose()
            await state.reads.dispose()
    finally:
        if embedded is not None:
            embedded.stop()


async def run(state: object, org: uuid.UUID, admin_id: uuid.UUID, last_day: dt.date, args: argparse.Namespace) -> None:
    system = SystemContext(state)  # type: ignore[arg-type]
    first_day = last_day - dt.timedelta(days=args.days + 1)
    began = time.perf_counter()
    rows = 0
    day = first_day
    while day <= last_day:
        rows += await rollup_day(system, org, day, ZONE)
        day += dt.timedelta(days=1)
    rollup_seconds = time.perf_counter() - began
    console.print(
        f"rollups: {(last_day - first_day).days + 1} days, {rows:,} rows in {rollup_seconds:.1f} s "
        f"({1000 * rollup_seconds / ((last_day - first_day).days + 1):.0f} ms per day)"
    )
    viewer = Viewer(admin_id, org, Role.ADMIN, "agent0@bench.test", "Agent 0")
    table = Table(title="analytics dashboard latency (ms), the use-case the GraphQL field calls")
    for column in ("period", "groupBy", "rollups", "runs", "p50", "p99", "rolled-up days"):
        table.add_column(column, justify="right")
    verdict = None
    for label, length in (("month", 30), ("year", 365)):
        period = (last_day - dt.timedelta(days=length - 1), last_day)
        for group_by in ([], [Dimension.DAY]):
            for use_rollups in (True, False):
                runs = args.runs if use_rollups else max(3, args.runs // 5)
                timings, rolled = [], 0
                for attempt in range(runs + 1):  # the first run warms the connection pool
                    ctx = Context(state, viewer)  # type: ignore[arg-type]
                    started = time.perf_counter()
                    try:
                        result = await analytics(ctx, period[0], period[1], ZONE, group_by, use_rollups=use_rollups)
                    finally:
                        await ctx.aclose()
                    if attempt:
                        timings.append(1000 * (time.perf_counter() - started))
                    rolled = result.rolled_up_days
                p50, p99 = _percentile(timings, 0.5), _percentile(timings, 0.99)
                name = ",".join(d.name for d in group_by) or "-"
                table.add_row(
                    label, name, "yes" if use_rollups else "no", str(runs), f"{p50:.1f}", f"{p99:.1f}", str(rolled)
                )
                if label == "year" and use_rollups and not group_by:
                    verdict = p50
    console.print(table)
    if verdict is not None:
        console.print(
            f"target (a year < 200 ms with rollups): p50 {verdict:.1f} ms — {'met' if verdict < 200 else 'NOT met'}"
        )


if __name__ == "__main__":
    asyncio.run(main())
