"""Benchmark: live fan-out of `inboxEvents` to many WebSocket subscribers.

    uv run python bench/fanout.py                                  # 1,000 subscribers, 200 messages at 20/s
    uv run python bench/fanout.py --subscribers 50 --mutations 20
    uv run python bench/fanout.py --subscribers 10000 --processes 8 --json
    uv run python bench/fanout.py --url http://127.0.0.1:8000      # a server that is already running

Starts `banxway serve` on a free port with a fresh data directory in a temporary
directory (embedded PostgreSQL and Redis, or the servers in DATABASE_URL /
REDIS_URL when set; JSON logs unless BANXWAY_LOG_FORMAT is set), creates an organization with `banxway org create`, logs in
and creates one thread. Then N subscribers, spread over P client processes (one
asyncio loop each), open graphql-transport-ws connections and subscribe to
`inboxEvents`; once every subscriber has received a warm-up event, M
`messageSend` mutations (channel INTERNAL) go out over HTTP at a fixed rate.
Latency is the time a subscriber receives MESSAGE_ADDED minus the time the
mutation's HTTP response arrived (wall clock, time.time_ns(), on this one
machine; negative when the event beats the response). Prints one line per
number — subscribers, delivered/expected, lost, duplicates, p50/p99/max latency,
connect time, mutation throughput, server RSS (and per subscriber) — then, for
each of the issue's targets, MET / NOT MET with its numbers (n/a when the run
does not measure it); or one JSON line with --json (`targets`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import multiprocessing
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from rich.console import Console

try:
    import psutil
except ImportError:  # RSS and CPU are then reported as n/a
    psutil = None

ROOT = Path(__file__).resolve().parent.parent
console = Console(highlight=False, soft_wrap=True)
notes = Console(stderr=True, highlight=False, soft_wrap=True)

PASSWORD = "fanout-bench-password"
TRANSPORT_WS = "graphql-transport-ws"
SUBSCRIPTION = "subscription { inboxEvents { cursor type message { id body } } }"
LOGIN = """
mutation($email: String!, $password: String!) {
  authLogin(input: {email: $email, password: $password}) { accessToken userErrors { code message } }
}
"""
THREAD_CREATE = """
mutation($subject: String!) { threadCreate(input: {subject: $subject}) { thread { id reference } userErrors { code message } } }
"""
MESSAGE_SEND = """
mutation($threadId: ID!, $body: String!) {
  messageSend(input: {threadId: $threadId, channel: INTERNAL, body: $body}) { message { id } userErrors { code message } }
}
"""
# The targets (issue 12): 1,000 subscribers at 20 messageSend/s all delivered with p99 <= 50 ms; 10,000
# subscribers on one API process with nothing lost and bounded memory; messageSend p99 <= 100 ms meanwhile.
TARGET_SUBSCRIBERS = 1_000
TARGET_RATE = 20.0
TARGET_P99_MS = 50.0
TARGET_MANY_SUBSCRIBERS = 10_000
TARGET_HTTP_P99_MS = 100.0
# memory is bounded when the fan-out adds no more than this per subscriber over the RSS once subscribed
# (each subscriber's buffer holds at most broadcast.QUEUE_SIZE references to payloads shared by its group)
TARGET_GROWTH_KIB_PER_SUBSCRIBER = 16.0


def raise_open_file_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _new_loop_policy() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# -- client processes: each holds its share of the sockets on one event loop ---------------


@dataclass
class _Subscriber:
    mutations: int
    received: bytearray = field(init=False)
    ws: Any = None
    subscribed: bool = False
    failed: bool = False
    closed: bool = False
    warm: bool = False
    measured: int = 0
    seqs: array = field(default_factory=lambda: array("i"))  # in the order they arrived
    arrivals: array = field(default_factory=lambda: array("q"))

    def __post_init__(self) -> None:
        self.received = bytearray(self.mutations + 1)

    @property
    def live(self) -> bool:
        return self.subscribed and not self.closed


@dataclass
class _ClientStats:
    connected: int = 0
    failed: int = 0
    failures: collections.Counter = field(default_factory=collections.Counter)
    closed_early: int = 0
    close_codes: collections.Counter = field(default_factory=collections.Counter)
    duplicates: int = 0
    other_events: int = 0
    errors: int = 0
    error_sample: str = ""


def _client_process(
    conn: Any, ws_url: str, token: str, count: int, mutations: int, prefix: str, connect_concurrency: int, deflate: bool
) -> None:
    raise_open_file_limit()
    _new_loop_policy()
    try:
        asyncio.run(_client(conn, ws_url, token, count, mutations, prefix, connect_concurrency, deflate))
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()


async def _client(
    conn: Any, ws_url: str, token: str, count: int, mutations: int, prefix: str, connect_concurrency: int, deflate: bool
) -> None:
    stats = _ClientStats()
    subscribers = [_Subscriber(mutations) for _ in range(count)]
    gate = asyncio.Semaphore(connect_concurrency)
    shutting_down = False
    init = orjson.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}).decode()
    subscribe = orjson.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}).decode()
    pong = orjson.dumps({"type": "pong"}).decode()

    async def recv() -> Any:
        return await asyncio.to_thread(conn.recv)

    def error(text: str) -> None:
        stats.errors += 1
        stats.error_sample = stats.error_sample or text[:300]

    async def run(sub: _Subscriber) -> None:
        try:
            async with gate:
                ws = await websockets.connect(
                    ws_url,
                    subprotocols=[TRANSPORT_WS],  # type: ignore[list-item]
                    compression="deflate" if deflate else None,
                    open_timeout=60,
                    ping_interval=None,  # the server pings; a busy client loop must not time itself out
                    close_timeout=5,
                    max_queue=None,
                )
                sub.ws = ws
                await ws.send(init)
                while True:
                    message = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
                    if message.get("type") == "ping":
                        await ws.send(pong)
                        continue
                    if message.get("type") != "connection_ack":
                        raise RuntimeError(f"expected connection_ack, got {message.get('type')}")
                    break
                await ws.send(subscribe)
        except (OSError, TimeoutError, RuntimeError, websockets.exceptions.WebSocketException) as exc:
            sub.failed = True
            stats.failed += 1
            reason = type(exc).__name__
            if isinstance(exc, websockets.exceptions.InvalidStatus):
                reason += f" {exc.response.status_code}"
            elif isinstance(exc, websockets.exceptions.ConnectionClosed) and exc.rcvd is not None:
                reason += f" {exc.rcvd.code}"
            stats.failures[reason] += 1
            if sub.ws is not None:
                sub.ws.transport.abort()
            return
        sub.subscribed = True
        stats.connected += 1
        try:
            async for raw in ws:
                arrived = time.time_ns()
                message = orjson.loads(raw)
                kind = message.get("type")
                if kind == "next":
                    payload = message.get("payload") or {}
                    if payload.get("errors"):
                        error(json.dumps(payload["errors"]))
                    event = (payload.get("data") or {}).get("inboxEvents")
                    if not event or event.get("type") != "MESSAGE_ADDED":
                        stats.other_events += 1
                        continue
                    body = (event.get("message") or {}).get("body") or ""
                    if not body.startswith(prefix):
                        stats.other_events += 1
                        continue
                    seq = int(body[len(prefix) :])
                    if seq > mutations:
                        stats.other_events += 1
                        continue
                    if sub.received[seq]:
                        stats.duplicates += 1
                        continue
                    sub.received[seq] = 1
                    if seq == 0:
                        sub.warm = True
                        continue
                    sub.measured += 1
                    sub.seqs.append(seq)
                    sub.arrivals.append(arrived)
                elif kind == "ping":
                    await ws.send(pong)
                elif kind == "error":
                    error(f"error: {json.dumps(message.get('payload'))}")
                    break
                elif kind == "complete":  # the server ended the subscription
                    stats.close_codes["complete"] += 1
                    break
        except websockets.exceptions.ConnectionClosed as exc:
            if not shutting_down:
                stats.close_codes[exc.rcvd.code if exc.rcvd is not None else "no close frame"] += 1
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if not shutting_down:
                error(f"{type(exc).__name__}: {exc}")
        if not shutting_down:
            sub.closed = True
            stats.closed_early += 1

    async def until(condition: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    conn.send(("started",))
    command = await recv()
    if command[0] != "connect":
        return
    tasks = [asyncio.create_task(run(sub)) for sub in subscribers]
    await until(lambda: all(sub.subscribed or sub.failed for sub in subscribers), 3600)
    conn.send(("ready", stats.connected, stats.failed, dict(stats.failures)))

    command = await recv()  # the warm-up mutation has been answered
    if command[0] == "warmup_sent":
        await until(lambda: all(sub.warm or not sub.live for sub in subscribers), command[1])
        conn.send(("warm", sum(sub.warm for sub in subscribers)))
        command = await recv()
    if command[0] == "end":  # every mutation has been answered: wait for what is still on its way
        await until(lambda: all(sub.measured >= mutations or not sub.live for sub in subscribers), command[1])

    shutting_down = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    open_sockets = [sub.ws for sub in subscribers if sub.ws is not None]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in open_sockets), return_exceptions=True), 10)
    for ws in open_sockets:
        ws.transport.abort()
    conn.send(
        (
            "result",
            {
                "connected": stats.connected,
                "failed": stats.failed,
                "failures": dict(stats.failures),
                "closed_early": stats.closed_early,
                "close_codes": {str(k): v for k, v in stats.close_codes.items()},
                "duplicates": stats.duplicates,
                "other_events": stats.other_events,
                "errors": stats.errors,
                "error_sample": stats.error_sample,
            },
            array("i", (len(sub.seqs) for sub in subscribers if sub.subscribed)).tobytes(),
            b"".join(sub.seqs.tobytes() for sub in subscribers if sub.subscribed),
            b"".join(sub.arrivals.tobytes() for sub in subscribers if sub.subscribed),
        )
    )


class ClientPool:
    """P client processes, and the messages they send back through their pipes."""

    def __init__(self, sizes: list[int], **kwargs: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes = []
        self.processes = []
        for size in sizes:
            parent, child = context.Pipe()
            process = context.Process(target=_client_process, kwargs={"conn": child, "count": size, **kwargs})
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)
        self._executor = ThreadPoolExecutor(max_workers=len(sizes) + 1)

    async def gather(self, kind: str) -> list[tuple]:
        loop = asyncio.get_running_loop()
        try:
            answers = await asyncio.gather(*(loop.run_in_executor(self._executor, pipe.recv) for pipe in self.pipes))
        except EOFError:
            codes = [process.exitcode for process in self.processes]
            raise RuntimeError(f"a client process ended early (exit codes {codes})") from None
        for answer in answers:
            if answer[0] != kind:
                raise RuntimeError(f"a client process sent {answer[0]!r} where {kind!r} was expected")
        return answers

    def send(self, *message: Any) -> None:
        for pipe in self.pipes:
            pipe.send(message)

    def close(self) -> None:
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(5)
        for pipe in self.pipes:
            pipe.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


# -- the server -----------------------------------------------------------------------------


class Server:
    """`banxway serve` on a free port with a fresh data directory, or one that is already running."""

    def __init__(self, url: str | None) -> None:
        self.url = url.rstrip("/") if url else None
        self.process: subprocess.Popen[bytes] | None = None
        self.tmp: Path | None = None
        self.env = dict(os.environ)
        self.pid: int | None = None

    async def start(self) -> None:
        if self.url is not None:
            self.pid = _pid_listening_on(self.url)
            return
        self.tmp = Path(tempfile.mkdtemp(prefix="banxway-fanout-"))
        self.env.update({"BANXWAY_DATA_DIR": str(self.tmp / "data"), "BANXWAY_LOG_LEVEL": "WARNING"})
        for limit in ("GRAPHQL", "MUTATIONS", "WEBHOOKS"):  # one address loads the server as hard as it can
            self.env.setdefault(f"BANXWAY_RATE_LIMIT_{limit}_PER_MINUTE", "0")
            self.env.setdefault(f"BANXWAY_RATE_LIMIT_{limit}_PER_IP_PER_MINUTE", "0")
        # JSON logs as in production: the console format renders each error's traceback with rich
        # (syntax highlighting, locals), about 2 s of the event loop per error under load
        self.env.setdefault("BANXWAY_LOG_FORMAT", "json")
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = self.tmp / "serve.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
                [sys.executable, "-m", "banxway.cli", "serve", "--port", str(port)],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.pid = self.process.pid
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"banxway serve exited with {self.process.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/livez")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"banxway serve did not answer /livez within 180 s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        if self.tmp is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def cli(self, *args: str) -> str:
        """A `banxway` command against the server's databases (those of its data directory, or the URLs)."""
        done = subprocess.run(
            [sys.executable, "-m", "banxway.cli", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"banxway {args[0]} {args[1]} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout.strip()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _pid_listening_on(url: str) -> int | None:
    if psutil is None:
        return None
    port = httpx.URL(url).port or 80
    with contextlib.suppress(psutil.Error, OSError):
        for connection in psutil.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port:
                return connection.pid
    return None


class ServerMeter:
    """RSS and CPU time of the server process, sampled in the background."""

    def __init__(self, pid: int | None) -> None:
        self.process = None
        if psutil is not None and pid is not None:
            with contextlib.suppress(psutil.Error):
                self.process = psutil.Process(pid)
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def rss(self) -> int | None:
        if self.process is None:
            return None
        try:
            value = self.process.memory_info().rss
        except psutil.Error:
            return None
        self.peak = max(self.peak, value)
        return value

    def cpu(self) -> float | None:
        if self.process is None:
            return None
        try:
            times = self.process.cpu_times()
        except psutil.Error:
            return None
        return times.user + times.system

    def start(self) -> None:
        async def sample() -> None:
            while True:
                self.rss()
                await asyncio.sleep(0.25)

        self._task = asyncio.create_task(sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# -- the run --------------------------------------------------------------------------------


async def _graphql(client: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None = None) -> dict:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    payload = next(iter(body["data"].values()))
    if payload.get("userErrors"):
        raise RuntimeError(f"userErrors: {payload['userErrors']}")
    return payload


async def setup(server: Server, args: argparse.Namespace) -> tuple[str, str]:
    """An organization and its admin (unless --email is given), a token and one thread."""
    email, password = args.email, args.password
    if email is None:
        run = uuid.uuid4().hex[:8]
        email, password = f"fanout-{run}@bench.test", PASSWORD
        server.cli(
            "org",
            "create",
            f"Fanout Bench {run}",
            "--admin-email",
            email,
            "--admin-password",
            password,
            "--slug",
            f"fanout-{run}",
        )
    async with httpx.AsyncClient(base_url=server.url or "", timeout=60) as client:
        token = (await _graphql(client, LOGIN, {"email": email, "password": password}))["accessToken"]
        created = await _graphql(client, THREAD_CREATE, {"subject": "Fan-out benchmark"}, token)
    return token, created["thread"]["id"]


async def send_mutations(
    base: str, token: str, thread_id: str, prefix: str, seqs: range, rate: float
) -> tuple[dict[int, int], list[float], int, str, float]:
    """Open loop: mutation i leaves at start + i/rate whether or not earlier ones have been answered.
    Returns the response time (ns) of each answered mutation, HTTP latencies, errors, an error sample, duration."""
    responses: dict[int, int] = {}
    latencies: list[float] = []
    errors = 0
    sample = ""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def one(seq: int) -> None:
            nonlocal errors, sample
            body = orjson.dumps({"query": MESSAGE_SEND, "variables": {"threadId": thread_id, "body": f"{prefix}{seq}"}})
            started = time.perf_counter()
            try:
                response = await client.post("/graphql", content=body, headers=headers)
            except httpx.HTTPError as exc:
                errors += 1
                sample = sample or f"{type(exc).__name__}: {exc}"
                return
            answered = time.time_ns()
            latencies.append(time.perf_counter() - started)
            data = orjson.loads(response.content) if response.status_code == 200 else {}
            payload = (data.get("data") or {}).get("messageSend") or {}
            if data.get("errors") or payload.get("userErrors") or not payload.get("message"):
                errors += 1
                sample = sample or response.text[:300]
                return
            responses[seq] = answered

        started = time.perf_counter()
        tasks = []
        for index, seq in enumerate(seqs):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(seq)))
        await asyncio.gather(*tasks)
        duration = time.perf_counter() - started
    return responses, latencies, errors, sample, duration


async def run(args: argparse.Namespace) -> dict[str, Any]:
    limit = raise_open_file_limit()
    needed = args.subscribers // args.processes + 64
    if limit < needed:
        notes.print(f"warning: open-file limit {limit} is below the ~{needed} sockets per client process")
    server = Server(args.url)
    pool: ClientPool | None = None
    meter: ServerMeter | None = None
    try:
        if args.url is None:
            notes.print("starting banxway serve (fresh data directory)…")
        await server.start()
        base = server.url or ""
        token, thread_id = await setup(server, args)
        ws_url = base.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/graphql"
        prefix = f"fanout {uuid.uuid4().hex[:8]} #"
        processes = max(1, min(args.processes, args.subscribers))
        sizes = [
            args.subscribers // processes + (1 if i < args.subscribers % processes else 0) for i in range(processes)
        ]
        meter = ServerMeter(server.pid)
        pool = ClientPool(
            sizes,
            ws_url=ws_url,
            token=token,
            mutations=args.mutations,
            prefix=prefix,
            connect_concurrency=args.connect_concurrency,
            deflate=not args.no_deflate,
        )
        await pool.gather("started")
        rss_idle = meter.rss()
        meter.start()

        notes.print(f"connecting {args.subscribers:,} subscribers from {processes} processes…")
        connect_started = time.perf_counter()
        pool.send("connect")
        ready = await pool.gather("ready")
        connect_seconds = time.perf_counter() - connect_started
        connected = sum(answer[1] for answer in ready)
        failures: collections.Counter = collections.Counter()
        for answer in ready:
            failures.update(answer[3])
        await asyncio.sleep(args.settle)
        rss_subscribed = meter.rss()

        notes.print("warm-up event…")
        warm_started = time.perf_counter()
        _, _, warm_errors, warm_sample, _ = await send_mutations(base, token, thread_id, prefix, range(0, 1), 1.0)
        if warm_errors:
            raise RuntimeError(f"the warm-up mutation failed: {warm_sample}")
        pool.send("warmup_sent", args.drain)
        warm = sum(answer[1] for answer in await pool.gather("warm"))
        warm_seconds = time.perf_counter() - warm_started

        notes.print(f"sending {args.mutations:,} messageSend mutations at {args.rate:g}/s…")
        cpu_before = meter.cpu()
        fanout_started = time.perf_counter()
        responses, http_latencies, mutation_errors, mutation_sample, send_seconds = await send_mutations(
            base, token, thread_id, prefix, range(1, args.mutations + 1), args.rate
        )
        pool.send("end", args.drain)
        results = await pool.gather("result")
        fanout_seconds = time.perf_counter() - fanout_started
        cpu_after = meter.cpu()
        await meter.stop()
        rss_end = meter.rss()
    finally:
        if meter is not None:
            await meter.stop()
        if pool is not None:
            pool.close()
        server.stop()

    totals: collections.Counter = collections.Counter()
    close_codes: collections.Counter = collections.Counter()
    error_sample = ""
    latencies: list[float] = []
    slowest: dict[int, int] = {}
    unanswered = 0
    orders: list[tuple[int, ...]] = []
    for _, stats, length_bytes, seq_bytes, arrival_bytes in results:
        lengths, seqs, arrivals = array("i"), array("i"), array("q")
        lengths.frombytes(length_bytes)
        seqs.frombytes(seq_bytes)
        arrivals.frombytes(arrival_bytes)
        offset = 0
        for length in lengths:
            orders.append(tuple(seqs[offset : offset + length]))
            offset += length
        for key in ("closed_early", "duplicates", "other_events", "errors"):
            totals[key] += stats[key]
        close_codes.update(stats["close_codes"])
        error_sample = error_sample or stats["error_sample"]
        totals["delivered"] += len(seqs)
        for seq, arrived in zip(seqs, arrivals, strict=True):
            answered = responses.get(seq)
            if answered is None:
                unanswered += 1
                continue
            latencies.append((arrived - answered) / 1e6)
            slowest[seq] = max(slowest.get(seq, arrived), arrived)
    per_mutation = [(arrived - responses[seq]) / 1e6 for seq, arrived in slowest.items()]
    expected = args.subscribers * args.mutations
    lost = expected - totals["delivered"]
    p99 = _percentile(latencies, 99)
    met = connected >= TARGET_SUBSCRIBERS and lost == 0 and p99 <= TARGET_P99_MS
    per_subscriber_kib = (rss_subscribed - rss_idle) / 1024 / max(connected, 1) if rss_subscribed and rss_idle else None
    growth_kib = (
        (meter.peak - rss_subscribed) / 1024 / max(connected, 1) if meter and meter.peak and rss_subscribed else None
    )
    http_p99 = _percentile(http_latencies, 99) * 1000
    targets = _targets(args, connected, lost, totals["duplicates"], p99, http_p99, growth_kib, per_subscriber_kib)
    answered_count = len(responses)
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    return {
        "subscribers": args.subscribers,
        "connected": connected,
        "connect_failed": args.subscribers - connected,
        "connect_failures": dict(failures),
        "processes": len(sizes),
        "connect_s": round(connect_seconds, 3),
        "warm": warm,
        "warm_s": round(warm_seconds, 3),
        "mutations": args.mutations,
        "mutations_answered": answered_count,
        "mutation_errors": mutation_errors,
        "mutation_error_sample": mutation_sample,
        "rate_requested": args.rate,
        "mutation_throughput": round(answered_count / send_seconds, 2) if send_seconds else None,
        "mutation_http_p50_ms": round(_percentile(http_latencies, 50) * 1000, 2),
        "mutation_http_p99_ms": round(_percentile(http_latencies, 99) * 1000, 2),
        "expected": expected,
        "delivered": totals["delivered"],
        "lost": lost,
        "duplicates": totals["duplicates"],
        "order_differs": _order_differs(orders, args.mutations),
        "delivered_without_response": unanswered,
        "closed_during_run": totals["closed_early"],
        "close_codes": dict(close_codes),
        "subscription_errors": totals["errors"],
        "subscription_error_sample": error_sample,
        "latency_p50_ms": round(_percentile(latencies, 50), 2),
        "latency_p99_ms": round(p99, 2),
        "latency_max_ms": round(max(latencies), 2) if latencies else None,
        "latency_min_ms": round(min(latencies), 2) if latencies else None,
        "negative_latencies": sum(1 for value in latencies if value < 0),
        "slowest_subscriber_p50_ms": round(_percentile(per_mutation, 50), 2),
        "slowest_subscriber_max_ms": round(max(per_mutation), 2) if per_mutation else None,
        "fanout_s": round(fanout_seconds, 3),
        "delivered_per_s": round(totals["delivered"] / fanout_seconds, 1) if fanout_seconds else None,
        "server_pid": server.pid,
        "server_rss_idle_mib": _mib(rss_idle),
        "server_rss_subscribed_mib": _mib(rss_subscribed),
        "server_rss_peak_mib": _mib(meter.peak if meter and meter.peak else None),
        "server_rss_end_mib": _mib(rss_end),
        "server_cpu_s": round(cpu, 2) if cpu is not None else None,
        "cores": os.cpu_count(),
        "deflate": not args.no_deflate,
        "server_rss_per_subscriber_kib": round(per_subscriber_kib, 1) if per_subscriber_kib is not None else None,
        "server_rss_growth_per_subscriber_kib": round(growth_kib, 1) if growth_kib is not None else None,
        "target_met": met,
        "targets": targets,
    }


def _targets(
    args: argparse.Namespace,
    connected: int,
    lost: int,
    duplicates: int,
    p99: float,
    http_p99: float,
    growth_kib: float | None,
    per_subscriber_kib: float | None,
) -> list[dict[str, Any]]:
    """Each of the issue's targets: met, not met, or not measured by this run (its name says what it asks)."""

    def target(name: str, applies: bool, met: bool, numbers: str, otherwise: str) -> dict[str, Any]:
        return {
            "target": name,
            "status": ("MET" if met else "NOT MET") if applies else "n/a",
            "numbers": numbers if applies else otherwise,
        }

    delivered_all = lost == 0 and duplicates == 0
    latency = target(
        f"{TARGET_SUBSCRIBERS:,} subscribers at {TARGET_RATE:g} messageSend/s: all delivered, p99 <= {TARGET_P99_MS:g} ms",
        args.subscribers >= TARGET_SUBSCRIBERS and args.rate >= TARGET_RATE,
        connected >= TARGET_SUBSCRIBERS and delivered_all and p99 <= TARGET_P99_MS,
        f"{connected:,} connected, {lost:,} lost, {duplicates:,} duplicates, p99 {p99:.1f} ms",
        f"run with --subscribers {TARGET_SUBSCRIBERS} --rate {TARGET_RATE:g}",
    )
    bounded = growth_kib is not None and growth_kib <= TARGET_GROWTH_KIB_PER_SUBSCRIBER
    rss = f"{per_subscriber_kib:.0f} KiB per subscriber" if per_subscriber_kib is not None else "RSS n/a"
    growth = f"+{growth_kib:.1f} KiB per subscriber during the fan-out" if growth_kib is not None else "growth n/a"
    many = target(
        f"{TARGET_MANY_SUBSCRIBERS:,} subscribers on one API process: 0 lost, bounded memory "
        f"(<= {TARGET_GROWTH_KIB_PER_SUBSCRIBER:g} KiB per subscriber added by the fan-out)",
        args.subscribers >= TARGET_MANY_SUBSCRIBERS and args.url is None,
        connected >= TARGET_MANY_SUBSCRIBERS and delivered_all and bounded,
        f"{connected:,} connected, {lost:,} lost, {rss}, {growth}",
        f"run with --subscribers {TARGET_MANY_SUBSCRIBERS} --processes 8 ({rss}, {growth})",
    )
    http = target(
        f"messageSend HTTP p99 <= {TARGET_HTTP_P99_MS:g} ms while the fan-out runs",
        True,
        http_p99 <= TARGET_HTTP_P99_MS,
        f"p99 {http_p99:.1f} ms at {args.rate:g}/s to {connected:,} subscribers",
        "",
    )
    return [latency, many, http]


def _order_differs(orders: list[tuple[int, ...]], mutations: int) -> int:
    """Subscribers whose events came in another order than the most common complete order.

    Not the send order: mutations overlap when a response takes longer than 1/rate, and then the
    server's commit order is the order every subscriber should see."""
    complete = [order for order in orders if len(order) == mutations] or [max(orders, key=len, default=())]
    reference = collections.Counter(complete).most_common(1)[0][0]
    position = {seq: index for index, seq in enumerate(reference)}
    differs = 0
    for order in orders:
        seen = [position[seq] for seq in order if seq in position]
        if any(later < earlier for earlier, later in itertools.pairwise(seen)):
            differs += 1
    return differs


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value


def _mib(value: int | None) -> float | None:
    return round(value / 2**20, 1) if value else None


def report(r: dict[str, Any]) -> None:
    def ms(value: float | None) -> str:
        return "n/a" if value is None or value != value else f"{value:.1f} ms"

    def mib(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.1f} MiB"

    console.print(
        f"fan-out of inboxEvents: {r['subscribers']:,} subscribers in {r['processes']} client processes, "
        f"{r['mutations']:,} messageSend at {r['rate_requested']:g}/s"
    )
    failures = ", ".join(f"{k}: {v}" for k, v in r["connect_failures"].items()) or "none"
    console.print(f"subscribers connected: {r['connected']:,} / {r['subscribers']:,} (failed: {failures})")
    console.print(
        f"connect time (all subscribers acked and subscribed): {r['connect_s']:.2f} s "
        f"({r['connected'] / r['connect_s'] if r['connect_s'] else 0:,.0f} connections/s)"
    )
    console.print(f"warm-up event received by: {r['warm']:,} / {r['connected']:,} in {r['warm_s']:.2f} s")
    console.print(f"delivered / expected: {r['delivered']:,} / {r['expected']:,}")
    console.print(f"lost: {r['lost']:,}")
    console.print(f"duplicates: {r['duplicates']:,}")
    console.print(f"subscribers that saw the events in another order than the others: {r['order_differs']:,}")
    codes = ", ".join(f"{k}: {v}" for k, v in r["close_codes"].items())
    console.print(
        f"subscriptions ended during the run: {r['closed_during_run']:,}" + (f" (how: {codes})" if codes else "")
    )
    if r["subscription_errors"]:
        console.print(f"subscription errors: {r['subscription_errors']:,} (first: {r['subscription_error_sample']})")
    console.print(f"latency p50: {ms(r['latency_p50_ms'])}")
    console.print(f"latency p99: {ms(r['latency_p99_ms'])}")
    console.print(f"latency max: {ms(r['latency_max_ms'])}")
    console.print(
        f"latency min: {ms(r['latency_min_ms'])} "
        f"({r['negative_latencies']:,} negative: delivered before the HTTP response arrived)"
    )
    console.print(
        f"last subscriber per mutation: p50 {ms(r['slowest_subscriber_p50_ms'])}, "
        f"max {ms(r['slowest_subscriber_max_ms'])}"
    )
    console.print(
        f"mutation throughput: {r['mutation_throughput']:.1f}/s (requested {r['rate_requested']:g}/s), "
        f"HTTP p50 {ms(r['mutation_http_p50_ms'])}, p99 {ms(r['mutation_http_p99_ms'])}, "
        f"errors {r['mutation_errors']}" + (f" (first: {r['mutation_error_sample']})" if r["mutation_errors"] else "")
    )
    console.print(f"events delivered per second: {r['delivered_per_s'] or 0:,.0f} over {r['fanout_s']:.1f} s")
    per_subscriber = (
        f" (+{(r['server_rss_subscribed_mib'] - r['server_rss_idle_mib']) * 1024 / max(r['connected'], 1):.0f} KiB "
        "per subscriber)"
        if r["server_rss_subscribed_mib"] and r["server_rss_idle_mib"]
        else ""
    )
    console.print(
        f"server RSS: {mib(r['server_rss_idle_mib'])} idle, {mib(r['server_rss_subscribed_mib'])} subscribed"
        f"{per_subscriber}, {mib(r['server_rss_peak_mib'])} peak"
    )
    if r["server_cpu_s"] is not None:
        console.print(
            f"server CPU during the fan-out: {r['server_cpu_s']:.1f} s in {r['fanout_s']:.1f} s "
            f"({r['server_cpu_s'] / r['fanout_s'] * 100:.0f}% of one core)"
        )
    console.print(f"cores: {r['cores']}; server, database, Redis and clients share them")
    for target in r["targets"]:
        console.print(f"target: {target['target']} — {target['status']} ({target['numbers']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1_000, help="WebSocket subscribers (default 1000)")
    parser.add_argument("--mutations", type=int, default=200, help="messageSend mutations (default 200)")
    parser.add_argument("--rate", type=float, default=20.0, help="mutations per second (default 20)")
    parser.add_argument(
        "--processes",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="client processes holding the sockets, one event loop each (default min(8, cores))",
    )
    parser.add_argument("--url", help="an already-running server, e.g. http://127.0.0.1:8000 (default: start one)")
    parser.add_argument("--email", help="log in as this user instead of creating an organization (with --password)")
    parser.add_argument("--password", help="the password of --email")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to wait after subscribing (default 1)")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for late events (default 30)")
    parser.add_argument(
        "--connect-concurrency", type=int, default=64, help="handshakes in flight per process (default 64)"
    )
    parser.add_argument("--no-deflate", action="store_true", help="do not offer permessage-deflate")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the report")
    args = parser.parse_args()
    if args.email and not args.password:
        parser.error("--email needs --password")
    if args.subscribers < 1 or args.mutations < 1 or args.rate <= 0 or args.processes < 1:
        parser.error("--subscribers, --mutations, --processes and --rate must be positive")
    _new_loop_policy()
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps({key: _finite(value) for key, value in result.items()}))
    else:
        report(result)


if __name__ == "__main__":
    main()
