"""`userErrors`: the UserError interface, and `error_type` for the error type (with its own code enum) that each
mutation family declares in its domain module."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry

from banxway.errors import DomainError


@strawberry.interface(description="An expected failure of a mutation; nothing was written.")
class UserError:
    field: list[str] | None = strawberry.field(description="Path to the input field at fault, if any.")
    message: str


def error_type(prefix: str, codes: list[str]) -> tuple[type, type[enum.Enum]]:
    """`<prefix>Error implements UserError { code: <prefix>ErrorCode! }`."""
    code_enum = strawberry.enum(enum.Enum(f"{prefix}ErrorCode", {code: code for code in codes}))  # type: ignore[misc]
    error_cls = type(f"{prefix}Error", (UserError,), {"__annotations__": {"code": code_enum}})
    return strawberry.type(error_cls), code_enum


# the codes of the record-keeping mutations (customers, contacts, shipments) and of the thread ones
RECORD_CODES = ["INVALID", "NOT_FOUND", "TAKEN", "TOO_LONG"]
THREAD_CODES = ["INVALID", "NOT_FOUND", "TOO_LONG", "INVALID_TRANSITION"]


P = TypeVar("P")


async def mutate(
    payload: Callable[..., P],
    error: type[Any],
    codes: type[enum.Enum],
    call: Callable[[], Awaitable[dict[str, Any]]],
) -> P:
    """Run a use-case; a DomainError becomes the payload's `userErrors`."""
    try:
        fields = await call()
    except DomainError as exc:
        return payload(user_errors=[error(field=exc.field, message=exc.message, code=codes(exc.code))])
    return payload(user_errors=[], **fields)
