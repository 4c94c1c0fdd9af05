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
    first = _check_count(first, "first")
    last = _check_count(last, "last")
    if first is None and last is None:
        first = DEFAULT_PAGE
    key_of = key_of or (lambda row: [getattr(row, k.key) for k in keys])
    key_tuple = tuple_(*keys)

    def typed(cursor: str, field: str) -> Any:
        values = decode_cursor(cursor, field, len(keys))
        return tuple_(*(literal(_coerce(v, k, cursor, field), type_=k.type) for v, k in zip(values, keys, strict=True)))

    def beyond(cursor: str, field: str) -> Any:
        values = typed(cursor, field)
        return key_tuple < values if descending else key_tuple > values

    def before_(cursor: str, field: str) -> Any:
        values = typed(cursor, field)
        return key_tuple > values if descending else key_tuple < values

    total = await db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) if count else None
    page = query
    if after is not None:
        page = page.where(beyond(after, "after"))
    if before is not None:
        page = page.where(before_(before, "before"))
    forward = [k.desc() for k in keys] if descending else list(keys)
    backward = list(keys) if descending else [k.desc() for k in keys]

    if last is not None and first is None:
        rows = list(await db.scalars(page.order_by(*backward).limit(last + 1)))
        has_previous = len(rows) > last
        rows = list(reversed(rows[:last]))
        has_next = before is not None
    else:
        assert first is not None
        rows = list(await db.scalars(page.order_by(*forward).limit(first + 1)))
        has_next = len(rows) > first
        rows = rows[:first]
        if last is not None:
            has_previous = len(rows) > last or after is not None
            rows = rows[-last:] if last else []
        else:
            has_previous = after is not None
    return Page(rows, [key_of(row) for row in rows], has_next, has_previous, int(total or 0))
