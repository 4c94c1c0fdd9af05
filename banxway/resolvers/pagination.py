"""Keyset pagination over a SELECT: `first/after/last/before`, `first` capped at 100.

Cursors are opaque base64 JSON of the row's sort key. Pages are read with
`WHERE (k1, k2) > (:a, :b) ORDER BY k1, k2 LIMIT n + 1`, never OFFSET.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import Select, func, literal, select, tuple_

from banxway.db.session import SerialSession
from banxway.errors import DomainError

MAX_PAGE = 100
DEFAULT_PAGE = 20

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """Rows with their sort keys; a row's cursor is encoded only when it is asked for."""

    rows: list[T]
    keys: list[Sequence[Any]]
    has_next_page: bool
    has_previous_page: bool
    total_count: int

    def cursor(self, index: int) -> str:
        return encode_cursor(self.keys[index])


def _encode_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "t" in value:
        return dt.datetime.fromisoformat(value["t"])
    if isinstance(value, dict) and "u" in value:
        return uuid.UUID(value["u"])
    return value


def encode_cursor(values: Sequence[Any]) -> str:
    raw = orjson.dumps([_encode_value(v) for v in values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, field: str, width: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(values, list) or len(values) != width:
            raise ValueError
        return [_decode_value(v) for v in values]
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise DomainError("INVALID", f"'{cursor}' is not a valid cursor.", field) from None


def _coerce(value: Any, key: Any, cursor: str, field: str) -> Any:
    """A cursor value as the key's Python type; a forged or stale cursor is INVALID, never a database error."""
    try:
        expected = key.type.python_type
    except NotImplementedError:
        return value
    if isinstance(expected, type) and issubclass(expected, enum.Enum):
        try:
            return expected(value)
        except ValueError:
            pass
    elif isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    raise DomainError("INVALID", f"'{cursor}' is not a valid cursor.", field)


def _check_count(value: int | None, field: str) -> int | None:
    if value is None:
        return None
    if value < 0:
        raise DomainError("INVALID", f"{field} must not be negative.", field)
    return min(value, MAX_PAGE)


@dataclass(frozen=True)
class Window:
    """What a page reads: `statement` (the query cut at the cursors, in fetch order, `size + 1` rows) and
    how its rows become the page (`backward`: fetched last-first, shown reversed)."""

    statement: Select[Any]
    order: tuple[Any, ...]  # the ORDER BY of `statement`
    size: int
    backward: bool
    after: bool
    before: bool
    last: int | None  # with `first` too: the last `last` of the first `size`


def keyset_window(
    query: Select[Any],
    keys: Sequence[Any],
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    descending: bool = False,
) -> Window:
    """The page of `query` ordered by `keys` (unique together, one direction) that `first/after/last/before`
    ask for; the only reading of the Relay arguments (the executor's `paginate` and the compiled path use it)."""
    first = _check_count(first, "first")
    last = _check_count(last, "last")
    if first is None and last is None:
        first = DEFAULT_PAGE
    key_tuple = tuple_(*keys)

    def typed(cursor: str, field: str) -> Any:
        values = decode_cursor(cursor, field, len(keys))
        return tuple_(*(literal(_coerce(v, k, cursor, field), type_=k.type) for v, k in zip(values, keys, strict=True)))

    page = query
    if after is not None:
        values = typed(after, "after")
        page = page.where(key_tuple < values if descending else key_tuple > values)
    if before is not None:
        values = typed(before, "before")
        page = page.where(key_tuple > values if descending else key_tuple < values)
    forward = [k.desc() for k in keys] if descending else list(keys)
    backward = list(keys) if descending else [k.desc() for k in keys]
    if last is not None and first is None:
        order, size, reverse = tuple(backward), last, True
    else:
        assert first is not None
        order, size, reverse = tuple(forward), first, False
    statement = page.order_by(*order).limit(size + 1)
    return Window(statement, order, size, reverse, after is not None, before is not None, last if not reverse else None)


def page_of(window: Window, fetched: list[Any], key_of: Callable[[Any], Sequence[Any]], total: int) -> Page[Any]:
    """The page made of the rows `window.statement` fetched."""
    more = len(fetched) > window.size
    rows = fetched[: window.size]
    if window.backward:
        rows.reverse()
        has_previous, has_next = more, window.before
    else:
        has_next, has_previous = more, window.after
        if window.last is not None:
            has_previous = len(rows) > window.last or window.after
            rows = rows[-window.last :] if window.last else []
    return Page(rows, [key_of(row) for row in rows], has_next, has_previous, total)


async def paginate(
    db: SerialSession,
    query: Select[Any],
    keys: Sequence[Any],
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    descending: bool = False,
    key_of: Callable[[Any], Sequence[Any]] | None = None,
    count: bool = True,
) -> Page[Any]:
    """Page through `query` (a SELECT of one entity) ordered by `keys` (unique together, one direction)."""
    window = keyset_window(query, keys, first=first, after=after, last=last, before=before, descending=descending)
    total = await db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) if count else None
    fetched = list(await db.scalars(window.statement))
    return page_of(window, fetched, key_of or (lambda row: [getattr(row, k.key) for k in keys]), int(total or 0))
