"""Every Dramatiq actor is a thin shell: it takes ids, calls a resolver through a `SystemContext`, and writes
nothing itself (no session, no SQL, no model). Import rules (`lint-imports`) forbid banxway.tasks from importing
SQLAlchemy or banxway.db; this test checks each actor's own body calls a resolver."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from banxway.tasks import actors

ACTORS = {actor.actor_name: actor for actor in actors.ALL}


def _called_names(fn: object) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))  # type: ignore[arg-type]
    return {
        node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
    }


def test_every_actor_module_level_name_is_declared() -> None:
    declared = {name for name, value in vars(actors).items() if hasattr(value, "actor_name")}
    assert declared == set(ACTORS), "an actor is missing from actors.ALL (it would never be bound to the broker)"


@pytest.mark.parametrize("name", sorted(ACTORS))
def test_the_actor_calls_a_resolver_and_writes_nothing(name: str) -> None:
    function = ACTORS[name].fn
    function = getattr(function, "__wrapped__", function)
    called = _called_names(function)
    resolvers = {
        called_name
        for called_name in called
        if getattr(function.__globals__.get(called_name), "__module__", "").startswith("banxway.resolvers.")
    }
    assert resolvers, f"{name} calls no resolver (it calls {sorted(called)})"
    source = inspect.getsource(function)
    for forbidden in ("session", ".add(", ".execute(", ".begin(", "select("):
        assert forbidden not in source, f"{name} works on the database itself ({forbidden!r})"


def test_actors_declare_their_queue_and_limits() -> None:
    for name, actor in ACTORS.items():
        assert actor.queue_name != "default", f"{name} sets no queue_name"
        assert "time_limit" in actor.options, f"{name} sets no time_limit"
        assert "max_retries" in actor.options, f"{name} sets no max_retries"
