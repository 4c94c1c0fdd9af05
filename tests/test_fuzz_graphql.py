"""Fuzzing the GraphQL API with schemathesis (GraphQL mode) against the real app, in process (ASGI).

Every query field and mutation is called with operations that hypothesis-graphql generates from the schema's
introspection (a quarter of them invalid: they must be refused), as a user of each role of one organization (and
anonymously), with two organizations' data seeded: ids are drawn from both organizations' objects (or are garbage),
JSON from small nested values. Each answer must be

* not a 5xx, and JSON with `data` or `errors`;
* free of unhandled errors: every error carries an `extensions.code` (UNAUTHENTICATED, FORBIDDEN, NOT_FOUND,
  BAD_USER_INPUT, ...) unless it is a validation or syntax error (no `path`, no `data`);
* valid against the schema: schemathesis' response conformance check, and every value of `data` of the type the
  schema gives its field (non-null, enum values, scalars, lists, no field that was not selected);
* free of the other organization's data: its name, or an id of its that the request did not send.

BANXWAY_FUZZ_EXAMPLES sets the examples per root field (default 25: about a minute on two cores; 100 or more for
a long run, ~10 minutes), BANXWAY_FUZZ_SEED a seed (default: derandomized, the same cases every run; set it to
explore others, and to replay a failure a long run found).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import graphql
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.graphql import nodes
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.graphql.scalars import CUSTOM_SCALARS

from banxway.app import create_app
from banxway.schema import build_schema
from banxway.settings import Settings
from tests.conftest import Api
from tests.seed_helpers import Seeded, closed_port, seed_organization

EXAMPLES = int(os.environ.get("BANXWAY_FUZZ_EXAMPLES", "25"))
SEED = os.environ.get("BANXWAY_FUZZ_SEED")
ROLES = ("ADMIN", "MANAGER", "VALIDATOR", "SUPPORT", "VIEWER", None)  # None: no token

# Root fields not fuzzed, each with its reason. (None: `authLogin` runs Argon2 with the suite's cheap parameters,
# and the network-reaching mutations are confined to a closed port on 127.0.0.1, below.)
EXCLUDED: dict[str, str] = {}

# Input fields that say where the server connects (emailAccountTest, integrationTest, callStart): whatever the
# fuzzer puts there, the request goes to a closed port on this machine, never out.
NETWORK_FIELDS = {"baseUrl": "url", "imapHost": "host", "smtpHost": "host", "imapPort": "port", "smtpPort": "port"}
NON_NULL_MARKER = "Cannot return null for non-nullable field"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Tokens that outlive a long run; calls to providers and mail servers that fail fast."""
    return settings.model_copy(
        update={"access_token_ttl_seconds": 86400, "provider_timeout_seconds": 1.0, "email_timeout_seconds": 1.0}
    )


# -- values the fuzzer sends ------------------------------------------------------------------------------------


def _json_node(value: Any) -> graphql.ValueNode:
    if value is None:
        return nodes.Null
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    if isinstance(value, str):
        return nodes.String(value)
    if isinstance(value, list):
        return nodes.List([_json_node(item) for item in value])
    fields = [graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=_json_node(v)) for k, v in value.items()]
    return nodes.Object(fields)


def _json_containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)  # object keys are GraphQL names
    return st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3)


JSON_SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**31), 2**31 - 1) | st.floats(allow_nan=False, allow_infinity=False)
)
JSON_VALUES = st.recursive(JSON_SCALARS | st.text(max_size=20), _json_containers, max_leaves=8)


@contextlib.contextmanager
def custom_scalars(strategies: dict[str, st.SearchStrategy]) -> Iterator[None]:
    """Register scalar strategies with schemathesis for the run (its registry is global)."""
    saved = dict(CUSTOM_SCALARS)
    for name, strategy in strategies.items():
        schemathesis.graphql.scalar(name, strategy)
    try:
        yield
    finally:
        CUSTOM_SCALARS.clear()
        CUSTOM_SCALARS.update(saved)


class _Confine(graphql.Visitor):
    def __init__(self, port: int) -> None:
        super().__init__()
        self.values = {
            "url": nodes.String(f"http://127.0.0.1:{port}"),
            "host": nodes.String("127.0.0.1"),
            "port": nodes.Int(port),
        }

    def _replace(self, node: Any) -> Any:
        kind = NETWORK_FIELDS.get(node.name.value)
        if kind is None or isinstance(node.value, graphql.NullValueNode):
            return None
        return type(node)(name=node.name, value=self.values[kind])

    def enter_object_field(self, node: graphql.ObjectFieldNode, *_: Any) -> Any:
        return self._replace(node)

    def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
        return self._replace(node)


def confine(query: str, port: int) -> str:
    """The query with every host, port and base URL it gives pointing at a closed port on 127.0.0.1."""
    if not any(name in query for name in NETWORK_FIELDS):
        return query
    return graphql.print_ast(graphql.visit(graphql.parse(query), _Confine(port)))


# -- what an answer must be ---------------------------------------------------------------------------------------


def unhandled_errors(payload: dict) -> list[dict]:
    """Errors that are neither coded nor the client's own (a validation or syntax error has no path, no data)."""
    found = []
    for error in payload.get("errors") or []:
        message = error.get("message", "")
        uncoded = (error.get("extensions") or {}).get("code") is None
        client_error = "path" not in error and payload.get("data") is None
        masked = NON_NULL_MARKER in message or "Internal server error" in message
        if masked or (uncoded and not client_error):
            found.append(error)
    return found


_SCALAR_CHECKS = {
    "Int": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31,
    "Float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "String": lambda v: isinstance(v, str),
    "ID": lambda v: isinstance(v, str),
    "Boolean": lambda v: isinstance(v, bool),
    "DateTime": lambda v: isinstance(v, str) and _is_datetime(v),
    "JSON": lambda v: True,
}


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


class Conformance:
    """Whether `data` is what the schema says the operation's selection returns."""

    def __init__(self, schema: graphql.GraphQLSchema, document: graphql.DocumentNode, strict_nulls: bool) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, graphql.FragmentDefinitionNode)
        }
        self.strict_nulls = strict_nulls  # a field's error nulls its nearest nullable parent: only without errors
        self.problems: list[str] = []

    def operation(self, operation: graphql.OperationDefinitionNode, data: Any) -> list[str]:
        root = self.schema.get_root_type(operation.operation)
        assert root is not None
        self.object(root, operation.selection_set, data, "data")
        return self.problems

    def _fields(
        self, type_: Any, runtime: str | None, selection_set: graphql.SelectionSetNode
    ) -> Iterator[graphql.FieldNode]:
        for selection in selection_set.selections:
            if isinstance(selection, graphql.FieldNode):
                yield selection
                continue
            if isinstance(selection, graphql.FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                condition, selections = fragment.type_condition, fragment.selection_set
            else:
                condition, selections = selection.type_condition, selection.selection_set
            if condition is None or self._applies(condition.name.value, type_, runtime):
                yield from self._fields(type_, runtime, selections)

    def _applies(self, condition: str, type_: Any, runtime: str | None) -> bool:
        if runtime is None:
            return condition == type_.name
        target = self.schema.get_type(condition)
        concrete = self.schema.get_type(runtime)
        if target is None or concrete is None:
            return False
        return target is concrete or (
            graphql.is_abstract_type(target) and self.schema.is_sub_type(target, concrete)  # type: ignore[arg-type]
        )

    def object(self, type_: Any, selection_set: graphql.SelectionSetNode, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.problems.append(f"{path}: {value!r} is not an object of {type_.name}")
            return
        runtime = value.get("__typename")
        if graphql.is_abstract_type(type_):
            if runtime is not None:
                concrete = self.schema.get_type(runtime)
                if concrete is None or not self.schema.is_sub_type(type_, concrete):
                    self.problems.append(f"{path}: __typename {runtime!r} is not a {type_.name}")
                    return
                type_ = concrete
        elif runtime is not None and runtime != type_.name:
            self.problems.append(f"{path}: __typename {runtime!r} where {type_.name} was expected")
        selected = set()
        for field in self._fields(
            type_, runtime or (None if graphql.is_abstract_type(type_) else type_.name), selection_set
        ):
            key = field.alias.value if field.alias else field.name.value
            selected.add(key)
            if key not in value:
                if not graphql.is_abstract_type(type_):
                    self.problems.append(f"{path}.{key}: selected but missing")
                continue
            if field.name.value == "__typename":
                continue
            definition = type_.fields.get(field.name.value) if hasattr(type_, "fields") else None
            if definition is None:
                continue  # a field of a fragment on a concrete type, for an abstract type without __typename
            self.value(definition.type, field.selection_set, value[key], f"{path}.{key}")
        if not graphql.is_abstract_type(type_):
            extra = set(value) - selected
            if extra:
                self.problems.append(f"{path}: fields that were not selected: {sorted(extra)}")

    def value(self, type_: Any, selection_set: graphql.SelectionSetNode | None, value: Any, path: str) -> None:
        if isinstance(type_, graphql.GraphQLNonNull):
            if value is None:
                if self.strict_nulls:
                    self.problems.append(f"{path}: null for the non-null {type_}")
                return
            type_ = type_.of_type
        if value is None:
            return
        if isinstance(type_, graphql.GraphQLList):
            if not isinstance(value, list):
                self.problems.append(f"{path}: {value!r} is not a list")
                return
            for index, item in enumerate(value):
                self.value(type_.of_type, selection_set, item, f"{path}[{index}]")
        elif isinstance(type_, graphql.GraphQLEnumType):
            if value not in type_.values:
                self.problems.append(f"{path}: {value!r} is not a value of {type_.name}")
        elif isinstance(type_, graphql.GraphQLScalarType):
            check = _SCALAR_CHECKS.get(type_.name)
            if check is not None and not check(value):
                self.problems.append(f"{path}: {value!r} is not a {type_.name}")
        else:
            assert selection_set is not None, path
            self.object(type_, selection_set, value, path)


def conformance_problems(schema: graphql.GraphQLSchema, query: str, payload: dict) -> list[str]:
    data = payload.get("data")
    if data is None:
        return []
    document = graphql.parse(query)
    [operation] = [d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)]
    return Conformance(schema, document, strict_nulls=not payload.get("errors")).operation(operation, data)


def leaks(payload_text: str, sent: str, other: Seeded) -> list[str]:
    found = [other.marker] if other.marker.lower() in payload_text.lower() else []
    return found + sorted(i for i in other.all_ids() if i in payload_text and i not in sent)


# -- the run -------------------------------------------------------------------------------------------------------


class Fuzz:
    def __init__(self, own: Seeded, other: Seeded, port: int) -> None:
        self.own = own
        self.other = other
        self.port = port
        self.failures: list[str] = []
        self.calls = 0
        self.statuses: dict[str, int] = {}
        # ids of both organizations, mostly the caller's own so that mutations get past their lookups (not those of
        # the users whose tokens the run uses: they stay active and keep their roles), or garbage
        ours = st.sampled_from(sorted(own.all_ids() - set(own.users.values())))
        theirs = st.sampled_from(sorted(other.all_ids()))
        self.ids = st.one_of(ours, ours, ours, theirs, st.text(max_size=40)).map(nodes.String)

    def run(self, app: Any) -> None:
        # Upload: a file given as a plain value, which is refused (real files come in multipart requests: test_uploads)
        upload = st.text(max_size=20).map(nodes.String)
        with custom_scalars({"ID": self.ids, "JSON": JSON_VALUES.map(_json_node), "Upload": upload}):
            schema = schemathesis.graphql.from_asgi("/graphql", app)
            try:
                client_schema = schema.client_schema
                for result in schema.get_all_operations():
                    operation = result.ok()
                    name = operation.definition.field_name
                    if name in EXCLUDED:
                        continue
                    self.fuzz(operation, client_schema)
            finally:
                shutdown_lifespans()

    def fuzz(self, operation: Any, client_schema: graphql.GraphQLSchema) -> None:
        valid, invalid = operation.as_strategy(), operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)

        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=SEED is None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            print_blob=False,
        )
        @given(case=st.one_of(valid, valid, valid, invalid), role=st.sampled_from(ROLES))  # a quarter invalid
        def check(case: Any, role: str | None) -> None:
            self.check(case, role, client_schema)

        if SEED is not None:
            check = hypothesis.seed(int(SEED))(check)
        try:
            check()
        except Exception as exc:
            self.failures.append(f"{operation.label}: {exc}")

    def count(self, payload: Any) -> None:
        """Tally the outcomes: top-level error codes, userErrors codes, and answers without either ("ok")."""
        if not isinstance(payload, dict):
            return
        codes = [(e.get("extensions") or {}).get("code") or "uncoded" for e in payload.get("errors") or []]
        for value in (payload.get("data") or {}).values():
            if isinstance(value, dict):
                codes += [
                    f"userErrors.{e.get('code', '?')}" for e in value.get("userErrors") or [] if isinstance(e, dict)
                ]
        for code in codes or ["ok"]:
            self.statuses[code] = self.statuses.get(code, 0) + 1

    def check(self, case: Any, role: str | None, client_schema: graphql.GraphQLSchema) -> None:
        case.body = confine(case.body, self.port)
        headers = {"authorization": f"Bearer {self.own.tokens[role]}"} if role else {}
        response = case.call(headers=headers)
        self.calls += 1
        where = f"as {role or 'anonymous'}:\n{case.body}\n→ {response.status_code} {response.text[:2000]}"
        assert response.status_code < 500, f"a server error {where}"
        case.operation.validate_response(response, case=case)  # schemathesis' conformance check for GraphQL
        if case.meta is not None and case.meta.generation.mode.is_negative:
            case.operation.schema.evaluate_negative_data(case, response)  # an invalid operation is refused
        payload = response.json()
        assert isinstance(payload, dict) and ("data" in payload or "errors" in payload), f"not GraphQL {where}"
        self.count(payload)
        assert unhandled_errors(payload) == [], f"unhandled errors {where}"
        problems = conformance_problems(client_schema, case.body, payload)
        assert problems == [], f"an answer the schema does not allow ({problems}) {where}"
        shown = leaks(response.text, case.body, self.other)
        assert shown == [], f"another organization's data ({shown}) {where}"


async def test_fuzzed_operations_of_every_role_answer_within_the_schema(api: Api, settings: Settings) -> None:
    # given two organizations with an object of every type, a user of every role in the first, and the app
    port = closed_port()
    acme = await seed_organization(api, "acme", port=port)
    globex = await seed_organization(api, "globex", port=port)
    fuzz = Fuzz(acme, globex, port)

    # when every query field and mutation is called with generated operations, as each role and anonymously
    await asyncio.to_thread(fuzz.run, create_app(settings))

    # then no answer was a server error, an unhandled error, outside the schema or another organization's data
    assert fuzz.failures == [], "\n\n".join(fuzz.failures)
    # and the run reached the resolvers: it called every field, some calls did what they asked, others were refused
    assert fuzz.calls >= EXAMPLES * 40, fuzz.calls
    assert {"ok", "UNAUTHENTICATED", "FORBIDDEN", "userErrors.NOT_FOUND"} <= set(fuzz.statuses), fuzz.statuses


def test_confine_points_every_network_field_at_this_machine() -> None:
    # given an operation that would make the server connect to a host of the fuzzer's choosing
    query = (
        'mutation { integrationConfigure(input: {type: EXOTEL, baseUrl: "http://10.0.0.1:80"}) { __typename } '
        'emailAccountUpdate(input: {id: "x", imapHost: "example.com", imapPort: 993, smtpHost: null}) '
        "{ __typename } }"
    )
    # when it is confined
    confined = confine(query, 4242)
    # then every host, port and URL is the closed port on 127.0.0.1 (a null stays null)
    assert re.findall(r"(baseUrl|imapHost|imapPort|smtpHost): ([^,)}\s]+)", confined) == [
        ("baseUrl", '"http://127.0.0.1:4242"'),
        ("imapHost", '"127.0.0.1"'),
        ("imapPort", "4242"),
        ("smtpHost", "null"),
    ]


def test_the_checks_fail_the_answers_they_are_for() -> None:
    # given the served schema and an operation
    schema = build_schema(Settings())._schema
    query = '{ me { id role email } node(id: "x") { __typename ... on Thread { status } } }'
    good = {"me": {"id": "VXNlcjox", "role": "ADMIN", "email": "a@acme.test"}, "node": None}
    # then a correct answer passes
    assert conformance_problems(schema, query, {"data": good}) == []
    thread = {"__typename": "Thread", "status": "OPEN"}
    assert conformance_problems(schema, query, {"data": {**good, "node": thread}}) == []
    # and a value outside its type, a null for a non-null field, or an unselected field does not
    wrong = [
        {**good, "me": {**good["me"], "role": "OWNER"}},
        {**good, "me": {**good["me"], "id": 7}},
        {**good, "me": None},
        {**good, "me": {**good["me"], "password": "x"}},
        {**good, "node": {"__typename": "Thread", "status": "LOST"}},
        {**good, "node": {"__typename": "Banana"}},
    ]
    for data in wrong:
        assert conformance_problems(schema, query, {"data": data}) != [], data
    # and an error without a code from a resolver is unhandled; coded ones and validation errors are not
    assert unhandled_errors({"data": {"me": None}, "errors": [{"message": "boom", "path": ["me"]}]})
    assert unhandled_errors({"data": None, "errors": [{"message": f"{NON_NULL_MARKER} Query.me.", "path": ["me"]}]})
    coded = {"message": "No.", "path": ["me"], "extensions": {"code": "FORBIDDEN"}}
    assert unhandled_errors({"data": None, "errors": [coded]}) == []
    assert unhandled_errors({"errors": [{"message": "Cannot query field 'x' on type 'Query'."}]}) == []
