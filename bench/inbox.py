"""Benchmark: the inbox query against a running server, next to the raw-SQL floor.

    uv run python bench/inbox.py                  # 10k threads, 200k messages, 20 s per run
    uv run python bench/inbox.py --threads 2000 --messages 40000 --duration 10

Seeds a dataset (bulk COPY, with progress bars) into an embedded PostgreSQL under
.bench-data/ (or the server in DATABASE_URL), starts `banxway serve` as a
separate process, and runs the inbox query (50 threads with customer, contact,
shipment, assignee, tags, unreadCount and the last 3 messages) at concurrency 1
and 32. Then it runs the same page's data as hand-written SQL over asyncpg —
rows only, the floor — and prints req/s, p50, p99, SQL statements per request
and the ratio, all measured in this one run. Load comes from wrk when it is
installed, else from an asyncio HTTP client in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banxway.auth import hash_password  # noqa: E402
from banxway.db.migrate import upgrade  # noqa: E402
from banxway.db.session import create_engine  # noqa: E402
from banxway.embedded import EmbeddedPostgres, EmbeddedRedis  # noqa: E402

console = Console()
PASSWORD = "bench-password"
INBOX_QUERY = """
query Inbox {
  threads(first: 50) {
    totalCount
    edges { cursor node {
      id reference subject status priority tags unreadCount lastMessageAt
      customer { id name } contact { id name } shipment { id reference } assignee { id name }
      messages(last: 3) { edges { node { id body direction createdAt } } }
    } }
  }
}
"""


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def seed(url: str, args: argparse.Namespace) -> tuple[str, bool]:
    """Create the dataset unless it is already there; returns (login email, seeded now)."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        if await conn.fetchval("SELECT count(*) FROM organizations WHERE slug = 'bench'"):
            existing = await conn.fetchval("SELECT count(*) FROM threads")
            if existing == args.threads:
                return "bench-admin@bench.test", False
            await conn.execute("DELETE FROM organizations WHERE slug = 'bench'")
        rng = random.Random(42)
        org = uuid.uuid4()
        now = dt.datetime.now(dt.UTC)
        await conn.execute("INSERT INTO organizations (id, name, slug) VALUES ($1, 'Bench Freight', 'bench')", org)
        password_hash = hash_password(PASSWORD)
        users = [uuid.uuid4() for _ in range(args.users)]
        await conn.copy_records_to_table(
            "users",
            columns=["id", "organization_id", "email", "name", "role", "password_hash"],
            records=[
                (
                    u,
                    org,
                    "bench-admin@bench.test" if i == 0 else f"agent{i}@bench.test",
                    f"Agent {i}",
                    "admin" if i == 0 else "support",
                    password_hash,
                )
                for i, u in enumerate(users)
            ],
        )
        with Progress(console=console) as progress:
            customers = [uuid.uuid4() for _ in range(args.customers)]
            task = progress.add_task("customers + contacts", total=len(customers))
            await conn.copy_records_to_table(
                "customers",
                columns=["id", "organization_id", "name", "code"],
                records=[(c, org, f"Customer {i}", f"C{i:05d}") for i, c in enumerate(customers)],
            )
            contacts = [(uuid.uuid4(), customers[i % len(customers)]) for i in range(args.customers * 2)]
            await conn.copy_records_to_table(
                "contacts",
                columns=["id", "organization_id", "customer_id", "name"],
                records=[(c, org, cust, f"Contact {i}") for i, (c, cust) in enumerate(contacts)],
            )
            progress.update(task, completed=len(customers))
            task = progress.add_task("shipments", total=args.shipments)
            shipments = [(uuid.uuid4(), rng.choice(customers)) for _ in range(args.shipments)]
            await conn.copy_records_to_table(
                "shipments",
                columns=["id", "organization_id", "reference", "customer_id", "mode", "direction"],
                records=[
                    (s, org, f"SHP-{i:06d}", c, rng.choice(["SEA", "AIR"]), rng.choice(["IMPORT", "EXPORT"]))
                    for i, (s, c) in enumerate(shipments)
                ],
            )
            progress.update(task, completed=args.shipments)
            task = progress.add_task("threads", total=args.threads)
            statuses = ["NEW", "OPEN", "PENDING", "RESOLVED", "CLOSED"]
            threads = []
            for i in range(args.threads):
                contact, customer = rng.choice(contacts)
                shipment = rng.choice(shipments)[0] if rng.random() < 0.7 else None
                at = now - dt.timedelta(minutes=args.threads - i)
                threads.append(
                    (
                        uuid.uuid4(),
                        org,
                        f"BX-2026-{i + 1:05d}",
                        f"Booking enquiry {i}",
                        "BOOKING",
                        rng.choice(statuses),
                        rng.choice(["LOW", "NORMAL", "HIGH", "URGENT"]),
                        "EMAIL",
                        customer,
                        contact,
                        shipment,
                        rng.choice(users),
                        ["sea", f"lane-{i % 20}"],
                        at,
                        at,
                    )
                )
            await conn.copy_records_to_table(
                "threads",
                columns=[
                    "id",
                    "organization_id",
                    "reference",
                    "subject",
                    "type",
                    "status",
                    "priority",
                    "primary_channel",
                    "customer_id",
                    "contact_id",
                    "shipment_id",
                    "assignee_id",
                    "tags",
                    "last_activity_at",
                    "last_message_at",
                ],
                records=threads,
            )
            progress.update(task, completed=args.threads)
            task = progress.add_task("messages", total=args.messages)
            per_thread = max(1, args.messages // args.threads)
            batch = []
            for t in threads:
                for m in range(per_thread):
                    inbound = m % 2 == 0
                    batch.append(
                        (
                            uuid.uuid4(),
                            org,
                            t[0],
                            "EMAIL",
                            "INBOUND" if inbound else "OUTBOUND",
                            "RECEIVED" if inbound else "SENT",
                            f"Message {m} about {t[3]}: container status and ETA update.",
                            None if inbound else t[11],
                            t[9] if inbound else None,
                            t[13] - dt.timedelta(minutes=per_thread - m),
                        )
                    )
                if len(batch) >= 20000:
                    await _copy_messages(conn, batch)
                    progress.advance(task, len(batch))
                    batch = []
            if batch:
                await _copy_messages(conn, batch)
                progress.advance(task, len(batch))
        await conn.execute("ANALYZE")
        return "bench-admin@bench.test", True
    finally:
        await conn.close()


async def _copy_messages(conn: asyncpg.Connection, rows: list[tuple]) -> None:
    await conn.copy_records_to_table(
        "messages",
        columns=[
            "id",
            "organization_id",
            "thread_id",
            "channel",
            "direction",
            "status",
            "body",
            "author_id",
            "contact_id",
            "created_at",
        ],
        records=rows,
    )


# -- load ----------------------------------------------------------------------------------


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _load_python(url: str, token: str, concurrency: int, duration: float) -> tuple[int, list[float], int]:
    body = json.dumps({"query": INBOX_QUERY}).encode()
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post("/graphql", content=body, headers=headers)
                if response.status_code != 200 or b'"errors"' in response.content:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies, errors


def _load_wrk(url: str, token: str, concurrency: int, duration: float) -> tuple[int, list[float], int] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = Path(tempfile.mkdtemp()) / "inbox.lua"
    body = json.dumps({"query": INBOX_QUERY})
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
        f'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer {token}"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("RESULT %d %f %f %d\\n", summary.requests, latency:percentile(50), '
        "latency:percentile(99), summary.errors.status + summary.errors.timeout))\nend\n"
    )
    out = subprocess.run(
        [
            wrk,
            "-t",
            str(min(concurrency, 2)),
            "-c",
            str(concurrency),
            "-d",
            f"{int(duration)}s",
            "-s",
            str(script),
            f"{url}/graphql",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT"))
    _, requests, p50, p99, errors = line.split()
    # wrk reports latencies in microseconds; keep the two percentiles as a tiny sample
    return int(requests), [float(p50) / 1e6, float(p99) / 1e6], int(errors)


# -- the floor -----------------------------------------------------------------------------

FLOOR_PAGE = """
SELECT t.id, t.reference, t.subject, t.status, t.priority, t.tags, t.last_message_at,
       c.id, c.name, ct.id, ct.name, s.id, s.reference, u.id, u.name
FROM threads t
LEFT JOIN customers c ON c.id = t.customer_id LEFT JOIN contacts ct ON ct.id = t.contact_id
LEFT JOIN shipments s ON s.id = t.shipment_id LEFT JOIN users u ON u.id = t.assignee_id
WHERE t.organization_id = $1 AND t.status <> 'ARCHIVED'
ORDER BY t.last_activity_at DESC, t.id DESC LIMIT 51
"""
FLOOR_COUNT = "SELECT count(*) FROM threads WHERE organization_id = $1 AND status <> 'ARCHIVED'"
FLOOR_UNREAD = """
SELECT m.thread_id, count(*) FROM messages m
LEFT JOIN thread_reads r ON r.thread_id = m.thread_id AND r.user_id = $2
WHERE m.thread_id = ANY($1) AND (r.read_at IS NULL OR m.created_at > r.read_at) AND m.author_id IS DISTINCT FROM $2
GROUP BY m.thread_id
"""
FLOOR_MESSAGES = """
SELECT r.* FROM unnest($1::uuid[]) AS p(id) JOIN LATERAL (
  SELECT m.id, m.thread_id, m.body, m.direction, m.created_at FROM messages m
  WHERE m.thread_id = p.id ORDER BY m.created_at DESC, m.id DESC LIMIT 4) r ON true
"""


async def floor(url: str, concurrency: int, duration: float) -> tuple[int, list[float]]:
    pool = await asyncpg.create_pool(_dsn(url), min_size=concurrency, max_size=concurrency)
    org = await pool.fetchval("SELECT id FROM organizations WHERE slug = 'bench'")
    viewer = await pool.fetchval("SELECT id FROM users WHERE email = 'bench-admin@bench.test'")
    latencies: list[float] = []
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT id FROM users WHERE id = $1", viewer)
                await conn.fetchval(FLOOR_COUNT, org)
                rows = await conn.fetch(FLOOR_PAGE, org)
                ids = [row[0] for row in rows]
                await conn.fetch(FLOOR_UNREAD, ids, viewer)
                await conn.fetch(FLOOR_MESSAGES, ids)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await pool.close()
    return len(latencies), latencies


async def statements_per_request(url: str, token: str, redis_url: str) -> int:
    """Count the SQL statements of one inbox request, in-process, through the real app."""
    from sqlalchemy import event

    from banxway.app import build_state, create_app
    from banxway.settings import Settings

    settings = Settings(database_url=url, redis_url=redis_url, secret_key=os.environ["BANXWAY_SECRET_KEY"])
    state = await build_state(settings)
    app = create_app(settings, state=state)
    statements: list[str] = []
    event.listen(state.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    async def asgi(scope, receive, send):
        await app({**scope, "state": {"app": state}}, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://bench") as client:
        await client.post("/graphql", json={"query": INBOX_QUERY}, headers={"authorization": f"Bearer {token}"})
        statements.clear()
        await client.post("/graphql", json={"query": INBOX_QUERY}, headers={"authorization": f"Bearer {token}"})
    await state.aclose()
    return len(statements)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--shipments", type=int, default=6_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".bench-data")
    args = parser.parse_args()

    os.environ.setdefault("BANXWAY_SECRET_KEY", "bench-secret-key-0123456789-abcdefghijklmnop")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    embedded_pg = embedded_redis = None
    url = os.environ.get("DATABASE_URL")
    if url:
        admin = await asyncpg.connect(_dsn(url))
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = 'banxway_bench'"):
            await admin.execute("CREATE DATABASE banxway_bench")
        await admin.close()
        url = make_url(url).set(database="banxway_bench").render_as_string(hide_password=False)
    else:
        embedded_pg = EmbeddedPostgres(args.data_dir / "postgres")
        url = embedded_pg.start()
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        embedded_redis = EmbeddedRedis(args.data_dir / "redis")
        redis_url = embedded_redis.start()
    server = None
    try:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()
        started = time.perf_counter()
        email, seeded = await seed(url, args)
        console.print(
            f"dataset: {args.threads:,} threads, {args.messages:,} messages "
            f"({'seeded in %.0f s' % (time.perf_counter() - started) if seeded else 'reused'})"
        )

        port = _free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "BANXWAY_LOG_LEVEL": "WARNING",
            "BANXWAY_DATA_DIR": str(args.data_dir / "server"),
        }
        server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
            [sys.executable, "-m", "banxway.cli", "serve", "--no-migrate", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for _ in range(300):
                try:
                    if (await client.get("/livez")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            login = await client.post(
                "/graphql",
                json={
                    "query": f'mutation {{ authLogin(input: {{email: "{email}", password: "{PASSWORD}"}}) {{ accessToken }} }}'
                },
            )
            token = login.json()["data"]["authLogin"]["accessToken"]
            warm = await client.post(
                "/graphql", json={"query": INBOX_QUERY}, headers={"authorization": f"Bearer {token}"}
            )
            assert "errors" not in warm.json(), warm.text[:500]
            size = len(warm.content)

        statements = await statements_per_request(url, token, redis_url)
        loader = "wrk" if shutil.which("wrk") else "python asyncio client"
        table = Table(title=f"inbox query: 50 threads, {size / 1024:.0f} KB response; load from {loader}")
        for column in ("server", "concurrency", "req/s", "p50 ms", "p99 ms", "SQL/request", "errors"):
            table.add_column(column)
        results: dict[tuple[str, int], float] = {}
        for concurrency in (1, 32):
            measured = _load_wrk(base, token, concurrency, args.duration) or await _load_python(
                base, token, concurrency, args.duration
            )
            count, latencies, errors = measured
            rate = count / args.duration
            results[("banxway", concurrency)] = rate
            table.add_row(
                "banxway (GraphQL)",
                str(concurrency),
                f"{rate:.1f}",
                f"{_percentile(latencies, 50) * 1000:.1f}",
                f"{_percentile(latencies, 99) * 1000:.1f}",
                str(statements),
                str(errors),
            )
        for concurrency in (1, 32):
            count, latencies = await floor(url, concurrency, args.duration)
            rate = count / args.duration
            results[("floor", concurrency)] = rate
            table.add_row(
                "raw SQL over asyncpg (floor)",
                str(concurrency),
                f"{rate:.1f}",
                f"{_percentile(latencies, 50) * 1000:.1f}",
                f"{_percentile(latencies, 99) * 1000:.1f}",
                "5",
                "0",
            )
        console.print(table)
        for concurrency in (1, 32):
            ratio = results[("banxway", concurrency)] / results[("floor", concurrency)]
            console.print(
                f"c={concurrency}: banxway serves {ratio:.2f}x the raw SQL floor "
                f"({results[('banxway', concurrency)]:.1f} vs {results[('floor', concurrency)]:.1f} req/s)"
            )
        console.print(f"cores: {os.cpu_count()}; server, database and load generator share them")
    finally:
        if server is not None:
            server.terminate()
            server.wait(20)
        if embedded_redis is not None:
            embedded_redis.stop()
        if embedded_pg is not None:
            embedded_pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
