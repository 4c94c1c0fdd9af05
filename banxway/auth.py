"""Passwords, tokens, roles and the permission matrix.

Access tokens are 15-minute HS256 JWTs; refresh tokens are random strings whose
SHA-256 is stored (see `banxway.resolvers.auth`). The permission matrix below is
the single source: the README's table is generated from it (a test checks).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import os
import secrets
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from banxway.enums import Role

# Argon2id with RFC 9106's low-memory profile. BANXWAY_PASSWORD_HASHING=fast-insecure (see
# banxway.settings, which refuses it in production) picks the cheapest parameters, for test
# suites that hash thousands of passwords. Hashes carry their parameters, so either verifies.
_hasher = PasswordHasher.from_parameters(
    profiles.CHEAPEST if os.environ.get("BANXWAY_PASSWORD_HASHING") == "fast-insecure" else profiles.RFC_9106_LOW_MEMORY
)
_ALGORITHM = "HS256"
_ISSUER = "banxway"


# -- passwords ------------------------------------------------------------------

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Argon2 takes ~250 ms of CPU at the standard parameters: it runs in a pool of its own, a thread per core, so the
# event loop keeps serving and at most that many verifications run at once (the rest wait their turn).
_ARGON2_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="argon2")


async def ahash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_ARGON2_POOL, hash_password, password)


async def averify_password(password_hash: str, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(_ARGON2_POOL, verify_password, password_hash, password)


# A hash to verify against when the email is unknown, so that a wrong email costs
# the same time as a wrong password.
DUMMY_PASSWORD_HASH = _hasher.hash(secrets.token_urlsafe(16))


# -- tokens ---------------------------------------------------------------------


class InvalidToken(Exception):
    """Missing, expired, tampered or otherwise unusable token."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: Role
    expires_at: datetime
    session_version: int  # the user's `session_version` when issued: the token is refused once it moves on
    # Set for a personal API token (`bxp_...`, see below): its row is checked again instead of the session version
    api_token_id: uuid.UUID | None = None


def issue_access_token(
    secret: str,
    *,
    user_id: uuid.UUID,
    organization_id: uuid.UUID,
    role: Role,
    session_version: int,
    ttl_seconds: int,
) -> str:
    now = datetime.now(UTC)
    claims = {
        "iss": _ISSUER,
        "typ": "access",
        "sub": str(user_id),
        "org": str(organization_id),
        "role": role.value,
        "ver": session_version,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


# Tokens already verified, with their claims: a token is immutable and its signature checked once, so a repeat
# only needs its expiry checked (PyJWT's decode is ~0.3 ms, a tenth of a compiled inbox request's CPU).
_VERIFIED: OrderedDict[tuple[str, str], AccessClaims] = OrderedDict()
_VERIFIED_MAX = 10_000


def decode_access_token(secret: str, token: str) -> AccessClaims:
    key = (secret, token)
    claims = _VERIFIED.get(key)
    if claims is None:
        claims = _decode_access_token(secret, token)
        _VERIFIED[key] = claims
        if len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
    elif claims.expires_at <= datetime.now(UTC):
        raise InvalidToken("token expired")
    return claims


def _decode_access_token(secret: str, token: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            issuer=_ISSUER,
            options={"require": ["exp", "iat", "sub", "org", "role", "typ", "ver"]},
        )
        if claims["typ"] != "access":
            raise InvalidToken("not an access token")
        return AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            organization_id=uuid.UUID(claims["org"]),
            role=Role(claims["role"]),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            session_version=_version(claims["ver"]),
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired") from exc
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise InvalidToken("invalid token") from exc


def _version(value: object) -> int:
    if type(value) is not int:
        raise InvalidToken("invalid token")
    return value


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None if absent."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization must be 'Bearer <access token>'")
    return token.strip()


def new_refresh_token() -> tuple[str, str]:
    """(token for the client, its SHA-256 hex for the database)."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- roles and permissions ------------------------------------------------------


class Permission(enum.Enum):
    READ = "read everything in the organization (threads, customers, shipments, users)"
    NOTE_ADD = "add internal notes and @mention colleagues"
    NOTE_MODERATE = "delete anyone's internal notes (everyone may edit and delete their own)"
    ACTION_MANAGE = "create and update actions (tasks)"
    THREAD_CREATE = "create threads and update their status, priority, tags"
    MESSAGE_SEND = "send messages to customers"
    MESSAGE_DRAFT = "ask for AI drafts of replies (composeStart; a draft is sent only by someone with MESSAGE_SEND)"
    THREAD_ASSIGN_SELF = "assign a thread to oneself"
    THREAD_ASSIGN_ANY = "assign a thread to anyone"
    ACTION_APPROVE = "approve or reject quotes and documents on actions"
    THREAD_ARCHIVE = "archive threads and reopen archived ones"
    CONTACT_MERGE = "merge and unmerge contacts"
    CUSTOMER_MANAGE = "create and update customers, contacts, shipments"
    USER_MANAGE = "create users, change roles, deactivate users"
    ORG_MANAGE = "manage organization settings, email accounts and integrations"
    AUTOMATION_MANAGE = "manage workflows, SLA policies, business hours, teams and shared canned responses"
    ANALYTICS_READ = "read the organization's analytics (dashboard, drill-down, per-agent figures, CSV exports)"


_P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({_P.READ}),
    Role.SUPPORT: frozenset(
        {
            _P.READ,
            _P.NOTE_ADD,
            _P.ACTION_MANAGE,
            _P.THREAD_CREATE,
            _P.MESSAGE_SEND,
            _P.MESSAGE_DRAFT,
            _P.THREAD_ASSIGN_SELF,
            _P.CUSTOMER_MANAGE,
        }
    ),
    Role.VALIDATOR: frozenset(
        {
            _P.READ,
            _P.NOTE_ADD,
            _P.ACTION_MANAGE,
            _P.ACTION_APPROVE,
            _P.THREAD_ASSIGN_SELF,
        }
    ),
    Role.MANAGER: frozenset(set(_P) - {_P.USER_MANAGE, _P.ORG_MANAGE}),
    Role.ADMIN: frozenset(_P),
}


def has_permission(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def permission_matrix_markdown() -> str:
    """The README's permission table, generated from `ROLE_PERMISSIONS`."""
    roles = [Role.ADMIN, Role.MANAGER, Role.VALIDATOR, Role.SUPPORT, Role.VIEWER]
    lines = [
        "| permission | " + " | ".join(r.value for r in roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for permission in Permission:
        marks = " | ".join("✓" if permission in ROLE_PERMISSIONS[r] else "–" for r in roles)
        lines.append(f"| `{permission.name}`: {permission.value} | {marks} |")
    return "\n".join(lines)


# -- personal API tokens --------------------------------------------------------
#
# `bxp_<43 characters of base64url>`: 256 random bits, so SHA-256 alone is a safe way to store them (nothing to
# brute-force), and one indexed lookup finds the row (`banxway.context`). The first 12 characters (`bxp_` and 8
# of the random part, 48 bits) are kept in clear for display: they tell tokens apart and give nothing away.

API_TOKEN_PREFIX = "bxp_"
API_TOKEN_DISPLAY_LENGTH = 12


class ApiTokenScope(enum.Enum):
    """What a personal API token may do, on top of (never beyond) its user's role."""

    READ = "queries and subscriptions: what the role may read, and the user's own read marks"
    WRITE = "mutations the role allows, except writing to customers"
    SEND = "send messages on customer channels, start calls and upload attachments"


_S = ApiTokenScope
SCOPE_PERMISSIONS: dict[ApiTokenScope, frozenset[Permission]] = {
    _S.READ: frozenset({_P.READ, _P.ANALYTICS_READ}),
    _S.WRITE: frozenset(set(_P) - {_P.READ, _P.ANALYTICS_READ, _P.MESSAGE_SEND}),
    _S.SEND: frozenset({_P.MESSAGE_SEND}),
}


def effective_permissions(role: Role, scopes: frozenset[ApiTokenScope] | None) -> frozenset[Permission]:
    """What a viewer may do: the role's permissions, cut down to those of the token's scopes (None: a signed-in
    session, the role's own)."""
    permissions = ROLE_PERMISSIONS[role]
    if scopes is None:
        return permissions
    return permissions & frozenset().union(*(SCOPE_PERMISSIONS[scope] for scope in scopes))


def allows(role: Role, scopes: frozenset[ApiTokenScope] | None, permission: Permission) -> bool:
    """Whether `role` with the token `scopes` (None: no token) may do `permission`."""
    if permission not in ROLE_PERMISSIONS[role]:
        return False
    return scopes is None or any(permission in SCOPE_PERMISSIONS[scope] for scope in scopes)


def new_api_token() -> tuple[str, str, str]:
    """(the token, shown once; its SHA-256 hex, stored; its display prefix, stored)."""
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_api_token(token), token[:API_TOKEN_DISPLAY_LENGTH]


def hash_api_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_api_token(token: str) -> bool:
    return token.startswith(API_TOKEN_PREFIX)


def scope_matrix_markdown() -> str:
    """The README's table of API token scopes, generated from `SCOPE_PERMISSIONS`."""
    scopes = list(ApiTokenScope)
    lines = [
        "| permission | " + " | ".join(f"`{scope.name}`" for scope in scopes) + " |",
        "|---|" + "---|" * len(scopes),
    ]
    for permission in Permission:
        marks = " | ".join("✓" if permission in SCOPE_PERMISSIONS[s] else "–" for s in scopes)
        lines.append(f"| `{permission.name}` | {marks} |")
    return "\n".join(lines)
