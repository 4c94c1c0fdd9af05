"""Analytics (banxway.resolvers.analytics): figures on a hand-built dataset with known answers, time zones, the
previous period, drill-down, per-agent figures, roles and tenancy, CSV exports (streamed), and rollups that give
the very numbers of the on-the-fly computation."""

from __future__ import annotations

import csv
import io
import random
import tracemalloc
import uuid
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text

from banxway import events
from banxway.context import Context, Viewer
from banxway.enums import Role
from banxway.resolvers.analytics import Dimension, analytics, export_rows, rollup_analytics, rollup_day
from banxway.schema.ids import local_id
from tests.inbox_helpers import Inbox, _foreign, _member, system_context

ANALYTICS = """
query($period: AnalyticsPeriodInput!, $groupBy: [AnalyticsDimension!]) {
  analytics(period: $period, groupBy: $groupBy) {
    period { from to timezone } previousPeriod { from to timezone } businessHours
    buckets {
      channel threadType day week agent { id } customer { id }
      figures { ...F } previous { ...F }
    }
  }
}
fragment F on AnalyticsFigures {
  threadsOpened threadsResolved threadsReopened messagesIn messagesOut backlog
  firstResponse { count p50 p90 mean } firstResponseBusinessHours { count p50 p90 mean }
  resolution { count p50 p90 mean } resolutionBusinessHours { count p50 p90 mean }
  sla { target met breached }
}
"""
DRILL = """
query($period: AnalyticsPeriodInput!, $metric: AnalyticsMetric!, $bucket: AnalyticsBucketInput, $after: String) {
  analyticsThreads(period: $period, metric: $metric, bucket: $bucket, first: 2, after: $after) {
    totalCount edges { node { id reference } } pageInfo { hasNextPage endCursor }
  }
}
"""
PERFORMANCE = """
query($period: AnalyticsPeriodInput!) {
  userPerformance(period: $period) {
    user { id email } threadsHandled replies threadsResolved medianFirstResponse medianResolution csat
  }
}
"""
WEEK = {"from": "2026-03-02", "to": "2026-03-08", "timezone": "UTC"}  # Monday to Sunday
HOURS = {
    "timezone": "UTC",
    "hours": {day: [["09:00", "17:00"]] for day in ("monday", "tuesday", "wednesday", "thursday", "friday")},
}


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


class Data:
    """Rows written straight into the tables, with the instants the test needs."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.org = inbox.org.id
        self.count = 0

    async def sql(self, statement: str, **params: Any) -> Any:
        async with self.inbox.api.state.engine.begin() as connection:
            result = await connection.execute(text(statement), params)
            return result.all() if result.returns_rows else []

    async def thread(
        self, created: datetime, channel: str = "EMAIL", type: str = "GENERAL", assignee: str | None = None, **more: Any
    ) -> uuid.UUID:
        self.count += 1
        rows = await self.sql(
            "INSERT INTO threads (organization_id, reference, subject, type, status, priority, primary_channel, "
            "assignee_id, customer_id, created_at, last_activity_at, first_response_at) VALUES (:org, :ref, 'S', "
            "CAST(:type AS thread_type), CAST(:status AS thread_status), 'NORMAL', CAST(:channel AS channel), "
            ":assignee, :customer, :created, :created, :first) RETURNING id",
            org=self.org,
            ref=f"BX-T-{uuid.uuid4().hex[:8]}",
            type=type,
            status=more.get("status", "OPEN"),
            channel=channel,
            assignee=uuid.UUID(assignee) if assignee else None,
            customer=more.get("customer"),
            created=created,
            first=more.get("first_response"),
        )
        return rows[0][0]

    async def message(
        self,
        thread: uuid.UUID,
        created: datetime,
        direction: str = "INBOUND",
        channel: str = "EMAIL",
        author: str | None = None,
        status: str | None = None,
    ) -> None:
        await self.sql(
            "INSERT INTO messages (organization_id, thread_id, channel, direction, status, body, author_id, "
            "created_at) VALUES (:org, :thread, CAST(:channel AS channel), CAST(:direction AS direction), "
            "CAST(:status AS message_status), 'hi', :author, :created)",
            org=self.org,
            thread=thread,
            channel=channel,
            direction=direction,
            status=status or ("RECEIVED" if direction == "INBOUND" else "SENT"),
            author=uuid.UUID(author) if author else None,
            created=created,
        )

    async def status(
        self, thread: uuid.UUID, when: datetime, previous: str, status: str, actor: str | None = None
    ) -> None:
        payload = {"thread_id": str(thread), "changed": ["status"], "status": status, "previous_status": previous}
        await self.sql(
            "INSERT INTO events (organization_id, type, thread_id, actor_id, payload, created_at, dispatched_at) "
            "VALUES (:org, 'THREAD_UPDATED', :thread, :actor, CAST(:payload AS jsonb), :when, :when)",
            org=self.org,
            thread=thread,
            actor=uuid.UUID(actor) if actor else None,
            payload=orjson.dumps(payload).decode(),
            when=when,
        )

    async def target(
        self, thread: uuid.UUID, kind: str, started: datetime, met: datetime | None, breached: datetime | None = None
    ) -> None:
        await self.sql(
            "INSERT INTO sla_targets (organization_id, thread_id, kind, minutes, business_hours, started_at, met_at, "
            "breached_at) VALUES (:org, :thread, CAST(:kind AS sla_target_kind), 15, false, :started, :met, :breached)",
            org=self.org,
            thread=thread,
            kind=kind,
            started=started,
            met=met,
            breached=breached,
        )

    async def calendar(self, value: dict | None) -> None:
        await self.sql(
            "UPDATE organizations SET business_hours = CAST(:hours AS jsonb) WHERE id = :org",
            org=self.org,
            hours=orjson.dumps(value).decode() if value else None,
        )


async def hand_built(inbox: Inbox) -> dict[str, Any]:
    """The dataset of the figures below (UTC): the week of 2026-03-02 and the week before."""
    ana = await _member(inbox, "support", "ana@acme.test")
    ben = await _member(inbox, "support", "ben@acme.test")
    data = Data(inbox)
    a, b = str(local_id(ana.id, "User")), str(local_id(ben.id, "User"))
    # before both periods, still open: the backlog's base
    await data.thread(datetime(2026, 1, 10, 9, tzinfo=UTC))
    # t1: answered in 10 min, resolved by Ana after 2 h
    t1 = await data.thread(at(2, 9), "EMAIL", "GENERAL", a, first_response=at(2, 9, 10))
    await data.message(t1, at(2, 9))
    await data.message(t1, at(2, 9, 10), "OUTBOUND", author=a)
    await data.status(t1, at(2, 11), "OPEN", "RESOLVED", actor=a)
    await data.target(t1, "FIRST_RESPONSE", at(2, 9), met=at(2, 9, 10))
    await data.target(t1, "RESOLUTION", at(2, 9), met=at(2, 11))
    # t2: WhatsApp, answered in 30 min (FIRST_RESPONSE breached at 10:15), resolved by Ben after a day, reopened
    t2 = await data.thread(at(3, 10), "WHATSAPP", "QUOTE_REQUEST", b, first_response=at(3, 10, 30))
    await data.message(t2, at(3, 10), channel="WHATSAPP")
    await data.message(t2, at(3, 10, 30), "OUTBOUND", "WHATSAPP", author=b)
    await data.message(t2, at(5, 8), channel="WHATSAPP")
    await data.message(t2, at(6, 10), "OUTBOUND", "WHATSAPP", author=b, status="SCHEDULED")  # not sent: not counted
    await data.status(t2, at(4, 10), "OPEN", "RESOLVED", actor=b)
    await data.status(t2, at(5, 8), "RESOLVED", "OPEN")
    await data.target(t2, "FIRST_RESPONSE", at(3, 10), met=at(3, 10, 30), breached=at(3, 10, 15))
    # t3: unassigned, answered by Ana in an hour, still open
    t3 = await data.thread(at(4, 12), "EMAIL", "GENERAL", None, first_response=at(4, 13))
    await data.message(t3, at(4, 12))
    await data.message(t3, at(4, 13), "OUTBOUND", author=a)
    # t4: the previous week
    t4 = await data.thread(at(25, 9, month=2), "EMAIL", "GENERAL", a, first_response=at(25, 9, 20, month=2))
    await data.message(t4, at(25, 9, month=2))
    await data.message(t4, at(25, 9, 20, month=2), "OUTBOUND", author=a)
    await data.status(t4, at(26, 9, month=2), "OPEN", "CLOSED", actor=a)
    return {"data": data, "ana": ana, "ben": ben, "t1": t1, "t2": t2, "t3": t3, "t4": t4}


async def _analytics(inbox: Inbox, period: dict, group_by: list[str] | None = None, token: str | None = None) -> dict:
    result = await inbox.gql(ANALYTICS, {"period": period, "groupBy": group_by}, token=token)
    assert "errors" not in result, result
    return result["data"]["analytics"]


def _durations(count: int, p50: float | None, p90: float | None, mean: float | None) -> dict:
    return {"count": count, "p50": p50, "p90": p90, "mean": mean}


async def test_figures_of_a_hand_built_week_with_its_previous_week(inbox: Inbox) -> None:
    # given the dataset, and another organization busy in the same week
    await hand_built(inbox)
    other = await _foreign(inbox)
    noise = Data(other)
    for hour in range(9, 15):
        thread = await noise.thread(at(3, hour), first_response=at(3, hour, 1))
        await noise.message(thread, at(3, hour))
        await noise.status(thread, at(4, hour), "OPEN", "RESOLVED")
    # when
    result = await _analytics(inbox, WEEK)
    # then
    assert result["period"] == {"from": "2026-03-02", "to": "2026-03-08", "timezone": "UTC"}
    assert result["previousPeriod"] == {"from": "2026-02-23", "to": "2026-03-01", "timezone": "UTC"}
    assert result["businessHours"] is False
    [bucket] = result["buckets"]
    figures = bucket["figures"]
    assert (figures["threadsOpened"], figures["threadsResolved"], figures["threadsReopened"]) == (3, 2, 1)
    assert (figures["messagesIn"], figures["messagesOut"], figures["backlog"]) == (4, 3, None)
    assert figures["firstResponse"] == _durations(3, 1800.0, 3240.0, 2000.0)  # 600, 1800, 3600 s
    assert figures["resolution"] == _durations(2, 46800.0, 78480.0, 46800.0)  # 2 h and 24 h
    assert figures["firstResponseBusinessHours"] is None
    assert figures["sla"] == [
        {"target": "FIRST_RESPONSE", "met": 1, "breached": 1},
        {"target": "NEXT_RESPONSE", "met": 0, "breached": 0},
        {"target": "RESOLUTION", "met": 1, "breached": 0},
    ]
    previous = bucket["previous"]
    assert (previous["threadsOpened"], previous["threadsResolved"], previous["threadsReopened"]) == (1, 1, 0)
    assert (previous["messagesIn"], previous["messagesOut"]) == (1, 1)
    assert previous["firstResponse"] == _durations(1, 1200.0, 1200.0, 1200.0)


async def test_grouping_by_channel_agent_and_day_with_the_backlog(inbox: Inbox) -> None:
    given = await hand_built(inbox)
    # when grouped by channel
    by_channel = await _analytics(inbox, WEEK, ["CHANNEL"])
    # then each channel has its threads and messages (the previous week had email only)
    rows = {b["channel"]: b["figures"] for b in by_channel["buckets"]}
    assert set(rows) == {"EMAIL", "WHATSAPP"}
    assert (rows["EMAIL"]["threadsOpened"], rows["EMAIL"]["messagesIn"], rows["EMAIL"]["messagesOut"]) == (2, 2, 2)
    assert (rows["WHATSAPP"]["threadsOpened"], rows["WHATSAPP"]["messagesIn"], rows["WHATSAPP"]["messagesOut"]) == (
        1,
        2,
        1,
    )
    email = next(b for b in by_channel["buckets"] if b["channel"] == "EMAIL")
    assert email["previous"]["threadsOpened"] == 1
    # when grouped by agent: Ana, Ben, and nobody (unassigned t3)
    by_agent = await _analytics(inbox, WEEK, ["AGENT"])
    agents = {(b["agent"] or {}).get("id"): b["figures"]["threadsOpened"] for b in by_agent["buckets"]}
    assert agents == {given["ana"].id: 1, given["ben"].id: 1, None: 1}
    # when grouped by day: every day of the week, with the open threads at its end
    by_day = await _analytics(inbox, WEEK, ["DAY"])
    days = [(b["day"], b["figures"]["threadsOpened"], b["figures"]["backlog"]) for b in by_day["buckets"]]
    assert days == [
        ("2026-03-02", 1, 1),  # the January thread, t1 opened and resolved
        ("2026-03-03", 1, 2),
        ("2026-03-04", 1, 2),  # t3 opened, t2 resolved
        ("2026-03-05", 0, 3),  # t2 reopened
        ("2026-03-06", 0, 3),
        ("2026-03-07", 0, 3),
        ("2026-03-08", 0, 3),
    ]
    # and the previous period's days land on the days they compare with (2026-02-25 is a week before 03-04)
    previous = {b["day"]: b["previous"] for b in by_day["buckets"]}
    assert previous["2026-03-04"]["threadsOpened"] == 1
    assert [previous[d]["backlog"] for d in ("2026-03-03", "2026-03-04", "2026-03-05")] == [1, 2, 1]
    # when grouped by week
    by_week = await _analytics(inbox, WEEK, ["WEEK"])
    assert [(b["week"], b["figures"]["threadsOpened"]) for b in by_week["buckets"]] == [("2026-03-02", 3)]


async def test_business_hours_figures_when_the_organization_has_a_calendar(inbox: Inbox) -> None:
    given = await hand_built(inbox)
    await given["data"].calendar(HOURS)
    result = await _analytics(inbox, WEEK)
    assert result["businessHours"] is True
    figures = result["buckets"][0]["figures"]
    # first responses all fell in business hours; t2's day-long resolution is 7 h + 1 h of business time
    assert figures["firstResponseBusinessHours"] == _durations(3, 1800.0, 3240.0, 2000.0)
    assert figures["resolutionBusinessHours"] == _durations(2, 18000.0, 26640.0, 18000.0)
    assert figures["resolution"] == _durations(2, 46800.0, 78480.0, 46800.0)


async def test_days_are_local_to_the_time_zone(inbox: Inbox) -> None:
    # given a message at 23:30 UTC on 2 March: 05:00 on 3 March in Kolkata
    data = Data(inbox)
    thread = await data.thread(at(1, 12))
    await data.message(thread, at(2, 23, 30))
    period = {"from": "2026-03-02", "to": "2026-03-03"}
    utc = await _analytics(inbox, {**period, "timezone": "UTC"}, ["DAY"])
    kolkata = await _analytics(inbox, {**period, "timezone": "Asia/Kolkata"}, ["DAY"])
    assert [(b["day"], b["figures"]["messagesIn"]) for b in utc["buckets"]] == [("2026-03-02", 1), ("2026-03-03", 0)]
    assert [(b["day"], b["figures"]["messagesIn"]) for b in kolkata["buckets"]] == [
        ("2026-03-02", 0),
        ("2026-03-03", 1),
    ]


async def test_drill_down_lists_the_threads_behind_each_figure(inbox: Inbox) -> None:
    given = await hand_built(inbox)
    by_channel = {b["channel"]: b["figures"] for b in (await _analytics(inbox, WEEK, ["CHANNEL"]))["buckets"]}
    whole = (await _analytics(inbox, WEEK))["buckets"][0]["figures"]
    cases = [
        ("OPENED", None, whole["threadsOpened"], {given["t1"], given["t2"], given["t3"]}),
        ("RESOLVED", None, whole["threadsResolved"], {given["t1"], given["t2"]}),
        ("REOPENED", None, whole["threadsReopened"], {given["t2"]}),
        ("FIRST_RESPONSE_BREACHED", None, 1, {given["t2"]}),
        ("OPENED", {"channel": "EMAIL"}, by_channel["EMAIL"]["threadsOpened"], {given["t1"], given["t3"]}),
        ("OPENED", {"agentId": given["ana"].id}, 1, {given["t1"]}),
        ("OPENED", {"none": ["AGENT"]}, 1, {given["t3"]}),
        ("OPENED", {"day": "2026-03-03"}, 1, {given["t2"]}),
    ]
    for metric, bucket, figure, expected in cases:
        found, after = [], None
        while True:  # pages of 2
            result = await inbox.gql(DRILL, {"period": WEEK, "metric": metric, "bucket": bucket, "after": after})
            assert "errors" not in result, result
            page = result["data"]["analyticsThreads"]
            found += [local_id(e["node"]["id"], "Thread") for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert page["totalCount"] == figure == len(found), (metric, bucket)
        assert set(found) == expected, (metric, bucket)
    # another organization's user id matches nothing
    other = await _foreign(inbox)
    foreign_admin = (await other.gql("{ me { id } }"))["data"]["me"]["id"]
    result = await inbox.gql(DRILL, {"period": WEEK, "metric": "OPENED", "bucket": {"agentId": foreign_admin}})
    assert result["data"]["analyticsThreads"]["totalCount"] == 0


async def test_user_performance(inbox: Inbox) -> None:
    given = await hand_built(inbox)
    result = await inbox.gql(PERFORMANCE, {"period": WEEK})
    assert "errors" not in result, result
    rows = {row["user"]["email"]: row for row in result["data"]["userPerformance"]}
    assert set(rows) == {"ana@acme.test", "ben@acme.test"}
    ana, ben = rows["ana@acme.test"], rows["ben@acme.test"]
    assert (ana["threadsHandled"], ana["replies"], ana["threadsResolved"]) == (2, 2, 1)
    assert (ana["medianFirstResponse"], ana["medianResolution"], ana["csat"]) == (2100.0, 7200.0, None)
    assert (ben["threadsHandled"], ben["replies"], ben["threadsResolved"]) == (1, 1, 1)
    assert (ben["medianFirstResponse"], ben["medianResolution"]) == (1800.0, 86400.0)
    assert given["ana"].id == ana["user"]["id"]


async def test_managers_and_admins_read_analytics_support_and_viewers_do_not(inbox: Inbox) -> None:
    await hand_built(inbox)
    manager = await _member(inbox, "manager")
    assert (await _analytics(inbox, WEEK, token=manager.token))["buckets"][0]["figures"]["threadsOpened"] == 3
    for role in ("support", "viewer", "validator"):
        member = await _member(inbox, role, f"{role}-2@acme.test")
        for query, variables in (
            (ANALYTICS, {"period": WEEK}),
            (DRILL, {"period": WEEK, "metric": "OPENED"}),
            (PERFORMANCE, {"period": WEEK}),
        ):
            result = await inbox.gql(query, variables, token=member.token)
            assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN", (role, result)
    unauthenticated = await inbox.api.gql(ANALYTICS, {"period": WEEK})
    assert unauthenticated["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_bad_periods_are_refused_naming_the_field(inbox: Inbox) -> None:
    for period, field in (
        ({"from": "2026-03-08", "to": "2026-03-02"}, ["period", "to"]),
        ({"from": "2020-01-01", "to": "2026-03-02"}, ["period", "to"]),
        ({"from": "2026-03-02", "to": "2026-03-08", "timezone": "Mars/Olympus"}, ["period", "timezone"]),
    ):
        result = await inbox.gql(ANALYTICS, {"period": period})
        assert result["errors"][0]["extensions"]["field"] == field, result
    result = await inbox.gql(ANALYTICS, {"period": WEEK, "groupBy": ["DAY", "WEEK"]})
    assert result["errors"][0]["extensions"]["field"] == ["groupBy"]


async def test_a_real_resolution_and_reopening_through_the_api_are_counted(inbox: Inbox) -> None:
    # given a thread resolved and reopened with threadUpdate (the events carry the statuses)
    update = """
    mutation($input: ThreadUpdateInput!) { threadUpdate(input: $input) { userErrors { field message } } }
    """
    thread = await inbox.thread()
    await inbox.ok(update, {"input": {"threadId": thread["id"], "status": "RESOLVED"}}, "threadUpdate")
    await inbox.ok(update, {"input": {"threadId": thread["id"], "status": "OPEN"}}, "threadUpdate")
    archive = "mutation($input: ThreadArchiveInput!) { threadArchive(input: $input) { userErrors { field } } }"
    await inbox.ok(archive, {"input": {"threadId": thread["id"]}}, "threadArchive")
    today = datetime.now(UTC).date().isoformat()
    # when
    figures = (await _analytics(inbox, {"from": today, "to": today, "timezone": "UTC"}))["buckets"][0]["figures"]
    # then: resolved, reopened, and archived (a resolution too)
    assert (figures["threadsOpened"], figures["threadsResolved"], figures["threadsReopened"]) == (1, 2, 1)


async def test_pruning_events_keeps_the_status_changes_analytics_counts(inbox: Inbox) -> None:
    # given events older than the retention: a status change and a tag change
    data = Data(inbox)
    thread = await data.thread(at(1, 9))
    await data.status(thread, at(1, 10), "OPEN", "RESOLVED")
    await data.sql(
        "INSERT INTO events (organization_id, type, thread_id, payload, created_at) VALUES (:org, 'THREAD_UPDATED', "
        ":thread, CAST(:payload AS jsonb), :when)",
        org=data.org,
        thread=thread,
        payload=orjson.dumps({"thread_id": str(thread), "changed": ["tags"]}).decode(),
        when=at(1, 11),
    )
    # when
    await events.prune(inbox.api.state.sessionmaker, timedelta(days=7))
    # then only the status change is left, and the figure still counts it
    left = await data.sql("SELECT payload ->> 'status' FROM events WHERE thread_id = :thread", thread=thread)
    assert left == [("RESOLVED",)]
    figures = (await _analytics(inbox, {"from": "2026-03-01", "to": "2026-03-01", "timezone": "UTC"}))["buckets"]
    assert figures[0]["figures"]["threadsResolved"] == 1


EXPORT_HEADER = (
    "id,reference,subject,type,status,priority,channel,customer_id,assignee_id,team_id,created_at,"
    "first_response_at,last_message_at"
)


async def test_exports_need_a_token_with_analytics_and_answer_exact_csv(inbox: Inbox) -> None:
    given = await hand_built(inbox)
    http = inbox.api.http
    query = "?from=2026-03-02&to=2026-03-08&timezone=UTC"
    # no token, or a support agent's: refused
    assert (await http.get(f"/exports/threads.csv{query}")).status_code == 401
    support = await _member(inbox, "support")
    headers = {"authorization": f"Bearer {support.token}"}
    assert (await http.get(f"/exports/threads.csv{query}", headers=headers)).status_code == 403
    admin = {"authorization": f"Bearer {inbox.token}"}
    assert (await http.get("/exports/threads.csv?from=nope&to=2026-03-08", headers=admin)).status_code == 400
    # the threads of the week, oldest first
    response = await http.get(f"/exports/threads.csv{query}", headers=admin)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines[0] == EXPORT_HEADER
    rows = list(csv.reader(lines[1:]))
    assert [uuid.UUID(r[0]) for r in rows] == [given["t1"], given["t2"], given["t3"]]
    assert rows[0][3:7] == ["GENERAL", "OPEN", "NORMAL", "EMAIL"]
    assert rows[0][8] == str(local_id(given["ana"].id, "User"))
    assert rows[0][10] == "2026-03-02T09:00:00+00:00"
    # the messages of the week (the scheduled one too: an export is the rows, as they are)
    messages = await http.get(f"/exports/messages.csv{query}", headers=admin)
    assert len(messages.text.splitlines()) == 1 + 8
    # the dashboard by channel, with the previous period's columns
    dashboard = await http.get(f"/exports/analytics.csv{query}&groupBy=CHANNEL", headers=admin)
    table = list(csv.DictReader(io.StringIO(dashboard.text)))
    assert [(r["channel"], r["threads_opened"], r["previous_threads_opened"]) for r in table] == [
        ("EMAIL", "2", "1"),
        ("WHATSAPP", "1", "0"),
    ]
    assert table[0]["first_response_p50"] == "2100.0"


async def test_a_large_message_export_streams_in_bounded_memory(inbox: Inbox) -> None:
    # given 40,000 messages on one day (about 7 MB of CSV; held whole, its rows would take several times that)
    data = Data(inbox)
    thread = await data.thread(at(1, 0))
    await data.sql(
        "INSERT INTO messages (organization_id, thread_id, channel, direction, status, body, created_at) "
        "SELECT :org, :thread, 'EMAIL', 'INBOUND', 'RECEIVED', 'Container MSCU1234565 arrives ' || n, "
        "CAST(:day AS timestamptz) + n * interval '1 second' / 2 FROM generate_series(1, 40000) n",
        org=data.org,
        thread=thread,
        day=at(2, 0),
    )
    state = inbox.api.state
    viewer = Viewer(uuid.uuid4(), data.org, Role.ADMIN, "admin@acme.test", "admin")
    ctx = Context(state, viewer)
    # when the export is read chunk by chunk
    tracemalloc.start()
    try:
        chunks = await export_rows(ctx, "messages", date(2026, 3, 2), date(2026, 3, 2), "UTC")
        count, rows, largest, total = 0, 0, 0, 0
        async for chunk in chunks:
            count += 1
            rows += chunk.count(b"\n")
            largest = max(largest, len(chunk))
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await ctx.aclose()
    # then every row came, in many small chunks, and memory never held more than a few of them
    assert rows == 1 + 40_000
    assert count >= 40
    assert largest < 200_000
    assert peak < 4_000_000 and peak < total / 2, f"peak {peak} bytes for {total} bytes of CSV"


# -- rollups -----------------------------------------------------------------------------------------------------


async def random_dataset(inbox: Inbox, rng: random.Random, days: int = 40) -> None:
    data = Data(inbox)
    agents = [str(local_id((await _member(inbox, "support", f"agent{i}@acme.test")).id, "User")) for i in range(3)]
    customers = [uuid.uuid4() for _ in range(2)]
    for customer in customers:
        await data.sql(
            "INSERT INTO customers (id, organization_id, name) VALUES (:id, :org, 'C')", id=customer, org=data.org
        )
    start = datetime(2026, 2, 1, tzinfo=UTC)
    for _ in range(70):
        created = start + timedelta(minutes=rng.randrange(days * 24 * 60))
        responded = created + timedelta(minutes=rng.randrange(1, 3000)) if rng.random() < 0.8 else None
        channel = rng.choice(["EMAIL", "WHATSAPP", "SMS"])
        thread = await data.thread(
            created,
            channel,
            rng.choice(["GENERAL", "BOOKING", "CUSTOMS"]),
            rng.choice([*agents, None]),
            first_response=responded,
            customer=rng.choice([*customers, None]),
        )
        await data.message(thread, created, channel=channel)
        if responded:
            await data.message(thread, responded, "OUTBOUND", channel, author=rng.choice(agents))
            breached = created + timedelta(minutes=60) if (responded - created) > timedelta(minutes=60) else None
            await data.target(thread, "FIRST_RESPONSE", created, met=responded, breached=breached)
        when, status = created, "OPEN"
        for _ in range(rng.randrange(3)):
            when += timedelta(minutes=rng.randrange(10, 4000))
            new = "OPEN" if status in ("RESOLVED", "CLOSED") else rng.choice(["RESOLVED", "CLOSED", "PENDING"])
            await data.status(thread, when, status, new, actor=rng.choice(agents))
            status = new
    await data.calendar({**HOURS, "timezone": "Europe/Berlin"})


async def test_rollups_give_the_numbers_of_the_on_the_fly_computation(inbox: Inbox) -> None:
    # given a random dataset, rolled up for most of its days in Berlin time
    rng = random.Random(15)
    await random_dataset(inbox, rng)
    ctx = system_context(inbox.api.state)
    zone = "Europe/Berlin"
    all_days = [date(2026, 2, 1) + timedelta(days=i) for i in range(45)]
    for day in all_days:
        if rng.random() < 0.8:
            await rollup_day(ctx, inbox.org.id, day, zone)
    viewer = Viewer(uuid.uuid4(), inbox.org.id, Role.ADMIN, "admin@acme.test", "admin")
    groupings = [[], ["DAY"], ["WEEK"], ["CHANNEL"], ["AGENT", "DAY"], ["CUSTOMER"], ["THREAD_TYPE", "WEEK"], ["TEAM"]]
    used_rollups = 0
    for _ in range(12):
        first = rng.choice(all_days[:30])
        last = first + timedelta(days=rng.randrange(0, 15))
        group_by = [Dimension[name] for name in rng.choice(groupings)]
        ctx_view = Context(inbox.api.state, viewer)
        try:
            # when computed from rollups and on the fly
            rolled = await analytics(ctx_view, first, last, zone, group_by)
            fresh = await analytics(ctx_view, first, last, zone, group_by, use_rollups=False)
        finally:
            await ctx_view.aclose()
        # then every figure is the same
        used_rollups += rolled.rolled_up_days
        assert fresh.rolled_up_days == 0
        assert asdict(replace(rolled, rolled_up_days=0)) == asdict(fresh), (first, last, group_by)
    assert used_rollups > 0


async def test_the_rollup_actor_resolver_rolls_up_the_last_days_idempotently(inbox: Inbox) -> None:
    data = Data(inbox)
    thread = await data.thread(at(3, 10))
    await data.message(thread, at(3, 10))
    ctx = system_context(inbox.api.state)
    now = at(5, 1)
    first = await rollup_analytics(ctx, days=2, now=now)
    again = await rollup_analytics(ctx, days=2, now=now)
    assert first == again > 0
    rows = await data.sql(
        "SELECT day, dimension, key, threads_opened, messages_in FROM analytics_daily "
        "WHERE organization_id = :org AND dimension IN ('ALL', 'CHANNEL') ORDER BY day, dimension",
        org=data.org,
    )
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (date(2026, 3, 3), "ALL", "", 1, 1),
        (date(2026, 3, 3), "CHANNEL", "EMAIL", 1, 1),
        (date(2026, 3, 4), "ALL", "", 0, 0),
    ]
    # the dashboard reads those days from the rollups
    viewer = Viewer(uuid.uuid4(), inbox.org.id, Role.ADMIN, "admin@acme.test", "admin")
    ctx_view = Context(inbox.api.state, viewer)
    try:
        result = await analytics(ctx_view, date(2026, 3, 3), date(2026, 3, 4), None, [])
    finally:
        await ctx_view.aclose()
    assert result.rolled_up_days == 2
    assert result.buckets[0].figures.threads_opened == 1


async def test_a_personal_api_token_reads_analytics_with_the_read_scope_only(inbox: Inbox) -> None:
    # given the admin's API tokens with the READ scope, and with WRITE only
    create = """
    mutation($input: ApiTokenCreateInput!) { apiTokenCreate(input: $input) { secret userErrors { code } } }
    """
    tokens = {}
    for scope in ("READ", "WRITE"):
        result = await inbox.gql(create, {"input": {"name": f"bi {scope}", "scopes": [scope]}})
        tokens[scope] = result["data"]["apiTokenCreate"]["secret"]
    # then the READ token reads the dashboard and the exports, the WRITE one does not
    assert (await _analytics(inbox, WEEK, token=tokens["READ"]))["buckets"][0]["figures"]["threadsOpened"] == 0
    refused = await inbox.gql(ANALYTICS, {"period": WEEK}, token=tokens["WRITE"])
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    http = inbox.api.http
    url = "/exports/messages.csv?from=2026-03-02&to=2026-03-08"
    ok = await http.get(url, headers={"authorization": f"Bearer {tokens['READ']}"})
    assert (ok.status_code, ok.text.splitlines()[0].split(",")[0]) == (200, "id")
    assert (await http.get(url, headers={"authorization": f"Bearer {tokens['WRITE']}"})).status_code == 403
