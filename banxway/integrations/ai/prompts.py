"""The versioned prompts: the template files (templates/<version>.md) and what fills them, for a draft
(`render_compose_prompt`) and for a message analysis (`render_extract_prompt`, `extract_response_format`)."""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Sequence
from datetime import tzinfo
from string import Template
from typing import Any

import pydantic

from banxway.enums import Channel, Direction, EntityKind, Intent, Sentiment
from banxway.integrations.ai.base import (
    ComposeContext,
    HistoryMessage,
    ShipmentFacts,
    _day_time,
    _first_name,
    _person,
    _zone,
)

# -- the template files ------------------------------------------------------------------------------------------

_SECTION = re.compile(r"^<!-- ([\w.]+) -->$", re.MULTILINE)


@functools.cache
def _prompt_sections(version: str) -> dict[str, str]:
    """The sections of templates/<version>.md: a line '<!-- name -->' starts one."""
    text = (importlib.resources.files(__package__) / "templates" / f"{version}.md").read_text("utf-8")
    parts = _SECTION.split(text)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


def _fill(version: str, section: str, values: dict[str, str]) -> str:
    return Template(_prompt_sections(version)[section]).substitute(values)


# -- the compose prompt ------------------------------------------------------------------------------------------

COMPOSE_PROMPT_VERSION = "compose-v1"
_CHANNEL_NAMES = {Channel.EMAIL: "email", Channel.WHATSAPP: "WhatsApp", Channel.SMS: "SMS"}


def render_compose_prompt(context: ComposeContext) -> list[dict[str, str]]:
    """The chat messages (system, user) of a draft for `context`, from templates/compose-v1.md; deterministic."""
    zone = _zone(context.timezone)
    channel_rule = f"channel.{context.channel.value}"
    if channel_rule not in _prompt_sections(COMPOSE_PROMPT_VERSION):
        channel_rule = "channel.OTHER"
    values = {
        "organization_name": context.organization_name,
        "agent_name": context.agent_name or "our team",
        "agent_first_name": _first_name(context.agent_name) or context.organization_name,
        "signature": context.signature,
        "timezone": context.timezone,
        "customer_name": context.customer_name or "unknown",
        "contact_name": _person(context.contact_name) or "the customer (name unknown)",
        "preferred_channel": context.preferred_channel.value if context.preferred_channel else "unknown",
        "thread_reference": context.thread_reference,
        "thread_subject": context.thread_subject or "(no subject)",
        "now": _day_time(context.now, zone),
        "shipment": _shipment_block(context.shipment, zone),
        "open_actions": "\n".join(f"- {a}" for a in context.open_actions) or "None.",
        "instructions": context.instructions.strip() or "None.",
        "conversation": _conversation_block(context.history, zone),
        "channel_name": _CHANNEL_NAMES.get(context.channel, context.channel.value.replace("_", " ").lower()),
    }
    values["tone_rule"] = _fill(COMPOSE_PROMPT_VERSION, f"tone.{context.tone.value}", values)
    values["channel_rule"] = _fill(COMPOSE_PROMPT_VERSION, channel_rule, values)
    return [
        {"role": "system", "content": _fill(COMPOSE_PROMPT_VERSION, "system", values)},
        {"role": "user", "content": _fill(COMPOSE_PROMPT_VERSION, "user", values)},
    ]


def _shipment_block(shipment: ShipmentFacts | None, zone: tzinfo) -> str:
    if shipment is None:
        return "No shipment is linked to this conversation."
    s = shipment
    lines = [
        f"Reference: {s.reference}",
        f"Mode: {s.mode}",
        f"Status: {s.status}",
        f"Route: {s.origin or 'unknown'} → {s.destination or 'unknown'}",
    ]
    named = (
        ("Carrier", s.carrier),
        ("Vessel", s.vessel),
        ("Voyage", s.voyage),
        ("Flight", s.flight_number),
        ("Containers", ", ".join(s.container_numbers)),
        ("BL number", s.bl_number),
        ("AWB number", s.awb_number),
        ("Booking number", s.booking_number),
    )
    lines += [f"{label}: {value}" for label, value in named if value]
    lines.append(f"ETD (planned departure): {_day_time(s.etd, zone) if s.etd else 'unknown'}")
    if s.atd:
        lines.append(f"ATD (actual departure): {_day_time(s.atd, zone)}")
    lines.append(f"ETA (planned arrival): {_day_time(s.eta, zone) if s.eta else 'unknown'}")
    if s.ata:
        lines.append(f"ATA (actual arrival): {_day_time(s.ata, zone)}")
    if not s.milestones:
        lines.append("Milestones: none recorded.")
    else:
        lines.append("Milestones (in time order):")
        for m in s.milestones:
            parts = [m.type] + ([f"at {m.location}"] if m.location else [])
            if m.actual_at:
                parts.append(f"done {_day_time(m.actual_at, zone)}")
            if m.planned_at:
                parts.append(f"planned {_day_time(m.planned_at, zone)}")
            lines.append("- " + ", ".join(parts) + (f" — {m.note}" if m.note else ""))
    return "\n".join(lines)


def _conversation_block(history: Sequence[HistoryMessage], zone: tzinfo) -> str:
    blocks: list[str] = []
    subject: str | None = None
    for message in history:
        side = "customer" if message.direction is Direction.INBOUND else "our team"
        lines = [f"[{_day_time(message.at, zone)}] {message.author} ({side}, {message.channel.value})"]
        if message.subject and message.subject != subject:
            lines.append(f"Subject: {message.subject}")
            subject = message.subject
        lines.append(message.body.strip() or "(empty)")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) or "No messages yet."


# -- the extraction prompt ---------------------------------------------------------------------------------------

EXTRACT_PROMPT_VERSION = "extract-v1"
_EXTRACT_MAX_BODY = 16_000  # characters of the body sent (about 4k tokens); the rest is cut off


class _EntityOutput(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", title="Entity")

    kind: EntityKind
    text: str


class _ExtractionOutput(pydantic.BaseModel):
    # The model's reply; its JSON schema is the strict response_format of the request (so: no docstring, which
    # would become the schema's description).
    model_config = pydantic.ConfigDict(extra="forbid", title="MessageAnalysis")

    language: str | None
    sentiment: Sentiment | None
    sentiment_score: float | None
    intent: Intent | None
    entities: list[_EntityOutput]

    @pydantic.field_validator("sentiment_score")
    @classmethod
    def _in_range(cls, value: float | None) -> float | None:
        if value is not None and not -1.0 <= value <= 1.0:
            raise ValueError(f"sentiment_score {value} is outside -1.0 .. 1.0")
        return value


def extract_response_format() -> dict[str, Any]:
    """The `response_format` of an extraction: a strict JSON schema (every property required, no others)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "message_analysis", "strict": True, "schema": _ExtractionOutput.model_json_schema()},
    }


def render_extract_prompt(*, subject: str | None, body: str) -> list[dict[str, str]]:
    """The chat messages (system, user) of an extraction, from templates/extract-v1.md."""
    if len(body) > _EXTRACT_MAX_BODY:
        body = body[:_EXTRACT_MAX_BODY] + "…"
    values = {
        "sentiments": ", ".join(s.value for s in Sentiment),
        "intents": ", ".join(i.value for i in Intent),
        "entity_kinds": ", ".join(k.value for k in EntityKind),
        "subject": " ".join((subject or "").split()) or "(none)",
        "body": body.strip() or "(empty)",
    }
    return [
        {"role": "system", "content": _fill(EXTRACT_PROMPT_VERSION, "system", values)},
        {"role": "user", "content": _fill(EXTRACT_PROMPT_VERSION, "user", values)},
    ]
