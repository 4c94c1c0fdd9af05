"""The CLI beside a running embedded `banxway serve --demo`: login over HTTP, the data-dir lock, org/user create."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.test_embedded import (
    ADMIN_PASSWORD,
    ME,
    USERS,
    Serve,
    cli,
    database_processes,
    gql,
    login,
    scratch_dir,
    serving,
)


@pytest.fixture(scope="module")
def demo() -> Iterator[Serve]:
    with scratch_dir("cli") as directory, serving(directory / "data", demo=True) as server:
        yield server


def emails(users: dict) -> set[str]:
    return {edge["node"]["email"] for edge in users["data"]["users"]["edges"]}


def test_serve_demo_prints_a_login_that_works_over_http(demo: Serve) -> None:
    # given the login that serve printed
    email, password = demo.demo_login()
    assert any(demo.url in line for line in demo.lines)
    # when
    token = login(demo.url, email, password)
    # then
    me = gql(demo.url, ME, token=token)
    assert me == {"data": {"me": {"email": email, "role": "ADMIN", "organization": {"slug": "demo"}}}}


def test_serve_demo_prints_a_user_of_every_role(demo: Serve) -> None:
    """A frontend developer tries each role: serve --demo names the other demo users (issue 18)."""
    _, password = demo.demo_login()
    [line] = [line for line in demo.lines if "Other demo users" in line]
    listed = re.findall(r"(\S+@\S+) \((\w+)\)", line)
    assert {role for _, role in listed} == {"manager", "validator", "support", "viewer"}
    for email, role in listed:
        me = gql(demo.url, ME, token=login(demo.url, email, password))
        assert me["data"]["me"]["role"] == role.upper()


DEMO_MESSAGES = """
{ threads(first: 50, filter: {status: [NEW, OPEN, PENDING, RESOLVED, CLOSED, ARCHIVED]}) {
    edges { node { id subject messages(first: 50) { edges { node { id channel direction status body error } } } } } } }
"""
DEMO_SEND = """
mutation($input: MessageSendInput!) { messageSend(input: $input) { message { id status } userErrors { code message } } }
"""


def _demo_threads(demo: Serve, token: str) -> list[dict]:
    result = gql(demo.url, DEMO_MESSAGES, token=token)
    assert "errors" not in result, result
    return [edge["node"] for edge in result["data"]["threads"]["edges"]]


def _demo_outbound(demo: Serve, token: str) -> list[dict]:
    return [
        edge["node"]
        for thread in _demo_threads(demo, token)
        for edge in thread["messages"]["edges"]
        if edge["node"]["direction"] == "OUTBOUND" and edge["node"]["channel"] != "INTERNAL"
    ]


def _until(check: Callable[[], bool], what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        time.sleep(0.25)


def test_serve_demo_sends_through_the_development_sink(demo: Serve) -> None:
    """Issue 18: every outbound message of the demo was FAILED ("No email account to send from"). serve --demo
    turns the development sink on: the seeded replies end DELIVERED (WhatsApp: READ), none FAILED; a WhatsApp
    message sent now turns DELIVERED, then READ; /dev/outbox (with the token) lists it."""
    email, password = demo.demo_login()
    token = login(demo.url, email, password)
    assert any("Development sink: on" in line and "/dev/outbox?token=" in line for line in demo.lines), demo.lines
    final = {"EMAIL": "DELIVERED", "SMS": "DELIVERED", "WHATSAPP": "READ"}

    def seeded_done() -> bool:
        messages = _demo_outbound(demo, token)
        assert len(messages) == 5 and not [m for m in messages if m["status"] == "FAILED"], messages
        return all(m["status"] == final[m["channel"]] for m in messages)

    _until(seeded_done, "the demo's replies delivered")
    # a new WhatsApp reply on the demo's WhatsApp thread (the customer wrote within 24 hours)
    [thread] = [t for t in _demo_threads(demo, token) if t["subject"] == "Where is my container?"]
    body = "Update: the vessel passed Suez today."
    variables = {"input": {"threadId": thread["id"], "channel": "WHATSAPP", "body": body}}
    payload = gql(demo.url, DEMO_SEND, variables, token=token)["data"]["messageSend"]
    assert payload["userErrors"] == [] and payload["message"]["status"] == "QUEUED", payload

    def read() -> bool:
        [message] = [m for m in _demo_outbound(demo, token) if m["id"] == payload["message"]["id"]]
        assert message["status"] != "FAILED", message
        return message["status"] == "READ"

    _until(read, "the new WhatsApp message READ", within=30)
    page = httpx.get(demo.url.replace("/graphql", "/dev/outbox"), params={"token": token}, timeout=30)
    assert page.status_code == 200 and body in page.text
    assert httpx.get(demo.url.replace("/graphql", "/dev/outbox"), timeout=30).status_code == 401


def test_one_shot_commands_log_migrations_only_when_verbose(demo: Serve) -> None:
    """Issue 18: `org create`, `migrate`, … printed alembic's log lines before their answer."""
    quiet = cli(demo.data_dir, "migrate")
    verbose = cli(demo.data_dir, "--verbose", "migrate")
    assert quiet.returncode == verbose.returncode == 0, quiet.stderr + verbose.stderr
    assert "Database is at revision" in quiet.stdout and "alembic" not in quiet.stdout + quiet.stderr
    assert "alembic.runtime.migration" in verbose.stdout + verbose.stderr


def test_second_serve_on_the_same_data_dir_is_refused(demo: Serve) -> None:
    # when another serve starts on the running one's data dir
    second = cli(demo.data_dir, "serve", "--port", str(demo.port + 1))
    # then it stops at once, saying who holds the directory
    assert second.returncode != 0, second.stdout
    message = second.stderr.strip()
    assert "already in use" in message, message
    assert str(demo.data_dir) in message and f"pid {demo.process.pid}" in message
    assert "Traceback" not in second.stderr
    # and the first one goes on serving
    assert demo.process.poll() is None
    assert gql(demo.url, "{ __typename }") == {"data": {"__typename": "Query"}}


def test_org_and_user_create_use_the_running_servers_databases(demo: Serve) -> None:
    # when the CLI creates an organization and a user while serve runs
    org = cli(
        demo.data_dir,
        "org",
        "create",
        "Initech",
        "--slug",
        "initech",
        "--admin-email",
        "admin@initech.test",
        "--admin-password",
        ADMIN_PASSWORD,
    )
    user = cli(
        demo.data_dir,
        "user",
        "create",
        "--org",
        "initech",
        "--email",
        "support@initech.test",
        "--password",
        ADMIN_PASSWORD,
        "--role",
        "support",
    )
    # then both succeed: the data dir is locked by serve, so they ran on its databases (runtime.json)
    assert org.returncode == 0, org.stdout + org.stderr
    assert "Created organization 'Initech' (slug initech) with admin admin@initech.test." in org.stdout
    assert user.returncode == 0, user.stdout + user.stderr
    assert "Created support support@initech.test in organization 'initech'." in user.stdout
    assert json.loads((demo.data_dir / "runtime.json").read_text())["pid"] == demo.process.pid
    # and the new admin, over HTTP, sees their users and no one else's
    token = login(demo.url, "admin@initech.test", ADMIN_PASSWORD)
    users = gql(demo.url, USERS, token=token)
    assert emails(users) == {"admin@initech.test", "support@initech.test"}
    assert users["data"]["users"]["totalCount"] == 2
    demo_email, demo_password = demo.demo_login()
    demo_users = emails(gql(demo.url, USERS, token=login(demo.url, demo_email, demo_password)))
    assert demo_email in demo_users
    assert not {"admin@initech.test", "support@initech.test"} & demo_users


def test_cli_without_a_running_serve_starts_and_stops_its_own_databases() -> None:
    with scratch_dir("migrate") as directory:
        # given no serve on this data dir
        data_dir = directory / "data"
        # when
        result = cli(data_dir, "migrate")
        # then it ran on embedded databases of its own, and stopped them
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("Database is at revision ")
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        assert database_processes(data_dir) == []
        assert not (data_dir / "runtime.json").exists()
