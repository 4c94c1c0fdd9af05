"""Global ids (`base64("Type:uuid")`) to database ids and back, and which optional input fields were given."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from strawberry import relay
from strawberry.types.unset import UnsetType


def to_global_id(type_name: str, local_id: object) -> str:
    """base64("Type:uuid"), the Relay global id (the same encoding as strawberry.relay.GlobalID)."""
    return base64.b64encode(f"{type_name}:{local_id}".encode()).decode()


def parse_global_id(value: str) -> tuple[str, str] | None:
    try:
        gid = relay.GlobalID.from_id(value)
    except Exception:  # not base64, not "Type:id": no such object
        return None
    return gid.type_name, gid.node_id


def local_id(value: object, type_name: str) -> uuid.UUID | None:
    """The uuid inside a global id of `type_name`, or None when it is anything else."""
    if not isinstance(value, str):
        return None
    parsed = parse_global_id(value)
    if parsed is None or parsed[0] != type_name:
        return None
    try:
        return uuid.UUID(parsed[1])
    except ValueError:
        return None


NIL = uuid.UUID(int=0)


def decode(value: object, type_name: str, field: str) -> uuid.UUID:
    """A reference to a `type_name`. Anything else becomes the nil uuid, which matches no row,
    so the use-case answers NOT_FOUND — after it has checked the viewer's permission."""
    return local_id(value, type_name) or NIL


def decode_optional(value: object, type_name: str, field: str) -> uuid.UUID | None:
    if value is None or isinstance(value, UnsetType):
        return None
    return decode(value, type_name, field)


def given(value: object) -> bool:
    return not isinstance(value, UnsetType)


def filter_id(value: object, type_name: str) -> uuid.UUID | None:
    """A filter on an id that is not one of ours matches nothing (the nil uuid), never everything."""
    return None if value is None else decode(value, type_name, "filter")


def changes(input: Any, names: dict[str, str]) -> dict[str, Any]:
    """{snake_name: value} for the input fields that were given (null included)."""
    return {snake: getattr(input, attr) for attr, snake in names.items() if given(getattr(input, attr))}
