"""The business calendar of the SLA engine: properties over random calendars (hypothesis) and hand-computed examples.

The semantics under test (banxway/calendar.py): `add(start, d)` is the first instant by which `d` of business time
has elapsed since `start`; a closed start starts the clock at the next opening; a positive duration ends in open time
or exactly at a shift's end; a wall time in a DST gap maps to the gap's end, an ambiguous one to its first
occurrence; an open pause that begins before the due time leaves it undefined (None).
"""

from __future__ import annotations

import itertools
import json
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from banxway.calendar import WEEKDAYS, BusinessCalendar, HolidayRules, Shift
from banxway.errors import DomainError

PROPERTIES = settings(max_examples=200, deadline=None)
# sparse calendars and long durations reach years past the `holidays` package's tables for India
pytestmark = pytest.mark.filterwarnings("ignore:Requested Holidays are available only:UserWarning")
MICROSECOND = timedelta(microseconds=1)
ZONES = (
    "UTC",
    "Europe/London",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",  # +05:45
    "Australia/Lord_Howe",  # a 30-minute DST
    "America/Santiago",  # transitions at midnight: 00:00 is skipped, 23:00–24:00 repeats
)
FIRST, LAST = datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 12, 31, tzinfo=UTC)

OFFICE = {day: [("09:00", "13:00"), ("14:00", "18:00")] for day in WEEKDAYS[:5]} | {"saturday": [("10:00", "14:00")]}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone), fold=fold)


def _transition_days() -> list[datetime]:
    """The UTC midnights of the days on which one of ZONES changes its offset, 2025–2027."""
    days = []
    for name in ZONES:
        zone = ZoneInfo(name)
        moment = FIRST
        while moment < LAST:
            if moment.astimezone(zone).utcoffset() != (moment + timedelta(days=1)).astimezone(zone).utcoffset():
                days.append(moment)
            moment += timedelta(days=1)
    return days


TRANSITION_DAYS = _transition_days()


# -- strategies ---------------------------------------------------------------------------------------------------


def _as_shifts(bounds: set[int]) -> list[tuple[str, str]]:
    quarters = sorted(bounds)
    return [(_quarter(a), _quarter(b)) for a, b in zip(quarters[::2], quarters[1::2], strict=False)]


def _quarter(n: int) -> str:
    return f"{n * 15 // 60:02d}:{n * 15 % 60:02d}"


def _calendar(
    zone: str, patterns: tuple[list[tuple[str, str]], ...], week: list[int], custom: list[int], country: str | None
) -> BusinessCalendar:
    hours = {name: patterns[pattern] for name, pattern in zip(WEEKDAYS, week, strict=True)}
    if not any(hours.values()):
        hours["wednesday"] = [("09:00", "17:00")]
    holidays = [FIRST.date() + timedelta(days=n) for n in custom]
    return BusinessCalendar.create(zone, hours, country=country, custom_holidays=holidays)


# a day: 0–3 shifts on a quarter-hour grid, often touching midnight or in the small hours when DST changes;
# a week: three such days, each weekday one of them
day_hours = st.lists(st.one_of(st.integers(0, 96), st.integers(0, 20)), max_size=6).map(set).map(_as_shifts)
calendars = st.builds(
    _calendar,
    st.sampled_from(ZONES),
    st.tuples(day_hours, day_hours, day_hours),
    st.lists(st.integers(0, 2), min_size=len(WEEKDAYS), max_size=len(WEEKDAYS)),
    st.lists(st.integers(0, (LAST - FIRST).days), max_size=8),
    st.sampled_from([None, None, None, "IN"]),
)


instants = st.one_of(
    st.datetimes(FIRST.replace(tzinfo=None), LAST.replace(tzinfo=None), timezones=st.just(UTC)),
    st.builds(
        lambda day, offset: day + offset,
        st.sampled_from(TRANSITION_DAYS),
        st.timedeltas(timedelta(days=-2), timedelta(days=2)),
    ),
)
durations = st.one_of(
    st.timedeltas(timedelta(0), timedelta(hours=10)).map(lambda d: d - d % timedelta(minutes=1)),
    st.timedeltas(timedelta(0), timedelta(days=10)),
)


# -- properties ---------------------------------------------------------------------------------------------------


@PROPERTIES
@given(calendars, instants, durations)
def test_adding_a_duration_then_measuring_gives_it_back(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
):
    # when
    due = calendar.add(start, duration)

    # then: whether start is open or closed
    assert due.tzinfo is UTC
    assert calendar.business_time_between(start, due) == duration
    assert calendar.business_time_between(due, start) == -duration


@PROPERTIES
@given(calendars, instants, durations.filter(bool))
def test_a_due_time_is_open_or_the_end_of_a_shift(calendar: BusinessCalendar, start: datetime, duration: timedelta):
    # when
    due = calendar.add(start, duration)

    # then: business time elapses right up to it, and if it is closed, a shift ends exactly then
    assert calendar.is_open(due - MICROSECOND)
    if not calendar.is_open(due):
        assert due in [end for _, end in calendar.intervals(due - MICROSECOND, due)]
    # and it is not a moment later than needed
    assert calendar.business_time_between(start, due - MICROSECOND) < duration


@PROPERTIES
@given(calendars, instants, durations.filter(bool))
def test_a_closed_start_starts_the_clock_at_the_next_opening(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
):
    # when
    opening = calendar.next_open(start)

    # then
    assert opening >= start
    assert calendar.is_open(opening)
    assert calendar.business_time_between(start, opening) == timedelta(0)
    assert (opening == start) == calendar.is_open(start)
    assert calendar.add(start, duration) == calendar.add(opening, duration)


@PROPERTIES
@given(calendars, instants, durations, durations)
def test_a_longer_duration_is_never_due_earlier_and_durations_add_up(
    calendar: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
):
    # when
    short, long = calendar.add(start, first), calendar.add(start, first + second)

    # then
    assert short <= long
    assert calendar.add(short, second) == long


nearby = st.timedeltas(timedelta(days=-30), timedelta(days=30))


@PROPERTIES
@given(calendars, instants, nearby, nearby)
def test_business_time_adds_up_over_consecutive_spans(
    calendar: BusinessCalendar, a: datetime, to_b: timedelta, to_c: timedelta
):
    # given three instants in any order
    b, c = a + to_b, a + to_c

    # then
    whole = calendar.business_time_between(a, c)
    assert whole == calendar.business_time_between(a, b) + calendar.business_time_between(b, c)


@PROPERTIES
@given(
    calendars,
    instants,
    durations,
    st.timedeltas(timedelta(0), timedelta(days=10)),
    st.timedeltas(timedelta(0), timedelta(days=3)),
)
def test_pausing_for_n_business_minutes_moves_the_due_time_by_n(
    calendar: BusinessCalendar, start: datetime, duration: timedelta, delay: timedelta, length: timedelta
):
    # given
    pause = (start + delay, start + delay + length)
    paused = calendar.business_time_between(*pause)
    due = calendar.add(start, duration)

    # when
    moved = calendar.add_with_pauses(start, duration, [pause])

    # then: a pause that begins once the duration has elapsed changes nothing
    assert moved is not None
    if pause[0] >= due:
        assert moved == due
    else:
        assert calendar.business_time_between(due, moved) == paused
        assert moved == calendar.add(start, duration + paused)
    assert calendar.business_time_between(start, moved, [pause]) == duration


@PROPERTIES
@given(
    calendars,
    instants,
    durations,
    st.lists(
        st.tuples(
            st.timedeltas(timedelta(days=-2), timedelta(days=10)), st.timedeltas(timedelta(0), timedelta(days=2))
        ),
        max_size=4,
    ),
)
def test_overlapping_pauses_count_once(
    calendar: BusinessCalendar, start: datetime, duration: timedelta, spans: list[tuple[timedelta, timedelta]]
):
    # given
    pauses = [(start + delay, start + delay + length) for delay, length in spans]

    # when
    due = calendar.add_with_pauses(start, duration, pauses)

    # then: the clock ran for exactly the duration outside the pauses, and not longer than needed
    assert due is not None
    assert calendar.business_time_between(start, due, pauses) == duration
    assert due >= calendar.add(start, duration)
    if duration:
        assert calendar.business_time_between(start, due - MICROSECOND, pauses) < duration


@PROPERTIES
@given(calendars, instants, durations.filter(bool), st.timedeltas(timedelta(0), timedelta(days=30)))
def test_an_open_pause_before_the_due_time_leaves_it_undefined(
    calendar: BusinessCalendar, start: datetime, duration: timedelta, delay: timedelta
):
    # given
    due = calendar.add(start, duration)

    # when
    moved = calendar.add_with_pauses(start, duration, [(start + delay, None)])

    # then
    assert moved == (due if start + delay >= due else None)


@PROPERTIES
@given(calendars, instants)
def test_is_open_follows_the_wall_clock_on_days_without_a_transition(calendar: BusinessCalendar, at: datetime):
    # given a day on which the zone keeps one offset
    zone = ZoneInfo(calendar.timezone)
    wall = at.astimezone(zone)
    day = wall.date()
    ends = [datetime.combine(day, time(0)), datetime.combine(day, time.max)]
    offsets = {zone.utcoffset(end.replace(fold=fold)) for end in ends for fold in (0, 1)}
    if len(offsets) > 1:
        return

    # then
    minute = wall.hour * 60 + wall.minute + (wall.second + wall.microsecond / 1e6) / 60
    shifts = [] if calendar.is_holiday(day) else calendar.hours[day.weekday()]
    assert calendar.is_open(at) == any(shift.start <= minute < shift.end for shift in shifts)


@PROPERTIES
@given(calendars, instants)
def test_intervals_are_ordered_disjoint_and_measure_business_time(calendar: BusinessCalendar, start: datetime):
    # when
    end = start + timedelta(days=15)
    intervals = list(calendar.intervals(start, end))

    # then
    for (_, first_end), (second_start, _) in itertools.pairwise(intervals):
        assert first_end <= second_start
    for begin, stop in intervals:
        assert begin < stop
        assert calendar.is_open(begin) and calendar.is_open(stop - MICROSECOND)
    covered = sum((min(stop, end) - max(begin, start) for begin, stop in intervals), timedelta(0))
    assert covered == calendar.business_time_between(start, end)


@PROPERTIES
@given(calendars)
def test_the_json_form_round_trips(calendar: BusinessCalendar):
    # when
    stored = json.loads(json.dumps(calendar.to_dict()))

    # then
    assert BusinessCalendar.from_dict(stored) == calendar


@PROPERTIES
@given(st.sampled_from(ZONES), instants, durations, instants)
def test_a_24_7_calendar_is_plain_time(zone: str, start: datetime, duration: timedelta, other: datetime):
    calendar = BusinessCalendar.always_open(zone)

    assert calendar.add(start, duration) == start + duration
    assert calendar.business_time_between(start, other) == other - start
    assert calendar.is_open(other) and calendar.next_open(other) == other


# -- examples: split shifts ---------------------------------------------------------------------------------------


def test_split_shifts_and_saturday_hours():
    # given Mumbai hours, no holidays
    calendar = BusinessCalendar.create("Asia/Kolkata", OFFICE)
    friday_five_pm = local("Asia/Kolkata", 2026, 1, 9, 17)

    # then: 1 hour on Friday, then Saturday 10:00–12:00
    assert calendar.add(friday_five_pm, timedelta(hours=3)) == local("Asia/Kolkata", 2026, 1, 10, 12)
    # lunch does not count
    assert calendar.add(local("Asia/Kolkata", 2026, 1, 12, 12), timedelta(hours=2)) == local(
        "Asia/Kolkata", 2026, 1, 12, 15
    )
    assert calendar.business_time_between(
        local("Asia/Kolkata", 2026, 1, 12), local("Asia/Kolkata", 2026, 1, 19)
    ) == timedelta(hours=5 * 8 + 4)


def test_a_duration_that_ends_with_a_shift_is_due_at_its_end():
    calendar = BusinessCalendar.create("Asia/Kolkata", OFFICE)

    due = calendar.add(local("Asia/Kolkata", 2026, 1, 12, 12), timedelta(hours=1))

    assert due == local("Asia/Kolkata", 2026, 1, 12, 13)  # not 14:00, when the next shift opens
    assert not calendar.is_open(due)
    assert calendar.next_open(due) == local("Asia/Kolkata", 2026, 1, 12, 14)
    # Saturday's shift ends at 14:00 and the next opens on Monday: a due time of Saturday 14:00 stays there
    assert calendar.add(local("Asia/Kolkata", 2026, 1, 9, 17), timedelta(hours=5)) == local(
        "Asia/Kolkata", 2026, 1, 10, 14
    )
    assert calendar.add(local("Asia/Kolkata", 2026, 1, 9, 17), timedelta(hours=5, minutes=1)) == local(
        "Asia/Kolkata", 2026, 1, 12, 9, 1
    )


def test_a_clock_started_on_sunday_starts_on_monday_morning():
    calendar = BusinessCalendar.create("Asia/Kolkata", OFFICE)
    sunday = local("Asia/Kolkata", 2026, 1, 11, 15)

    assert not calendar.is_open(sunday)
    assert calendar.next_open(sunday) == local("Asia/Kolkata", 2026, 1, 12, 9)
    assert calendar.add(sunday, timedelta(minutes=30)) == local("Asia/Kolkata", 2026, 1, 12, 9, 30)
    assert calendar.add(sunday, timedelta(0)) == sunday


def test_touching_shifts_and_shifts_to_midnight_are_continuous():
    # given a night shift split at midnight
    calendar = BusinessCalendar.create(
        "UTC", {"monday": [("20:00", "24:00")], "tuesday": [("00:00", "02:00"), ("02:00", "03:00")]}
    )

    # then
    assert calendar.add(utc(2026, 1, 5, 22), timedelta(hours=4)) == utc(2026, 1, 6, 2)
    assert calendar.is_open(utc(2026, 1, 6)) and calendar.is_open(utc(2026, 1, 6, 2))
    assert calendar.add(utc(2026, 1, 5, 22), timedelta(hours=5)) == utc(2026, 1, 6, 3)


def test_results_are_utc_whatever_the_zone_of_the_input():
    calendar = BusinessCalendar.create("Asia/Kolkata", OFFICE)

    due = calendar.add(local("America/New_York", 2026, 1, 12, 0), timedelta(minutes=90))  # 10:30 IST

    assert due == utc(2026, 1, 12, 6, 30) and due.tzinfo is UTC


# -- examples: DST ------------------------------------------------------------------------------------------------

SMALL_HOURS = {"sunday": [("00:00", "04:00")]}


def test_london_spring_forward_shortens_a_night_shift_to_three_hours():
    # given: on 29 March 2026 London's clocks jump from 01:00 GMT to 02:00 BST
    calendar = BusinessCalendar.create("Europe/London", SMALL_HOURS)
    saturday = utc(2026, 3, 28, 12)

    # then: 00:00 GMT (00:00Z) to 04:00 BST (03:00Z)
    assert list(calendar.intervals(saturday, utc(2026, 3, 30))) == [(utc(2026, 3, 29), utc(2026, 3, 29, 3))]
    assert calendar.business_time_between(saturday, utc(2026, 3, 30)) == timedelta(hours=3)
    assert calendar.add(saturday, timedelta(hours=2)) == utc(2026, 3, 29, 2)  # 03:00 BST
    assert calendar.add(saturday, timedelta(hours=3)) == utc(2026, 3, 29, 3)  # the shift's end
    # the next Sunday, 00:01 BST
    assert calendar.add(saturday, timedelta(hours=3, minutes=1)) == utc(2026, 4, 4, 23, 1)
    assert calendar.is_open(local("Europe/London", 2026, 3, 29, 2, 30))


def test_london_fall_back_lengthens_a_night_shift_to_five_hours():
    # given: on 25 October 2026 London's clocks go back from 02:00 BST to 01:00 GMT
    calendar = BusinessCalendar.create("Europe/London", SMALL_HOURS)
    saturday = utc(2026, 10, 24, 12)

    # then: 00:00 BST (23:00Z on Saturday) to 04:00 GMT (04:00Z)
    assert list(calendar.intervals(saturday, utc(2026, 10, 26))) == [(utc(2026, 10, 24, 23), utc(2026, 10, 25, 4))]
    assert calendar.business_time_between(saturday, utc(2026, 10, 26)) == timedelta(hours=5)
    assert calendar.add(saturday, timedelta(hours=1, minutes=30)) == utc(2026, 10, 25, 0, 30)  # 01:30 BST
    assert calendar.add(saturday, timedelta(hours=2, minutes=30)) == utc(2026, 10, 25, 1, 30)  # 01:30 GMT
    assert calendar.add(saturday, timedelta(hours=5)) == utc(2026, 10, 25, 4)


def test_new_york_spring_forward():
    # given: on 8 March 2026 New York's clocks jump from 02:00 EST to 03:00 EDT
    calendar = BusinessCalendar.create("America/New_York", SMALL_HOURS)
    saturday = utc(2026, 3, 7, 12)

    # then: 00:00 EST (05:00Z) to 04:00 EDT (08:00Z)
    assert calendar.business_time_between(saturday, utc(2026, 3, 9)) == timedelta(hours=3)
    assert calendar.add(saturday, timedelta(hours=2)) == utc(2026, 3, 8, 7)  # 03:00 EDT
    assert calendar.add(saturday, timedelta(hours=3)) == utc(2026, 3, 8, 8)


def test_new_york_fall_back():
    # given: on 1 November 2026 New York's clocks go back from 02:00 EDT to 01:00 EST
    calendar = BusinessCalendar.create("America/New_York", SMALL_HOURS)
    saturday = utc(2026, 10, 31, 12)

    # then: 00:00 EDT (04:00Z) to 04:00 EST (09:00Z)
    assert calendar.business_time_between(saturday, utc(2026, 11, 2)) == timedelta(hours=5)
    assert calendar.add(saturday, timedelta(hours=4)) == utc(2026, 11, 1, 8)  # 03:00 EST
    assert calendar.add(saturday, timedelta(hours=5)) == utc(2026, 11, 1, 9)


def test_a_shift_starting_in_the_gap_opens_when_the_clocks_jump():
    # given shifts that begin, and lie wholly, inside New York's skipped hour 02:00–03:00 on 8 March 2026
    starts_in_gap = BusinessCalendar.create("America/New_York", {"sunday": [("02:30", "05:00")]})
    inside_gap = BusinessCalendar.create("America/New_York", {"sunday": [("02:00", "02:45")]})

    # then: 02:30 maps to 03:00 EDT (07:00Z); a shift inside the gap is empty that day
    assert list(starts_in_gap.intervals(utc(2026, 3, 8), utc(2026, 3, 9))) == [(utc(2026, 3, 8, 7), utc(2026, 3, 8, 9))]
    assert inside_gap.business_time_between(utc(2026, 3, 8), utc(2026, 3, 9)) == timedelta(0)
    assert inside_gap.add(utc(2026, 3, 7), timedelta(minutes=30)) == local("America/New_York", 2026, 3, 15, 2, 30)


def test_an_ambiguous_shift_boundary_takes_the_first_occurrence():
    # given New York's repeated hour 01:00–02:00 on 1 November 2026
    starts_in_overlap = BusinessCalendar.create("America/New_York", {"sunday": [("01:30", "03:00")]})
    inside_overlap = BusinessCalendar.create("America/New_York", {"sunday": [("01:00", "01:30")]})

    # then: 01:30 EDT is 05:30Z; 03:00 EST is 08:00Z
    assert starts_in_overlap.business_time_between(utc(2026, 11, 1), utc(2026, 11, 2)) == timedelta(hours=2, minutes=30)
    # 01:00–01:30 happens twice; only the first (EDT, 05:00Z–05:30Z) is open
    assert inside_overlap.is_open(local("America/New_York", 2026, 11, 1, 1, 15, fold=0))
    assert not inside_overlap.is_open(local("America/New_York", 2026, 11, 1, 1, 15, fold=1))
    assert inside_overlap.business_time_between(utc(2026, 11, 1), utc(2026, 11, 2)) == timedelta(minutes=30)


def test_a_midnight_skipped_by_the_clocks_joins_the_night_shift_to_the_next_day():
    # given: Santiago jumps from 00:00 (-04) to 01:00 (-03) on Sunday 6 September 2026, so 00:00 never happens
    calendar = BusinessCalendar.create(
        "America/Santiago", {"saturday": [("22:00", "24:00")], "sunday": [("00:00", "02:00")]}
    )

    # then: 22:00 -04 (02:00Z) to the jump (04:00Z), then on to 02:00 -03 (05:00Z)
    assert list(calendar.intervals(utc(2026, 9, 5), utc(2026, 9, 7))) == [
        (utc(2026, 9, 6, 2), utc(2026, 9, 6, 4)),
        (utc(2026, 9, 6, 4), utc(2026, 9, 6, 5)),
    ]
    assert calendar.add(utc(2026, 9, 5), timedelta(hours=2, minutes=30)) == utc(2026, 9, 6, 4, 30)  # 01:30 -03


def test_office_hours_across_the_dst_weekend_keep_their_wall_times():
    # given Monday–Friday 09:00–17:00 in London; BST starts on Sunday 29 March 2026
    calendar = BusinessCalendar.create("Europe/London", {day: [("09:00", "17:00")] for day in WEEKDAYS[:5]})
    friday = local("Europe/London", 2026, 3, 27, 16)

    # then: Friday 16:00–17:00 GMT, then Monday 09:00–10:00 BST
    assert calendar.add(friday, timedelta(hours=2)) == local("Europe/London", 2026, 3, 30, 10)
    assert calendar.add(friday, timedelta(hours=2)) == utc(2026, 3, 30, 9)


# -- examples: holidays -------------------------------------------------------------------------------------------


def test_indian_public_holidays_are_whole_days_off():
    # given Kolkata hours with India's public holidays; Monday 26 January 2026 is Republic Day
    hours = {day: [("09:00", "18:00")] for day in WEEKDAYS[:5]}
    calendar = BusinessCalendar.create("Asia/Kolkata", hours, country="IN")
    friday = local("Asia/Kolkata", 2026, 1, 23, 17)

    # then
    public = holidays.country_holidays("IN", years=2026)
    assert [day for day in _days(2026) if calendar.is_holiday(day)] == sorted(public)
    assert calendar.business_time_between(
        local("Asia/Kolkata", 2026, 1, 26), local("Asia/Kolkata", 2026, 1, 27)
    ) == timedelta(0)
    assert calendar.add(friday, timedelta(hours=2)) == local("Asia/Kolkata", 2026, 1, 27, 10)


def test_a_custom_holiday_is_a_whole_day_off():
    hours = {day: [("09:00", "18:00")] for day in WEEKDAYS[:5]}
    calendar = BusinessCalendar.create("Asia/Kolkata", hours, country="IN", custom_holidays=["2026-01-27"])

    assert calendar.add(local("Asia/Kolkata", 2026, 1, 23, 17), timedelta(hours=2)) == local(
        "Asia/Kolkata", 2026, 1, 28, 10
    )
    assert not calendar.is_open(local("Asia/Kolkata", 2026, 1, 27, 12))


def test_a_state_adds_its_own_holidays():
    # Chhatrapati Shivaji Maharaj's birthday, 19 February, is a holiday in Maharashtra, not in India as a whole
    maharashtra = BusinessCalendar.create("Asia/Kolkata", OFFICE, country="IN", subdivision="MH")
    india = BusinessCalendar.create("Asia/Kolkata", OFFICE, country="IN")

    assert date(2026, 2, 19) in holidays.country_holidays("IN", subdiv="MH", years=2026)
    assert maharashtra.is_holiday(date(2026, 2, 19)) and not india.is_holiday(date(2026, 2, 19))


# -- examples: pauses ---------------------------------------------------------------------------------------------


def test_a_pending_spell_stops_the_clock():
    calendar = BusinessCalendar.create("Asia/Kolkata", OFFICE)
    monday = local("Asia/Kolkata", 2026, 1, 12, 9)
    pending = (local("Asia/Kolkata", 2026, 1, 12, 12, 30), local("Asia/Kolkata", 2026, 1, 12, 14, 30))

    # then: due at 13:00 unpaused; the pause holds 60 business minutes (12:30–13:00 and 14:00–14:30)
    assert calendar.add(monday, timedelta(hours=4)) == local("Asia/Kolkata", 2026, 1, 12, 13)
    assert calendar.add_with_pauses(monday, timedelta(hours=4), [pending]) == local("Asia/Kolkata", 2026, 1, 12, 15)
    assert calendar.business_time_between(monday, local("Asia/Kolkata", 2026, 1, 12, 15), [pending]) == timedelta(
        hours=4
    )


def test_an_open_pause_makes_the_due_time_unknown_unless_already_due():
    calendar = BusinessCalendar.create("Asia/Kolkata", OFFICE)
    monday = local("Asia/Kolkata", 2026, 1, 12, 9)

    assert (
        calendar.add_with_pauses(monday, timedelta(hours=4), [(local("Asia/Kolkata", 2026, 1, 12, 10), None)]) is None
    )
    # a thread set PENDING exactly when its target fell due, or after, keeps that due time
    assert calendar.add_with_pauses(
        monday, timedelta(hours=4), [(local("Asia/Kolkata", 2026, 1, 12, 13), None)]
    ) == local("Asia/Kolkata", 2026, 1, 12, 13)
    # the elapsed business time stops at the pause
    assert calendar.business_time_between(
        monday, local("Asia/Kolkata", 2026, 1, 13, 12), [(local("Asia/Kolkata", 2026, 1, 12, 10), None)]
    ) == timedelta(hours=1)


def test_malformed_arguments_are_programming_errors():
    calendar = BusinessCalendar.always_open()

    with pytest.raises(ValueError, match="aware"):
        calendar.add(datetime(2026, 1, 1), timedelta(hours=1))  # naive
    with pytest.raises(ValueError, match="negative"):
        calendar.add(utc(2026, 1, 1), timedelta(hours=-1))
    with pytest.raises(ValueError, match="before it starts"):
        calendar.add_with_pauses(utc(2026, 1, 1), timedelta(hours=1), [(utc(2026, 1, 2), utc(2026, 1, 1))])


# -- validation ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "mentions"),
    [
        ({"timezone": "Europe/Londn"}, "timezone", "Europe/Londn"),
        ({"timezone": ""}, "timezone", "time zone"),
        ({"hours": {"monday": [["09:00", "13:00"], ["12:00", "15:00"]]}}, "hours.monday.1.start", "overlaps"),
        # reported by the index as given, not as sorted
        ({"hours": {"monday": [["14:00", "18:00"], ["09:00", "14:30"]]}}, "hours.monday.0.start", "14:00–18:00"),
        ({"hours": {"tuesday": [["13:00", "09:00"]]}}, "hours.tuesday.0.end", "ends before it starts"),
        ({"hours": {"tuesday": [["09:00", "09:00"]]}}, "hours.tuesday.0.end", "09:00–09:00"),
        ({"hours": {"monday": [["9am", "13:00"]]}}, "hours.monday.0.start", "9am"),
        ({"hours": {"monday": [["09:00", "25:00"]]}}, "hours.monday.0.end", "25:00"),
        ({"hours": {"monday": [["09:00", "24:30"]]}}, "hours.monday.0.end", "24:30"),
        ({"hours": {"monday": [["24:00", "24:00"]]}}, "hours.monday.0.start", "24:00"),
        ({"hours": {"monday": [["09:00"]]}}, "hours.monday.0", "pair"),
        ({"hours": {"funday": [["09:00", "13:00"]]}}, "hours.funday", "funday"),
        ({"hours": {"monday": []}}, "hours", "at least one"),
        ({"holidays": {"country": "XX"}}, "holidays.country", "XX"),
        ({"holidays": {"country": "IN", "subdivision": "ZZ"}}, "holidays.subdivision", "ZZ"),
        ({"holidays": {"subdivision": "MH"}}, "holidays.subdivision", "needs a country"),
        ({"holidays": {"dates": ["2026-01-01", "2026-13-01"]}}, "holidays.dates.1", "2026-13-01"),
        ({"holidays": {"country": "IN", "region": "MH"}}, "holidays.region", "region"),
        ({"timezon": "UTC"}, "timezon", "timezon"),
    ],
)
def test_an_invalid_calendar_names_the_field(data: dict, field: str, mentions: str):
    # given a valid calendar with one thing wrong
    document = {"timezone": "Asia/Kolkata", "hours": {"monday": [["09:00", "17:00"]]}} | data

    # when
    with pytest.raises(DomainError) as raised:
        BusinessCalendar.from_dict(document)

    # then
    assert raised.value.code == "INVALID"
    assert raised.value.field == field.split(".")
    assert mentions in raised.value.message


def test_a_missing_key_is_named():
    with pytest.raises(DomainError) as raised:
        BusinessCalendar.from_dict({"hours": {"monday": [["09:00", "17:00"]]}})

    assert raised.value.field == ["timezone"]


def test_the_python_constructors_validate_too():
    with pytest.raises(DomainError) as raised:
        BusinessCalendar("Asia/Kolkata", ((Shift(540, 780), Shift(720, 900)), (), (), (), (), (), ()))
    assert raised.value.field == ["hours", "monday", "1", "start"]

    with pytest.raises(DomainError) as raised:
        BusinessCalendar.create("Asia/Kolkata", {"friday": [(time(9), time(9, 30, 15))]})
    assert raised.value.field == ["hours", "friday", "0", "end"]

    with pytest.raises(DomainError) as raised:
        BusinessCalendar("UTC", ((Shift(0, 1440),),) * 7, HolidayRules(country="IN", subdivision="Nowhere"))
    assert raised.value.field == ["holidays", "subdivision"]


def test_shifts_are_sorted_and_the_json_form_is_readable():
    calendar = BusinessCalendar.create(
        "Asia/Kolkata",
        {"monday": [("14:00", "18:00"), (time(9), "13:00")], "sunday": [("22:00", "24:00")]},
        country="IN",
        subdivision="MH",
        custom_holidays=[date(2026, 12, 24)],
    )

    assert calendar.to_dict() == {
        "timezone": "Asia/Kolkata",
        "hours": {
            "monday": [["09:00", "13:00"], ["14:00", "18:00"]],
            "tuesday": [],
            "wednesday": [],
            "thursday": [],
            "friday": [],
            "saturday": [],
            "sunday": [["22:00", "24:00"]],
        },
        "holidays": {"country": "IN", "subdivision": "MH", "dates": ["2026-12-24"]},
    }
    assert BusinessCalendar.from_dict(calendar.to_dict()) == calendar


# -- performance --------------------------------------------------------------------------------------------------


def test_adding_thirty_business_days_does_not_step_through_time():
    # given split shifts, Saturday hours and India's (and Maharashtra's) holidays
    calendar = BusinessCalendar.create("Asia/Kolkata", OFFICE, country="IN", subdivision="MH")
    start = local("Asia/Kolkata", 2026, 1, 5, 9)
    thirty_days, a_year = timedelta(hours=30 * 8), timedelta(hours=365 * 8)
    calendar.add(start, a_year)  # builds the holiday tables once

    # when
    timings = []
    for _ in range(5):
        began = clock.perf_counter()
        calendar.add(start, thirty_days)
        timings.append(clock.perf_counter() - began)
    began = clock.perf_counter()
    calendar.business_time_between(start, start + timedelta(days=365))
    a_year_of_days = clock.perf_counter() - began

    # then (typically under 1 ms and 3 ms; generous bounds for shared machines)
    assert min(timings) < 0.050
    assert a_year_of_days < 0.050


def _days(year: int) -> list[date]:
    first = date(year, 1, 1)
    return [first + timedelta(days=n) for n in range((date(year + 1, 1, 1) - first).days)]
