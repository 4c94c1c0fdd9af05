"""The shared part of the AI provider: its error, the plain data of a draft's context and the `ComposeProvider`
interface, history fitting and token estimates, and the date and name helpers of the prompts and drafts."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from banxway.enums import Channel, ComposeTone, Direction


class AIError(Exception):
    """The AI provider failed; `transient` when a later try may succeed (timeout, rate limit, 5xx)."""

    def __init__(
        self, detail: str, *, transient: bool, code: str = "AI_UNAVAILABLE", retry_after: float | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.transient = transient
        # AI_UNAVAILABLE (connection, 5xx, a stream cut short), AI_TIMEOUT, AI_RATE_LIMITED (retry_after: the
        # provider's Retry-After in seconds), AI_REFUSED (4xx other than 429), AI_INVALID_OUTPUT (unparseable output)
        self.code = code
        self.retry_after = retry_after


# ---------------------------------------------------------------------------------------------------------------
# Compose: the context of a draft (plain data, built by banxway.resolvers.compose from the database) and the
# providers that stream a draft from it. Interface fixed here; implementations in client.py and builtin.py.
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryMessage:
    """One message of the thread as the draft's context sees it."""

    direction: Direction
    channel: Channel
    author: str  # the contact's or the agent's name ("Customer" / "Agent" when unknown)
    at: datetime
    subject: str | None
    body: str  # plain text, quoted history already stripped where it could be


@dataclass(frozen=True, slots=True)
class MilestoneFact:
    type: str  # MilestoneType value, e.g. "DEPARTED"
    planned_at: datetime | None
    actual_at: datetime | None
    location: str | None  # "Nhava Sheva (INNSA)"
    note: str | None


@dataclass(frozen=True, slots=True)
class ShipmentFacts:
    reference: str
    mode: str  # ShipmentMode value (SEA_FCL, AIR, ...)
    status: str  # ShipmentStatus value
    origin: str | None  # "Nhava Sheva (INNSA)"
    destination: str | None
    carrier: str | None
    vessel: str | None
    voyage: str | None
    flight_number: str | None
    container_numbers: tuple[str, ...]
    bl_number: str | None
    awb_number: str | None
    booking_number: str | None
    etd: datetime | None
    eta: datetime | None
    atd: datetime | None
    ata: datetime | None
    milestones: tuple[MilestoneFact, ...]  # in time order


@dataclass(frozen=True, slots=True)
class ComposeContext:
    organization_name: str
    signature: str  # the organization's signature block (several lines), or "<agent>\n<organization>"
    agent_name: str  # who asked for the draft
    thread_reference: str  # BX-2026-0042
    thread_subject: str | None
    channel: Channel  # the channel the draft is written for (EMAIL: may be longer; WHATSAPP/SMS: short)
    contact_name: str | None
    preferred_channel: Channel | None
    customer_name: str | None
    history: tuple[HistoryMessage, ...]  # oldest first, already fitted to the budget (fit_history)
    shipment: ShipmentFacts | None
    open_actions: tuple[str, ...]  # "Send revised quote (due 2026-12-05 14:00)"
    instructions: str  # the agent's own words ("tell them the ETA moved"), may be ""
    tone: ComposeTone
    now: datetime  # timezone-aware, in the organization's timezone
    timezone: str  # IANA name used to write dates and times


@dataclass(frozen=True, slots=True)
class ComposeDelta:
    """A piece of the text of one variant (0-based), in order."""

    variant: int
    text: str


@dataclass(frozen=True, slots=True)
class ComposeUsage:
    """The last item of a stream: what the draft cost."""

    prompt_tokens: int
    completion_tokens: int


class ComposeProvider(Protocol):
    """Streams the draft(s) of a context: ComposeDelta items, then exactly one ComposeUsage. Raises AIError.

    Cancelling the consuming task (or calling `aclose()` on the iterator) must stop the upstream request at once."""

    name: str  # "builtin" or the model's name

    def stream(self, context: ComposeContext, *, variants: int) -> AsyncIterator[ComposeDelta | ComposeUsage]: ...


# -- history and tokens ------------------------------------------------------------------------------------------

_MIN_TRUNCATED_TOKENS = 50  # an older message is kept cut short only when at least this much budget is left


def estimate_tokens(text: str) -> int:
    """About four characters a token, as GPT tokenizers count English; at least 1 for a non-empty text."""
    return -(-len(text) // 4)


def _message_tokens(message: HistoryMessage) -> int:
    return estimate_tokens(message.body) + estimate_tokens(message.subject or "")


def fit_history(history: Sequence[HistoryMessage], budget_tokens: int) -> tuple[HistoryMessage, ...]:
    """The newest messages of `history` (oldest first) that fit `budget_tokens`.

    The customer's last inbound message is always kept whole, even alone over the budget. Going back in time, a
    message that no longer fits is cut short (ending in "…") when at least ~50 tokens are left, else dropped; the
    messages before it are dropped too, so that what is kept is a continuous tail of the conversation."""
    last_inbound = next((i for i in reversed(range(len(history))) if history[i].direction is Direction.INBOUND), None)
    remaining = budget_tokens - (_message_tokens(history[last_inbound]) if last_inbound is not None else 0)
    kept: list[HistoryMessage] = []
    full = False
    for index in reversed(range(len(history))):
        message = history[index]
        if index == last_inbound:
            kept.append(message)
        elif not full:
            cost = _message_tokens(message)
            if cost <= remaining:
                kept.append(message)
                remaining -= cost
            else:
                full = True
                shortened = _shorten(message, remaining)
                if shortened is not None:
                    kept.append(shortened)
    kept.reverse()
    return tuple(kept)


def _shorten(message: HistoryMessage, budget_tokens: int) -> HistoryMessage | None:
    room = budget_tokens - estimate_tokens(message.subject or "")
    if room < _MIN_TRUNCATED_TOKENS:
        return None
    limit = room * 4 - 1  # the "…" takes the last character
    cut = message.body[:limit]
    at_word = re.match(r"(?s)(.*\S)\s", cut)
    if at_word and len(at_word.group(1)) >= limit // 2:
        cut = at_word.group(1)
    return replace(message, body=cut.rstrip() + "…")


# -- dates and names ---------------------------------------------------------------------------------------------

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_HONORIFICS = {"mr", "mrs", "ms", "miss", "dr", "prof", "capt", "shri", "smt"}


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _day(moment: datetime, zone: tzinfo) -> str:
    """'Mon 14 Dec 2026', in `zone` (a naive datetime is taken as UTC); English whatever the process's locale."""
    local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)
    return f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}"


def _day_time(moment: datetime, zone: tzinfo) -> str:
    local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)
    return f"{_day(local, zone)} {local:%H:%M}"


def _person(name: str | None) -> str | None:
    """A name fit to greet: None for an empty one or for an address or a number standing in for a name."""
    name = " ".join((name or "").split())
    if not name or "@" in name or sum(c.isdigit() for c in name) > 2:
        return None
    return name


def _first_name(name: str | None) -> str | None:
    name = _person(name)
    if name is None:
        return None
    words = name.split()
    if words[0].rstrip(".").lower() in _HONORIFICS:
        return name if len(words) > 1 else None
    return words[0]


def _join(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
