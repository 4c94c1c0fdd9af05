"""`userErrors`: the UserError interface, one error type and code enum per mutation family."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry

from banxway.resolvers.errors import DomainError


@strawberry.interface(description="An expected failure of a mutation; nothing was written.")
class UserError:
    field: list[str] | None = strawberry.field(description="Path to the input field at fault, if any.")
    message: str


@strawberry.enum
class AuthErrorCode(enum.Enum):
    INVALID = "INVALID"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    RATE_LIMITED = "RATE_LIMITED"
    INVALID_TOKEN = "INVALID_TOKEN"
    TOKEN_REUSED = "TOKEN_REUSED"
    ORGANIZATION_REQUIRED = "ORGANIZATION_REQUIRED"


@strawberry.type
class AuthError(UserError):
    code: AuthErrorCode


@strawberry.enum
class UserManagementErrorCode(enum.Enum):
    INVALID = "INVALID"
    NOT_FOUND = "NOT_FOUND"
    TAKEN = "TAKEN"


@strawberry.type
class UserManagementError(UserError):
    code: UserManagementErrorCode


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
