"""The compiled path: hot queries answered by one SQL statement that returns the response JSON.

`CompilingSchema` is the Strawberry schema with one change: once an operation has been parsed and validated
(with every extension: caches, depth, aliases, tokens), a query the compiler understands (`compiler.sql`) is
answered from one statement built for it, instead of field by field by graphql-core. Anything else — a field
it does not know, an error to report (no viewer, a bad cursor, a role without READ) — goes to the executor,
which stays the reference. `BANXWAY_GRAPHQL_COMPILED=verify` runs both and fails the operation when their
JSON differs (the test suite runs this way, so every query in it checks the compiled path).
"""

from __future__ import annotations

import enum
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import FragmentDefinitionNode, OperationDefinitionNode, OperationType
from graphql.execution.values import get_variable_values
from strawberry.types.execution import ExecutionResult

from banxway.compiler.sql import EXPECTED_FAILURES, ORGANIZATION, VIEWER, Compiler, Unsupported
from banxway.context import Context
from banxway.db.session import read
from banxway.logs import get_logger
from banxway.schema.persisted import PersistedQueryError, persisted_operations

log = get_logger("banxway.compiler")
COMPILED_HEADER = "banxway-compiled"


class CompiledMismatch(Exception):
    """verify mode: the compiled path's JSON differs from the executor's."""


class _Viewer(enum.Enum):
    """The places of a plan's parameters that are the viewer's (not strings: a user's text may read like a name)."""

    ORGANIZATION = ORGANIZATION
    USER = VIEWER


@dataclass(frozen=True)
class Plan:
    """A compiled operation: its SQL and parameters, the viewer's organization and id left to fill in."""

    sql: str
    parameters: tuple[Any, ...]
    owner: tuple[uuid.UUID, uuid.UUID] | None  # set when a value of one viewer is in the SQL itself

    def arguments(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> list[Any]:
        fill = {_Viewer.ORGANIZATION: organization_id, _Viewer.USER: user_id}
        return [fill[value] if isinstance(value, _Viewer) else value for value in self.parameters]


class CompilingSchema(strawberry.Schema):
    """A Strawberry schema that answers the queries it can compile with one SQL statement each."""

    def __init__(self, *args: Any, compiled: str = "on", plans: int = 1024, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.compiled = compiled
        self.plans: OrderedDict[tuple[Any, ...], Plan | None] = OrderedDict()  # None: not compilable
        self.max_plans = plans

    def _key(self, query: str | None, operation_name: str | None, variables: Any, viewer: Any) -> tuple | None:
        try:
            variables_key = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
            # the role and an API token's scopes (None for a session): what the viewer may do is the two together
            return (query, operation_name, variables_key, viewer.role, viewer.scopes)
        except TypeError:
            return None

    def _cached(self, key: tuple, viewer: Any) -> tuple[bool, Plan | None]:
        """(found, plan): a plan for the key that this viewer may run (None: the executor answers)."""
        if key not in self.plans:
            return False, None
        plan = self.plans[key]
        self.plans.move_to_end(key)
        if plan is None or plan.owner in (None, (viewer.organization_id, viewer.user_id)):
            return True, plan
        return False, None

    def plan(self, execution_context: Any, context: Context) -> Plan | None:
        """The operation's plan, from the cache or compiled now; None when the executor must answer.
        Plans are kept per (document, operation, variables, role, API token scopes): what the compiler reads of
        the viewer beyond those is a parameter, or makes the plan the viewer's own (`owner`)."""
        viewer = context.viewer_or_none
        if viewer is None:
            return None
        # the operation name as the request gave it (None for a document's only operation, named or not), as the
        # fast path in `execute` sees it: Strawberry's `operation_name` names the document's operation instead
        name = getattr(execution_context, "_provided_operation_name", execution_context.operation_name)
        key = self._key(execution_context.query, name, execution_context.variables, viewer)
        if key is None:
            return None
        found, plan = self._cached(key, viewer)
        if found:
            return plan
        plan = self._compile(execution_context, context, execution_context.variables or {})
        self.plans[key] = plan
        if len(self.plans) > self.max_plans:
            self.plans.popitem(last=False)
        return plan

    async def execute(  # type: ignore[override]
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Any | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> Any:
        """An operation compiled before for the same text, variables and role is answered at once: it was parsed,
        validated and its variables checked when it was compiled, and all of that depends on nothing else. Anything
        else takes Strawberry's way (`_execute_operation` below).

        The persisted-operations rules come first, as the `PersistedQueries` extension applies them: a hash stands
        for its query's text (APQ, the registered operations), and what they refuse (an unregistered operation in
        persisted-only mode, a hash that is not the text's) never takes the fast path."""
        viewer = getattr(context_value, "viewer_or_none", None)
        if self.compiled == "on" and viewer is not None:
            text, register = query, None
            operations = persisted_operations(self)
            if operations is not None:
                try:
                    resolved = await operations.resolve(query, operation_extensions, context_value)
                except PersistedQueryError:  # Strawberry's way answers the refusal
                    text = None
                else:
                    text, register = resolved.query, resolved.register
            key = self._key(text, operation_name, variable_values, viewer) if text is not None else None
            _, plan = self._cached(key, viewer) if key is not None else (False, None)
            if plan is not None:
                if operations is not None and register is not None and text is not None:  # compiled: it validated
                    await operations.register(register, text, context_value)
                data = await self.run_plan(plan, context_value, cached=True)
                return ExecutionResult(data=orjson.Fragment(data), errors=None)  # type: ignore[arg-type]
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )

    def _compile(self, execution_context: Any, context: Context, variables: dict[str, Any]) -> Plan | None:
        document = execution_context.graphql_document
        if document is None:
            return None
        operation: OperationDefinitionNode | None = None
        fragments: dict[str, FragmentDefinitionNode] = {}
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                fragments[definition.name.value] = definition
            elif isinstance(definition, OperationDefinitionNode):
                name = definition.name.value if definition.name else None
                if execution_context.operation_name in (None, name):
                    operation = definition
        if operation is None or operation.operation != OperationType.QUERY:
            return None
        coerced = get_variable_values(self._schema, operation.variable_definitions or (), variables)
        if isinstance(coerced, list):  # the executor reports them
            return None
        compiler = Compiler(self._schema, self, fragments, coerced, context)
        try:
            statement = compiler.operation(self._schema.query_type, operation.selection_set)  # type: ignore[arg-type]
        except EXPECTED_FAILURES as exc:
            if isinstance(exc, Unsupported):
                log.debug("not compiled", reason=str(exc))
            return None
        compiled = statement.compile(dialect=context.state.engine.dialect, compile_kwargs={"render_postcompile": True})
        values = compiled.construct_params()
        processors = compiled._bind_processors
        parameters: list[Any] = []
        viewer = context.viewer
        owner = None
        for name in compiled.positiontup or ():
            if name in (ORGANIZATION, VIEWER):
                parameters.append(_Viewer(name))
                continue
            value = values[name]
            if value in (viewer.organization_id, viewer.user_id, str(viewer.user_id)):
                owner = (viewer.organization_id, viewer.user_id)
            processor = processors.get(name)
            if processor is not None:
                value = processor(value)
            elif isinstance(value, enum.Enum):  # an expanded IN list's items (stored by value, see db/models.py)
                value = value.value
            parameters.append(value)
        return Plan(compiled.string, tuple(parameters), owner)

    async def compiled_data(self, execution_context: Any) -> str | None:
        """The operation's `data` as JSON text from one statement, or None when the executor must answer."""
        context = execution_context.context
        if not isinstance(context, Context):
            return None
        plan = self.plan(execution_context, context)
        return await self.run_plan(plan, context) if plan is not None else None

    async def run_plan(self, plan: Plan, context: Context, *, cached: bool = False) -> str:
        """The plan's JSON for the context's viewer. The response header says which path answered: `cached` (the
        plan of an earlier request, before Strawberry's way), `yes` (compiled in Strawberry's way), `verified`."""
        viewer = context.viewer
        arguments = tuple(plan.arguments(viewer.organization_id, viewer.user_id))
        text = (await read(context.state.reads, plan.sql, arguments))[0]
        headers = getattr(context.response, "headers", None)
        if headers is not None:  # says which path answered (tests, benchmarks, debugging)
            headers[COMPILED_HEADER] = "verified" if self.compiled == "verify" else "cached" if cached else "yes"
        return text

    async def _execute_operation(self, execution_context: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Strawberry runs this after parsing and validation; a result already set is returned as it is."""
        if self.compiled == "off" or execution_context.result:
            return await super()._execute_operation(execution_context, *args, **kwargs)
        text = await self.compiled_data(execution_context)
        if text is not None and self.compiled == "on":
            # the JSON goes into the response as it came from PostgreSQL (orjson writes a Fragment verbatim)
            execution_context.result = GraphQLExecutionResult(data=orjson.Fragment(text), errors=None)  # type: ignore[arg-type]
            return await super()._execute_operation(execution_context, *args, **kwargs)
        result = await super()._execute_operation(execution_context, *args, **kwargs)
        if text is not None:
            data = orjson.loads(text)
            expected = orjson.dumps(result.data) if not result.errors else b"errors"
            if orjson.dumps(data) != expected:
                log.error("compiled path differs", query=execution_context.query, compiled=data, executor=result.data)
                raise CompiledMismatch(
                    f"the compiled path answered {orjson.dumps(data)[:2000]!r}, the executor {expected[:2000]!r}"
                )
        return result


__all__ = ["COMPILED_HEADER", "CompiledMismatch", "CompilingSchema", "Unsupported"]
