"""The domain's errors, raised by resolvers and the context; the schema layer turns them into GraphQL errors."""

from __future__ import annotations


class DomainError(Exception):
    """An expected failure reported to the client in `userErrors`; nothing was written."""

    def __init__(self, code: str, message: str, field: str | list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # "identities.0.address" and ["identities", "0", "address"] are the same path
        self.field = field.split(".") if isinstance(field, str) else field


class AuthenticationRequired(Exception):
    """No valid access token: a top-level error with extensions.code UNAUTHENTICATED."""

    code = "UNAUTHENTICATED"


class PermissionDenied(Exception):
    """The viewer's role may not do this: a top-level error with extensions.code FORBIDDEN."""

    code = "FORBIDDEN"


class DevelopmentOnly(Exception):
    """A development tool (the dev sink's outbox) asked for in production: a top-level error with extensions.code
    DEVELOPMENT_ONLY."""

    code = "DEVELOPMENT_ONLY"
