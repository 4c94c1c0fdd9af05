"""Checks and normalisation of user input; each failure names the field."""

from __future__ import annotations

import re
from typing import Any

import phonenumbers

from banxway.enums import Channel
from banxway.errors import DomainError
from banxway.extraction import container_check_digit
from banxway.integrations import network

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LOCODE = re.compile(r"^[A-Z]{2}[A-Z2-9]{3}$")
_CONTAINER = re.compile(r"^[A-Z]{3}[UJZR]\d{7}$")
_TAG = re.compile(r"^[\w][\w .:/-]{0,49}$")

# What each channel accepts in one message (characters); longer is refused, never truncated.
BODY_LIMITS: dict[Channel, int] = {
    Channel.WHATSAPP: 4096,
    Channel.SMS: 1600,
    Channel.EMAIL: 1_000_000,
    Channel.VOICE: 1_000_000,
    Channel.WEB_CHAT: 10_000,
    Channel.INTERNAL: 100_000,
    Channel.MESSENGER: 2000,  # the Send API's text limit
    Channel.INSTAGRAM: 1000,  # Instagram's text limit (in the Send API docs)
}
EMAIL_SUBJECT_LIMIT = 998


def without_nul(value: Any) -> Any:
    """`value` with the NUL characters of its strings removed (PostgreSQL text and jsonb cannot hold them): for
    what a provider or a mail server sends, which is stored as it came but for those."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, (list, tuple)):
        return type(value)(without_nul(item) for item in value)
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    return value


def text(value: str | None, field: str, *, max_length: int, required: bool = False) -> str | None:
    """Strip; empty becomes None; refuse what is too long or missing."""
    if value is None:
        if required:
            raise DomainError("INVALID", f"{field} is required.", field)
        return None
    value = value.strip()
    if not value:
        if required:
            raise DomainError("INVALID", f"{field} must not be empty.", field)
        return None
    if len(value) > max_length:
        raise DomainError("TOO_LONG", f"{field} has {len(value)} characters; at most {max_length} are allowed.", field)
    return value


def email(value: str | None, field: str = "email") -> str | None:
    if value is None or not value.strip():
        return None
    normalized = value.strip().lower()
    if len(normalized) > 320 or not _EMAIL.match(normalized):
        raise DomainError("INVALID", f"'{value}' is not a valid email address.", field)
    return normalized


def phone(value: str | None, field: str = "phone") -> str | None:
    """E.164 (+4915112345678). Numbers must carry their country code."""
    if value is None or not value.strip():
        return None
    raw = value.strip()
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise DomainError(
            "INVALID", f"'{value}' is not a phone number in international form (+<country code><number>).", field
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise DomainError("INVALID", f"'{value}' is not a valid phone number.", field)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def identity_address(channel: Channel, address: str, field: str) -> str:
    """A contact identity's address, normalised for its channel."""
    if channel == Channel.EMAIL:
        normalized = email(address, field)
    elif channel in (Channel.WHATSAPP, Channel.SMS, Channel.VOICE):
        normalized = phone(address, field)
    elif channel == Channel.WEB_CHAT:
        normalized = text(address, field, max_length=320)
    elif channel in (Channel.MESSENGER, Channel.INSTAGRAM):  # a page-scoped id (PSID) or Instagram-scoped id
        normalized = text(address, field, max_length=100)
        if normalized is not None and not normalized.isdigit():
            raise DomainError("INVALID", f"'{address}' is not a {channel.name.title()} user id (digits).", field)
    else:
        raise DomainError("INVALID", f"A contact cannot have an identity on channel {channel.name}.", field)
    if normalized is None:
        raise DomainError("INVALID", f"{field} must not be empty.", field)
    return normalized


def container_number(value: str, field: str) -> str:
    """An ISO 6346 container number, with its check digit verified."""
    normalized = re.sub(r"[\s-]", "", value).upper()
    if not _CONTAINER.match(normalized):
        raise DomainError(
            "INVALID", f"'{value}' is not a container number (4 letters, the 4th U/J/Z/R, then 7 digits).", field
        )
    if container_check_digit(normalized[:10]) != int(normalized[10]):
        raise DomainError(
            "INVALID",
            f"'{value}' has a wrong check digit: {normalized[10]}, expected {container_check_digit(normalized[:10])}.",
            field,
        )
    return normalized


def locode(value: str | None, field: str) -> str | None:
    """A UN/LOCODE: country (2 letters) + location (3 letters or digits 2-9), e.g. INNSA, DEHAM."""
    if value is None or not value.strip():
        return None
    normalized = value.replace(" ", "").upper()
    if not _LOCODE.match(normalized):
        raise DomainError("INVALID", f"'{value}' is not a UN/LOCODE (like INNSA or DEHAM).", field)
    return normalized


def tags(values: list[str] | None, field: str = "tags") -> list[str]:
    if not values:
        return []
    cleaned: list[str] = []
    for index, value in enumerate(values):
        tag = value.strip().lower()
        if not _TAG.match(tag):
            raise DomainError(
                "INVALID", f"Tag '{value}' must be 1-50 letters, digits, spaces or .:/-_", f"{field}.{index}"
            )
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > 50:
        raise DomainError("INVALID", "At most 50 tags are allowed.", field)
    return cleaned


def body_for_channel(channel: Channel, body: str, field: str = "body") -> str:
    limit = BODY_LIMITS[channel]
    if len(body) > limit:
        raise DomainError(
            "TOO_LONG",
            f"A {channel.name} message may have at most {limit:,} characters; this one has {len(body):,}.",
            field,
        )
    return body


def json_object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DomainError("INVALID", f"{field} must be a JSON object.", field)
    return value


async def refuse_private_url(url: str, field: str, why: str) -> None:
    """A URL someone gave us to call must be on the internet: its host, as written or as it resolves now, may not
    be a loopback, private, link-local (cloud metadata) or otherwise reserved address — our server would call its
    own network on their behalf (SSRF). The connect-time guard (`banxway.integrations.network`) checks again."""
    address = await network.private_address(url)
    if address is not None:
        raise DomainError("INVALID", f"{field} {url} is on a private or reserved address ({address}): {why}.", field)
