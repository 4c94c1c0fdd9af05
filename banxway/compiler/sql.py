"""A validated query operation as one SQL statement that builds the response's `data` as JSON in PostgreSQL.

The mapping is the schema's own: each object type maps onto one SQLAlchemy model (`model_of`, from its
`is_type_of`), a field onto the column of its snake-case name, a field that returns a mapped object onto the
many-to-one foreign key `<name>_id`, `id` onto the Relay global id. Fields with their own meaning (`unreadCount`,
connections, root lists) have a builder here that reads the same use-case code as the executor: the threads
filter and ordering (`threads_query`, `ORDERINGS`) and the keyset window (`keyset_window`). Every table read
carries the viewer's organization as a predicate, and the root's permission is checked by that use-case code.

Anything the compiler does not know raises `Unsupported`, and the executor answers the operation instead: a
field with a resolver of its own, an argument it does not read, a directive other than @skip/@include.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLIncludeDirective,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql.execution.values import VariableValues, get_argument_values, get_directive_values
from sqlalchemy import (
    ARRAY,
    JSON,
    BindParameter,
    Boolean,
    DateTime,
    Enum,
    Float,
    Integer,
    String,
    Text,
    bindparam,
    case,
    cast,
    false,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import JSONB, UUID, aggregate_order_by
from sqlalchemy.sql import ColumnElement, FromClause, Select
from strawberry.types.arguments import convert_arguments

from banxway.auth import Permission
from banxway.context import Context
from banxway.db.models import Message, Organization, Thread, ThreadRead
from banxway.errors import AuthenticationRequired, DomainError, PermissionDenied
from banxway.resolvers.customers import CUSTOMER_ORDER, customers_query
from banxway.resolvers.pagination import Window, keyset_window
from banxway.resolvers.shipments import SHIPMENT_ORDER, shipments_query
from banxway.resolvers.threads import ORDERINGS, threads_query
from banxway.schema.ids import local_id
from banxway.schema.nodes import model_of
from banxway.schema.shipments import shipment_filter
from banxway.schema.threads import thread_filter

_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
MAX_FIELDS = 50  # json_build_object takes at most 100 arguments
ORGANIZATION, VIEWER = "bx_organization", "bx_viewer"  # the parameters of a plan that are not in the operation


class Unsupported(Exception):
    """The operation has something the compiler does not translate."""


def _text(value: str) -> ColumnElement[Any]:
    """A GraphQL name or type name as an SQL string constant (names are [_A-Za-z][_0-9A-Za-z]*)."""
    if not _NAME.match(value):
        raise Unsupported(value)
    return literal_column(f"'{value}'", Text)


def _unwrap(gtype: Any) -> tuple[Any, bool]:
    """The named type under NonNull, and whether it is a list (of a named type)."""
    if isinstance(gtype, GraphQLNonNull):
        gtype = gtype.of_type
    if isinstance(gtype, GraphQLList):
        inner = gtype.of_type
        if isinstance(inner, GraphQLNonNull):
            inner = inner.of_type
        if isinstance(inner, GraphQLList):
            raise Unsupported("nested list")
        return inner, True
    return gtype, False


def iso_datetime(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A timestamptz as Python's `isoformat()` of the UTC datetime: six fraction digits, none when they are zero."""
    text = func.to_char(func.timezone("UTC", value), literal_column("'YYYY-MM-DD\"T\"HH24:MI:SS.US'"))
    return func.replace(text, literal_column("'.000000'"), literal_column("''"), type_=Text) + literal_column(
        "'+00:00'"
    )


def global_id(type_name: str, id_column: ColumnElement[Any]) -> ColumnElement[Any]:
    """base64("Type:uuid"), as `to_global_id`."""
    _text(type_name)
    raw = func.convert_to(literal_column(f"'{type_name}:'", Text) + cast(id_column, Text), literal_column("'UTF8'"))
    return func.replace(func.encode(raw, literal_column("'base64'")), literal_column("E'\\n'"), literal_column("''"))


def _json_string(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return cast(func.to_json(value), Text)


def cursor(values: list[tuple[ColumnElement[Any], Any]]) -> ColumnElement[Any]:
    """The opaque cursor of `encode_cursor`: url-safe base64, unpadded, of the compact JSON of the sort key
    (a datetime as {"t": isoformat}, a uuid as {"u": text})."""
    parts: list[Any] = [literal_column("'['")]
    for index, (value, sql_type) in enumerate(values):
        if index:
            parts.append(literal_column("','"))
        if isinstance(sql_type, DateTime):
            parts.append(literal_column("'{\"t\":'") + _json_string(iso_datetime(value)) + literal_column("'}'"))
        elif isinstance(sql_type, UUID):
            parts.append(literal_column("'{\"u\":'") + _json_string(cast(value, Text)) + literal_column("'}'"))
        elif isinstance(sql_type, (Enum, String)):
            parts.append(_json_string(cast(value, Text)))
        elif isinstance(sql_type, Integer):
            parts.append(cast(value, Text))
        else:
            raise Unsupported(f"cursor of {sql_type}")
    parts.append(literal_column("']'"))
    text = parts[0]
    for part in parts[1:]:
        text = text + part
    raw = func.encode(func.convert_to(text, literal_column("'UTF8'")), literal_column("'base64'"))
    return func.rtrim(func.translate(raw, literal_column("E'+/\\n'"), literal_column("'-_'")), literal_column("'='"))


def _enum_names(column_type: Enum) -> ColumnElement[Any] | None:
    """None when the stored values are the GraphQL names; else the CASE that maps value -> name."""
    members = list(column_type.enum_class or ())
    if all(member.name == member.value for member in members):
        return None
    return {member.value: member.name for member in members}  # type: ignore[return-value]


@dataclass
class Compiler:
    """Compiles one operation for one viewer; `Unsupported` when the executor must answer."""

    schema: GraphQLSchema
    strawberry_schema: Any
    fragments: dict[str, FragmentDefinitionNode]
    variables: VariableValues
    ctx: Context

    @property
    def organization_id(self) -> BindParameter[uuid.UUID]:
        """The viewer's organization, as the parameter a cached plan is run with (`ORGANIZATION`)."""
        return bindparam(ORGANIZATION, self.ctx.viewer.organization_id, type_=UUID(as_uuid=True))

    @property
    def viewer_id(self) -> BindParameter[uuid.UUID]:
        """The viewer, as the parameter a cached plan is run with (`VIEWER`)."""
        return bindparam(VIEWER, self.ctx.viewer.user_id, type_=UUID(as_uuid=True))

    # -- selections ------------------------------------------------------------------------

    def collect(
        self, gtype: GraphQLObjectType, selection_sets: Iterable[SelectionSetNode | None]
    ) -> dict[str, list[FieldNode]]:
        """The fields selected on `gtype` by response key, in document order (fragments and @skip/@include applied)."""
        grouped: dict[str, list[FieldNode]] = {}

        def visit(selection_set: SelectionSetNode | None) -> None:
            if selection_set is None:
                return
            for selection in selection_set.selections:
                if not self._included(selection):
                    continue
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    grouped.setdefault(key, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    if self._applies(selection.type_condition.name.value if selection.type_condition else None, gtype):
                        visit(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    fragment = self.fragments.get(selection.name.value)
                    if fragment is None or getattr(selection, "arguments", None):
                        raise Unsupported("fragment")
                    if self._applies(fragment.type_condition.name.value, gtype):
                        visit(fragment.selection_set)

        for selection_set in selection_sets:
            visit(selection_set)
        if len(grouped) > MAX_FIELDS:
            raise Unsupported("too many fields")
        return grouped

    def _included(self, node: Any) -> bool:
        for directive in node.directives or ():
            if directive.name.value not in ("skip", "include"):
                raise Unsupported(f"@{directive.name.value}")
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip is not None and skip.get("if") is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include is not None and include.get("if") is False)

    def _applies(self, condition: str | None, gtype: GraphQLObjectType) -> bool:
        if condition is None or condition == gtype.name:
            return True
        abstract = self.schema.get_type(condition)
        return (
            abstract is not None
            and not isinstance(abstract, GraphQLObjectType)
            and self.schema.is_sub_type(abstract, gtype)
        )  # type: ignore[arg-type]

    def arguments(self, gtype: GraphQLObjectType, node: FieldNode) -> dict[str, Any]:
        """The field's arguments as its resolver gets them (Strawberry's conversion: inputs, enums)."""
        field_def = gtype.fields[node.name.value]
        raw = get_argument_values(field_def, node, self.variables)
        definition = field_def.extensions["strawberry-definition"]
        return convert_arguments(
            raw,
            definition.arguments,
            scalar_registry=self.strawberry_schema.schema_converter.scalar_registry,
            config=self.strawberry_schema.config,
        )

    # -- objects -------------------------------------------------------------------------------

    def object_json(self, gtype: GraphQLObjectType, nodes: list[FieldNode], source: FromClause) -> ColumnElement[Any]:
        """json_build_object of the fields selected on `gtype` for the row of `source` (a mapped model's columns)."""
        parts: list[Any] = []
        for key, fields in self.collect(gtype, (node.selection_set for node in nodes)).items():
            parts += [_text(key), self.field_json(gtype, fields, source)]
        return func.json_build_object(*parts)

    def field_json(self, gtype: GraphQLObjectType, nodes: list[FieldNode], source: FromClause) -> ColumnElement[Any]:
        name = nodes[0].name.value
        if name == "__typename":
            return _text(gtype.name)
        special = SPECIAL_FIELDS.get((gtype.name, name))
        if special is not None:
            return special(self, gtype, nodes, source)
        model = _model(gtype)
        field_def = gtype.fields[name]
        definition = field_def.extensions["strawberry-definition"]
        if nodes[0].arguments:
            raise Unsupported(f"{gtype.name}.{name} arguments")
        if name == "id":
            return global_id(gtype.name, source.c.id)
        named, is_list = _unwrap(field_def.type)
        columns = sa_inspect(model).columns
        python_name = definition.python_name
        if isinstance(named, GraphQLObjectType):
            if is_list:
                raise Unsupported(f"{gtype.name}.{name}")
            return self.link_json(named, nodes, model, python_name, source)
        if definition.base_resolver is not None or python_name not in columns:
            raise Unsupported(f"{gtype.name}.{name}")
        return _scalar(named, is_list, columns[python_name], source.c[columns[python_name].name])

    def link_json(
        self, target_type: GraphQLObjectType, nodes: list[FieldNode], model: type, python_name: str, source: FromClause
    ) -> ColumnElement[Any]:
        """A many-to-one link, by the foreign key `<name>_id`, as the linked row's object (null without one)."""
        target = _model(target_type)
        columns = sa_inspect(model).columns
        key = columns.get(f"{python_name}_id")
        if key is None or not any(fk.column.table is target.__table__ for fk in key.foreign_keys):
            raise Unsupported(f"{python_name}")
        row = target.__table__.alias()
        statement = select(self.object_json(target_type, nodes, row)).where(row.c.id == source.c[key.name])
        return statement.where(self.scope(target, row)).scalar_subquery()

    def scope(self, model: type, row: FromClause) -> ColumnElement[bool]:
        """The organization predicate of a row of `model`."""
        if model is Organization:
            return row.c.id == self.organization_id
        if "organization_id" not in row.c:
            raise Unsupported(model.__name__)
        return row.c.organization_id == self.organization_id

    # -- connections -----------------------------------------------------------------------------

    def connection_json(
        self,
        gtype: GraphQLObjectType,
        nodes: list[FieldNode],
        window: Window,
        keys: tuple[ColumnElement[Any], ...],
        count: Select[Any],
        node_type: GraphQLObjectType,
        correlate: FromClause | None = None,
    ) -> ColumnElement[Any]:
        """A Relay connection of the rows `window` fetches: edges in page order, pageInfo as `page_of`, totalCount
        of `count` (the whole list)."""
        if window.last is not None:
            raise Unsupported("first and last together")
        statement = window.statement.add_columns(
            func.row_number().over(order_by=window.order).label("bx_rn"),
            *(key.label(f"bx_k{index}") for index, key in enumerate(keys)),
        )
        if correlate is not None:
            statement = statement.correlate(correlate)
        page = statement.lateral() if correlate is not None else statement.subquery()
        in_page = page.c.bx_rn <= window.size
        shown = page.c.bx_rn.desc() if window.backward else page.c.bx_rn
        page_cursor = cursor([(page.c[f"bx_k{i}"], key.type) for i, key in enumerate(keys)])
        aggregates: dict[str, Any] = {"fetched": func.count()}
        parts: list[Any] = []
        for key, fields in self.collect(gtype, (node.selection_set for node in nodes)).items():
            name = fields[0].name.value
            if name == "__typename":
                parts += [_text(key), _text(gtype.name)]
            elif name == "totalCount":
                total = count.correlate(correlate) if correlate is not None else count
                parts += [_text(key), total.scalar_subquery()]
            elif name == "edges":
                edge_type = _unwrap(gtype.fields["edges"].type)[0]
                edge = self.edge_json(edge_type, fields, node_type, page, page_cursor)
                label = f"bx_edges{len(aggregates)}"
                aggregates[label] = func.json_agg(aggregate_order_by(edge, shown)).filter(in_page)
                parts += [_text(key), ("edges", label)]
            elif name == "pageInfo":
                aggregates["cursors"] = func.array_agg(aggregate_order_by(page_cursor, shown)).filter(in_page)
                parts += [_text(key), ("pageInfo", fields)]
            else:
                raise Unsupported(f"{gtype.name}.{name}")
        summary = select(*(value.label(label) for label, value in aggregates.items())).select_from(page).subquery()
        resolved: list[Any] = []
        for part in parts:
            if isinstance(part, tuple) and part[0] == "edges":
                resolved.append(func.coalesce(summary.c[part[1]], literal_column("'[]'::json")))
            elif isinstance(part, tuple):
                resolved.append(self.page_info_json(part[1], window, summary))
            else:
                resolved.append(part)
        outer = select(func.json_build_object(*resolved)).select_from(summary)
        return outer.scalar_subquery()

    def edge_json(
        self,
        gtype: GraphQLObjectType,
        nodes: list[FieldNode],
        node_type: GraphQLObjectType,
        page: FromClause,
        page_cursor: ColumnElement[Any],
    ) -> ColumnElement[Any]:
        parts: list[Any] = []
        for key, fields in self.collect(gtype, (node.selection_set for node in nodes)).items():
            name = fields[0].name.value
            if name == "__typename":
                value = _text(gtype.name)
            elif name == "cursor":
                value = page_cursor
            elif name == "node":
                value = self.object_json(node_type, fields, page)
            else:
                raise Unsupported(f"{gtype.name}.{name}")
            parts += [_text(key), value]
        return func.json_build_object(*parts)

    def page_info_json(self, nodes: list[FieldNode], window: Window, summary: FromClause) -> ColumnElement[Any]:
        gtype = self.schema.get_type("PageInfo")
        assert isinstance(gtype, GraphQLObjectType)
        more = summary.c.fetched > window.size
        flags = {
            "hasNextPage": (true() if window.before else false()) if window.backward else more,
            "hasPreviousPage": more if window.backward else (true() if window.after else false()),
        }
        cursors = summary.c.cursors
        parts: list[Any] = []
        for key, fields in self.collect(gtype, (node.selection_set for node in nodes)).items():
            name = fields[0].name.value
            if name == "__typename":
                value = _text(gtype.name)
            elif name in flags:
                value = flags[name]
            elif name == "startCursor":
                value = cursors[1]
            elif name == "endCursor":
                value = cursors[func.array_length(cursors, 1)]
            else:
                raise Unsupported(f"PageInfo.{name}")
            parts += [_text(key), value]
        return func.json_build_object(*parts)

    # -- the operation ---------------------------------------------------------------------------

    def operation(self, root: GraphQLObjectType, selection_set: SelectionSetNode) -> Select[Any]:
        parts: list[Any] = []
        for key, fields in self.collect(root, [selection_set]).items():
            name = fields[0].name.value
            builder = ROOT_FIELDS.get(name)
            if builder is None:
                raise Unsupported(f"Query.{name}")
            parts += [_text(key), builder(self, root, fields)]
        return select(cast(func.json_build_object(*parts), Text))


def _model(gtype: GraphQLObjectType) -> type:
    model = model_of(gtype.extensions.get("strawberry-definition"))
    if model is None:
        raise Unsupported(gtype.name)
    return model


def _scalar(named: Any, is_list: bool, column: Any, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A column as the GraphQL scalar or enum of its field (as Strawberry serialises it)."""
    column_type = column.type
    name = getattr(named, "name", None)
    if is_list:
        if (
            isinstance(column_type, ARRAY)
            and name in ("String", "ID")
            and isinstance(column_type.item_type, (String, Text))
        ):
            return func.to_json(value)
        raise Unsupported(f"list of {name}")
    if isinstance(named, GraphQLEnumType):
        if not isinstance(column_type, Enum):
            raise Unsupported(str(column_type))
        names = _enum_names(column_type)
        if names is None:
            return cast(value, Text)
        return case(*((value == stored, literal_column(f"'{member}'")) for stored, member in names.items()), else_=None)  # type: ignore[attr-defined]
    expected: dict[str, tuple[type, ...]] = {
        "String": (String, Text),
        "Int": (Integer,),
        "Boolean": (Boolean,),
        "Float": (Float,),
        "JSON": (JSONB, JSON),
    }
    if name == "DateTime" and isinstance(column_type, DateTime) and column_type.timezone:
        return iso_datetime(value)
    if name in expected and isinstance(column_type, expected[name]) and not isinstance(column_type, Enum):
        return value
    raise Unsupported(f"{name} from {column_type}")


# -- fields with a meaning of their own --------------------------------------------------------------


def _unread_count(compiler: Compiler, gtype: GraphQLObjectType, nodes: list[FieldNode], source: FromClause) -> Any:
    """Messages since the viewer last read the thread, not counting their own (as `unread_counts`)."""
    viewer = compiler.viewer_id
    messages, reads = Message.__table__.alias(), ThreadRead.__table__.alias()
    read_at = (
        select(reads.c.read_at)
        .where(
            reads.c.thread_id == source.c.id,
            reads.c.user_id == viewer,
            reads.c.organization_id == compiler.organization_id,
        )
        .correlate(source)
        .scalar_subquery()
    )
    statement = (
        select(func.count())
        .select_from(messages)
        .where(
            messages.c.thread_id == source.c.id,
            messages.c.organization_id == compiler.organization_id,
            messages.c.created_at > func.coalesce(read_at, literal_column("'-infinity'::timestamptz")),
            messages.c.author_id.is_distinct_from(viewer),
        )
        .correlate(source)
    )
    return statement.scalar_subquery()


def _thread_messages(compiler: Compiler, gtype: GraphQLObjectType, nodes: list[FieldNode], source: FromClause) -> Any:
    """Thread.messages: oldest first, any of first/after/last/before (as `messages_page`)."""
    args = _single_arguments(compiler, gtype, nodes)
    compiler.ctx.require(Permission.READ)
    keys = (Message.created_at, Message.id)
    mine = (Message.thread_id == source.c.id) & (Message.organization_id == compiler.organization_id)
    window = keyset_window(select(Message).where(mine), keys, **args)
    count = select(func.count()).select_from(Message).where(mine)
    connection_type = _unwrap(gtype.fields["messages"].type)[0]
    node_type = compiler.schema.get_type("Message")
    return compiler.connection_json(connection_type, nodes, window, keys, count, node_type, correlate=source)  # type: ignore[arg-type]


def _threads(compiler: Compiler, root: GraphQLObjectType, nodes: list[FieldNode]) -> Any:
    """Query.threads: the inbox (as `threads_page`)."""
    args = _single_arguments(compiler, root, nodes)
    where = thread_filter(args.pop("filter", None))
    ordering = ORDERINGS[args.pop("order_by").value]
    query = threads_query(compiler.ctx, where)
    return _root_list(compiler, root, nodes, query, ordering.keys, args, descending=ordering.descending)


def _thread(compiler: Compiler, root: GraphQLObjectType, nodes: list[FieldNode]) -> Any:
    """Query.thread(id:): null unless it is a thread of the viewer's organization."""
    args = compiler.arguments(root, nodes[0])
    compiler.ctx.viewer  # noqa: B018 - authentication required
    thread_id = local_id(args["id"], "Thread")
    if thread_id is None:
        return literal_column("NULL::json")
    node_type = compiler.schema.get_type("Thread")
    row = Thread.__table__.alias()
    statement = select(compiler.object_json(node_type, nodes, row)).where(row.c.id == thread_id)  # type: ignore[arg-type]
    return statement.where(compiler.scope(Thread, row)).scalar_subquery()


def _root_list(
    compiler: Compiler,
    root: GraphQLObjectType,
    nodes: list[FieldNode],
    query: Select[Any],
    keys: tuple[Any, ...],
    args: dict[str, Any],
    descending: bool = False,
) -> Any:
    """A root connection over `query` (the use-case's, scoped here to the organization) by the keyset `keys`."""
    model = query.column_descriptions[0]["entity"]
    query = query.where(model.organization_id == compiler.organization_id)
    window = keyset_window(query, keys, descending=descending, **args)
    count = select(func.count()).select_from(query.order_by(None).subquery())
    field = root.fields[nodes[0].name.value]
    connection_type = _unwrap(field.type)[0]
    node_type = _unwrap(connection_type.fields["edges"].type)[0].fields["node"].type
    return compiler.connection_json(connection_type, nodes, window, keys, count, _unwrap(node_type)[0])


def _single_arguments(compiler: Compiler, root: GraphQLObjectType, nodes: list[FieldNode]) -> dict[str, Any]:
    if len(nodes) > 1 and any(node.arguments != nodes[0].arguments for node in nodes[1:]):
        raise Unsupported("merged fields with different arguments")
    return compiler.arguments(root, nodes[0])


def _customers(compiler: Compiler, root: GraphQLObjectType, nodes: list[FieldNode]) -> Any:
    """Query.customers: by name (as `customers_page`)."""
    args = _single_arguments(compiler, root, nodes)
    query = customers_query(compiler.ctx, args.pop("search", None))
    return _root_list(compiler, root, nodes, query, CUSTOMER_ORDER, args)


def _shipments(compiler: Compiler, root: GraphQLObjectType, nodes: list[FieldNode]) -> Any:
    """Query.shipments: newest first (as `shipments_page`)."""
    args = _single_arguments(compiler, root, nodes)
    query = shipments_query(compiler.ctx, **shipment_filter(args.pop("filter", None)))
    return _root_list(compiler, root, nodes, query, SHIPMENT_ORDER, args, descending=True)


SPECIAL_FIELDS: dict[tuple[str, str], Callable[..., Any]] = {
    ("Thread", "unreadCount"): _unread_count,
    ("Thread", "messages"): _thread_messages,
}
ROOT_FIELDS: dict[str, Callable[..., Any]] = {
    "threads": _threads,
    "thread": _thread,
    "customers": _customers,
    "shipments": _shipments,
}
EXPECTED_FAILURES = (Unsupported, AuthenticationRequired, PermissionDenied, DomainError)
