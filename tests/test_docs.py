"""The README's generated tables match the code they describe."""

from __future__ import annotations

from pathlib import Path

from banxway.auth import permission_matrix_markdown
from banxway.settings import configuration_table_markdown

README = (Path(__file__).parent.parent / "README.md").read_text()


def _section(name: str) -> str:
    start = README.index(f"<!-- {name}:start -->") + len(f"<!-- {name}:start -->")
    return README[start : README.index(f"<!-- {name}:end -->")].strip()


def test_readme_permission_matrix_is_the_one_the_code_enforces() -> None:
    assert _section("permissions") == permission_matrix_markdown()


def test_readme_configuration_table_lists_every_setting() -> None:
    assert _section("configuration") == configuration_table_markdown()
