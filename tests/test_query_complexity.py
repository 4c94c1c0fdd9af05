"""Issue 16, item 2: validation must be linear in fragment spreads.

A document whose fragments each spread the next one four times is a few hundred bytes and expands to 4^levels
fields; GraphQL's rules (the depth limit among them) walk a fragment again at every spread. The operation's size
with its fragments expanded is counted once per fragment before any rule runs, and past BANXWAY_GRAPHQL_MAX_FIELDS
the operation is refused at once."""

from __future__ import annotations

import time

import pytest

from banxway.schema.complexity import expanded_fields
from tests.conftest import Api, Org


def _nested_spreads(levels: int) -> str:
    """`{ ...F0 }` where F_i spreads F_(i+1) four times and the last fragment selects `id`: 4^levels fields."""
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    fragments.append(f"fragment F{levels} on Query {{ __typename }}")
    return "query Bomb { ...F0 }\n" + "\n".join(fragments)


def test_the_expanded_size_is_counted_once_per_fragment() -> None:
    from graphql import parse

    assert expanded_fields(parse(_nested_spreads(3)), 10_000) == 4**3
    started = time.perf_counter()
    assert expanded_fields(parse(_nested_spreads(20)), 2000) > 2000
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize("levels", [11, 20])
async def test_a_fragment_bomb_is_refused_without_being_validated(api: Api, org: Org, levels: int) -> None:
    token = await api.token(org.admin_email)
    document = _nested_spreads(levels)
    started = time.perf_counter()
    result = await api.gql(document, token=token)
    elapsed = time.perf_counter() - started
    assert result["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "BANXWAY_GRAPHQL_MAX_FIELDS" in result["errors"][0]["message"]
    # the rules would take 4^levels steps (9.5 s at 11 levels): this is one request's ordinary cost
    assert elapsed < 0.5, elapsed


async def test_the_same_document_unauthenticated_is_refused_as_fast(api: Api) -> None:
    started = time.perf_counter()
    result = await api.gql(_nested_spreads(15))
    assert result["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert time.perf_counter() - started < 0.5


async def test_an_ordinary_operation_with_fragments_is_not_affected(api: Api, org: Org) -> None:
    token = await api.token(org.admin_email)
    document = "query { ...A } fragment A on Query { me { ...B } } fragment B on User { id name email }"
    result = await api.gql(document, token=token)
    assert "errors" not in result
    assert result["data"]["me"]["email"] == org.admin_email
