"""The IDOR matrix: every query field and mutation that takes an id, called by an ADMIN of one organization with
the ids of another organization's objects. Generated from the running schema's introspection, so a new field or
input with an id is covered without touching this file — and the matrix fails (it does not skip) when it cannot
tell which type such a new id refers to (add the field to ID_TYPE_EXCEPTIONS then).

Each call must come back empty (null, [], an empty connection) or refused (NOT_FOUND in `userErrors`, naming the
argument; FORBIDDEN), never with the other organization's data (its name or an id of its that the request did
not send), and after all of them the other organization's rows are exactly as they were.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import graphql
import orjson
import pytest
from sqlalchemy import text

from banxway.db.models import Base
from banxway.db.session import system_session
from banxway.settings import Settings
from banxway.state import AppState
from tests.conftest import Api
from tests.inbox_helpers import Inbox
from tests.live_helpers import RECEIVE_TIMEOUT, GraphQLSocket, uvicorn_server
from tests.seed_helpers import Seeded, seed_organization

# An id argument's type is read from its name: `threadId` → Thread, `mentionedUserIds` → User (the longest type
# name it ends with); an `id`/`ids` from its field's name: `customerUpdate(input: {id})` → Customer (the longest
# type name the field's name starts with). These say what the names do not.
ID_TYPE_BY_ARGUMENT = {
    "assigneeId": "User",
    "reassignToId": "User",
    "memberIds": "User",
    "actorId": "User",
    "instanceId": "WorkflowInstance",
    "sessionId": "ComposeSession",
    "suggestionId": "ShipmentSuggestion",
    "connectionId": "AgentConnection",
    "endpointId": "WebhookEndpoint",
    "agentId": "User",  # analyticsThreads(bucket: {agentId})
}
ID_TYPE_EXCEPTIONS = {
    # EmailAccountIdInput is shared with the account's mutations; this one takes a quarantined mail's id
    ("Mutation.emailQuarantineReprocess", "input.id"): "QuarantinedEmail",
}
# Fields that fetch any node: they are called with an id of every type.
ANY_NODE = {("Query.node", "id"), ("Query.nodes", "ids")}

# Values where a generated one ("x", 1, an enum's first value, only the required fields) would be refused before
# the id is looked at, so that the NOT_FOUND the matrix expects is about the id: by field name, and optional
# fields added to an input.
PLAUSIBLE = {"agentNumber": "+912250009999"}
PLAUSIBLE_EXTRA = {"ShipmentMilestoneAddInput": {"plannedAt": "2026-01-02T03:04:05+00:00"}}
# Optional fields an input needs all the same (one of two names, the other deprecated): sent with our own object.
ALWAYS_SENT = {"ThreadUpdateInput": ("threadId",)}
ALLOWED_TOP_LEVEL_CODES = {"NOT_FOUND", "FORBIDDEN", "BAD_USER_INPUT"}

INTROSPECTION = graphql.get_introspection_query(descriptions=False)
THREAD_TYPING = """
mutation($input: ThreadTypingInput!) { threadTyping(input: $input) { userErrors { code } } }
"""


@dataclass(frozen=True)
class IdArgument:
    """One id-taking place of a root field: `Mutation.threadAssign`, `input.assigneeId`, the type it refers to."""

    root: str
    field: str
    path: tuple[str, ...]
    type_name: str | None

    @property
    def key(self) -> tuple[str, str]:
        return (f"{self.root}.{self.field}", ".".join(self.path))

    def __str__(self) -> str:
        return f"{self.root}.{self.field}({'.'.join(self.path)})"


def _named(type_: Any) -> Any:
    return graphql.get_named_type(type_)


def _is_id(type_: Any) -> bool:
    named = _named(type_)
    return isinstance(named, graphql.GraphQLScalarType) and named.name == "ID"


def _id_paths(type_: Any, path: tuple[str, ...], seen: frozenset[str] = frozenset()) -> Iterator[tuple[str, ...]]:
    named = _named(type_)
    if _is_id(named):
        yield path
    elif isinstance(named, graphql.GraphQLInputObjectType) and named.name not in seen:
        for name, field in named.fields.items():
            yield from _id_paths(field.type, (*path, name), seen | {named.name})


def id_types(schema: graphql.GraphQLSchema) -> set[str]:
    """The object types that have an id of their own."""
    return {
        name
        for name, type_ in schema.type_map.items()
        if isinstance(type_, graphql.GraphQLObjectType) and not name.startswith("__") and "id" in type_.fields
    }


def _type_of(root: str, field: str, path: tuple[str, ...], types: set[str]) -> str | None:
    if (f"{root}.{field}", ".".join(path)) in ID_TYPE_EXCEPTIONS:
        return ID_TYPE_EXCEPTIONS[(f"{root}.{field}", ".".join(path))]
    name = path[-1]
    if name in ID_TYPE_BY_ARGUMENT:
        return ID_TYPE_BY_ARGUMENT[name]
    if name in ("id", "ids"):
        candidates = [t for t in types if field.lower().startswith(t.lower())]
    else:
        stem = re.sub(r"Ids?$", "", name)
        if stem == name:
            return None
        candidates = [t for t in types if stem.lower().endswith(t.lower())]
    return max(candidates, key=len) if candidates else None


def _roots(schema: graphql.GraphQLSchema) -> dict[str, graphql.GraphQLObjectType]:
    return {root.name: root for root in (schema.query_type, schema.mutation_type, schema.subscription_type) if root}


def id_arguments(schema: graphql.GraphQLSchema, roots: tuple[str, ...] = ("Query", "Mutation")) -> list[IdArgument]:
    """Every place an id goes into a root field of `roots`, with the type it refers to (None: unknown)."""
    types = id_types(schema)
    found = []
    for root in (_roots(schema)[name] for name in roots):
        for field_name, field in root.fields.items():
            for arg_name, arg in field.args.items():
                for path in _id_paths(arg.type, (arg_name,)):
                    any_node = (f"{root.name}.{field_name}", ".".join(path)) in ANY_NODE
                    type_name = None if any_node else _type_of(root.name, field_name, path, types)
                    found.append(IdArgument(root.name, field_name, path, type_name))
    return found


# -- building a call ------------------------------------------------------------------------------------------

_SCALARS: dict[str, Any] = {
    "String": "x",
    "Int": 1,
    "Float": 1.0,
    "Boolean": False,
    "DateTime": "2026-01-02T03:04:05+00:00",
    "Date": "2026-01-02",
    "JSON": {},
}


def _value(type_: Any, name: str, path: tuple[str, ...], target: tuple[str, ...], ids: dict[str, Any]) -> Any:
    """A value of `type_` for the argument at `path`: the foreign id(s) at `target`, else a plausible value."""
    if isinstance(type_, graphql.GraphQLNonNull):
        return _value(type_.of_type, name, path, target, ids)
    if isinstance(type_, graphql.GraphQLList):
        inner = _value(type_.of_type, name, path, target, ids)
        return inner if isinstance(inner, list) else [inner]
    if path == target:
        return ids["target"]
    if isinstance(type_, graphql.GraphQLInputObjectType):
        values = {}
        for field_name, field in type_.fields.items():
            field_path = (*path, field_name)
            on_target = target[: len(field_path)] == field_path
            required = graphql.is_non_null_type(field.type) and field.default_value is graphql.Undefined
            if on_target or required or field_name in ALWAYS_SENT.get(type_.name, ()):
                values[field_name] = _value(field.type, field_name, field_path, target, ids)
        return {**PLAUSIBLE_EXTRA.get(type_.name, {}), **values}
    if isinstance(type_, graphql.GraphQLEnumType):
        if name in PLAUSIBLE and PLAUSIBLE[name] in type_.values:
            return PLAUSIBLE[name]
        return next(iter(type_.values))
    if type_.name == "ID":
        return ids["own"](path)
    if name in PLAUSIBLE:
        return PLAUSIBLE[name]
    return _SCALARS[type_.name]


def _selection(type_: Any, depth: int) -> str:
    """Every field of `type_` that takes no required argument, objects `depth` levels down."""
    named = _named(type_)
    if isinstance(named, (graphql.GraphQLScalarType, graphql.GraphQLEnumType)):
        return ""
    if isinstance(named, graphql.GraphQLUnionType):
        return "{ __typename }"
    parts = ["__typename"]
    for name, field in named.fields.items():
        if any(graphql.is_non_null_type(a.type) and a.default_value is graphql.Undefined for a in field.args.values()):
            continue
        inner = _named(field.type)
        if isinstance(inner, (graphql.GraphQLScalarType, graphql.GraphQLEnumType)):
            parts.append(name)
        elif depth > 0:
            parts.append(f"{name} {_selection(inner, depth - 1)}")
    return "{ " + " ".join(parts) + " }"


def document(root: graphql.GraphQLObjectType, field_name: str) -> str:
    field = root.fields[field_name]
    definitions = ", ".join(f"${name}: {arg.type}" for name, arg in field.args.items())
    arguments = ", ".join(f"{name}: ${name}" for name in field.args)
    operation = root.name.lower()
    head = f"{operation} Matrix({definitions})" if definitions else f"{operation} Matrix"
    call = f"{field_name}({arguments})" if arguments else field_name
    return f"{head} {{ {call} {_selection(field.type, 3)} }}"


def variables(
    root: graphql.GraphQLObjectType, argument: IdArgument, foreign: Any, own: Seeded, schema_types: set[str]
) -> dict[str, Any]:
    """The arguments of a call that sends `foreign` at the argument's path, and the caller's own objects (or a
    plausible value) in every other required place."""
    field = root.fields[argument.field]

    def own_id(path: tuple[str, ...]) -> str:
        type_name = _type_of(root.name, argument.field, path, schema_types)
        assert type_name in own.ids, f"{argument}: no object of our own for the id at {'.'.join(path)}"
        return own.one(type_name)

    ids = {"target": foreign, "own": own_id}
    values = {}
    for name, arg in field.args.items():
        on_target = argument.path[0] == name
        required = graphql.is_non_null_type(arg.type) and arg.default_value is graphql.Undefined
        if on_target or required:
            values[name] = _value(arg.type, name, (name,), argument.path, ids)
    return values


def _leaf_type(root: graphql.GraphQLObjectType, argument: IdArgument) -> Any:
    """The declared type at the argument's path (`[ID!]!` for `ids`, `ID` for `assigneeId`)."""
    type_: Any = root.fields[argument.field].args[argument.path[0]].type
    for name in argument.path[1:]:
        type_ = _named(type_).fields[name].type
    return type_


# -- judging an answer ----------------------------------------------------------------------------------------


def _empty(value: Any) -> bool:
    """Nothing in it: null, false, "", 0, an empty list, a list of nothing, or a connection without edges."""
    if value is None or (isinstance(value, (bool, str, int, float)) and not value):
        return True
    if isinstance(value, list):
        return all(_empty(item) for item in value)
    if isinstance(value, dict) and "edges" in value:
        return value["edges"] == [] and value.get("totalCount", 0) == 0
    return False


def _leaks(answer: dict, request: dict, foreign: Seeded) -> list[str]:
    """Signs of the other organization in an answer: its name, or an id of its that the request did not send."""
    answered = orjson.dumps(answer).decode()
    sent = orjson.dumps(request).decode()
    found = [foreign.marker] if foreign.marker.lower() in answered.lower() else []
    return found + sorted(i for i in foreign.all_ids() if i in answered and i not in sent)


def _field_names(field: list[str] | None) -> tuple[str, ...]:
    return tuple(part for part in field or [] if not part.isdigit())


def refusal(argument: IdArgument, answer: dict) -> str | None:
    """Why an answer to a call with another organization's id is not an acceptable refusal, or None."""
    errors = answer.get("errors") or []
    codes = {(error.get("extensions") or {}).get("code") for error in errors}
    data = (answer.get("data") or {}).get(argument.field)
    if errors:
        if not codes <= ALLOWED_TOP_LEVEL_CODES:
            return f"errors without an expected code: {errors}"
        return None if data is None else f"errors, and data beside them: {data}"
    if argument.root == "Query":
        return None if _empty(data) else f"an answer with data: {data}"
    # a mutation: refused in its userErrors, naming the argument, with nothing else in its payload
    assert isinstance(data, dict), answer
    user_errors = data.pop("userErrors", None) or []
    others = {name: value for name, value in data.items() if not _empty(value) and name != "__typename"}
    if not user_errors:
        return None if not others else f"a success: {data}"
    if others:
        return f"userErrors, and data beside them: {others}"
    expected = _field_names(list(argument.path[1:]) if len(argument.path) > 1 else list(argument.path))
    named = {(error["code"], _field_names(error["field"])) for error in user_errors}
    if ("NOT_FOUND", expected) in named or any(code == "FORBIDDEN" for code, _ in named):
        return None
    return f"userErrors that do not say {'.'.join(expected)} was not found: {user_errors}"


# -- the other organization's rows ----------------------------------------------------------------------------


async def snapshot(api: Api, organization: Seeded) -> dict[str, list[Any]]:
    """Every row of the organization, table by table (every tenant table has organization_id)."""
    rows: dict[str, list[Any]] = {}
    async with system_session(api.state.sessionmaker) as session:
        for table in Base.metadata.sorted_tables:
            column = "id" if table.name == "organizations" else "organization_id"
            if column not in table.columns:
                continue
            result = await session.execute(
                text(f'SELECT * FROM "{table.name}" WHERE {column} = :org ORDER BY 1'), {"org": organization.org.id}
            )
            rows[table.name] = [tuple(row) for row in result]
    return rows


# -- the tests ----------------------------------------------------------------------------------------------


@pytest.fixture
async def schema(api: Api) -> graphql.GraphQLSchema:
    result = await api.gql(INTROSPECTION)
    assert "errors" not in result, result
    return graphql.build_client_schema(result["data"])


@pytest.fixture
async def orgs(api: Api) -> tuple[Seeded, Seeded]:
    return await seed_organization(api, "acme"), await seed_organization(api, "globex")


def test_every_id_argument_names_a_type_the_matrix_can_build(schema: graphql.GraphQLSchema) -> None:
    # given every place an id goes into a query field, a mutation or a subscription
    arguments = id_arguments(schema, ("Query", "Mutation", "Subscription"))
    # then the matrix knows the type of each (a new one that it cannot tell fails here: add it to ID_TYPE_EXCEPTIONS)
    unknown = [str(a) for a in arguments if a.key not in ANY_NODE and a.type_name is None]
    assert unknown == [], f"id arguments of unknown type: {unknown}"
    # and it covers the fields one expects, inside inputs and lists too
    keys = {a.key for a in arguments}
    assert {
        ("Query.thread", "id"),
        ("Query.nodes", "ids"),
        ("Query.threads", "filter.customerId"),
        ("Mutation.threadAssign", "input.assigneeId"),
        ("Mutation.noteAdd", "input.mentionedUserIds"),
        ("Mutation.noteUpdate", "input.noteId"),
        ("Mutation.noteDelete", "input.noteId"),
        ("Mutation.threadUpdate", "input.threadId"),
        ("Mutation.notificationMarkRead", "input.ids"),
        ("Subscription.threadEvents", "threadId"),
    } <= keys


async def test_another_organizations_ids_read_and_change_nothing(
    api: Api, schema: graphql.GraphQLSchema, orgs: tuple[Seeded, Seeded]
) -> None:
    # given two organizations with an object of every type, and an admin of the first
    acme, globex = orgs
    types = id_types(schema)
    arguments = id_arguments(schema)
    missing = sorted({a.type_name for a in arguments if a.type_name and a.type_name not in globex.ids})
    assert missing == [], f"the seed has no object of {missing}: add one to tests/seed_helpers.py"
    assert set(globex.ids) >= types, f"types without a seeded object: {types - set(globex.ids)}"
    before = await snapshot(api, globex)

    # when the admin calls every id-taking field with the other organization's ids
    failures: list[str] = []
    calls = 0
    for argument in arguments:
        root = _roots(schema)[argument.root]
        is_list = graphql.is_list_type(graphql.get_nullable_type(_leaf_type(root, argument)))
        if argument.key in ANY_NODE:  # an id of every type, one by one
            sent_values: list[Any] = [i for t in sorted(globex.ids) for i in globex.ids[t]]
        else:  # all of the type's ids where the argument takes a list, else the first
            ids = globex.ids[argument.type_name or ""]
            sent_values = [ids if is_list else ids[0]]
        for sent in sent_values:
            request = {
                "query": document(root, argument.field),
                "variables": variables(root, argument, sent, acme, types),
            }
            answer = await api.gql(request["query"], request["variables"], token=acme.tokens["ADMIN"])
            calls += 1
            # then nothing of the other organization comes back, and the call is refused or finds nothing
            leaks = _leaks(answer, request, globex)
            if leaks:
                failures.append(f"{argument} with {sent}: the answer shows {leaks}: {answer}")
                continue
            reason = refusal(argument, answer)
            if reason is not None:
                failures.append(f"{argument} with {sent}: {reason}")
    assert failures == [], "\n".join(failures)
    assert calls >= len(arguments)
    # and the other organization's rows are exactly as they were
    after = await snapshot(api, globex)
    changed = {table: (before[table], after[table]) for table in before if before[table] != after[table]}
    assert changed == {}, changed


async def test_another_organizations_ids_open_no_subscription(
    api: Api, settings: Settings, state: AppState, schema: graphql.GraphQLSchema, orgs: tuple[Seeded, Seeded]
) -> None:
    # given two organizations, an admin of the first on a WebSocket, and every subscription that takes an id
    acme, globex = orgs
    root = _roots(schema)["Subscription"]
    arguments = id_arguments(schema, ("Subscription",))
    assert arguments, "no subscription takes an id"
    failures: list[str] = []
    async with uvicorn_server(settings, state) as url, GraphQLSocket.open(url) as socket:
        await socket.init(acme.tokens["ADMIN"])
        sent = {}
        for n, argument in enumerate(arguments):
            # when it subscribes with the other organization's id
            query = document(root, argument.field)
            sent[str(n)] = {
                "query": query,
                "variables": variables(root, argument, globex.one(argument.type_name or ""), acme, id_types(schema)),
            }
            await socket.subscribe(str(n), query, sent[str(n)]["variables"])
        # then each subscription is refused at once (an error, then at most its completion)
        answers = await _drain(socket, expected=set(sent))
        for n, argument in enumerate(arguments):
            first, *rest = answers.get(str(n)) or [{"type": "nothing"}]
            if first["type"] not in ("error", "next") or (
                first["type"] == "next" and not first["payload"].get("errors")
            ):
                failures.append(f"{argument}: not refused: {first}")
            elif leaks := _leaks(first, sent[str(n)], globex):
                failures.append(f"{argument}: the refusal shows {leaks}: {first}")
            if [m["type"] for m in rest] not in ([], ["complete"]):
                failures.append(f"{argument}: after the refusal: {rest}")
        # and the other organization's activity on those objects reaches nobody here
        inbox = Inbox(api, globex.org, globex.tokens["ADMIN"])
        await inbox.send(globex.one("Thread"), "Globex, after the subscriptions")
        await inbox.gql(THREAD_TYPING, {"input": {"threadId": globex.one("Thread"), "isTyping": True}})
        later = await _drain(socket)
        if later:
            failures.append(f"messages after the refusals: {later}")
    assert failures == [], "\n".join(failures)


async def _drain(socket: GraphQLSocket, expected: set[str] = frozenset(), quiet: float = 1.0) -> dict[str, list[dict]]:
    """The messages, by operation id, that come until each `expected` operation has answered and then the socket
    has been quiet for `quiet` seconds."""
    messages: dict[str, list[dict]] = {}
    while True:
        waiting = expected - set(messages)
        try:
            message = await socket.receive(within=RECEIVE_TIMEOUT if waiting else quiet)
        except TimeoutError:
            if waiting:
                raise AssertionError(f"no answer to operations {sorted(waiting)}") from None
            return messages
        messages.setdefault(message.get("id", ""), []).append(message)
