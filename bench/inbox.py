"""Benchmark: the inbox query against a running server, next to the raw-SQL floor.

    uv run python bench/inbox.py                  # 10k threads, 200k messages, 20 s per run
    uv run python bench/inbox.py --threads 2000 --messages 40000 --duration 10
    uv run python bench/inbox.py --peer postgraphile   # and PostGraphile v5 on the same database

Seeds a dataset (bulk COPY, with progress bars) into an embedded PostgreSQL under
.bench-data/ (or the server in DATABASE_URL), starts `banxway serve` as a
separate process, and runs the inbox query (50 threads with customer, contact,
shipment, assignee, tags, unreadCount and the last 3 messages) at concurrency 1
and 32. Then it runs the same page's data as hand-written SQL over asyncpg —
rows only, the floor — and prints req/s, p50, p99, SQL statements per request
and the ratio, all measured in this one run. Load comes from wrk when it is
installed, else from an asyncio HTTP client in this process.

--peer postgraphile also starts PostGraphile v5 (Amber preset, bench/postgraphile/) on Node >= 22
against the same database, checks it answers the same 50 threads in the same order, loads it the same
way with the equivalent query (`allThreads`, no unreadCount: PostGraphile has none), and prints the
ratio banxway / PostGraphile and whether issue 12's targets are met. It runs `npm ci` in bench/ when
bench/node_modules is missing (the lock pins PostGraphile and the npm package node@22, whose binary
it runs when the machine's Node is older).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
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
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))

from banxway.auth import hash_password  # noqa: E402
from banxway.db.migrate import upgrade  # noqa: E402
from banxway.db.session import create_engine  # noqa: E402
from banxway.embedded import EmbeddedPostgres, EmbeddedRedis  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 120)
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
        await conn.execute("VACUUM ANALYZE")  # statistics, and the visibility map index-only scans need
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


async def _load_python(
    url: str, body: bytes, headers: dict[str, str], concurrency: int, duration: float
) -> tuple[int, list[float], int]:
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


def _load_wrk(
    url: str, body: bytes, headers: dict[str, str], concurrency: int, duration: float
) -> tuple[int, list[float], int] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = Path(tempfile.mkdtemp()) / "inbox.lua"
    lua_headers = "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in headers.items())
    # errors: what the python client counts too, a status other than 200 or a GraphQL "errors" in the body
    # (counted per wrk thread, summed in done())
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\n{lua_headers}'
        "local threads = {}\n"
        "function setup(thread) table.insert(threads, thread) end\n"
        "function init(args) failed = 0 end\n"
        "function response(status, headers, body)\n"
        "  if status == 200 and string.find(body, '\"errors\"', 1, true) then failed = failed + 1 end\n"
        "end\n"
        "done = function(summary, latency, requests)\n"
        "  local failed = summary.errors.status + summary.errors.timeout\n"
        '  for _, thread in ipairs(threads) do failed = failed + thread:get("failed") end\n'
        '  io.write(string.format("RESULT %d %f %f %d\\n", summary.requests, latency:percentile(50), '
        "latency:percentile(99), failed))\nend\n"
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
            "--timeout",
            "60s",
            "-s",
            str(script),
            f"{url}/graphql",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shutil.rmtree(script.parent, ignore_errors=True)
    line = next(line for line in out.splitlines() if line.startswith("RESULT"))
    _, requests, p50, p99, errors = line.split()
    # wrk reports latencies in microseconds; keep the two percentiles as a tiny sample
    return int(requests), [float(p50) / 1e6, float(p99) / 1e6], int(errors)


async def _load(
    url: str, body: bytes, headers: dict[str, str], concurrency: int, duration: float
) -> tuple[int, list[float], int]:
    """(requests, latencies in s, errors) of `concurrency` clients posting `body` for `duration` seconds."""
    return _load_wrk(url, body, headers, concurrency, duration) or await _load_python(
        url, body, headers, concurrency, duration
    )


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
    """Count the SQL statements of one inbox request (its authentication included), in-process, through the real
    app, on both of its engines (sessions, and the single-statement reads of authentication and the compiled path)."""
    from sqlalchemy import event

    from banxway.app import build_state, create_app
    from banxway.settings import Settings

    settings = Settings(database_url=url, redis_url=redis_url, secret_key=os.environ["BANXWAY_SECRET_KEY"])
    state = await build_state(settings)
    app = create_app(settings, state=state)
    statements: list[str] = []
    for engine in (state.engine, state.reads):
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    async def asgi(scope, receive, send):
        await app({**scope, "state": {"app": state}}, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://bench") as client:
        await client.post("/graphql", json={"query": INBOX_QUERY}, headers={"authorization": f"Bearer {token}"})
        statements.clear()
        await client.post("/graphql", json={"query": INBOX_QUERY}, headers={"authorization": f"Bearer {token}"})
    await state.aclose()
    return len(statements)


# -- the peer: PostGraphile v5 -------------------------------------------------------------

PEER_NODE_MODULES = BENCH / "node_modules"
PEER_HOW_TO = (
    "PostGraphile needs Node >= 22 and its packages: `cd bench && npm ci` installs both (PostGraphile and "
    "the npm package node@22, pinned in bench/package-lock.json) under bench/node_modules"
)
# The same page as INBOX_QUERY in PostGraphile's words; the {names} are what the running PostGraphile
# generated (introspected, see _peer_names), aliased to our field names so the JSON has the same shape.
# PostGraphile has no unreadCount; it does not filter out ARCHIVED threads either (the bench seeds none).
PEER_QUERY = """
query Inbox($org: UUID!) {{
  threads: {threads}(first: 50, orderBy: {threads_order}, condition: {{organizationId: $org}}) {{
    totalCount
    edges {{ cursor node {{
      id reference subject status priority tags lastMessageAt
      customer: {customer} {{ id name }} contact: {contact} {{ id name }}
      shipment: {shipment} {{ id reference }} assignee: {assignee} {{ id name }}
      messages: {messages}(first: 3, orderBy: {messages_order}) {{ edges {{ node {{ id body direction createdAt }} }} }}
    }} }}
  }}
}}
"""
_TYPE_REF = "name kind ofType { name kind ofType { name kind ofType { name kind } } }"
INTROSPECTION = (
    "{ __schema { types { name enumValues { name } inputFields { name } "
    f"fields {{ name type {{ {_TYPE_REF} }} args {{ name type {{ {_TYPE_REF} }} }} }} }} }} }}"
)


def _node_version(node: str) -> tuple[int, str] | None:
    """(major, "v22.…") of a node binary, None when it does not run."""
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", version)
    return (int(match.group(1)), version) if match else None


def _peer_node() -> tuple[str, str] | None:
    """(node binary, version) of a Node >= 22 with PostGraphile's packages, running `npm ci` first if need be."""
    if not (PEER_NODE_MODULES / "postgraphile" / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            console.print(
                f"[yellow]PostGraphile peer skipped: bench/node_modules is missing and npm is not installed. {PEER_HOW_TO}."
            )
            return None
        console.print("bench/node_modules is missing: npm ci (PostGraphile and Node 22)…")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BENCH, capture_output=True, text=True
        )
        if done.returncode != 0:
            console.print(
                f"[red]PostGraphile peer skipped: npm ci failed:[/red]\n{(done.stderr or done.stdout).strip()[-2000:]}"
            )
            return None
    for node in (PEER_NODE_MODULES / ".bin" / "node", shutil.which("node")):
        if node is None or not Path(node).exists():
            continue
        found = _node_version(str(node))
        if found is not None and found[0] >= 22:
            return str(node), found[1]
    console.print(
        f"[yellow]PostGraphile peer skipped: no Node >= 22 (bench/node_modules/.bin/node, node on PATH). {PEER_HOW_TO}."
    )
    return None


def _named(ref: dict) -> str:
    while ref.get("ofType"):
        ref = ref["ofType"]
    return ref["name"]


def _peer_names(schema: dict) -> dict[str, str]:
    """The generated names PEER_QUERY needs, found in the running PostGraphile's schema; KeyError says which."""
    types = {t["name"]: t for t in schema["__schema"]["types"]}

    def field(type_name: str, what: str, test) -> dict:
        found = [f for f in types[type_name]["fields"] or () if test(f)]
        if len(found) != 1:
            raise KeyError(f"{type_name}: {what} ({len(found)} candidates)")
        return found[0]

    def arg_type(f: dict, name: str) -> str | None:
        return next((_named(a["type"]) for a in f["args"] if a["name"] == name), None)

    def order(f: dict, value: str) -> str:
        enum = arg_type(f, "orderBy")
        if enum is None or value not in {v["name"] for v in types[enum]["enumValues"] or ()}:
            raise KeyError(f"{f['name']}: orderBy {value}")
        return value

    threads = field("Query", "the threads connection", lambda f: arg_type(f, "condition") == "ThreadCondition")
    if "organizationId" not in {i["name"] for i in types["ThreadCondition"]["inputFields"]}:
        raise KeyError("ThreadCondition: organizationId")
    messages = field(
        "Thread", "the messages connection", lambda f: re.fullmatch(r"Messages?Connection", _named(f["type"]) or "")
    )
    return {
        "threads": threads["name"],
        "threads_order": order(threads, "LAST_ACTIVITY_AT_DESC"),
        "customer": field("Thread", "the customer", lambda f: _named(f["type"]) == "Customer")["name"],
        "contact": field("Thread", "the contact", lambda f: _named(f["type"]) == "Contact")["name"],
        "shipment": field("Thread", "the shipment", lambda f: _named(f["type"]) == "Shipment")["name"],
        "assignee": field("Thread", "the assignee", lambda f: _named(f["type"]) == "User")["name"],
        "messages": messages["name"],
        "messages_order": order(messages, "CREATED_AT_DESC"),
    }


def _row_id(global_id: str) -> str:
    """The uuid in a global id: ours is base64("Thread:uuid"), PostGraphile's base64('["Thread","uuid"]')."""
    raw = base64.b64decode(global_id).decode()
    return str(json.loads(raw)[-1]) if raw.startswith("[") else raw.split(":", 1)[1]


def _page(data: dict) -> tuple[int, list[str], list[set[str]]]:
    """(totalCount, thread ids in order, each thread's message ids) of an inbox answer, ours or the peer's."""
    threads = data["data"]["threads"]
    nodes = [edge["node"] for edge in threads["edges"]]
    messages = [{_row_id(m["node"]["id"]) for m in node["messages"]["edges"]} for node in nodes]
    return threads["totalCount"], [_row_id(node["id"]) for node in nodes], messages


class Peer:
    """PostGraphile on Node >= 22 against the bench's database, in one process on a free port."""

    def __init__(self, node: str, node_version: str, url: str, data_dir: Path) -> None:
        self.node, self.node_version = node, node_version
        self.version = json.loads((PEER_NODE_MODULES / "postgraphile" / "package.json").read_text())["version"]
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "postgraphile.log"
        self.count_file = data_dir / "postgraphile.sql-count"
        self.count_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "DATABASE_URL": _dsn(url),
            "PORT": str(self.port),
            "GRAPHILE_ENV": "production",
            "NODE_ENV": "production",
            "BENCH_SQL_COUNT_FILE": str(self.count_file),
        }
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [node, str(BENCH / "postgraphile" / "server.mjs")], env=env, stdout=log, stderr=log
            )
        self.body = b""

    def label(self) -> str:
        return f"PostGraphile {self.version} (Node {self.node_version.lstrip('v')})"

    async def ready(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
            for _ in range(1200):
                if self.process.poll() is not None:
                    break
                try:
                    if (await client.post("/graphql", json={"query": "{ __typename }"})).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"PostGraphile did not start: {self._log_tail()}")

    def _log_tail(self) -> str:
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-8:]) if self.log.exists() else ""

    async def prepare(self, org: uuid.UUID, ours: dict) -> str | None:
        """Build the query from the introspected names and compare its answer with ours; None when all agree."""
        async with httpx.AsyncClient(base_url=self.base, timeout=60) as client:
            schema = (await client.post("/graphql", json={"query": INTROSPECTION})).json()
            try:
                self.names = _peer_names(schema["data"])
            except KeyError as exc:
                return f"PostGraphile's schema has no {exc.args[0]}"
            self.body = json.dumps({"query": PEER_QUERY.format(**self.names), "variables": {"org": str(org)}}).encode()
            answer = await client.post("/graphql", content=self.body, headers={"content-type": "application/json"})
        data = answer.json()
        if answer.status_code != 200 or "errors" in data:
            return f"PostGraphile answered {answer.status_code}: {answer.text[:500]}"
        our_total, our_ids, our_messages = _page(ours)
        total, ids, messages = _page(data)
        if len(ids) != 50 or ids != our_ids:
            same = sum(a == b for a, b in zip(ids, our_ids, strict=False))
            return (
                f"PostGraphile answered {len(ids)} threads, {same} of them the same as ours at the same place "
                f"(banxway answered {len(our_ids)}); first ids: {ids[:3]} vs ours {our_ids[:3]}"
            )
        if messages != our_messages:
            differ = sum(a != b for a, b in zip(messages, our_messages, strict=True))
            return f"PostGraphile's last 3 messages differ from ours on {differ} of the 50 threads"
        if total != our_total:
            return f"PostGraphile's totalCount is {total}, ours {our_total}"
        self.size = len(answer.content)
        return None

    async def statements(self) -> int:
        """SQL statements per request: node-postgres' count (server.mjs keeps it) around 5 warm requests."""

        async def count() -> int:
            self.count_file.unlink(missing_ok=True)
            self.process.send_signal(signal.SIGUSR2)
            for _ in range(100):
                if self.count_file.exists():
                    return int(self.count_file.read_text())
                await asyncio.sleep(0.05)
            raise RuntimeError("PostGraphile did not report its SQL count")

        headers = {"content-type": "application/json"}
        async with httpx.AsyncClient(base_url=self.base, timeout=60) as client:
            await client.post("/graphql", content=self.body, headers=headers)  # a new connection's set-up
            before = await count()
            for _ in range(5):
                await client.post("/graphql", content=self.body, headers=headers)
            return round((await count() - before) / 5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.count_file.unlink(missing_ok=True)


async def _bench_org(url: str) -> uuid.UUID:
    conn = await asyncpg.connect(_dsn(url))
    try:
        return await conn.fetchval("SELECT id FROM organizations WHERE slug = 'bench'")
    finally:
        await conn.close()


def _print_peer_verdict(results: dict[tuple[str, int], tuple[float, float, float, int]]) -> None:
    """banxway / PostGraphile, and issue 12's targets: >= 1.0x at c=1 and c=32 (aim 1.5x), 0 errors, p99 <= its p99."""
    nan = float("nan")  # a peer that answered nothing: every comparison below is then NOT MET
    ratios = {c: results[("banxway", c)][0] / (results[("peer", c)][0] or nan) for c in (1, 32)}
    ours_p99, peer_p99 = results[("banxway", 32)][2] * 1000, results[("peer", 32)][2] * 1000
    for c in (1, 32):
        console.print(
            f"c={c}: banxway / PostGraphile = {ratios[c]:.2f}x req/s "
            f"({results[('banxway', c)][0]:.1f} vs {results[('peer', c)][0]:.1f})"
        )
    console.print(
        f"c=32: p99 banxway / PostGraphile = {ours_p99 / (peer_p99 or nan):.2f}x ({ours_p99:.1f} vs {peer_p99:.1f} ms)"
    )
    errors = results[("banxway", 1)][3] + results[("banxway", 32)][3]
    checks = [
        (f"c=1 >= 1.0x PostGraphile ({ratios[1]:.2f}x)", ratios[1] >= 1.0),
        (f"c=32 >= 1.0x PostGraphile ({ratios[32]:.2f}x)", ratios[32] >= 1.0),
        (f"0 errors ({errors})", errors == 0),
        (f"p99 at c=32 <= PostGraphile's ({ours_p99:.1f} vs {peer_p99:.1f} ms)", ours_p99 <= peer_p99),
    ]
    met = all(ok for _, ok in checks)
    aim = min(ratios.values()) >= 1.5
    console.print(
        "issue 12 target, inbox query >= 1.0x PostGraphile at c=1 and at c=32 (aim 1.5x), 0 errors, "
        f"p99 <= PostGraphile's p99 at c=32: {'[bold green]MET' if met else '[bold red]NOT MET'}[/]"
    )
    for text, ok in checks:
        console.print(f"  {'MET' if ok else 'NOT MET'}: {text}")
    console.print(
        f"  aim 1.5x at c=1 and c=32: {'reached' if aim else 'not reached'} ({ratios[1]:.2f}x, {ratios[32]:.2f}x)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--shipments", type=int, default=6_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".bench-data")
    parser.add_argument(
        "--peer",
        choices=["postgraphile"],
        help="also measure PostGraphile v5 (Amber preset, Node >= 22, bench/postgraphile/) on the same database",
    )
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
    server = peer = None
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
            "BANXWAY_LOG_FORMAT": "json",  # as in production: the console's rich tracebacks cost seconds of CPU
            "BANXWAY_DATA_DIR": str(args.data_dir / "server"),
            # no rate limits: the clients load the server from one address as hard as it answers
            **{f"BANXWAY_RATE_LIMIT_{limit}_PER_MINUTE": "0" for limit in ("GRAPHQL", "MUTATIONS", "WEBHOOKS")},
            **{f"BANXWAY_RATE_LIMIT_{limit}_PER_IP_PER_MINUTE": "0" for limit in ("GRAPHQL", "MUTATIONS", "WEBHOOKS")},
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
            ours = warm.json()
            assert "errors" not in ours, warm.text[:500]
            size = len(warm.content)

        statements = await statements_per_request(url, token, redis_url)
        if args.peer == "postgraphile" and (found := _peer_node()) is not None:
            peer = Peer(*found, url, args.data_dir)
            try:
                await peer.ready()
                org = await _bench_org(url)
                problem = await peer.prepare(org, ours)
            except (RuntimeError, ValueError, KeyError, httpx.HTTPError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem is not None:
                console.print(f"[bold red]PostGraphile peer not measured: {problem}[/bold red] (log: {peer.log})")
                peer.stop()
                peer = None
            else:
                names = peer.names
                console.print(
                    f"peer: {peer.label()}, Amber preset, one process; the same page as "
                    f"{names['threads']}(first: 50, orderBy: {names['threads_order']}, condition: {{organizationId}}) "
                    f"with {names['customer']}, {names['contact']}, {names['shipment']}, {names['assignee']} and "
                    f"{names['messages']}(first: 3, orderBy: {names['messages_order']}), {peer.size / 1024:.0f} KB "
                    "response; checked: the same 50 threads in the same order, the same last 3 messages, the same "
                    "totalCount. [bold]PostGraphile has no unreadCount[/bold]: its query has every field of ours "
                    "but that one."
                )
        loader = "wrk" if shutil.which("wrk") else "python asyncio client"
        table = Table(title=f"inbox query: 50 threads, {size / 1024:.0f} KB response; load from {loader}")
        for column in ("server", "concurrency", "req/s", "p50 ms", "p99 ms", "SQL/request", "errors"):
            table.add_column(column)
        results: dict[tuple[str, int], tuple[float, float, float, int]] = {}  # req/s, p50 s, p99 s, errors

        def add_row(key: str, label: str, concurrency: int, measured: tuple[int, list[float], int], sql: int) -> None:
            count, latencies, errors = measured
            results[(key, concurrency)] = row = (
                count / args.duration,
                _percentile(latencies, 50),
                _percentile(latencies, 99),
                errors,
            )
            table.add_row(
                label,
                str(concurrency),
                f"{row[0]:.1f}",
                f"{row[1] * 1000:.1f}",
                f"{row[2] * 1000:.1f}",
                str(sql),
                str(errors),
            )

        ours_body = json.dumps({"query": INBOX_QUERY}).encode()
        ours_headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        for concurrency in (1, 32):
            measured = await _load(base, ours_body, ours_headers, concurrency, args.duration)
            add_row("banxway", "banxway (GraphQL)", concurrency, measured, statements)
        if peer is not None:
            peer_statements = await peer.statements()
            for concurrency in (1, 32):
                measured = await _load(
                    peer.base, peer.body, {"content-type": "application/json"}, concurrency, args.duration
                )
                add_row("peer", f"{peer.label()}, no unreadCount", concurrency, measured, peer_statements)
            peer.stop()
        for concurrency in (1, 32):
            count, latencies = await floor(url, concurrency, args.duration)
            add_row("floor", "raw SQL over asyncpg (floor)", concurrency, (count, latencies, 0), 5)
        console.print(table)
        for concurrency in (1, 32):
            ours_rate, floor_rate = results[("banxway", concurrency)][0], results[("floor", concurrency)][0]
            console.print(
                f"c={concurrency}: banxway serves {ours_rate / floor_rate:.2f}x the raw SQL floor "
                f"({ours_rate:.1f} vs {floor_rate:.1f} req/s)"
            )
        if ("peer", 1) in results:
            _print_peer_verdict(results)
        console.print(f"cores: {os.cpu_count()}; server, database and load generator share them")
    finally:
        if peer is not None:
            peer.stop()
        if server is not None:
            server.terminate()
            server.wait(20)
        if embedded_redis is not None:
            embedded_redis.stop()
        if embedded_pg is not None:
            embedded_pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
