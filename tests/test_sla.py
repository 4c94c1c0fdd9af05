"""SLA policies, business hours and each thread's targets (banxway.resolvers.sla): which policy applies, due times
in business hours, the clock stopping while PENDING, responses and resolution meeting their targets, warnings and
breaches with their actions (once, however often the check runs), and the scheduler's timer firing on time."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update

from banxway import events
from banxway.calendar import BusinessCalendar
from banxway.db.models import Event, Notification, SlaTarget, Thread
from banxway.db.session import system_session, tenant_session
from banxway.enums import Channel, NotificationType, Priority, SlaStatus, SlaTargetKind, ThreadStatus
from banxway.resolvers import sla
from banxway.resolvers.inbound import message_receive
from banxway.resolvers.threads import new_thread
from banxway.schema.ids import local_id
from banxway.state import AppState
from banxway.tasks import actors
from tests.inbox_helpers import Inbox, _foreign, _member, system_context

POLICY_FIELDS = """
  id name position active firstResponseMinutes nextResponseMinutes resolutionMinutes businessHours
  warnBeforeMinutes conditions { priorities channels threadTypes customerTags }
  breachActions { notifyAssignee notifyManagers raisePriority reassignTo { id } }
"""
POLICY_CREATE = f"""
mutation($input: SlaPolicyCreateInput!) {{
  slaPolicyCreate(input: $input) {{ slaPolicy {{ {POLICY_FIELDS} }} userErrors {{ field code message }} }}
}}
"""
POLICY_UPDATE = f"""
mutation($input: SlaPolicyUpdateInput!) {{
  slaPolicyUpdate(input: $input) {{ slaPolicy {{ {POLICY_FIELDS} }} userErrors {{ field code message }} }}
}}
"""
POLICY_DELETE = """
mutation($id: ID!) { slaPolicyDelete(id: $id) { deletedId userErrors { field code message } } }
"""
POLICIES = f"{{ slaPolicies {{ {POLICY_FIELDS} }} }}"
HOURS_SET = """
mutation($input: BusinessHoursInput) {
  businessHoursSet(input: $input) {
    businessHours { timezone week { weekday shifts { start end } } holidayCountry holidaySubdivision holidayDates }
    userErrors { field code message }
  }
}
"""
THREAD_CREATE = """
mutation($input: ThreadCreateInput!) {
  threadCreate(input: $input) { thread { id } userErrors { field code message } }
}
"""
THREAD_SLA = """
query($id: ID!) {
  thread(id: $id) {
    priority status slaStatus slaDueAt slaPolicy { id name }
    slaTargets { kind minutes businessHours startedAt dueAt warnAt metAt warnedAt breachedAt cancelledAt policy { id } }
  }
}
"""
THREAD_UPDATE = """
mutation($input: ThreadUpdateInput!) {
  threadUpdate(input: $input) { thread { id status priority slaStatus } userErrors { field code message } }
}
"""

# Mumbai office hours: 09:00-13:00 and 14:00-18:00 on weekdays, Saturday morning; closed on Sundays
MUMBAI = {
    "timezone": "Asia/Kolkata",
    "week": [
        *(
            {"weekday": day, "shifts": [{"start": "09:00", "end": "13:00"}, {"start": "14:00", "end": "18:00"}]}
            for day in ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY")
        ),
        {"weekday": "SATURDAY", "shifts": [{"start": "10:00", "end": "14:00"}]},
    ],
    "holidayDates": ["2026-12-25"],
}
MUMBAI_CALENDAR = BusinessCalendar.create(
    "Asia/Kolkata",
    {
        **{day: [("09:00", "13:00"), ("14:00", "18:00")] for day in ("monday", "tuesday", "wednesday", "thursday")},
        "friday": [("09:00", "13:00"), ("14:00", "18:00")],
        "saturday": [("10:00", "14:00")],
    },
    custom_holidays=["2026-12-25"],
)
# Thursday 3 December 2026, 12:45 in Mumbai (07:15 UTC): 15 business minutes before lunch
THURSDAY_1245 = datetime(2026, 12, 3, 7, 15, tzinfo=UTC)


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def _policy(inbox: Inbox, token: str | None = None, **fields: object) -> dict:
    fields.setdefault("name", "Urgent quotes")
    return (await inbox.ok(POLICY_CREATE, {"input": fields}, "slaPolicyCreate", token))["slaPolicy"]


async def _thread_sla(inbox: Inbox, thread_id: str) -> dict:
    result = await inbox.gql(THREAD_SLA, {"id": thread_id})
    assert "errors" not in result, result
    return result["data"]["thread"]


async def _new_thread(inbox: Inbox, **fields: object) -> str:
    fields.setdefault("subject", "Quote 2x40HC Nhava Sheva - Hamburg")
    return (await inbox.ok(THREAD_CREATE, {"input": fields}, "threadCreate"))["thread"]["id"]


async def _events(state: AppState, thread_id: uuid.UUID, *types: str) -> list[Event]:
    async with system_session(state.sessionmaker) as session:
        rows = await session.scalars(select(Event).where(Event.type.in_(types)).order_by(Event.id))
        return [row for row in rows if row.payload.get("thread_id") == str(thread_id)]


class Clocked:
    """A thread of the inbox's organization driven with explicit instants through the SLA use-cases (each call a
    transaction, as the use-case that makes the change would run it)."""

    def __init__(self, inbox: Inbox, thread_id: uuid.UUID) -> None:
        self.inbox, self.thread_id = inbox, thread_id
        self.state = inbox.api.state

    @classmethod
    async def open(cls, inbox: Inbox, at: datetime, priority: Priority = Priority.URGENT) -> Clocked:
        async with tenant_session(inbox.api.state.sessionmaker, inbox.org.id) as session, session.begin():
            thread = await new_thread(session, inbox.org.id, subject="Quote", priority=priority)
            # the policy applied from `at` (new_thread applied it from the real clock)
            await session.execute(delete(SlaTarget).where(SlaTarget.thread_id == thread.id))
            thread.sla_policy_id = None
            await sla.thread_opened(session, thread, at)
            return cls(inbox, thread.id)

    async def _run(self, change, at: datetime) -> None:
        async with tenant_session(self.state.sessionmaker, self.inbox.org.id) as session, session.begin():
            thread = await session.scalar(select(Thread).where(Thread.id == self.thread_id).with_for_update())
            await change(session, thread, at)

    async def status(self, status: ThreadStatus, at: datetime) -> None:
        async def change(session, thread, at):
            previous, thread.status = thread.status, status
            await sla.status_changed(session, thread, previous, at)

        await self._run(change, at)

    async def customer(self, at: datetime) -> None:
        async def change(session, thread, at):
            previous = thread.status
            if previous in (ThreadStatus.PENDING, ThreadStatus.RESOLVED, ThreadStatus.CLOSED):
                thread.status = ThreadStatus.OPEN
            await sla.customer_wrote(session, thread, previous, at)

        await self._run(change, at)

    async def reply(self, at: datetime) -> None:
        await self._run(sla.agent_replied, at)

    async def check(self, at: datetime) -> list[str]:
        return await sla.sla_check(system_context(self.state), self.thread_id, at)

    async def targets(self) -> dict[SlaTargetKind, SlaTarget]:
        """The open targets by kind."""
        async with system_session(self.state.sessionmaker) as session:
            rows = await session.scalars(
                select(SlaTarget).where(
                    SlaTarget.thread_id == self.thread_id, SlaTarget.met_at.is_(None), SlaTarget.cancelled_at.is_(None)
                )
            )
            return {row.kind: row for row in rows}

    async def all_targets(self) -> list[SlaTarget]:
        async with system_session(self.state.sessionmaker) as session:
            return list(
                await session.scalars(
                    select(SlaTarget).where(SlaTarget.thread_id == self.thread_id).order_by(SlaTarget.created_at)
                )
            )

    async def thread(self) -> Thread:
        async with system_session(self.state.sessionmaker) as session:
            return await session.scalar(select(Thread).where(Thread.id == self.thread_id))


# -- policies and business hours over GraphQL ---------------------------------------------------------------------


async def test_a_policy_is_created_listed_updated_and_deleted(inbox: Inbox) -> None:
    manager = await _member(inbox, "manager")
    # given a manager's policy with conditions and breach actions
    policy = await _policy(
        inbox,
        manager.token,
        firstResponseMinutes=30,
        resolutionMinutes=480,
        warnBeforeMinutes=10,
        conditions={
            "priorities": ["URGENT", "HIGH"],
            "threadTypes": ["QUOTE_REQUEST"],
            "customerTags": ["Key Account"],
        },
        breachActions={"notifyAssignee": True, "raisePriority": True, "reassignToId": manager.id},
    )
    assert policy["conditions"] == {
        "priorities": ["HIGH", "URGENT"],
        "channels": [],
        "threadTypes": ["QUOTE_REQUEST"],
        "customerTags": ["key account"],
    }
    assert policy["breachActions"] == {
        "notifyAssignee": True,
        "notifyManagers": False,
        "raisePriority": True,
        "reassignTo": {"id": manager.id},
    }
    assert (policy["businessHours"], policy["active"], policy["nextResponseMinutes"]) == (True, True, None)
    # when it is updated: a target cleared, another set, the rest left as it was
    updated = await inbox.ok(
        POLICY_UPDATE,
        {"input": {"id": policy["id"], "firstResponseMinutes": None, "nextResponseMinutes": 60}},
        "slaPolicyUpdate",
    )
    assert (updated["slaPolicy"]["firstResponseMinutes"], updated["slaPolicy"]["nextResponseMinutes"]) == (None, 60)
    assert updated["slaPolicy"]["resolutionMinutes"] == 480
    # then a viewer reads it, and after deletion it is gone
    viewer = await _member(inbox, "viewer")
    listed = await inbox.gql(POLICIES, token=viewer.token)
    assert [p["id"] for p in listed["data"]["slaPolicies"]] == [policy["id"]]
    deleted = await inbox.ok(POLICY_DELETE, {"id": policy["id"]}, "slaPolicyDelete")
    assert deleted["deletedId"] == policy["id"]
    assert (await inbox.gql(POLICIES))["data"]["slaPolicies"] == []


async def test_bad_policies_are_refused_naming_the_field(inbox: Inbox) -> None:
    cases = [
        ({"name": "No targets"}, "name"),
        ({"name": "Zero", "firstResponseMinutes": 0}, "firstResponseMinutes"),
        ({"name": "Negative warning", "resolutionMinutes": 60, "warnBeforeMinutes": -5}, "warnBeforeMinutes"),
        ({"name": " ", "resolutionMinutes": 60}, "name"),
        (
            {"name": "Bad tag", "resolutionMinutes": 60, "conditions": {"customerTags": [""]}},
            "conditions.customerTags.0",
        ),
    ]
    for fields, field in cases:
        result = await inbox.gql(POLICY_CREATE, {"input": fields})
        errors = result["data"]["slaPolicyCreate"]["userErrors"]
        assert [(e["code"], e["field"]) for e in errors] == [("INVALID", field.split("."))], (fields, errors)
    # a second policy of the same name (case aside) is TAKEN; nothing of the refused ones was stored
    await _policy(inbox, firstResponseMinutes=30)
    taken = await inbox.gql(POLICY_CREATE, {"input": {"name": "URGENT QUOTES", "firstResponseMinutes": 5}})
    assert [e["code"] for e in taken["data"]["slaPolicyCreate"]["userErrors"]] == ["TAKEN"]
    assert [p["name"] for p in (await inbox.gql(POLICIES))["data"]["slaPolicies"]] == ["Urgent quotes"]


async def test_only_admins_and_managers_change_policies_and_hours(inbox: Inbox) -> None:
    policy = await _policy(inbox, firstResponseMinutes=30)
    for role in ("support", "validator", "viewer"):
        member = await _member(inbox, role)
        for query, variables in (
            (POLICY_CREATE, {"input": {"name": f"{role} policy", "firstResponseMinutes": 5}}),
            (POLICY_UPDATE, {"input": {"id": policy["id"], "firstResponseMinutes": 5}}),
            (POLICY_DELETE, {"id": policy["id"]}),
            (HOURS_SET, {"input": MUMBAI}),
        ):
            result = await inbox.gql(query, variables, token=member.token)
            assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN", (role, query)
    listed = (await inbox.gql(POLICIES))["data"]["slaPolicies"]
    assert [(p["name"], p["firstResponseMinutes"]) for p in listed] == [("Urgent quotes", 30)]
    assert (await inbox.gql("{ businessHours { timezone } }"))["data"]["businessHours"] is None


async def test_another_organizations_policy_is_not_found(inbox: Inbox) -> None:
    policy = await _policy(inbox, firstResponseMinutes=30)
    other = await _foreign(inbox)
    result = await other.gql(POLICY_UPDATE, {"input": {"id": policy["id"], "firstResponseMinutes": 1}})
    assert [e["code"] for e in result["data"]["slaPolicyUpdate"]["userErrors"]] == ["NOT_FOUND"]
    assert (await other.gql(POLICIES))["data"]["slaPolicies"] == []
    assert (await other.gql("query($id: ID!) { node(id: $id) { id } }", {"id": policy["id"]}))["data"]["node"] is None
    assert (await inbox.gql(POLICIES))["data"]["slaPolicies"][0]["firstResponseMinutes"] == 30


async def test_business_hours_are_set_read_and_cleared(inbox: Inbox) -> None:
    payload = await inbox.ok(HOURS_SET, {"input": {**MUMBAI, "holidayCountry": "IN"}}, "businessHoursSet")
    hours = payload["businessHours"]
    assert hours["timezone"] == "Asia/Kolkata"
    assert [day["weekday"] for day in hours["week"]][:2] == ["MONDAY", "TUESDAY"]
    assert hours["week"][0]["shifts"] == [{"start": "09:00", "end": "13:00"}, {"start": "14:00", "end": "18:00"}]
    assert hours["week"][6] == {"weekday": "SUNDAY", "shifts": []}
    assert (hours["holidayCountry"], hours["holidayDates"]) == ("IN", ["2026-12-25"])
    read = await inbox.gql("{ businessHours { timezone holidayCountry } }")
    assert read["data"]["businessHours"] == {"timezone": "Asia/Kolkata", "holidayCountry": "IN"}
    cleared = await inbox.ok(HOURS_SET, {"input": None}, "businessHoursSet")
    assert cleared["businessHours"] is None


async def test_bad_business_hours_name_what_is_wrong_and_change_nothing(inbox: Inbox) -> None:
    await inbox.ok(HOURS_SET, {"input": MUMBAI}, "businessHoursSet")
    cases = [
        ({**MUMBAI, "timezone": "Mars/Olympus"}, "timezone"),
        (
            {**MUMBAI, "week": [{"weekday": "MONDAY", "shifts": [{"start": "18:00", "end": "09:00"}]}]},
            "hours.monday.0.end",
        ),
        (
            {**MUMBAI, "week": [{"weekday": "MONDAY", "shifts": [{"start": "9am", "end": "17:00"}]}]},
            "hours.monday.0.start",
        ),
        ({**MUMBAI, "week": []}, "hours"),
        ({**MUMBAI, "holidayCountry": "XX"}, "holidays.country"),
    ]
    for value, field in cases:
        result = await inbox.gql(HOURS_SET, {"input": value})
        errors = result["data"]["businessHoursSet"]["userErrors"]
        assert [e["code"] for e in errors] == ["INVALID"], (value, errors)
        assert errors[0]["field"] == field.split("."), (field, errors)
    read = await inbox.gql("{ businessHours { timezone week { shifts { start } } } }")
    assert read["data"]["businessHours"]["timezone"] == "Asia/Kolkata"


# -- which policy applies, and the due time --------------------------------------------------------------------


async def test_a_new_urgent_thread_is_due_in_business_minutes(inbox: Inbox) -> None:
    # given business hours and "urgent quotes: first response 30 business minutes"
    await inbox.ok(HOURS_SET, {"input": MUMBAI}, "businessHoursSet")
    policy = await _policy(inbox, firstResponseMinutes=30, resolutionMinutes=600, conditions={"priorities": ["URGENT"]})
    # when an urgent thread and a normal one are created
    urgent = await _new_thread(inbox, priority="URGENT")
    normal = await _new_thread(inbox)
    # then the urgent one runs the policy's targets, due over the business calendar
    seen = await _thread_sla(inbox, urgent)
    assert seen["slaPolicy"] == {"id": policy["id"], "name": "Urgent quotes"}
    assert seen["slaStatus"] == "ON_TRACK"
    targets = {t["kind"]: t for t in seen["slaTargets"]}
    assert set(targets) == {"FIRST_RESPONSE", "RESOLUTION"}
    started = _dt(targets["FIRST_RESPONSE"]["startedAt"])
    assert _dt(targets["FIRST_RESPONSE"]["dueAt"]) == MUMBAI_CALENDAR.add(started, timedelta(minutes=30))
    assert _dt(targets["RESOLUTION"]["dueAt"]) == MUMBAI_CALENDAR.add(started, timedelta(minutes=600))
    assert _dt(seen["slaDueAt"]) == _dt(targets["FIRST_RESPONSE"]["dueAt"])
    assert all(t["policy"] == {"id": policy["id"]} and t["businessHours"] for t in seen["slaTargets"])
    # and the normal one has no SLA
    assert (await _thread_sla(inbox, normal))["slaStatus"] is None


async def test_the_first_matching_policy_by_position_wins(inbox: Inbox) -> None:
    await _policy(inbox, name="Everything", resolutionMinutes=2880, position=10)
    await _policy(inbox, name="Whatsapp", firstResponseMinutes=15, position=1, conditions={"channels": ["WHATSAPP"]})
    await _policy(inbox, name="Inactive", firstResponseMinutes=1, position=0, active=False)
    whatsapp = await _thread_sla(inbox, await _new_thread(inbox, primaryChannel="WHATSAPP"))
    email = await _thread_sla(inbox, await _new_thread(inbox, primaryChannel="EMAIL"))
    assert whatsapp["slaPolicy"]["name"] == "Whatsapp"
    assert [t["kind"] for t in whatsapp["slaTargets"]] == ["FIRST_RESPONSE"]
    assert email["slaPolicy"]["name"] == "Everything"
    assert [t["kind"] for t in email["slaTargets"]] == ["RESOLUTION"]


async def test_a_customer_tag_condition_matches_the_threads_customer(inbox: Inbox) -> None:
    await _policy(inbox, name="Key accounts", firstResponseMinutes=60, conditions={"customerTags": ["key account"]})
    key = await inbox.customer("Maersk Line", tags=["Key Account"])
    other = await inbox.customer("Small Shipper")
    assert (await _thread_sla(inbox, await _new_thread(inbox, customerId=key["id"])))["slaPolicy"] is not None
    assert (await _thread_sla(inbox, await _new_thread(inbox, customerId=other["id"])))["slaPolicy"] is None


async def test_raising_the_priority_applies_the_tighter_policy_from_the_threads_start(inbox: Inbox) -> None:
    await _policy(inbox, name="Normal", firstResponseMinutes=240, position=2)
    await _policy(inbox, name="Urgent", firstResponseMinutes=30, position=1, conditions={"priorities": ["URGENT"]})
    thread_id = await _new_thread(inbox)
    before = await _thread_sla(inbox, thread_id)
    assert before["slaPolicy"]["name"] == "Normal"
    started = before["slaTargets"][0]["startedAt"]
    # when the thread becomes urgent
    await inbox.ok(THREAD_UPDATE, {"input": {"id": thread_id, "priority": "URGENT"}}, "threadUpdate")
    # then the urgent policy's target replaces the running one, from the same start
    after = await _thread_sla(inbox, thread_id)
    assert after["slaPolicy"]["name"] == "Urgent"
    [old, new] = after["slaTargets"]
    assert old["cancelledAt"] is not None and old["minutes"] == 240
    assert (new["kind"], new["minutes"], new["startedAt"], new["cancelledAt"]) == ("FIRST_RESPONSE", 30, started, None)
    assert _dt(after["slaDueAt"]) == _dt(started) + timedelta(minutes=30)  # no business hours: around the clock


async def test_a_policy_created_later_applies_when_the_thread_changes(inbox: Inbox) -> None:
    thread_id = await _new_thread(inbox)
    await _policy(inbox, name="Urgent", resolutionMinutes=120, conditions={"priorities": ["URGENT"]})
    await inbox.ok(THREAD_UPDATE, {"input": {"id": thread_id, "priority": "URGENT"}}, "threadUpdate")
    seen = await _thread_sla(inbox, thread_id)
    assert seen["slaPolicy"]["name"] == "Urgent"
    assert [t["kind"] for t in seen["slaTargets"]] == ["RESOLUTION"]


# -- the clock: responses, pauses, resolution ---------------------------------------------------------------------


async def test_a_reply_meets_the_first_response_and_a_customer_message_starts_the_next(inbox: Inbox) -> None:
    await _policy(inbox, firstResponseMinutes=30, nextResponseMinutes=60, resolutionMinutes=1440)
    clocked = await Clocked.open(inbox, THURSDAY_1245)
    await clocked.reply(THURSDAY_1245 + timedelta(minutes=10))
    open_targets = await clocked.targets()
    assert set(open_targets) == {SlaTargetKind.RESOLUTION}
    # a second reply changes nothing; the customer's answer starts the next response
    await clocked.reply(THURSDAY_1245 + timedelta(minutes=20))
    await clocked.customer(THURSDAY_1245 + timedelta(hours=1))
    open_targets = await clocked.targets()
    assert set(open_targets) == {SlaTargetKind.RESOLUTION, SlaTargetKind.NEXT_RESPONSE}
    nxt = open_targets[SlaTargetKind.NEXT_RESPONSE]
    assert (nxt.started_at, nxt.due_at) == (THURSDAY_1245 + timedelta(hours=1), THURSDAY_1245 + timedelta(hours=2))
    # a further customer message while it is open does not restart it
    await clocked.customer(THURSDAY_1245 + timedelta(hours=1, minutes=30))
    assert (await clocked.targets())[SlaTargetKind.NEXT_RESPONSE].id == nxt.id
    met = [t for t in await clocked.all_targets() if t.met_at is not None]
    assert [(t.kind, t.met_at) for t in met] == [(SlaTargetKind.FIRST_RESPONSE, THURSDAY_1245 + timedelta(minutes=10))]


async def test_the_clock_stops_while_pending_in_business_hours(inbox: Inbox) -> None:
    await inbox.ok(HOURS_SET, {"input": MUMBAI}, "businessHoursSet")
    await _policy(inbox, firstResponseMinutes=30, resolutionMinutes=240)
    clocked = await Clocked.open(inbox, THURSDAY_1245)
    first = (await clocked.targets())[SlaTargetKind.FIRST_RESPONSE]
    # 15 minutes before lunch, 15 after it
    assert first.due_at == THURSDAY_1245 + timedelta(hours=1, minutes=30)
    # when the thread waits on the customer for 40 business minutes (14:00-14:40 local)
    pending_at = THURSDAY_1245 + timedelta(minutes=75)
    await clocked.status(ThreadStatus.PENDING, pending_at)
    thread = await clocked.thread()
    assert (thread.sla_status, thread.sla_due_at) == (SlaStatus.PAUSED, None)
    assert (await clocked.targets())[SlaTargetKind.FIRST_RESPONSE].due_at is None
    await clocked.status(ThreadStatus.OPEN, pending_at + timedelta(minutes=40))
    # then the due time moved by exactly those 40 minutes
    resumed = await clocked.targets()
    assert resumed[SlaTargetKind.FIRST_RESPONSE].due_at == first.due_at + timedelta(minutes=40)
    assert resumed[SlaTargetKind.RESOLUTION].due_at == MUMBAI_CALENDAR.add(THURSDAY_1245, timedelta(minutes=280))
    thread = await clocked.thread()
    assert thread.sla_status == SlaStatus.ON_TRACK
    assert thread.sla_due_at == first.due_at + timedelta(minutes=40)
    assert len(thread.sla_pauses) == 1 and thread.sla_pauses[0][1] is not None


async def test_a_customer_message_on_a_pending_thread_resumes_the_clock(inbox: Inbox) -> None:
    await _policy(inbox, firstResponseMinutes=30)
    clocked = await Clocked.open(inbox, THURSDAY_1245)
    await clocked.status(ThreadStatus.PENDING, THURSDAY_1245 + timedelta(minutes=5))
    await clocked.customer(THURSDAY_1245 + timedelta(minutes=65))
    thread = await clocked.thread()
    assert thread.status == ThreadStatus.OPEN
    assert (await clocked.targets())[SlaTargetKind.FIRST_RESPONSE].due_at == THURSDAY_1245 + timedelta(minutes=90)


async def test_resolving_meets_the_resolution_and_reopening_starts_a_new_one(inbox: Inbox) -> None:
    await _policy(inbox, firstResponseMinutes=30, nextResponseMinutes=60, resolutionMinutes=480)
    clocked = await Clocked.open(inbox, THURSDAY_1245)
    resolved_at = THURSDAY_1245 + timedelta(hours=2)
    await clocked.status(ThreadStatus.RESOLVED, resolved_at)
    history = await clocked.all_targets()
    states = {t.kind: (t.met_at, t.cancelled_at) for t in history}
    assert states[SlaTargetKind.RESOLUTION] == (resolved_at, None)
    assert states[SlaTargetKind.FIRST_RESPONSE] == (None, resolved_at)  # no longer needed
    thread = await clocked.thread()
    assert (thread.sla_status, thread.sla_due_at, thread.sla_check_at) == (SlaStatus.MET, None, None)
    # when the customer writes again
    await clocked.customer(resolved_at + timedelta(days=1))
    reopened = await clocked.targets()
    assert set(reopened) == {SlaTargetKind.RESOLUTION, SlaTargetKind.NEXT_RESPONSE}
    assert reopened[SlaTargetKind.RESOLUTION].started_at == resolved_at + timedelta(days=1)
    assert (await clocked.thread()).sla_status == SlaStatus.ON_TRACK


# -- warnings and breaches -----------------------------------------------------------------------------------


async def test_a_target_warns_then_breaches_once_with_its_actions(inbox: Inbox) -> None:
    manager = await _member(inbox, "manager")
    agent = await _member(inbox, "support", "agent@acme.test")
    backup = await _member(inbox, "support", "backup@acme.test")
    await _policy(
        inbox,
        firstResponseMinutes=30,
        warnBeforeMinutes=10,
        breachActions={
            "notifyAssignee": True,
            "notifyManagers": True,
            "raisePriority": True,
            "reassignToId": backup.id,
        },
    )
    clocked = await Clocked.open(inbox, THURSDAY_1245, priority=Priority.HIGH)
    async with tenant_session(clocked.state.sessionmaker, inbox.org.id) as session, session.begin():
        await session.execute(
            update(Thread).where(Thread.id == clocked.thread_id).values(assignee_id=local_id(agent.id, "User"))
        )
    thread = await clocked.thread()
    assert thread.sla_check_at == THURSDAY_1245 + timedelta(minutes=20)  # the warning
    # before the warning: nothing
    assert await clocked.check(THURSDAY_1245 + timedelta(minutes=19)) == []
    # at the warning: AT_RISK, once
    assert await clocked.check(THURSDAY_1245 + timedelta(minutes=20)) == ["SLA_WARNING"]
    assert await clocked.check(THURSDAY_1245 + timedelta(minutes=21)) == []
    thread = await clocked.thread()
    assert (thread.sla_status, thread.sla_check_at) == (SlaStatus.AT_RISK, THURSDAY_1245 + timedelta(minutes=30))
    # at the due time: BREACHED, once, with every action
    assert await clocked.check(THURSDAY_1245 + timedelta(minutes=31)) == ["SLA_BREACHED"]
    assert await clocked.check(THURSDAY_1245 + timedelta(minutes=40)) == []
    thread = await clocked.thread()
    assert (thread.sla_status, thread.sla_check_at) == (SlaStatus.BREACHED, None)
    assert thread.priority == Priority.URGENT
    assert thread.assignee_id == local_id(backup.id, "User")
    [target] = (await clocked.targets()).values()
    assert (target.warned_at, target.breached_at) == (THURSDAY_1245 + timedelta(minutes=20), target.due_at)
    recorded = await _events(clocked.state, clocked.thread_id, "SLA_WARNING", "SLA_BREACHED", "THREAD_ASSIGNED")
    assert [(e.type, e.payload.get("target")) for e in recorded] == [
        ("SLA_WARNING", "FIRST_RESPONSE"),
        ("SLA_BREACHED", "FIRST_RESPONSE"),
        ("THREAD_ASSIGNED", None),
    ]
    async with system_session(clocked.state.sessionmaker) as session:
        notes = list(await session.scalars(select(Notification).where(Notification.thread_id == clocked.thread_id)))
    told = sorted((n.type.name, str(n.user_id)) for n in notes)
    ids = {
        name: str(local_id(m.id, "User")) for name, m in (("manager", manager), ("agent", agent), ("backup", backup))
    }
    assert told == sorted(
        [
            ("SLA_WARNING", ids["agent"]),
            ("SLA_BREACHED", ids["manager"]),
            ("SLA_BREACHED", ids["backup"]),  # the assignee when the actions ran
            ("ASSIGNMENT", ids["backup"]),
        ]
    )
    # a late reply meets the target; the thread stays BREACHED in its history
    await clocked.reply(THURSDAY_1245 + timedelta(minutes=45))
    assert (await clocked.thread()).sla_status == SlaStatus.BREACHED


async def test_a_paused_target_does_not_breach(inbox: Inbox) -> None:
    await _policy(inbox, firstResponseMinutes=30)
    clocked = await Clocked.open(inbox, THURSDAY_1245)
    await clocked.status(ThreadStatus.PENDING, THURSDAY_1245 + timedelta(minutes=10))
    assert (await clocked.thread()).sla_check_at is None
    assert await clocked.check(THURSDAY_1245 + timedelta(hours=5)) == []


async def test_inbound_messages_go_through_the_sla(inbox: Inbox) -> None:
    """The provider path (message_receive) starts a first response on a thread the customer opened."""
    await _policy(inbox, firstResponseMinutes=15, conditions={"channels": ["WHATSAPP"]})
    state = inbox.api.state
    async with tenant_session(state.sessionmaker, inbox.org.id) as session, session.begin():
        thread = await new_thread(session, inbox.org.id, subject="WhatsApp", primary_channel=Channel.WHATSAPP)
        await message_receive(
            session, inbox.org.id, thread_id=thread.id, channel=Channel.WHATSAPP, body="Rate?", sender="+919820000001"
        )
        thread_id = thread.id
    async with system_session(state.sessionmaker) as session:
        stored = await session.scalar(select(Thread).where(Thread.id == thread_id))
        kinds = list(await session.scalars(select(SlaTarget.kind).where(SlaTarget.thread_id == thread_id)))
    assert stored.sla_status == SlaStatus.ON_TRACK
    assert kinds == [SlaTargetKind.FIRST_RESPONSE]


# -- the timer -------------------------------------------------------------------------------------------------


async def test_the_scheduler_breaches_a_thread_at_its_due_time(inbox: Inbox, state: AppState, worker: object) -> None:
    await _policy(inbox, firstResponseMinutes=30)
    thread_id = local_id(await _new_thread(inbox), "Thread")
    # given a target due in 2 seconds (moved, as if the thread was created 29 minutes 58 seconds ago)
    due = datetime.now(UTC) + timedelta(seconds=2)
    async with system_session(state.sessionmaker) as session, session.begin():
        await session.execute(update(SlaTarget).where(SlaTarget.thread_id == thread_id).values(due_at=due))
        await session.execute(update(Thread).where(Thread.id == thread_id).values(sla_check_at=due, sla_due_at=due))
    # when the scheduler's minute job runs (once, now)
    actors.check_slas.send()
    # then the thread is breached at its due time: not before, and within a second or two after
    found: list[Event] = []
    for _ in range(200):
        found = await _events(state, thread_id, events.SlaBreached.type)
        if found:
            break
        await asyncio.sleep(0.1)
    assert len(found) == 1, "no SLA_BREACHED within 20 s"
    assert due <= found[0].created_at < due + timedelta(seconds=10)  # the minute sweep alone would be up to 60 s late
    async with system_session(state.sessionmaker) as session:
        assert (await session.scalar(select(Thread.sla_status).where(Thread.id == thread_id))) == SlaStatus.BREACHED


async def test_the_inbox_filters_by_sla_status(inbox: Inbox) -> None:
    await _policy(inbox, firstResponseMinutes=30, conditions={"priorities": ["URGENT"]})
    urgent = await _new_thread(inbox, priority="URGENT", subject="Urgent")
    await _new_thread(inbox, subject="No SLA")
    pending = await _new_thread(inbox, priority="URGENT", subject="Waiting")
    await inbox.ok(THREAD_UPDATE, {"input": {"id": pending, "status": "PENDING"}}, "threadUpdate")
    query = """
    query($filter: ThreadFilter) { threads(filter: $filter, orderBy: SLA_DUE) { edges { node { id slaStatus } } } }
    """
    for statuses, expected in (
        (["ON_TRACK"], [urgent]),
        (["PAUSED"], [pending]),
        (["ON_TRACK", "PAUSED"], [urgent, pending]),
    ):
        result = await inbox.gql(query, {"filter": {"slaStatus": statuses}})
        assert [edge["node"]["id"] for edge in result["data"]["threads"]["edges"]] == expected, statuses


async def test_the_demo_runs_urgent_quotes_in_business_minutes(state: AppState) -> None:
    from banxway.db.models import SlaPolicy, Team
    from banxway.resolvers.demo import DEMO_BUSINESS_HOURS, seed_demo

    # given the demo data (as serve --demo seeds it)
    await seed_demo(state)
    async with system_session(state.sessionmaker) as session:
        quote = await session.scalar(select(Thread).where(Thread.subject == "Quote: 2x40HC Nhava Sheva to Hamburg"))
        policy = await session.get(SlaPolicy, quote.sla_policy_id)
        first = await session.scalar(
            select(SlaTarget).where(SlaTarget.thread_id == quote.id, SlaTarget.kind == SlaTargetKind.FIRST_RESPONSE)
        )
        team = await session.scalar(select(Team).where(Team.organization_id == quote.organization_id))
    # then its quote request runs "Urgent quotes": first response in 30 business minutes of Mumbai's calendar
    assert (policy.name, first.minutes) == ("Urgent quotes", 30)
    calendar = BusinessCalendar.from_dict(DEMO_BUSINESS_HOURS)
    assert first.due_at == calendar.add(first.started_at, timedelta(minutes=30))
    assert quote.sla_due_at == first.due_at and quote.sla_status == SlaStatus.ON_TRACK
    assert team.name == "Sea Export"
    # and at its due time it breaches: priority raised (HIGH -> URGENT), assignee and managers told
    recorded = await sla.sla_check(system_context(state), quote.id, first.due_at)
    assert recorded == ["SLA_BREACHED"]
    async with system_session(state.sessionmaker) as session:
        after = await session.scalar(select(Thread).where(Thread.id == quote.id))
        told = list(await session.scalars(select(Notification.type).where(Notification.thread_id == quote.id)))
    assert (after.priority, after.sla_status) == (Priority.URGENT, SlaStatus.BREACHED)
    assert NotificationType.SLA_BREACHED in told
