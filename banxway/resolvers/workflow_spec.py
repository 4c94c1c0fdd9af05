"""What a workflow definition is: its trigger, conditions and steps (pydantic models of the JSON a client sends),
every problem with its path, and the conditions evaluated over a thread's facts. Pure: no database, no I/O; the
engine (banxway.resolvers.workflow_engine) gathers the facts and runs the steps.

A definition, in the camelCase JSON of the API:

    {"trigger": {"type": "MESSAGE_RECEIVED", "channel": "WHATSAPP"},
     "conditions": {"all": [{"field": "customer.tags", "op": "CONTAINS", "value": "key account"},
                            {"businessHours": "INSIDE"}]},
     "steps": [{"type": "ASSIGN", "team": "<Team id>", "strategy": "ROUND_ROBIN"},
               {"type": "CREATE_ACTION", "title": "Send quote", "actionType": "SEND_QUOTE", "dueInMinutes": 120}]}
"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from banxway.enums import (
    ActionType,
    Channel,
    Intent,
    MilestoneType,
    Priority,
    SlaTargetKind,
    ThreadStatus,
    ThreadType,
)

MAX_STEPS = 30
MAX_CONDITIONS_DEPTH = 5
# A workflow started by an event that a workflow's step recorded is one level deeper; past this it is not run.
MAX_DEPTH = 3


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


def _reference(type_name: str):
    """A validator of an id field: a global id of `type_name` (as the API gives them) or a plain uuid."""

    def check(value: Any) -> str:
        if parse_reference(value, type_name) is None:
            raise ValueError(f"not the id of a {type_name}")
        return value

    return check


def parse_reference(value: Any, type_name: str) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    try:
        kind, _, local = base64.b64decode(value, validate=True).decode().partition(":")
        return uuid.UUID(local) if kind == type_name else None
    except ValueError:
        return None


def _id(type_name: str) -> Any:
    return Annotated[str, AfterValidator(_reference(type_name))]


TeamRef = _id("Team")
UserRef = _id("User")
CannedResponseRef = _id("CannedResponse")
ShipmentRef = _id("Shipment")
AgentConnectionRef = _id("AgentConnection")

# -- triggers ---------------------------------------------------------------------------------------------------


class ThreadCreatedTrigger(_Model):
    type: Literal["THREAD_CREATED"]
    channel: Channel | None = None


class MessageReceivedTrigger(_Model):
    type: Literal["MESSAGE_RECEIVED"]
    channel: Channel | None = None


class AnalysisCompletedTrigger(_Model):
    """An inbound message was analysed (ANALYSIS_COMPLETED); `intent`: only messages with that intent."""

    type: Literal["ANALYSIS_COMPLETED"]
    intent: Intent | None = None


class StatusChangedTrigger(_Model):
    type: Literal["THREAD_STATUS_CHANGED"]
    to: list[ThreadStatus] = Field(default_factory=list, description="Only to these statuses; empty: any")


class SlaTrigger(_Model):
    type: Literal["SLA_WARNING", "SLA_BREACHED"]
    target: SlaTargetKind | None = None


class MilestoneTrigger(_Model):
    type: Literal["SHIPMENT_MILESTONE"]
    milestone: MilestoneType | None = None


class ScheduleTrigger(_Model):
    """Runs at each instant of `cron` in `timezone`, once for each thread the conditions match (not archived,
    at most SCHEDULE_LIMIT)."""

    type: Literal["SCHEDULE"]
    cron: str
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value) or len(value.split()) != 5:
            raise ValueError("not a cron expression of five fields (minute hour day month weekday)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def next_after(self, at: datetime) -> datetime:
        return croniter(self.cron, at.astimezone(ZoneInfo(self.timezone))).get_next(datetime)


Trigger = Annotated[
    ThreadCreatedTrigger
    | MessageReceivedTrigger
    | AnalysisCompletedTrigger
    | StatusChangedTrigger
    | SlaTrigger
    | MilestoneTrigger
    | ScheduleTrigger,
    Field(discriminator="type"),
]
SCHEDULE_LIMIT = 500

# -- conditions -------------------------------------------------------------------------------------------------

FIELDS = {
    "thread.status",
    "thread.priority",
    "thread.type",
    "thread.channel",
    "thread.subject",
    "thread.tags",
    "thread.reference",
    "thread.assigned",
    "thread.team",
    "thread.intent",
    "thread.sentiment",
    "customer.name",
    "customer.code",
    "customer.tags",
    "customer.tier",
    "contact.name",
    "contact.title",
    "shipment.reference",
    "shipment.mode",
    "shipment.direction",
    "shipment.status",
    "shipment.carrier",
    "shipment.origin",
    "shipment.destination",
    "shipment.eta",
    "shipment.etd",
    "message.channel",
    "message.body",
}
Op = Literal["EQ", "NE", "IN", "NOT_IN", "CONTAINS", "NOT_CONTAINS", "GT", "GTE", "LT", "LTE", "EXISTS", "NOT_EXISTS"]


class FieldCondition(_Model):
    field: str
    op: Op = "EQ"
    value: Any = None

    @field_validator("field")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in FIELDS and not value.startswith("customer.fields."):
            raise ValueError(f"unknown field; one of {', '.join(sorted(FIELDS))} or customer.fields.<name>")
        return value

    @model_validator(mode="after")
    def _value(self) -> FieldCondition:
        if self.op in ("IN", "NOT_IN") and not isinstance(self.value, list):
            raise ValueError(f"{self.op} needs a list value")
        if self.op not in ("EXISTS", "NOT_EXISTS") and self.value is None:
            raise ValueError(f"{self.op} needs a value")
        return self


class KeywordCondition(_Model):
    keyword: str = Field(min_length=1, max_length=200)
    in_: Literal["SUBJECT", "BODY", "ANY"] = Field(default="ANY", alias="in")


class ChannelCondition(_Model):
    channel: list[Channel] = Field(min_length=1)


class BusinessHoursCondition(_Model):
    business_hours: Literal["INSIDE", "OUTSIDE"]


class AllOf(_Model):
    all: list[Condition] = Field(min_length=1)


class AnyOf(_Model):
    any: list[Condition] = Field(min_length=1)


class NotOf(_Model):
    not_: Condition = Field(alias="not")


_CONDITION_KEYS = {
    "all": "all",
    "any": "any",
    "not": "not",
    "field": "field",
    "keyword": "keyword",
    "channel": "channel",
    "businessHours": "businessHours",
    "business_hours": "businessHours",
}


def _condition_kind(value: Any) -> str | None:
    """Which kind of condition an object is, by its key (none: pydantic reports the object itself)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True)
    if not isinstance(value, dict):
        return None
    kinds = {_CONDITION_KEYS[key] for key in value if key in _CONDITION_KEYS}
    return kinds.pop() if len(kinds) == 1 else None


Condition = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")]
    | Annotated[FieldCondition, Tag("field")]
    | Annotated[KeywordCondition, Tag("keyword")]
    | Annotated[ChannelCondition, Tag("channel")]
    | Annotated[BusinessHoursCondition, Tag("businessHours")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition",
        custom_error_message="a condition: an object with one of all, any, not, field, keyword, channel, businessHours",
    ),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()

# -- steps ------------------------------------------------------------------------------------------------------


class AssignStep(_Model):
    """To a user, or to a team's agent (round-robin or least-open, skipping away, deactivated and full agents;
    the team's queue when none can take it)."""

    type: Literal["ASSIGN"]
    team: TeamRef | None = None
    user: UserRef | None = None
    strategy: Literal["ROUND_ROBIN", "LEAST_OPEN"] = "ROUND_ROBIN"

    @model_validator(mode="after")
    def _one(self) -> AssignStep:
        if (self.team is None) == (self.user is None):
            raise ValueError("give exactly one of team and user")
        return self


class SetStep(_Model):
    type: Literal["SET"]
    status: ThreadStatus | None = None
    priority: Priority | None = None
    thread_type: ThreadType | None = None
    add_tags: list[str] = Field(default_factory=list, max_length=20)
    remove_tags: list[str] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _something(self) -> SetStep:
        if self.status in (ThreadStatus.NEW, ThreadStatus.ARCHIVED):
            raise ValueError("a workflow may not set a thread NEW or ARCHIVED")
        if not (self.status or self.priority or self.thread_type or self.add_tags or self.remove_tags):
            raise ValueError("set at least one of status, priority, threadType, addTags, removeTags")
        return self


class CreateActionStep(_Model):
    type: Literal["CREATE_ACTION"]
    title: str = Field(min_length=1, max_length=300)
    action_type: ActionType = ActionType.TASK
    due_in_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 366)
    assign_to: Literal["THREAD_ASSIGNEE", "NOBODY"] | UserRef = "THREAD_ASSIGNEE"


class SendReplyStep(_Model):
    """A reply on the thread's channel (or `channel`) from a canned response or a body with the same
    `{{variables}}`; with `approval`, held as a QUOTE_APPROVAL action until a VALIDATOR (or ADMIN/MANAGER) marks it
    DONE — cancelled or timed out, it is not sent."""

    type: Literal["SEND_REPLY"]
    canned_response: CannedResponseRef | None = None
    body: str | None = Field(default=None, min_length=1, max_length=10_000)
    channel: Channel | None = None
    approval: bool = False
    approval_timeout_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 30)

    @model_validator(mode="after")
    def _source(self) -> SendReplyStep:
        if (self.canned_response is None) == (self.body is None):
            raise ValueError("give exactly one of cannedResponse and body")
        if self.channel in (Channel.VOICE, Channel.INTERNAL):
            raise ValueError(f"a reply cannot be sent on {self.channel.name}")
        if self.approval_timeout_minutes is not None and not self.approval:
            raise ValueError("approvalTimeoutMinutes needs approval")
        return self


class NotifyStep(_Model):
    type: Literal["NOTIFY"]
    user: UserRef | None = None
    team: TeamRef | None = None
    assignee: bool = False
    message: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _someone(self) -> NotifyStep:
        if not (self.user or self.team or self.assignee):
            raise ValueError("name someone: user, team or assignee")
        return self


class WaitStep(_Model):
    """A duration (`minutes`), or `until` an event with `timeoutMinutes`; on timeout `onTimeout`: CONTINUE, END,
    or the index of a later step to go to (the timeout branch)."""

    type: Literal["WAIT"]
    minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 90)
    until: Literal["CUSTOMER_REPLIED", "AGENT_REPLIED", "THREAD_RESOLVED"] | None = None
    timeout_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 90)
    on_timeout: Literal["CONTINUE", "END"] | int = "CONTINUE"

    @model_validator(mode="after")
    def _shape(self) -> WaitStep:
        if (self.minutes is None) == (self.until is None):
            raise ValueError("give exactly one of minutes and until")
        if self.until is not None and self.timeout_minutes is None:
            raise ValueError("until needs timeoutMinutes")
        if self.minutes is not None and (self.timeout_minutes is not None or self.on_timeout != "CONTINUE"):
            raise ValueError("timeoutMinutes and onTimeout go with until")
        return self


class LinkShipmentStep(_Model):
    """Link the thread to `shipment`, or to the shipment whose reference, container, BL, AWB or booking number
    appears in the subject or the customer's last message (no link, and no failure, when none does)."""

    type: Literal["LINK_SHIPMENT"]
    shipment: ShipmentRef | None = None


class HttpStep(_Model):
    """POST the thread's summary as JSON to an HTTPS URL, signed (X-Banxway-Signature: t=<unix>,v1=<hex HMAC-SHA256
    of "<t>.<body>" with the workflow's signing secret); private addresses are refused."""

    type: Literal["HTTP"]
    url: str = Field(max_length=2000)

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not re.match(r"^https://[^/\s?#]+", value):
            raise ValueError("an https:// URL")
        return value


class CallAgentStep(_Model):
    """Ask a tool of an external MCP server (an agent connection) to work on the thread: an agent task, run in the
    background like agentTaskCreate's; its answer comes back as a note. The step ends once the task is queued."""

    type: Literal["CALL_AGENT"]
    connection: AgentConnectionRef
    tool: str = Field(min_length=1, max_length=200)
    arguments: dict[str, Any] = Field(default_factory=dict)


Step = Annotated[
    AssignStep
    | SetStep
    | CreateActionStep
    | SendReplyStep
    | NotifyStep
    | WaitStep
    | LinkShipmentStep
    | HttpStep
    | CallAgentStep,
    Field(discriminator="type"),
]


class Definition(_Model):
    trigger: Trigger
    conditions: Condition | None = None
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _branches(self) -> Definition:
        for index, step in enumerate(self.steps):
            if isinstance(step, WaitStep) and isinstance(step.on_timeout, int):
                if not index < step.on_timeout < len(self.steps):
                    raise ValueError(
                        f"steps.{index}.onTimeout: a later step's index ({index + 1}..{len(self.steps) - 1})"
                    )
        if self.conditions is not None and _depth(self.conditions) > MAX_CONDITIONS_DEPTH:
            raise ValueError(f"conditions nest deeper than {MAX_CONDITIONS_DEPTH}")
        return self


def _depth(condition: Condition) -> int:
    if isinstance(condition, AllOf | AnyOf):
        return 1 + max(_depth(c) for c in (condition.all if isinstance(condition, AllOf) else condition.any))
    if isinstance(condition, NotOf):
        return 1 + _depth(condition.not_)
    return 1


class Problem(BaseModel):
    path: str
    message: str


def _path(loc: tuple[Any, ...], data: Any) -> str:
    """The location in the client's JSON: pydantic's `loc` also names union members (a step's `type`, a
    condition's kind), which are not keys of the input; walk the input and keep only what is there."""
    parts: list[str] = []
    for item in loc:
        if (isinstance(data, dict) and item in data) or (
            isinstance(data, list) and isinstance(item, int) and item < len(data)
        ):
            data = data[item]
        elif isinstance(data, dict | list):
            if isinstance(item, str) and (item.isupper() or item in _CONDITION_KEYS.values()):
                continue  # a union member's tag
            data = None
        else:
            continue
        parts.append(str(item))
    return ".".join(parts)


def parse(data: Any) -> tuple[Definition | None, list[Problem]]:
    """The definition, or every problem with its path (`steps.1.team`, `trigger.cron`)."""
    if not isinstance(data, dict):
        return None, [Problem(path="definition", message="a JSON object with trigger, conditions and steps")]
    try:
        return Definition.model_validate(data), []
    except ValidationError as exc:
        problems: list[Problem] = []
        seen: set[tuple[str, str]] = set()
        for error in exc.errors(include_url=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            path = _path(tuple(error["loc"]), data)
            match = re.match(r"^(steps\.\d+\.\w+): (.*)$", message)
            if match:
                path, message = match.group(1), match.group(2)
            if (path, message) not in seen:
                seen.add((path, message))
                problems.append(Problem(path=path or "definition", message=message))
        return None, _most_specific(problems)


def _most_specific(problems: list[Problem]) -> list[Problem]:
    """A union that fails in every member reports each member's complaint; keep those under the deepest paths."""
    return [p for p in problems if not any(o.path.startswith(p.path + ".") for o in problems)] or problems


def to_json(definition: Definition) -> dict[str, Any]:
    return definition.model_dump(mode="json", by_alias=True, exclude_none=True)


# -- evaluation -------------------------------------------------------------------------------------------------


class Explained(BaseModel):
    """One condition's result, for workflowDryRun."""

    path: str
    condition: str
    matched: bool
    actual: Any = None


def evaluate(condition: Condition | None, facts: dict[str, Any], path: str = "conditions") -> list[Explained]:
    """Every condition's result, outermost first; the first entry is the whole's (none without conditions)."""
    if condition is None:
        return []
    if isinstance(condition, AllOf | AnyOf | NotOf):
        parts = (
            condition.all
            if isinstance(condition, AllOf)
            else condition.any
            if isinstance(condition, AnyOf)
            else [condition.not_]
        )
        key = "all" if isinstance(condition, AllOf) else "any" if isinstance(condition, AnyOf) else "not"
        children = [
            evaluate(part, facts, f"{path}.{key}.{i}" if key != "not" else f"{path}.not")
            for i, part in enumerate(parts)
        ]
        results = [c[0].matched for c in children]
        matched = all(results) if key == "all" else any(results) if key == "any" else not results[0]
        head = Explained(path=path, condition=key, matched=matched)
        return [head, *(e for child in children for e in child)]
    if isinstance(condition, FieldCondition):
        actual = facts.get(condition.field)
        return [
            Explained(
                path=path,
                condition=f"{condition.field} {condition.op} {condition.value!r}",
                matched=_compare(actual, condition.op, condition.value),
                actual=_plain(actual),
            )
        ]
    if isinstance(condition, KeywordCondition):
        texts = {
            "SUBJECT": [facts.get("thread.subject")],
            "BODY": [facts.get("message.body")],
            "ANY": [facts.get("thread.subject"), facts.get("message.body")],
        }[condition.in_]
        pattern = re.compile(r"(?<!\w)" + re.escape(condition.keyword.strip()) + r"(?!\w)", re.IGNORECASE)
        matched = any(pattern.search(text or "") for text in texts)
        return [Explained(path=path, condition=f"keyword {condition.keyword!r} in {condition.in_}", matched=matched)]
    if isinstance(condition, ChannelCondition):
        actual = facts.get("message.channel") or facts.get("thread.channel")
        names = [c.name for c in condition.channel]
        return [Explained(path=path, condition=f"channel in {names}", matched=actual in names, actual=actual)]
    inside = facts.get("business_hours.inside", True)
    wanted = condition.business_hours == "INSIDE"
    return [
        Explained(
            path=path,
            condition=f"business hours {condition.business_hours}",
            matched=inside == wanted,
            actual="INSIDE" if inside else "OUTSIDE",
        )
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().lower()
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == "EXISTS":
        return actual not in (None, "", [])
    if op == "NOT_EXISTS":
        return actual in (None, "", [])
    if isinstance(actual, datetime) and isinstance(expected, str):
        try:
            expected = datetime.fromisoformat(expected)
        except ValueError:
            return False
    a, e = _norm(actual), _norm(expected)
    if op == "EQ":
        return a == e
    if op == "NE":
        return a != e
    if op == "IN":
        return a in e
    if op == "NOT_IN":
        return a not in e
    if op in ("CONTAINS", "NOT_CONTAINS"):
        found = (isinstance(a, list) or (isinstance(a, str) and isinstance(e, str))) and e in a
        return found if op == "CONTAINS" else not found
    if a is None or e is None:
        return False
    try:
        return {"GT": a > e, "GTE": a >= e, "LT": a < e, "LTE": a <= e}[op]
    except TypeError:
        return False
