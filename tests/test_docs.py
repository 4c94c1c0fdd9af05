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


def test_every_name_of_the_api_contract_is_in_the_schema() -> None:
    """docs/api.md lists the names clients rely on: each type, field (with its type), argument, input field and
    enum value there is in schema.graphql, so the page cannot promise what the API does not have."""
    from graphql import (
        EnumTypeDefinitionNode,
        GraphQLEnumType,
        GraphQLInputObjectType,
        GraphQLObjectType,
        InputObjectTypeDefinitionNode,
        ObjectTypeDefinitionNode,
        build_schema,
        parse,
        print_ast,
    )

    root = Path(__file__).parent.parent
    contract = (root / "docs" / "api.md").read_text()
    block = contract.split("```graphql", 1)[1].split("```", 1)[0]
    schema = build_schema((root / "schema.graphql").read_text())
    missing: list[str] = []
    checked = 0
    for definition in parse(block).definitions:
        name = definition.name.value
        actual = schema.get_type(name)
        if actual is None:
            missing.append(name)
            continue
        if isinstance(definition, ObjectTypeDefinitionNode | InputObjectTypeDefinitionNode):
            assert isinstance(actual, GraphQLObjectType | GraphQLInputObjectType), name
            for field in definition.fields:
                real = actual.fields.get(field.name.value)
                where = f"{name}.{field.name.value}"
                checked += 1
                if real is None:
                    missing.append(where)
                    continue
                if str(real.type) != print_ast(field.type):
                    missing.append(f"{where}: {print_ast(field.type)} documented, {real.type} in the schema")
                for argument in getattr(field, "arguments", None) or ():
                    if argument.name.value not in real.args:
                        missing.append(f"{where}({argument.name.value})")
        elif isinstance(definition, EnumTypeDefinitionNode):
            assert isinstance(actual, GraphQLEnumType), name
            missing += [f"{name}.{v.name.value}" for v in definition.values if v.name.value not in actual.values]
    assert missing == []
    assert checked > 50  # the block was read whole
