"""`userErrors`: the UserError interface, and an error type with its own code enum per mutation family."""

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


AuthError, AuthErrorCode = error_type(
    "Auth", ["INVALID", "INVALID_CREDENTIALS", "RATE_LIMITED", "INVALID_TOKEN", "TOKEN_REUSED", "ORGANIZATION_REQUIRED"]
)
UserManagementError, UserManagementErrorCode = error_type("UserManagement", ["INVALID", "NOT_FOUND", "TAKEN"])

_RECORD_CODES = ["INVALID", "NOT_FOUND", "TAKEN", "TOO_LONG"]
CustomerError, CustomerErrorCode = error_type("Customer", _RECORD_CODES)
ContactError, ContactErrorCode = error_type("Contact", _RECORD_CODES)
ShipmentError, ShipmentErrorCode = error_type("Shipment", _RECORD_CODES)
_THREAD_CODES = ["INVALID", "NOT_FOUND", "TOO_LONG", "INVALID_TRANSITION"]
ThreadError, ThreadErrorCode = error_type("Thread", _THREAD_CODES)
MessageError, MessageErrorCode = error_type("Message", [*_THREAD_CODES, "THREAD_CHANGED", "WINDOW_CLOSED"])
NoteError, NoteErrorCode = error_type("Note", _THREAD_CODES)
ActionError, ActionErrorCode = error_type("Action", _THREAD_CODES)


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
