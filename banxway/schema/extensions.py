"""Schema extensions: error codes, session clean-up, limits, caches, masking."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from functools import partial
from typing import Any

from graphql import FieldNode, GraphQLError, ValidationRule, get_named_type, is_introspection_type
from graphql.language import SKIP
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    max_aliases,
    query_depth_limiter,
)
from strawberry.schema.schema import validate_document

from banxway.errors import AuthenticationRequired, DevelopmentOnly, DomainError, PermissionDenied
from banxway.schema.complexity import expanded_fields
from banxway.schema.persisted import PersistedOperations, persisted_queries
from banxway.settings import Settings

_CODED = (AuthenticationRequired, PermissionDenied, DevelopmentOnly)
PUBLIC_CODES = {"UNAUTHENTICATED", "FORBIDDEN", "BAD_USER_INPUT", "DEVELOPMENT_ONLY"}


class ErrorCodes(SchemaExtension):
    """Give expected failures of queries an `extensions.code`: UNAUTHENTICATED, FORBIDDEN, DEVELOPMENT_ONLY (a
    development tool asked for in production), or BAD_USER_INPUT (with the reason and field) for bad arguments
    such as a forged cursor."""

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or []:
            original = error.original_error
            if isinstance(original, _CODED):
                error.extensions = {**(error.extensions or {}), "code": original.code}
            elif isinstance(original, DomainError):
                extra = {"code": "BAD_USER_INPUT", "reason": original.code, "field": original.field}
                error.extensions = {**(error.extensions or {}), **extra}


class CloseSession(SchemaExtension):
    """Close the operation's database session when it ends."""

    async def on_operation(self):  # type: ignore[override]
        yield
        close = getattr(self.execution_context.context, "aclose", None)
        if close is not None:
            await close()


class ValidationCache(SchemaExtension):
    """Validation results by the query's text and the rules, shared by every operation of the process.

    Strawberry's ValidationCache keys its LRU by the parsed document, whose dataclass `__hash__` walks the
    whole syntax tree on every request (~1 ms for the inbox query, most of the request's validation cost);
    the text of the query says the same and hashes in microseconds.

    Before any rule runs, the operation's size with its fragments expanded is counted in linear time
    (`complexity.expanded_fields`); past `max_fields` the operation is refused without validating it (the rules
    walk a fragment again at every spread: exponential in nested spreads)."""

    _results: OrderedDict[tuple[str, int, tuple[int, ...]], list[GraphQLError]] = OrderedDict()

    def __init__(self, *, maxsize: int = 1024, max_fields: int = 2000) -> None:
        super().__init__()
        self.maxsize = maxsize
        self.max_fields = max_fields

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            key = (context.query or "", self.max_fields, tuple(map(id, context.validation_rules)))
            errors = self._results.get(key) if context.query is not None else None
            if errors is None:
                errors = self._validate(context.schema._schema, document, context.validation_rules)
                if context.query is not None:
                    self._results[key] = errors
                    if len(self._results) > self.maxsize:
                        self._results.popitem(last=False)
            context.pre_execution_errors = errors
        yield

    def _validate(self, schema: Any, document: Any, rules: Any) -> list[GraphQLError]:
        fields = expanded_fields(document, self.max_fields)
        if fields > self.max_fields:
            message = (
                f"The operation selects more than {self.max_fields} fields once its fragments are expanded; "
                "select less or split it (BANXWAY_GRAPHQL_MAX_FIELDS)."
            )
            return [GraphQLError(message, extensions={"code": "QUERY_TOO_COMPLEX"})]
        return validate_document(schema, document, rules)


class NoNulCharacters(SchemaExtension):
    """Text may not hold NUL (U+0000): PostgreSQL's text and jsonb cannot store it. An operation whose variables or
    string literals carry one is refused as BAD_USER_INPUT naming where it is, before it runs."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        where = _nul_in(context.variables or {}, "$")
        if where is None and context.query is not None and "\\u0000" in context.query:
            where = "a string in the document"
        if where is not None:
            error = GraphQLError(
                f"{where} contains a NUL character (\\u0000), which text may not hold.",
                extensions={"code": "BAD_USER_INPUT", "reason": "INVALID", "field": where.lstrip("$")},
            )
            context.pre_execution_errors = [*(context.pre_execution_errors or []), error]
        yield


def _nul_in(value: Any, path: str) -> str | None:
    """The path of the first string holding a NUL in `value` (variables), or None."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return at
        elif isinstance(item, dict):
            stack.extend((child, f"{at}.{key}" if at != "$" else f"${key}") for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, f"{at}[{index}]") for index, child in enumerate(item))
    return None


class IntrospectionDisabled(ValidationRule):
    """`__schema` and `__type` are refused (BANXWAY_GRAPHQL_INTROSPECTION=false); `__typename` stays. One error per
    introspection field, naming it; what it selects below is not looked at."""

    def enter_field(self, node: FieldNode, *_args: Any) -> Any:
        named = get_named_type(self.context.get_type())
        if named is not None and is_introspection_type(named):
            message = f"Introspection is disabled on this server: '{node.name.value}' cannot be queried."
            self.report_error(GraphQLError(message, node, extensions={"code": "INTROSPECTION_DISABLED"}))
            return SKIP
        return None


_SUGGESTION = re.compile(r" Did you mean [^?]*\?")


class HideSuggestions(SchemaExtension):
    """Remove graphql-core's "Did you mean 'x'?" from error messages (BANXWAY_GRAPHQL_SUGGESTIONS=false): they
    spell out the schema's field, argument, type and enum names to a client that may not introspect it. Validation
    errors (unknown fields, arguments, types) and execution errors (variables naming unknown input fields or enum
    values) alike; the errors are copied, never changed in place (validation results are cached and shared).
    Listed after ValidationCache: its errors are set before this hook is entered (Strawberry answers them before
    the hooks are left)."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.pre_execution_errors:
            context.pre_execution_errors = [_without_suggestion(error) for error in context.pre_execution_errors]
        yield

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [_without_suggestion(error) for error in errors]  # type: ignore[union-attr]


def _without_suggestion(error: GraphQLError) -> GraphQLError:
    message = _SUGGESTION.sub("", error.message)
    if message == error.message:
        return error
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=error.extensions,
    )


def _should_mask(error: GraphQLError) -> bool:
    if error.original_error is None or not error.path:
        # syntax, validation and variable errors (before any field runs: no path) are the client's, safe to show
        return False
    return (error.extensions or {}).get("code") not in PUBLIC_CODES


def schema_extensions(settings: Settings) -> list:
    """Extension factories: a fresh instance per operation (the parser and validation caches are shared).
    The depth and alias rules are built once: the validation cache keys on the rule classes, and
    Strawberry's QueryDepthLimiter / MaxAliasesLimiter make new ones per operation (the cache never hit)."""
    rules = [
        query_depth_limiter.create_validator(settings.graphql_max_depth, None, None),
        max_aliases.create_validator(settings.graphql_max_aliases),
    ]
    if not settings.introspection_enabled:
        rules.append(IntrospectionDisabled)
    extensions: list = [
        CloseSession,
        partial(ParserCache, maxsize=1024),
        partial(ValidationCache, maxsize=1024, max_fields=settings.graphql_max_fields),
        partial(AddValidationRules, rules),
        partial(MaxTokensLimiter, max_token_count=settings.graphql_max_tokens),
        NoNulCharacters,
        persisted_queries(PersistedOperations.from_settings(settings)),  # after the validation extensions
    ]
    if not settings.suggestions_enabled:
        extensions.append(HideSuggestions)
    if settings.production:
        extensions.append(partial(MaskErrors, should_mask_error=_should_mask, error_message="Internal server error."))
    extensions.append(ErrorCodes)
    return extensions
