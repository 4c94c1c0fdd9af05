"""The committed schema.graphql is the schema the code serves, as `banxway export-schema` writes it."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

from banxway.schema import schema_sdl

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "schema.graphql"


def test_committed_schema_matches_the_code() -> None:
    # given
    committed = SCHEMA_FILE.read_text()
    # when
    current = schema_sdl()
    # then
    if committed != current:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                current.splitlines(keepends=True),
                "schema.graphql (committed)",
                "schema_sdl() (code)",
            )
        )
        raise AssertionError(
            "schema.graphql is out of date: run `uv run banxway export-schema` and commit the result.\n" + diff
        )


def test_export_schema_writes_the_sdl_to_the_given_file(tmp_path: Path) -> None:
    # given
    output = tmp_path / "exported.graphql"
    # when
    result = subprocess.run(
        [sys.executable, "-m", "banxway.cli", "export-schema", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    # then
    assert result.returncode == 0, result.stderr
    assert output.read_text() == schema_sdl()
    assert f"Wrote {output}" in result.stdout
    assert not (tmp_path / "schema.graphql").exists()


def test_export_schema_to_standard_output(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "banxway.cli", "export-schema", "--output", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == schema_sdl()
