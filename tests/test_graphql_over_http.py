"""GraphQL over HTTP (issue 18): the graphql-http server audit (npm `graphql-http`, pinned in tests/graphql-http/)
against the running app, with no warning and no error; and the parts of it a client meets first, pinned here too
— `application/graphql-response+json` when preferred (400 and no `data` for a request error), 405 for a mutation
sent by GET, `application/json` unchanged."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from banxway.app import prefers_graphql_response
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api, Org
from tests.live_helpers import uvicorn_server

AUDIT = Path(__file__).parent / "graphql-http"
GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
async def server(settings: Settings, state: AppState, api: Api, org: Org) -> AsyncIterator[str]:
    async with uvicorn_server(settings, state) as url:
        yield url.replace("ws://", "http://")


def _node_modules() -> None:
    """`npm ci` in tests/graphql-http once (the registry is reachable where the suite runs)."""
    if not (AUDIT / "node_modules" / "graphql-http").exists():
        npm = shutil.which("npm")
        assert npm is not None, "npm (Node.js) is needed for the GraphQL over HTTP audit: apt-get install nodejs npm"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=AUDIT, check=True, capture_output=True, timeout=300)


async def test_the_graphql_over_http_audit_passes_without_a_warning(server: str) -> None:
    await asyncio.to_thread(_node_modules)
    node = shutil.which("node")
    assert node is not None, "node is needed for the GraphQL over HTTP audit"
    ran = await asyncio.create_subprocess_exec(
        node, str(AUDIT / "audit.mjs"), server, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(ran.communicate(), 120)
    assert ran.returncode == 0, err.decode()
    results = json.loads(out)
    assert len(results) > 40, results  # the audit ran whole
    failing = [f"{r['id']} {r['status']}: {r['name']} ({r['reason']})" for r in results if r["status"] != "ok"]
    assert failing == []


async def test_a_request_error_is_400_without_data_under_the_new_media_type(server: str) -> None:
    async with httpx.AsyncClient() as http:
        new = await http.post(server, json={"query": "{ nope }"}, headers={"accept": GRAPHQL_RESPONSE})
        legacy = await http.post(server, json={"query": "{ nope }"}, headers={"accept": "application/json"})
        unparsable = await http.post(server, json={"query": "{"}, headers={"accept": GRAPHQL_RESPONSE})
        fine = await http.post(server, json={"query": "{ __typename }"}, headers={"accept": GRAPHQL_RESPONSE})
    assert new.status_code == 400 and new.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert "data" not in new.json() and new.json()["errors"][0]["message"].startswith("Cannot query field 'nope'")
    assert unparsable.status_code == 400 and "data" not in unparsable.json()
    # application/json as before: 200, data null
    assert legacy.status_code == 200 and legacy.headers["content-type"] == "application/json"
    assert legacy.json()["data"] is None
    assert fine.status_code == 200 and fine.json() == {"data": {"__typename": "Query"}}
    assert fine.headers["content-type"].startswith(GRAPHQL_RESPONSE) and "x-banxway-media" not in fine.headers


async def test_an_error_inside_a_field_keeps_data_and_200(server: str, api: Api, org: Org) -> None:
    """Not a request error: the operation ran, and `data` says what it could."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(server, json={"query": "{ me { email } }"}, headers={"accept": GRAPHQL_RESPONSE})
    assert answer.status_code == 200
    assert answer.json()["data"] is None and answer.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_mutation_sent_by_get_is_405(server: str) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.get(server, params={"query": 'mutation { authLogout(input: {refreshToken: "x"}) { ok } }'})
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"


@pytest.mark.parametrize(
    ("accept", "prefers"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        (GRAPHQL_RESPONSE, True),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", True),
        (f"application/json, {GRAPHQL_RESPONSE}", False),
        (f"application/json;q=0.5, {GRAPHQL_RESPONSE}", True),
        (f"{GRAPHQL_RESPONSE};q=0", False),
    ],
)
def test_which_media_type_a_client_prefers(accept: str | None, prefers: bool) -> None:
    assert prefers_graphql_response(accept) is prefers
