"""Settings: one readable line per configuration error, no password ever shown, the generated secret key."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from banxway.settings import SettingsError, environment_variables, load_settings

VARIABLES = [name for name, _default, _description in environment_variables()]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No configuration from the machine (CI sets DATABASE_URL and REDIS_URL); a private data dir."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("BANXWAY_DATA_DIR", str(data_dir))
    return data_dir


def load_error(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message, f"not one line: {message!r}"
    return message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BANXWAY_ENV", "prod"),
        ("BANXWAY_GRAPHQL_MAX_DEPTH", "deep"),
        ("BANXWAY_GRAPHQL_MAX_DEPTH", "0"),
        ("DATABASE_URL", "mysql://banxway@db.internal:3306/banxway"),
        ("DATABASE_URL", "this is not a url"),
        ("REDIS_URL", "http://cache.internal:6379/0"),
        ("REDIS_URL", "localhost:6379"),
        ("BANXWAY_SECRET_KEY", "too-short"),
        ("BANXWAY_LOG_LEVEL", "loud"),
    ],
)
def test_invalid_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # when
    message = load_error(monkeypatch, **{variable: value})
    # then
    assert variable in message


def test_short_secret_key_is_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    message = load_error(monkeypatch, BANXWAY_SECRET_KEY="hunter2-short")
    assert "BANXWAY_SECRET_KEY" in message and "32" in message
    assert "hunter2" not in message


def test_production_requires_a_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # when
    message = load_error(monkeypatch, BANXWAY_ENV="production")
    # then
    assert "BANXWAY_SECRET_KEY" in message
    assert "production" in message


def test_production_refuses_fast_insecure_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # when
    message = load_error(
        monkeypatch, BANXWAY_ENV="production", BANXWAY_SECRET_KEY="k" * 32, BANXWAY_PASSWORD_HASHING="fast-insecure"
    )
    # then
    assert "BANXWAY_PASSWORD_HASHING" in message
    assert "production" in message


def test_production_with_a_secret_key_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANXWAY_ENV", "production")
    monkeypatch.setenv("BANXWAY_SECRET_KEY", "k" * 32)
    settings = load_settings()
    assert settings.production
    assert settings.resolved_secret_key() == "k" * 32


@pytest.mark.parametrize(
    "url",
    [
        "mysql://banxway:hunter2secret@db.internal:3306/banxway",
        "mysql://:hunter2secret@db.internal/banxway",
        "postgresql://banxway:hunter2secret@db.internal:notaport/banxway",
        "postgresql//banxway:hunter2secret@db.internal/banxway",
        "sqlite://banxway:hunter2secret@/banxway.db",
    ],
)
def test_database_url_password_is_never_shown(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    # when
    message = load_error(monkeypatch, DATABASE_URL=url)
    # then
    assert "DATABASE_URL" in message
    assert "hunter2secret" not in message


def test_database_url_password_in_the_query_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    message = load_error(monkeypatch, DATABASE_URL="mysql://banxway@db.internal/banxway?password=hunter2secret")
    assert "DATABASE_URL" in message
    assert "hunter2secret" not in message


def test_redis_url_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    message = load_error(monkeypatch, REDIS_URL="http://:hunter2secret@cache.internal:6379/0")
    assert "REDIS_URL" in message
    assert "hunter2secret" not in message


def test_valid_urls_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://banxway:hunter2secret@db.internal:5432/banxway")
    monkeypatch.setenv("REDIS_URL", "rediss://:pw@cache.internal:6380/2")
    settings = load_settings()
    assert settings.database_url == "postgresql://banxway:hunter2secret@db.internal:5432/banxway"
    assert settings.redis_url == "rediss://:pw@cache.internal:6380/2"
    assert not settings.embedded


def test_unset_urls_mean_embedded(clean_environment: Path) -> None:
    settings = load_settings()
    assert settings.database_url is None and settings.redis_url is None
    assert settings.embedded
    assert settings.data_dir == clean_environment


def test_cors_origins_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    monkeypatch.setenv("BANXWAY_CORS_ORIGINS", "a, b")
    # when
    settings = load_settings()
    # then
    assert settings.cors_origins == ["a", "b"]


def test_cors_origins_default_to_none(clean_environment: Path) -> None:
    assert load_settings().cors_origins == []


def test_integer_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANXWAY_GRAPHQL_MAX_DEPTH", "7")
    assert load_settings().graphql_max_depth == 7


def test_secret_key_is_generated_once_and_kept_private(clean_environment: Path) -> None:
    # given no BANXWAY_SECRET_KEY and an empty data dir
    assert not clean_environment.exists()
    # when
    first = load_settings().resolved_secret_key()
    # then it is kept in the data dir, readable by the owner only
    kept = clean_environment / "secret_key"
    assert kept.read_text().strip() == first
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert len(first) >= 32
    # and the next call, from new settings too, returns the same key
    assert load_settings().resolved_secret_key() == first
    assert load_settings().resolved_secret_key() == first


def test_generated_secret_keys_differ_between_data_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANXWAY_DATA_DIR", str(tmp_path / "one"))
    one = load_settings().resolved_secret_key()
    monkeypatch.setenv("BANXWAY_DATA_DIR", str(tmp_path / "two"))
    two = load_settings().resolved_secret_key()
    assert one != two


def test_configured_secret_key_is_not_written(monkeypatch: pytest.MonkeyPatch, clean_environment: Path) -> None:
    monkeypatch.setenv("BANXWAY_SECRET_KEY", "s" * 40)
    assert load_settings().resolved_secret_key() == "s" * 40
    assert not (clean_environment / "secret_key").exists()


def cli(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(variables)
    return subprocess.run(
        [sys.executable, "-m", "banxway.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_cli_stops_with_one_line_naming_the_variable(clean_environment: Path) -> None:
    # when
    result = cli("migrate", BANXWAY_ENV="prod", BANXWAY_DATA_DIR=str(clean_environment))
    # then
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "BANXWAY_ENV" in lines[0] and "'prod'" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (clean_environment / "postgres").exists()


def test_help_lists_every_variable() -> None:
    # when
    result = cli("--help")
    # then
    assert result.returncode == 0, result.stderr
    missing = [name for name in VARIABLES if name not in result.stdout]
    assert missing == []
    assert {"DATABASE_URL", "REDIS_URL", "BANXWAY_DATA_DIR", "BANXWAY_SECRET_KEY", "BANXWAY_ENV"} <= set(VARIABLES)
