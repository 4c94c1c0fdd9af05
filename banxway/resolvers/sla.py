"""SLAs: policies, the organization's business hours, and each thread's targets and their clock.

A policy (first active match by position) gives a thread up to three targets, counted in the organization's
business hours (`banxway.calendar`) or around the clock:

* FIRST_RESPONSE starts when the thread is created (or when the first customer message reaches a thread that
  had no policy yet) and is met by the first reply to the customer;
* NEXT_RESPONSE starts at each customer message that arrives while no response target is open, and is met by
  the next reply;
* RESOLUTION starts with the thread and is met when it is RESOLVED, CLOSED or ARCHIVED; reopening starts a new one.

The clock stops while the thread is PENDING (waiting on the customer): the spans are kept on the thread
(`sla_pauses`), and a target's due time is its start plus its minutes of business time outside them (unknown
while paused). Targets are rows (`sla_targets`), kept as history; a thread has at most one open target of each
kind. The thread carries the summary the inbox sorts and filters on: `sla_status`, `sla_due_at` (the nearest
open target) and `sla_check_at` (when a warning or a due time next needs a look).

Every change of a thread that moves its SLA goes through the functions of the "tracking" section, called by the
use-case that makes the change, in its transaction. Warnings and breaches are found by `sla_check` (the
`check_sla` actor, enqueued by the scheduler for each thread at its `sla_check_at`, and a sweep each minute as a
safety net); it is idempotent: a target is warned and breached once, under the thread's row lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from banxway import events
from banxway.auth import Permission
from banxway.calendar import BusinessCalendar, Pause
from banxway.db.models import Customer, Organization, SlaPolicy, SlaTarget, Thread, User
from banxway.db.session import transaction_memo
from banxway.enums import Channel, NotificationType, Priority, Role, SlaStatus, SlaTargetKind, ThreadStatus, ThreadType
from banxway.errors import DomainError
from banxway.resolvers import validation as v
from banxway.resolvers.audit import audit_change
from banxway.resolvers.common import active_user, get_or_error
from banxway.resolvers.inbox_events import to_global_id
from banxway.resolvers.notifications import notify

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from banxway.context import Context, SystemContext

RESPONSES = (SlaTargetKind.FIRST_RESPONSE, SlaTargetKind.NEXT_RESPONSE)
DONE_STATUSES = frozenset({ThreadStatus.RESOLVED, ThreadStatus.CLOSED, ThreadStatus.ARCHIVED})
_MAX_MINUTES = 366 * 24 * 60  # a target longer than a year is a typo
_PRIORITY_UP = {
    Priority.LOW: Priority.NORMAL,
    Priority.NORMAL: Priority.HIGH,
    Priority.HIGH: Priority.URGENT,
    Priority.URGENT: Priority.URGENT,
}
CONDITION_KEYS = {"priorities": Priority, "channels": Channel, "thread_types": ThreadType, "customer_tags": None}
ACTION_KEYS = ("notify_assignee", "notify_managers", "raise_priority", "reassign_to")


# -- business hours -------------------------------------------------------------------------------------------


async def organization_calendar(session: AsyncSession, organization_id: uuid.UUID) -> BusinessCalendar | None:
    data = await session.scalar(select(Organization.business_hours).where(Organization.id == organization_id))
    return BusinessCalendar.from_dict(data) if data else None


async def business_hours(ctx: Context) -> BusinessCalendar | None:
    viewer = ctx.require(Permission.READ)
    return await organization_calendar(ctx.db.session, viewer.organization_id)


async def business_hours_set(ctx: Context, data: dict[str, Any] | None) -> BusinessCalendar | None:
    """Set (or with None, clear: around the clock) the calendar SLA policies count business time in. Targets
    already running keep their due times; new targets, and targets resuming after a pause, use the new one."""
    viewer = ctx.require(Permission.AUTOMATION_MANAGE)
    calendar = BusinessCalendar.from_dict(data) if data is not None else None  # DomainError names the field
    async with ctx.transaction() as session:
        before = await session.scalar(
            select(Organization.business_hours).where(Organization.id == viewer.organization_id).with_for_update()
        )
        after = calendar.to_dict() if calendar else None
        await session.execute(
            update(Organization).where(Organization.id == viewer.organization_id).values(business_hours=after)
        )
        if before != after:
            await audit_change(
                ctx,
                session,
                action="businessHoursSet",
                target=to_global_id("Organization", viewer.organization_id),
                before={"business_hours": before},
                after={"business_hours": after},
            )
    return calendar


# -- policies -------------------------------------------------------------------------------------------------


async def sla_policies(ctx: Context) -> list[SlaPolicy]:
    ctx.require(Permission.READ)
    return await ctx.db.scalars(select(SlaPolicy).order_by(SlaPolicy.position, SlaPolicy.created_at))


def _minutes(value: Any, field: str, *, required: bool = False) -> int | None:
    if value is None:
        if required:
            raise DomainError("INVALID", "Required.", field)
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MAX_MINUTES:
        raise DomainError("INVALID", f"Expected whole minutes from 1 to {_MAX_MINUTES}, got {value!r}.", field)
    return value


def _conditions(value: dict[str, Any]) -> dict[str, list[str]]:
    """{"priorities": ["URGENT"], ...} with names checked; an empty list is the same as no condition."""
    checked: dict[str, list[str]] = {}
    for key, values in value.items():
        if key not in CONDITION_KEYS:
            raise DomainError("INVALID", f"Unknown condition {key!r}.", f"conditions.{_camel(key)}")
        kind = CONDITION_KEYS[key]
        names = []
        for i, name in enumerate(values or []):
            if kind is not None and name not in kind.__members__:
                raise DomainError("INVALID", f"Unknown value {name!r}.", f"conditions.{_camel(key)}.{i}")
            names.append(name)
        if kind is None:
            names = v.tags(names, f"conditions.{_camel(key)}")
        if names:
            checked[key] = sorted(set(names))
    return checked


async def _breach_actions(session: AsyncSession, value: dict[str, Any]) -> dict[str, Any]:
    actions: dict[str, Any] = {}
    for key, setting in value.items():
        if key not in ACTION_KEYS:
            raise DomainError("INVALID", f"Unknown breach action {key!r}.", f"breachActions.{key}")
        if key == "reassign_to":
            if setting is not None:
                await active_user(session, setting, "breachActions.reassignToId")
                actions[key] = str(setting)
        elif setting:
            actions[key] = True
    return actions


_POLICY_FIELDS = (
    "name",
    "position",
    "active",
    "conditions",
    "first_response_minutes",
    "next_response_minutes",
    "resolution_minutes",
    "business_hours",
    "warn_before_minutes",
    "breach_actions",
)


async def _apply_policy_values(session: AsyncSession, policy: SlaPolicy, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if name not in _POLICY_FIELDS:  # pragma: no cover - the schema passes known names only
            raise ValueError(name)
        if name == "name":
            value = v.text(value, "name", max_length=200, required=True)
        elif name in ("first_response_minutes", "next_response_minutes", "resolution_minutes"):
            value = _minutes(value, _camel(name))
        elif name == "warn_before_minutes":
            value = 0 if value is None else value
            if not isinstance(value, int) or not 0 <= value <= _MAX_MINUTES:
                raise DomainError("INVALID", "Expected whole minutes, 0 or more.", "warnBeforeMinutes")
        elif name in ("position",):
            value = value or 0
        elif name in ("active", "business_hours"):
            if value is None:
                raise DomainError("INVALID", f"{_camel(name)} cannot be cleared.", _camel(name))
        elif name == "conditions":
            value = _conditions(value or {})
        elif name == "breach_actions":
            value = await _breach_actions(session, value or {})
        setattr(policy, name, value)
    if not (policy.first_response_minutes or policy.next_response_minutes or policy.resolution_minutes):
        raise DomainError(
            "INVALID", "A policy needs at least one target (first response, next response or resolution).", "name"
        )


def _policy_values(policy: SlaPolicy) -> dict[str, Any]:
    """A policy's settings as the audit log records them."""
    return {name: getattr(policy, name) for name in _POLICY_FIELDS}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def sla_policy_create(ctx: Context, values: dict[str, Any]) -> SlaPolicy:
    viewer = ctx.require(Permission.AUTOMATION_MANAGE)
    async with ctx.transaction() as session:
        policy = SlaPolicy(organization_id=viewer.organization_id, conditions={}, breach_actions={})
        policy.active, policy.business_hours, policy.warn_before_minutes, policy.position = True, True, 0, 0
        await _apply_policy_values(session, policy, values)
        await _unique_name(session, policy)
        session.add(policy)
        await session.flush()
        target = to_global_id("SlaPolicy", policy.id)
        await audit_change(ctx, session, action="slaPolicyCreate", target=target, after=_policy_values(policy))
    return policy


async def sla_policy_update(ctx: Context, policy_id: uuid.UUID | None, values: dict[str, Any]) -> SlaPolicy:
    """Change a policy. Threads keep the targets they run; the change applies to targets started from now on."""
    ctx.require(Permission.AUTOMATION_MANAGE)
    async with ctx.transaction() as session:
        policy = await get_or_error(session, SlaPolicy, policy_id, "id", lock=True, label="SLA policy")
        before = _policy_values(policy)
        await _apply_policy_values(session, policy, values)
        await _unique_name(session, policy)
        after = _policy_values(policy)
        changed = [name for name in after if after[name] != before[name]]
        if changed:
            await audit_change(
                ctx,
                session,
                action="slaPolicyUpdate",
                target=to_global_id("SlaPolicy", policy.id),
                before={name: before[name] for name in changed},
                after={name: after[name] for name in changed},
            )
    return policy


async def sla_policy_delete(ctx: Context, policy_id: uuid.UUID | None) -> uuid.UUID:
    """Delete a policy; threads under it keep their targets (history) and take no new ones from it."""
    ctx.require(Permission.AUTOMATION_MANAGE)
    async with ctx.transaction() as session:
        policy = await get_or_error(session, SlaPolicy, policy_id, "id", lock=True, label="SLA policy")
        target = to_global_id("SlaPolicy", policy.id)
        await audit_change(ctx, session, action="slaPolicyDelete", target=target, before=_policy_values(policy))
        await session.delete(policy)
    return policy.id


async def _unique_name(session: AsyncSession, policy: SlaPolicy) -> None:
    taken = await session.scalar(
        select(SlaPolicy.id).where(func.lower(SlaPolicy.name) == policy.name.lower(), SlaPolicy.id != policy.id)
    )
    if taken is not None:
        raise DomainError("TAKEN", "Another SLA policy has that name.", "name")


# -- which policy ---------------------------------------------------------------------------------------------


def matches(policy: SlaPolicy, thread: Thread, customer_tags: Iterable[str]) -> bool:
    conditions = policy.conditions or {}
    facts = {
        "priorities": {thread.priority.name},
        "channels": {thread.primary_channel.name},
        "thread_types": {thread.type.name},
        "customer_tags": set(customer_tags),
    }
    return all(not wanted or facts[key] & set(wanted) for key, wanted in conditions.items())


async def active_policies(session: AsyncSession, organization_id: uuid.UUID) -> list[SlaPolicy]:
    """The organization's active policies in order; read once per transaction (a page of ingested mail opens many
    threads; policies are changed in transactions of their own)."""
    memo = transaction_memo(session, "sla_policies")
    policies = memo.get(organization_id)
    if policies is None:
        # no flush first: policies change in transactions of their own, so nothing pending can change the answer
        # (nor be overwritten by the tenant session's populate_existing); the caller's new thread then goes in with
        # its message (one INSERT, not an INSERT and an UPDATE of its last message time)
        with session.no_autoflush:
            policies = memo[organization_id] = list(
                await session.scalars(
                    select(SlaPolicy)
                    .where(SlaPolicy.organization_id == organization_id, SlaPolicy.active.is_(True))
                    .order_by(SlaPolicy.position, SlaPolicy.created_at)
                )
            )
    return policies


async def policy_for(session: AsyncSession, thread: Thread) -> SlaPolicy | None:
    policies = await active_policies(session, thread.organization_id)
    if not policies:
        return None
    tags: list[str] = []
    if thread.customer_id is not None and any("customer_tags" in (p.conditions or {}) for p in policies):
        tags = list(await session.scalar(select(Customer.tags).where(Customer.id == thread.customer_id)) or [])
    return next((policy for policy in policies if matches(policy, thread, tags)), None)


# -- the clock ------------------------------------------------------------------------------------------------


@dataclass
class Clock:
    """What a thread's targets are measured with: the organization's calendar, the thread's pauses."""

    organization: BusinessCalendar | None
    pauses: list[Pause]

    def calendar(self, business_hours: bool) -> BusinessCalendar:
        if business_hours and self.organization is not None:
            return self.organization
        return BusinessCalendar.always_open()

    def schedule(self, target: SlaTarget, warn_before_minutes: int) -> None:
        """Set the target's due and warning instants from its start (None while an open pause stops it)."""
        calendar = self.calendar(target.business_hours)
        target.due_at = calendar.add_with_pauses(target.started_at, timedelta(minutes=target.minutes), self.pauses)
        target.warn_at = None
        if warn_before_minutes > 0 and target.due_at is not None:
            lead = timedelta(minutes=max(0, target.minutes - warn_before_minutes))
            target.warn_at = calendar.add_with_pauses(target.started_at, lead, self.pauses)


def _pauses(thread: Thread) -> list[Pause]:
    return [
        (datetime.fromisoformat(start), datetime.fromisoformat(end) if end else None)
        for start, end in thread.sla_pauses or []
    ]


async def _clock(session: AsyncSession, thread: Thread) -> Clock:
    return Clock(await organization_calendar(session, thread.organization_id), _pauses(thread))


async def _open_targets(session: AsyncSession, thread: Thread) -> list[SlaTarget]:
    return list(
        await session.scalars(
            select(SlaTarget)
            .where(SlaTarget.thread_id == thread.id, SlaTarget.met_at.is_(None), SlaTarget.cancelled_at.is_(None))
            .order_by(SlaTarget.started_at)
        )
    )


def _minutes_of(policy: SlaPolicy, kind: SlaTargetKind) -> int | None:
    return {
        SlaTargetKind.FIRST_RESPONSE: policy.first_response_minutes,
        SlaTargetKind.NEXT_RESPONSE: policy.next_response_minutes,
        SlaTargetKind.RESOLUTION: policy.resolution_minutes,
    }[kind]


class _Tracker:
    """One thread's SLA inside one transaction: loads what it needs once, then `save` sums it up on the thread."""

    def __init__(self, session: AsyncSession, thread: Thread, now: datetime) -> None:
        self.session, self.thread, self.now = session, thread, now
        self.targets: list[SlaTarget] | None = None
        self.clock: Clock | None = None
        self.policy: SlaPolicy | None = None

    async def load(self) -> list[SlaTarget]:
        if self.targets is None:
            self.targets = await _open_targets(self.session, self.thread)
            self.clock = await _clock(self.session, self.thread)
            if self.thread.sla_policy_id is not None:
                self.policy = await self.session.get(SlaPolicy, self.thread.sla_policy_id)
        return self.targets

    def open(self, kind: SlaTargetKind) -> SlaTarget | None:
        assert self.targets is not None
        return next((t for t in self.targets if t.kind == kind), None)

    def start(self, kind: SlaTargetKind, at: datetime) -> None:
        assert self.targets is not None and self.clock is not None
        if self.policy is None or self.open(kind) is not None:
            return
        minutes = _minutes_of(self.policy, kind)
        if not minutes:
            return
        target = SlaTarget(
            organization_id=self.thread.organization_id,
            thread_id=self.thread.id,
            policy_id=self.policy.id,
            kind=kind,
            minutes=minutes,
            business_hours=self.policy.business_hours,
            started_at=at,
        )
        self.clock.schedule(target, self.policy.warn_before_minutes)
        self.session.add(target)
        self.targets.append(target)

    def close(self, target: SlaTarget, *, met: bool) -> None:
        assert self.targets is not None
        if met:
            target.met_at = self.now
        else:
            target.cancelled_at = self.now
        self.targets.remove(target)

    async def save(self, *, announce: bool = True) -> None:
        """Sum the targets up on the thread (status, nearest due time, next check); record THREAD_UPDATED with
        the SLA fields that changed (unless the thread is new: its THREAD_CREATED says it all)."""
        thread = self.thread
        targets = await self.load()
        await self.session.flush()
        before = (thread.sla_status, thread.sla_due_at, thread.sla_policy_id)
        thread.sla_status = await self._status(targets)
        dues = [t.due_at for t in targets if t.due_at is not None]
        thread.sla_due_at = min(dues) if dues else None
        checks = [t.warn_at for t in targets if t.warn_at and not t.warned_at and not t.breached_at]
        checks += [t.due_at for t in targets if t.due_at and not t.breached_at]
        thread.sla_check_at = min(checks) if checks else None
        after = (thread.sla_status, thread.sla_due_at, thread.sla_policy_id)
        changed = [
            name
            for name, old, new in zip(("sla_status", "sla_due_at", "sla_policy"), before, after, strict=True)
            if old != new
        ]
        if changed and announce:
            events.record(
                self.session,
                events.ThreadUpdated(thread_id=thread.id, changed=changed),
                organization_id=thread.organization_id,
                actor_id=None,
            )

    async def _status(self, targets: list[SlaTarget]) -> SlaStatus | None:
        if targets:
            if any(t.breached_at for t in targets):
                return SlaStatus.BREACHED
            if self.thread.status == ThreadStatus.PENDING:
                return SlaStatus.PAUSED
            if any(t.warn_at and t.warn_at <= self.now for t in targets):
                return SlaStatus.AT_RISK
            return SlaStatus.ON_TRACK
        if self.thread.sla_policy_id is None and self.thread.sla_status is None:
            return None
        counts = (
            await self.session.execute(
                select(func.count(), func.count(SlaTarget.breached_at)).where(SlaTarget.thread_id == self.thread.id)
            )
        ).one()
        if not counts[0]:
            return None
        return SlaStatus.BREACHED if counts[1] else SlaStatus.MET


def _now(at: datetime | None) -> datetime:
    return at if at is not None else datetime.now(UTC)


# -- tracking: called by the use-cases that change a thread, in their transaction -------------------------------


async def thread_opened(
    session: AsyncSession, thread: Thread, at: datetime | None = None, *, announce: bool = False
) -> None:
    """A new thread: the first matching policy starts its first-response and resolution targets."""
    now = _now(at)
    policy = await policy_for(session, thread)
    if policy is None:
        return
    thread.sla_policy_id = policy.id
    tracker = _Tracker(session, thread, now)
    await tracker.load()
    tracker.start(SlaTargetKind.FIRST_RESPONSE, now)
    tracker.start(SlaTargetKind.RESOLUTION, now)
    await tracker.save(announce=announce)


async def customer_wrote(
    session: AsyncSession, thread: Thread, previous_status: ThreadStatus, at: datetime | None = None
) -> None:
    """A customer message: resumes a PENDING thread's clock, restarts resolution on a reopened one, and starts a
    next-response target (first response, on a thread that never had one) unless a response target is open."""
    now = _now(at)
    if thread.sla_policy_id is None:
        await thread_opened(session, thread, now, announce=True)
        if thread.sla_policy_id is None:
            return
    tracker = _Tracker(session, thread, now)
    await tracker.load()
    _status_moved(tracker, previous_status)
    if not any(tracker.open(kind) for kind in RESPONSES):
        had_response = await session.scalar(
            select(func.count())
            .select_from(SlaTarget)
            .where(SlaTarget.thread_id == thread.id, SlaTarget.kind == SlaTargetKind.FIRST_RESPONSE)
        )
        tracker.start(SlaTargetKind.NEXT_RESPONSE if had_response else SlaTargetKind.FIRST_RESPONSE, now)
    await tracker.save()


async def agent_replied(session: AsyncSession, thread: Thread, at: datetime | None = None) -> None:
    """A reply to the customer meets the open response target."""
    if thread.sla_policy_id is None and thread.sla_status is None:
        return
    tracker = _Tracker(session, thread, _now(at))
    for target in [t for t in await tracker.load() if t.kind in RESPONSES]:
        tracker.close(target, met=True)
    await tracker.save()


async def status_changed(
    session: AsyncSession, thread: Thread, previous_status: ThreadStatus, at: datetime | None = None
) -> None:
    """The thread's status moved from `previous_status` to `thread.status` (by a person or a workflow)."""
    if thread.status == previous_status or (thread.sla_policy_id is None and thread.sla_status is None):
        return
    tracker = _Tracker(session, thread, _now(at))
    await tracker.load()
    _status_moved(tracker, previous_status)
    await tracker.save()


def _status_moved(tracker: _Tracker, previous: ThreadStatus) -> None:
    thread, now = tracker.thread, tracker.now
    current = thread.status
    if current == previous:
        return
    if current == ThreadStatus.PENDING:  # the clock stops
        thread.sla_pauses = [*(thread.sla_pauses or []), [now.isoformat(), None]]
    elif previous == ThreadStatus.PENDING:  # and runs again
        pauses = [list(p) for p in thread.sla_pauses or []]
        if pauses and pauses[-1][1] is None:
            pauses[-1][1] = now.isoformat()
        thread.sla_pauses = pauses
    assert tracker.clock is not None and tracker.targets is not None
    tracker.clock.pauses = _pauses(thread)
    if current in DONE_STATUSES:
        for target in list(tracker.targets):
            tracker.close(target, met=target.kind == SlaTargetKind.RESOLUTION)
    elif previous in DONE_STATUSES:
        tracker.start(SlaTargetKind.RESOLUTION, now)
    warn = tracker.policy.warn_before_minutes if tracker.policy else 0
    for target in tracker.targets:
        if not target.breached_at:
            tracker.clock.schedule(target, warn)


async def conditions_changed(session: AsyncSession, thread: Thread, at: datetime | None = None) -> None:
    """Priority, type, channel or customer changed: a different matching policy replaces the open targets (not
    the breached ones) with its own, from the same start instants: an URGENT thread gets the tighter clock at once.
    A thread that had no policy starts its targets from its creation. No match keeps what runs."""
    policy = await policy_for(session, thread)
    if policy is None or policy.id == thread.sla_policy_id:
        return
    tracker = _Tracker(session, thread, _now(at))
    running = [t for t in await tracker.load() if not t.breached_at]
    if thread.sla_policy_id is None:
        starts = [] if thread.status in DONE_STATUSES else [(SlaTargetKind.RESOLUTION, thread.created_at)]
        if starts and thread.first_response_at is None:
            starts.append((SlaTargetKind.FIRST_RESPONSE, thread.created_at))
    else:
        starts = [(t.kind, t.started_at) for t in running]
    for target in running:
        tracker.close(target, met=False)
    await session.flush()  # the open-target index: the replaced ones are cancelled before their successors
    thread.sla_policy_id, tracker.policy = policy.id, policy
    for kind, started_at in starts:
        tracker.start(kind, started_at)
    await tracker.save()


# -- warnings and breaches --------------------------------------------------------------------------------------


async def sla_check(ctx: SystemContext, thread_id: uuid.UUID, at: datetime | None = None) -> list[str]:
    """Warn and breach what is due (idempotent); the event types it recorded."""
    now = _now(at)
    async with ctx.session() as probe:
        organization_id = await probe.scalar(select(Thread.organization_id).where(Thread.id == thread_id))
    if organization_id is None:
        return []
    scoped = ctx.for_organization(organization_id)
    recorded: list[str] = []
    async with scoped.transaction() as session:
        thread = await session.scalar(select(Thread).where(Thread.id == thread_id).with_for_update())
        if thread is None:
            return []
        tracker = _Tracker(session, thread, now)
        breached: list[SlaTarget] = []
        for target in await tracker.load():
            if target.due_at is not None and not target.breached_at and target.due_at <= now:
                target.breached_at = target.due_at
                breached.append(target)
                scoped.record(session, events.SlaBreached(thread_id=thread.id, target=target.kind.name))
                recorded.append(events.SlaBreached.type)
            elif (
                target.warn_at is not None and not target.warned_at and not target.breached_at and target.warn_at <= now
            ):
                target.warned_at = now
                scoped.record(session, events.SlaWarning(thread_id=thread.id, target=target.kind.name))
                recorded.append(events.SlaWarning.type)
                if tracker.policy and tracker.policy.breach_actions.get("notify_assignee"):
                    await notify(
                        session,
                        thread,
                        [thread.assignee_id],
                        NotificationType.SLA_WARNING,
                        f"{thread.reference} is at risk: {_label(target)} due {_when(target.due_at)}",
                        actor_id=None,
                    )
        if breached and tracker.policy is not None:
            await _breach_actions_run(scoped, session, thread, tracker.policy, breached)
        await tracker.save()
    return recorded


def _label(target: SlaTarget) -> str:
    return target.kind.name.replace("_", " ").lower()


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "when the thread leaves PENDING"


async def _breach_actions_run(
    ctx: SystemContext, session: AsyncSession, thread: Thread, policy: SlaPolicy, breached: list[SlaTarget]
) -> None:
    actions = policy.breach_actions or {}
    summary = f"{thread.reference} breached its SLA ({', '.join(_label(t) for t in breached)}): {thread.subject}"
    if actions.get("raise_priority") and _PRIORITY_UP[thread.priority] != thread.priority:
        thread.priority = _PRIORITY_UP[thread.priority]
        ctx.record(session, events.ThreadUpdated(thread_id=thread.id, changed=["priority"]))
    reassign = actions.get("reassign_to")
    if reassign:
        user = await session.scalar(select(User).where(User.id == uuid.UUID(reassign), User.active.is_(True)))
        if user is not None and thread.assignee_id != user.id and thread.status != ThreadStatus.ARCHIVED:
            previous, thread.assignee_id = thread.assignee_id, user.id
            ctx.record(
                session, events.ThreadAssigned(thread_id=thread.id, assignee_id=user.id, previous_assignee_id=previous)
            )
            await notify(session, thread, [user.id], NotificationType.ASSIGNMENT, summary, actor_id=None)
    told: list[uuid.UUID | None] = []
    if actions.get("notify_assignee"):
        told.append(thread.assignee_id)
    if actions.get("notify_managers"):
        told += list(
            await session.scalars(select(User.id).where(User.role == Role.MANAGER, User.active.is_(True)))
        ) or list(await session.scalars(select(User.id).where(User.role == Role.ADMIN, User.active.is_(True))))
    await notify(session, thread, told, NotificationType.SLA_BREACHED, summary, actor_id=None)


async def sla_checks_due(
    ctx: SystemContext, within: timedelta, *, limit: int = 10_000
) -> list[tuple[uuid.UUID, datetime]]:
    """(thread id, when) of the threads whose SLA needs a look before now + `within`, soonest first."""
    horizon = datetime.now(UTC) + within
    async with ctx.session() as session:
        rows = await session.execute(
            select(Thread.id, Thread.sla_check_at)
            .where(Thread.sla_check_at.is_not(None), Thread.sla_check_at <= horizon)
            .order_by(Thread.sla_check_at)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in rows]
