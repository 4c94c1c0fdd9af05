"""Helpers for the live-subscription tests over real sockets.

* `uvicorn_server`: the app served by uvicorn on a free port inside the test's own event loop, sharing the
  test's `AppState` (so a test can look at `state.broadcast` while clients are connected);
* `ServeProcess`: a `banxway serve` subprocess on the test's database and Redis;
* `GraphQLSocket`: a small client for graphql-transport-ws and the legacy graphql-ws protocol over the
  `websockets` package, with a timeout on every read (a missing message fails, it never hangs).
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from banxway import events, fanout
from banxway.app import create_app
from banxway.settings import Settings, environment_variables
from banxway.state import AppState

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
RECEIVE_TIMEOUT = 10.0

INBOX_EVENTS = """
subscription($after: String) {
  inboxEvents(after: $after) { cursor type occurredAt thread { id subject } message { id body } }
}
"""
THREAD_CREATE = """
mutation($subject: String!) { threadCreate(input: {subject: $subject}) { thread { id reference } userErrors { code } } }
"""
MESSAGE_SEND = """
mutation($threadId: ID!, $body: String!) {
  messageSend(input: {threadId: $threadId, channel: INTERNAL, body: $body}) { message { id } userErrors { code } }
}
"""
LOGIN = """
mutation($email: String!, $password: String!) {
  authLogin(input: {email: $email, password: $password}) { accessToken userErrors { code message } }
}
"""


async def http_gql(process: ServeProcess, query: str, variables: dict[str, Any], token: str | None = None) -> dict:
    """POST a GraphQL operation to a server subprocess; its `data` (no errors allowed)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(process.graphql_url, json={"query": query, "variables": variables}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


@asynccontextmanager
async def module_settings(
    postgres_server_url: str, template_database: str, redis_url: str, data_dir: Path
) -> AsyncIterator[Settings]:
    """Development settings on a fresh database (cloned from the migrated template) and a flushed Redis, for a test
    module's server subprocesses."""
    from tests.conftest import SECRET, fresh_database

    async with fresh_database(postgres_server_url, template_database) as database_url:
        client = aioredis.Redis.from_url(redis_url)
        await client.flushdb()
        await client.aclose()
        yield Settings(
            database_url=database_url, redis_url=redis_url, data_dir=data_dir, secret_key=SECRET, env="development"
        )


def local_uuid(global_id: str) -> uuid.UUID:
    """The UUID inside a global id ("Type:uuid", base64)."""
    return uuid.UUID(base64.b64decode(global_id).decode().split(":", 1)[1])


# -- the app in this event loop -------------------------------------------------------------


@asynccontextmanager
async def uvicorn_server(
    settings: Settings, state: AppState, *, ws_ping_interval: float | None = None
) -> AsyncIterator[str]:
    """Serve `create_app(settings, state=state)` on 127.0.0.1 in the running loop; yields the ws:// URL."""
    app = create_app(settings, state=state)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_config=None,
        ws="websockets-sansio",
        ws_ping_interval=ws_ping_interval,  # by default none: the tests look at the GraphQL protocols' own
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server._serve())  # serve() would take over the process's signal handlers
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("uvicorn stopped before it started")
            assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        with suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


async def wait_subscribed(state: AppState, organization_id: uuid.UUID, count: int, within: float = 5.0) -> None:
    """Until this process's fan-out holds `count` subscribers of the organization's events (each joined once the
    process listens on the organization's Redis channel)."""
    deadline = time.monotonic() + within
    while (held := len(subscriber_queues(state, organization_id))) != count:
        assert time.monotonic() < deadline, f"{held} subscribers of {organization_id}, expected {count}"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the SUBSCRIBE command is sent; let Redis process it before anything publishes


def subscriber_queues(state: AppState, organization_id: uuid.UUID) -> set[Any]:
    """The subscribers of the organization's events in this process (one per subscription; a dropped one leaves)."""
    return fanout.hub(state).subscribers(organization_id)


# -- a graphql-transport-ws / graphql-ws client ----------------------------------------------


class ServerClosed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed by the server: {code} {reason!r}")
        self.code = code
        self.reason = reason


@dataclass
class GraphQLSocket:
    ws: ClientConnection
    protocol: str
    keep_alives: list[dict[str, Any]]

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, protocol: str = TRANSPORT_WS, **options: Any) -> AsyncIterator[GraphQLSocket]:
        options.setdefault("ping_interval", None)
        options.setdefault("max_size", None)
        async with connect(url, subprotocols=[protocol], **options) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == protocol, ws.subprotocol
            yield cls(ws, protocol, [])

    @property
    def legacy(self) -> bool:
        return self.protocol == LEGACY_WS

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def receive(self, within: float = RECEIVE_TIMEOUT, *, keep_alive: bool = False) -> dict[str, Any]:
        """The next message; the legacy `ka` and a server `ping` are kept in `keep_alives` and skipped unless
        `keep_alive` (a server `ping` is answered with `pong`, as the protocol asks)."""
        async with asyncio.timeout(within):
            while True:
                try:
                    raw = await self.ws.recv()
                except ConnectionClosed as closed:
                    frame = closed.rcvd
                    raise ServerClosed(frame.code if frame else None, frame.reason if frame else "") from None
                message = orjson.loads(raw)
                if message.get("type") in ("ka", "ping"):
                    self.keep_alives.append(message)
                    if message["type"] == "ping":
                        await self.send({"type": "pong"})
                    if keep_alive:
                        return message
                    continue
                return message

    async def init(self, token: str | None) -> dict[str, Any]:
        payload = {"authorization": f"Bearer {token}"} if token else {}
        await self.send({"type": "connection_init", "payload": payload})
        ack = await self.receive()
        assert ack["type"] == "connection_ack", ack
        return ack

    async def subscribe(self, operation_id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        kind = "start" if self.legacy else "subscribe"
        await self.send({"id": operation_id, "type": kind, "payload": {"query": query, "variables": variables or {}}})

    async def stop(self, operation_id: str) -> None:
        await self.send({"id": operation_id, "type": "stop" if self.legacy else "complete"})

    async def next(self, within: float = RECEIVE_TIMEOUT) -> tuple[str, dict[str, Any]]:
        """(operation id, the event) of the next result message; fails on anything else."""
        message = await self.receive(within)
        assert message["type"] == ("data" if self.legacy else "next"), message
        assert "errors" not in message["payload"], message
        return message["id"], next(iter(message["payload"]["data"].values()))

    async def close_code(self, within: float = RECEIVE_TIMEOUT) -> tuple[int | None, list[dict[str, Any]]]:
        """Read until the server closes: (its close code, what it sent before)."""
        received = []
        try:
            while True:
                received.append(await self.receive(within))
        except ServerClosed as closed:
            return closed.code, received


# -- `banxway serve` subprocesses --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_process(env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    """`banxway worker` in a process of its own, on the test's database and Redis (env: `serve_env`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "banxway.cli", "worker", "--threads", "1"], stdout=log, stderr=subprocess.STDOUT, env=env
    )


def serve_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The test process's environment without any banxway configuration, plus the test's services."""
    names = {name for name, _default, _description in environment_variables()}
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("BANXWAY_")}
    env.update(
        {
            "DATABASE_URL": str(settings.database_url),
            "REDIS_URL": str(settings.redis_url),
            "BANXWAY_SECRET_KEY": str(settings.secret_key),
            "BANXWAY_DATA_DIR": str(data_dir),
            "BANXWAY_PASSWORD_HASHING": "fast-insecure",
            "BANXWAY_ENV": "development",
            "BANXWAY_ALLOW_PRIVATE_PROVIDER_URLS": str(settings.allow_private_provider_urls).lower(),  # stand-ins
            "BANXWAY_ALLOW_PRIVATE_WEBHOOKS": str(settings.allow_private_webhooks).lower(),  # local receivers
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class ServeProcess:
    """`banxway serve --no-migrate` on a free port; its output goes to a log file."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @classmethod
    def start(
        cls, settings: Settings, directory: Path, name: str, environment: dict[str, str] | None = None
    ) -> ServeProcess:
        """`environment`: settings of this process beyond the test's services (BANXWAY_… variables)."""
        port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        log = directory / f"serve-{name}-{port}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "banxway.cli",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-migrate",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**serve_env(settings, directory / f"data-{name}"), **(environment or {})},
            )
        return cls(process, port, log)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.http_url}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def wait_ready(self, within: float = 60.0) -> None:
        """Until GET /readyz answers 200."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.output()}")
                with suppress(httpx.HTTPError):
                    if (await http.get(f"{self.http_url}/readyz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"serve was not ready within {within:.0f} s:\n{self.output()}")
                await asyncio.sleep(0.1)

    def descendants(self) -> set[int]:
        """Pids of the processes below this one (from /proc)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with suppress(OSError, IndexError, ValueError):
                    stat = (entry / "stat").read_text()
                    parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found: set[int] = set()
        frontier = {self.process.pid}
        while frontier:
            children = {pid for pid, parent in parents.items() if parent in frontier and pid not in found}
            found |= children
            frontier = children
        return found

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it hangs; then check that nothing of it is left."""
        below = self.descendants()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for pid in below:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert self.process.returncode is not None
        left = [pid for pid in below if _alive(pid)]
        assert not left, f"processes of serve :{self.port} still running: {left}"
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", self.port)) != 0, f"port {self.port} still accepts connections"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


async def redis_subscriber_count(redis_url: str, organization_id: uuid.UUID) -> int:
    """How many Redis connections (one per serving process with subscribers) listen on the organization."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        counts = await client.pubsub_numsub(events.channel(organization_id))
    finally:
        await client.aclose()
    return int(counts[0][1])


async def wait_redis_subscribers(redis_url: str, organization_id: uuid.UUID, count: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (held := await redis_subscriber_count(redis_url, organization_id)) != count:
        assert time.monotonic() < deadline, f"{held} Redis subscribers, expected {count}"
        await asyncio.sleep(0.02)


async def create_thread(api: Any, token: str, subject: str) -> dict[str, Any]:
    result = await api.gql(THREAD_CREATE, {"subject": subject}, token=token)
    assert result["data"]["threadCreate"]["userErrors"] == [], result
    return result["data"]["threadCreate"]["thread"]


async def send_message(api: Any, token: str, thread_id: str, body: str) -> str:
    result = await api.gql(MESSAGE_SEND, {"threadId": thread_id, "body": body}, token=token)
    assert "errors" not in result and result["data"]["messageSend"]["userErrors"] == [], result
    return result["data"]["messageSend"]["message"]["id"]
