"""SLAs: policies, the organization's business hours, and a thread's targets (banxway.resolvers.sla)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

import strawberry

from banxway import db
from banxway.calendar import WEEKDAYS, BusinessCalendar
from banxway.resolvers import sla as sla_use_cases
from banxway.schema.enums import Channel, Priority, ThreadType
from banxway.schema.errors import RECORD_CODES, error_type, mutate
from banxway.schema.ids import changes, decode, decode_optional, given
from banxway.schema.nodes import Ctx, Node, _id_field, _model_type_of, _node_resolver, related
from banxway.schema.users import User

SlaStatus = strawberry.enum(db.SlaStatus, description="Where a thread stands against its SLA policy.")
SlaTargetKind = strawberry.enum(db.SlaTargetKind)
SlaError, SlaErrorCode = error_type("Sla", RECORD_CODES)


@strawberry.enum
class Weekday(enum.Enum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"


# -- business hours -------------------------------------------------------------------------------------------


@strawberry.type(description="A span of business time on a weekday, local time: start included, end excluded.")
class Shift:
    start: str = strawberry.field(description="HH:MM")
    end: str = strawberry.field(description="HH:MM; 24:00 is the end of the day.")


@strawberry.type
class BusinessDay:
    weekday: Weekday
    shifts: list[Shift]


@strawberry.type(description="When the organization is open: SLA policies with businessHours count only this time.")
class BusinessHours:
    timezone: str = strawberry.field(description="An IANA time zone, e.g. Asia/Kolkata.")
    week: list[BusinessDay] = strawberry.field(description="Every weekday, Monday first; no shifts: closed.")
    holiday_country: str | None = strawberry.field(description="Public holidays of this country (ISO 3166 code).")
    holiday_subdivision: str | None
    holiday_dates: list[date] = strawberry.field(description="Further whole days off.")


def _business_hours(calendar: BusinessCalendar | None) -> BusinessHours | None:
    if calendar is None:
        return None
    data = calendar.to_dict()
    return BusinessHours(
        timezone=data["timezone"],
        week=[
            BusinessDay(weekday=Weekday(name), shifts=[Shift(start=a, end=b) for a, b in data["hours"][name]])
            for name in WEEKDAYS
        ],
        holiday_country=data["holidays"]["country"],
        holiday_subdivision=data["holidays"]["subdivision"],
        holiday_dates=[date.fromisoformat(day) for day in data["holidays"]["dates"]],
    )


@strawberry.input
class ShiftInput:
    start: str
    end: str


@strawberry.input
class BusinessDayInput:
    weekday: Weekday
    shifts: list[ShiftInput]


@strawberry.input(description="Weekdays left out are closed.")
class BusinessHoursInput:
    timezone: str
    week: list[BusinessDayInput]
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    holiday_dates: list[date] | None = None


def _calendar_data(value: BusinessHoursInput) -> dict[str, Any]:
    hours: dict[str, list[list[str]]] = {}
    for day in value.week:
        hours.setdefault(day.weekday.value, []).extend([shift.start, shift.end] for shift in day.shifts)
    return {
        "timezone": value.timezone,
        "hours": hours,
        "holidays": {
            "country": value.holiday_country,
            "subdivision": value.holiday_subdivision,
            "dates": [day.isoformat() for day in value.holiday_dates or []],
        },
    }


@strawberry.type
class BusinessHoursPayload:
    business_hours: BusinessHours | None = None
    user_errors: list[SlaError]  # type: ignore[valid-type]


# -- policies -------------------------------------------------------------------------------------------------


@strawberry.type(description="Which threads a policy applies to; every given list must match (empty: any).")
class SlaConditions:
    priorities: list[Priority]
    channels: list[Channel]
    thread_types: list[ThreadType]
    customer_tags: list[str] = strawberry.field(description="The thread's customer has one of these tags.")


@strawberry.type(description="What happens when a target is breached (and, for notifyAssignee, at its warning).")
class SlaBreachActions:
    notify_assignee: bool
    notify_managers: bool = strawberry.field(description="Every active MANAGER (every ADMIN when there is none).")
    raise_priority: bool = strawberry.field(description="One step up: LOW → NORMAL → HIGH → URGENT.")
    reassign_to_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def reassign_to(self, info: Ctx) -> User | None:
        if self.reassign_to_id is None:
            return None
        return await info.context.loaders.user_by_id.load(self.reassign_to_id)  # type: ignore[return-value]


@strawberry.type(
    description="Response and resolution targets for the threads its conditions match; the first active match by "
    "position applies when a thread is created or its priority, type, channel or customer changes."
)
class SlaPolicy(Node):
    id: strawberry.ID = _id_field("SlaPolicy")
    name: str
    position: int = strawberry.field(description="Lower first; ties by creation.")
    active: bool
    first_response_minutes: int | None
    next_response_minutes: int | None = strawberry.field(description="Restarted by each customer message.")
    resolution_minutes: int | None
    business_hours: bool = strawberry.field(
        description="Targets count the organization's business hours (around the clock when it has none); "
        "false: around the clock."
    )
    warn_before_minutes: int = strawberry.field(description="SLA_WARNING this long before a target is due; 0: none.")
    created_at: datetime
    updated_at: datetime

    is_type_of = _model_type_of(db.SlaPolicy)
    resolve_nodes = _node_resolver("sla_policy_by_id")

    @strawberry.field
    def conditions(self) -> SlaConditions:
        given_ = self.conditions or {}  # type: ignore[attr-defined]
        return SlaConditions(
            priorities=[Priority[name] for name in given_.get("priorities", [])],
            channels=[Channel[name] for name in given_.get("channels", [])],
            thread_types=[ThreadType[name] for name in given_.get("thread_types", [])],
            customer_tags=list(given_.get("customer_tags", [])),
        )

    @strawberry.field
    def breach_actions(self) -> SlaBreachActions:
        actions = self.breach_actions or {}  # type: ignore[attr-defined]
        reassign = actions.get("reassign_to")
        return SlaBreachActions(
            notify_assignee=bool(actions.get("notify_assignee")),
            notify_managers=bool(actions.get("notify_managers")),
            raise_priority=bool(actions.get("raise_priority")),
            reassign_to_id=uuid.UUID(reassign) if reassign else None,
        )


@strawberry.type(description="One target of a thread's SLA.")
class SlaTarget:
    kind: SlaTargetKind
    minutes: int
    business_hours: bool
    started_at: datetime
    due_at: datetime | None = strawberry.field(description="Null while the thread is PENDING (the clock stopped).")
    warn_at: datetime | None
    met_at: datetime | None
    warned_at: datetime | None
    breached_at: datetime | None = strawberry.field(description="The due time it passed unmet.")
    cancelled_at: datetime | None = strawberry.field(
        description="Replaced by another policy's target, or no longer needed (the thread was resolved)."
    )

    @strawberry.field
    def policy(self, info: Ctx) -> SlaPolicy | None:
        return related(self, info, "policy", "sla_policy_by_id", self.policy_id)  # type: ignore[attr-defined]


@strawberry.input
class SlaConditionsInput:
    priorities: list[Priority] | None = None
    channels: list[Channel] | None = None
    thread_types: list[ThreadType] | None = None
    customer_tags: list[str] | None = None


@strawberry.input
class SlaBreachActionsInput:
    notify_assignee: bool = False
    notify_managers: bool = False
    raise_priority: bool = False
    reassign_to_id: strawberry.ID | None = None


@strawberry.input
class SlaPolicyCreateInput:
    name: str
    first_response_minutes: int | None = None
    next_response_minutes: int | None = None
    resolution_minutes: int | None = None
    business_hours: bool = True
    warn_before_minutes: int = 0
    position: int = 0
    active: bool = True
    conditions: SlaConditionsInput | None = None
    breach_actions: SlaBreachActionsInput | None = None


@strawberry.input(description="Fields left out stay as they are; null clears a target.")
class SlaPolicyUpdateInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    first_response_minutes: int | None = strawberry.UNSET
    next_response_minutes: int | None = strawberry.UNSET
    resolution_minutes: int | None = strawberry.UNSET
    business_hours: bool | None = strawberry.UNSET
    warn_before_minutes: int | None = strawberry.UNSET
    position: int | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET
    conditions: SlaConditionsInput | None = strawberry.UNSET
    breach_actions: SlaBreachActionsInput | None = strawberry.UNSET


_PLAIN = {
    name: name
    for name in (
        "name",
        "first_response_minutes",
        "next_response_minutes",
        "resolution_minutes",
        "business_hours",
        "warn_before_minutes",
        "position",
        "active",
    )
}


def _policy_values(input: SlaPolicyCreateInput | SlaPolicyUpdateInput) -> dict[str, Any]:
    values = changes(input, _PLAIN)
    if given(input.conditions):
        c = input.conditions
        values["conditions"] = (
            {
                "priorities": [p.name for p in c.priorities or []],
                "channels": [ch.name for ch in c.channels or []],
                "thread_types": [t.name for t in c.thread_types or []],
                "customer_tags": c.customer_tags or [],
            }
            if c is not None
            else {}
        )
    if given(input.breach_actions):
        a = input.breach_actions
        values["breach_actions"] = (
            {
                "notify_assignee": a.notify_assignee,
                "notify_managers": a.notify_managers,
                "raise_priority": a.raise_priority,
                "reassign_to": decode_optional(a.reassign_to_id, "User", "breachActions.reassignToId"),
            }
            if a is not None
            else {}
        )
    return values


@strawberry.type
class SlaPolicyPayload:
    sla_policy: SlaPolicy | None = None
    user_errors: list[SlaError]  # type: ignore[valid-type]


@strawberry.type
class SlaPolicyDeletePayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[SlaError]  # type: ignore[valid-type]


@strawberry.type
class SlaQuery:
    @strawberry.field(description="The organization's SLA policies, in the order they are tried.")
    async def sla_policies(self, info: Ctx) -> list[SlaPolicy]:
        return await sla_use_cases.sla_policies(info.context)  # type: ignore[return-value]

    @strawberry.field(description="The organization's business hours; null: none set (SLAs run around the clock).")
    async def business_hours(self, info: Ctx) -> BusinessHours | None:
        return _business_hours(await sla_use_cases.business_hours(info.context))


@strawberry.type
class SlaMutation:
    @strawberry.mutation(description="ADMIN and MANAGER. Applies to threads created (or re-matched) from now on.")
    async def sla_policy_create(self, info: Ctx, input: SlaPolicyCreateInput) -> SlaPolicyPayload:
        async def call() -> dict:
            return {"sla_policy": await sla_use_cases.sla_policy_create(info.context, _policy_values(input))}

        return await mutate(SlaPolicyPayload, SlaError, SlaErrorCode, call)

    @strawberry.mutation(description="ADMIN and MANAGER. Running targets keep their due times.")
    async def sla_policy_update(self, info: Ctx, input: SlaPolicyUpdateInput) -> SlaPolicyPayload:
        async def call() -> dict:
            policy_id = decode(input.id, "SlaPolicy", "id")
            policy = await sla_use_cases.sla_policy_update(info.context, policy_id, _policy_values(input))
            return {"sla_policy": policy}

        return await mutate(SlaPolicyPayload, SlaError, SlaErrorCode, call)

    @strawberry.mutation(description="ADMIN and MANAGER. Threads keep their targets as history.")
    async def sla_policy_delete(self, info: Ctx, id: strawberry.ID) -> SlaPolicyDeletePayload:
        async def call() -> dict:
            await sla_use_cases.sla_policy_delete(info.context, decode(id, "SlaPolicy", "id"))
            return {"deleted_id": id}

        return await mutate(SlaPolicyDeletePayload, SlaError, SlaErrorCode, call)

    @strawberry.mutation(
        description="ADMIN and MANAGER. Set the business hours SLA policies count in; null clears them (around the "
        "clock). Errors name the offending part (`hours.monday.0.start`, `timezone`, `holidays.country`)."
    )
    async def business_hours_set(self, info: Ctx, input: BusinessHoursInput | None = None) -> BusinessHoursPayload:
        async def call() -> dict:
            data = _calendar_data(input) if input is not None else None
            return {"business_hours": _business_hours(await sla_use_cases.business_hours_set(info.context, data))}

        return await mutate(BusinessHoursPayload, SlaError, SlaErrorCode, call)
