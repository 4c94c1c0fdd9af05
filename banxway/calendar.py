"""Business calendars: when an organization is open, and how much business time lies between two instants.

The SLA engine measures its targets ("first response in 30 business minutes") with a `BusinessCalendar`: a time
zone, weekly hours with split shifts, and holidays (a country's public holidays and custom dates, each a whole
day off). Pure: no database, no clock, no I/O; instants in are aware datetimes, instants out are aware UTC.

The model. Each local day contributes its shifts, each mapped to an interval of UTC instants [start, end);
business time is the measure of their union. A wall time maps to the first instant at which the zone's clock
reads that time or later, which settles both DST cases:

* a wall time skipped by a spring-forward gap maps to the end of the gap (a shift 01:30–04:00 on the night
  London jumps from 01:00 to 02:00 opens at 02:00 BST; a shift inside the gap is empty that day);
* an ambiguous wall time in a fall-back overlap maps to its first occurrence (a shift 01:00–01:30 on the night
  New York repeats 01:00–02:00 is open during the first 01:00–01:30 only, and a shift 00:00–04:00 lasts 5 hours).

This mapping is monotonic, so the intervals never overlap, and the arithmetic is exact to the microsecond.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from banxway.errors import DomainError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

Pause = tuple[datetime, datetime | None]
"""A span during which the clock stops, e.g. while a thread is PENDING; an end of None: it has not ended yet."""

_MINUTES_PER_DAY = 24 * 60
_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_MAX_CLOSED_DAYS = 2 * 366  # a calendar that stays shut this long is a misconfiguration, not a long weekend
_CLOCK = re.compile(r"([0-9]{2}):([0-9]{2})")


def _invalid(message: str, path: str) -> DomainError:
    return DomainError("INVALID", message, path)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True, repr=False)
class Shift:
    """Open hours within one local day, from `start` to `end` in minutes after midnight; `end` 1440 is 24:00.

    A shift never crosses midnight: 22:00–02:00 is two shifts, 22:00–24:00 and 00:00–02:00 the next day.
    A calendar validates its shifts, naming the offending one (`hours.monday.1.end`).
    """

    start: int
    end: int

    @classmethod
    def parse(cls, start: str | time, end: str | time, *, path: str = "shift") -> Shift:
        """A shift from "HH:MM" texts or `time`s ("24:00" is allowed as an end); errors name `path`."""
        return cls(_parse_clock(start, f"{path}.start", end=False), _parse_clock(end, f"{path}.end", end=True))

    def __str__(self) -> str:
        return f"{_clock(self.start)}–{_clock(self.end)}"

    def __repr__(self) -> str:
        return f"Shift({_clock(self.start)!r}, {_clock(self.end)!r})"


def _parse_clock(value: object, path: str, *, end: bool) -> int:
    if isinstance(value, time):
        if value.second or value.microsecond or value.tzinfo is not None:
            raise _invalid(f"{value!r} is not a whole minute of a local day", path)
        return value.hour * 60 + value.minute
    match = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _invalid(f"{value!r} is not a time of day; expected 'HH:MM'", path)
    hour, minute = int(match[1]), int(match[2])
    if (hour, minute) == (24, 0) and not end:
        raise _invalid("A shift cannot start at 24:00", path)
    if hour > 24 or minute > 59 or (hour == 24 and minute):
        raise _invalid(f"{value!r} is not a time of day between 00:00 and 24:00", path)
    return hour * 60 + minute


@functools.lru_cache(maxsize=256)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    import holidays  # a third of a second to import: only calendars with a country need it

    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year).keys())


@functools.lru_cache(maxsize=256)
def _holiday_rules_problem(country: str, subdivision: str | None) -> tuple[str, str] | None:
    """What the `holidays` package rejects, as (field, message), or None; imports only that country's module."""
    import holidays

    try:
        entity = holidays.country_holidays(country)
    except NotImplementedError:
        return "country", f"Unknown country {country!r}; expected an ISO 3166-1 alpha-2 code such as 'IN'"
    if subdivision is None:
        return None
    try:
        holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError:
        known = ", ".join(entity.subdivisions) or "none"
        return "subdivision", f"Unknown subdivision {subdivision!r} of {country!r}; known: {known}"
    return None


@dataclass(frozen=True, slots=True)
class HolidayRules:
    """Whole days off: a country's public holidays (the `holidays` package) and custom dates.

    `country` is an ISO 3166-1 alpha-2 code ("IN"), `subdivision` an ISO 3166-2 code of a state or province
    ("MH" for Maharashtra), both as the `holidays` package names them.
    """

    country: str | None = None
    subdivision: str | None = None
    dates: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "dates", frozenset(self.dates))
        if self.subdivision is not None and self.country is None:
            raise _invalid(f"Subdivision {self.subdivision!r} needs a country", "holidays.subdivision")
        if self.country is None:
            return
        if not isinstance(self.country, str):
            raise _invalid(f"Expected a country code such as 'IN', got {self.country!r}", "holidays.country")
        if self.subdivision is not None and not isinstance(self.subdivision, str):
            raise _invalid(
                f"Expected a subdivision code such as 'MH', got {self.subdivision!r}", "holidays.subdivision"
            )
        if problem := _holiday_rules_problem(self.country, self.subdivision):
            raise _invalid(problem[1], f"holidays.{problem[0]}")

    def __contains__(self, day: object) -> bool:
        if day in self.dates:
            return True
        return (
            self.country is not None
            and isinstance(day, date)
            and day in _public_holidays(self.country, self.subdivision, day.year)
        )


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """When an organization is open: a time zone, weekly hours and holidays; see the module's docstring.

    `hours` holds seven tuples of shifts, Monday first (the constructor sorts each day's shifts). Build one with
    `create`, `always_open` or `from_dict`; every constructor validates, raising `DomainError("INVALID", ...)`
    whose field is the offending path (`timezone`, `hours.monday.1.start`, `holidays.country`, ...).
    """

    timezone: str
    hours: tuple[tuple[Shift, ...], ...]
    holidays: HolidayRules = HolidayRules()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _offsets: tuple[tuple[tuple[timedelta, timedelta], ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", _load_zone(self.timezone))
        if len(self.hours) != len(WEEKDAYS):
            raise _invalid(f"Weekly hours need {len(WEEKDAYS)} days, Monday first; got {len(self.hours)}", "hours")
        days = tuple(
            _check_day(tuple(shifts), f"hours.{name}") for name, shifts in zip(WEEKDAYS, self.hours, strict=True)
        )
        if not any(days):
            raise _invalid("A calendar needs business hours on at least one weekday", "hours")
        object.__setattr__(self, "hours", days)
        offsets = tuple(
            tuple((timedelta(minutes=s.start), timedelta(minutes=s.end)) for s in shifts) for shifts in days
        )
        object.__setattr__(self, "_offsets", offsets)

    # -- constructors ------------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        timezone: str,
        hours: Mapping[str, Iterable[tuple[str | time, str | time]]],
        *,
        country: str | None = None,
        subdivision: str | None = None,
        custom_holidays: Iterable[date | str] = (),
    ) -> BusinessCalendar:
        """A calendar from an IANA zone and hours by weekday name, e.g.

        `create("Asia/Kolkata", {"monday": [("09:00", "13:00"), ("14:00", "18:00")], "saturday": [("10:00",
        "14:00")]}, country="IN", subdivision="MH", custom_holidays=[date(2026, 12, 24)])`; a weekday left out
        is closed, custom holidays are dates or "YYYY-MM-DD".
        """
        week: list[tuple[Shift, ...]] = [() for _ in WEEKDAYS]
        for name, shifts in hours.items():
            if name not in WEEKDAYS:
                raise _invalid(f"Unknown weekday {name!r}; expected one of {', '.join(WEEKDAYS)}", f"hours.{name}")
            week[WEEKDAYS.index(name)] = tuple(
                _parse_shift(shift, f"hours.{name}.{i}") for i, shift in enumerate(shifts)
            )
        dates = frozenset(_parse_date(day, f"holidays.dates.{i}") for i, day in enumerate(custom_holidays))
        return cls(timezone, tuple(week), HolidayRules(country, subdivision, dates))

    @classmethod
    def always_open(cls, timezone: str = "UTC") -> BusinessCalendar:
        """A 24/7 calendar: business time is elapsed time (for SLAs tracked around the clock)."""
        return cls(timezone, tuple((Shift(0, _MINUTES_PER_DAY),) for _ in WEEKDAYS))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BusinessCalendar:
        """The inverse of `to_dict`, with the same validation (unknown keys are errors too)."""
        if not isinstance(data, Mapping):
            raise DomainError("INVALID", f"Expected an object with timezone, hours and holidays, got {data!r}")
        _check_keys(data, {"timezone", "hours", "holidays"}, "", required=("timezone", "hours"))
        hours = data["hours"]
        if not isinstance(hours, Mapping):
            raise _invalid("Expected an object of weekdays", "hours")
        for name, shifts in hours.items():
            if not isinstance(shifts, list):
                raise _invalid("Expected a list of [start, end] pairs", f"hours.{name}")
        rules = data.get("holidays") or {}
        if not isinstance(rules, Mapping):
            raise _invalid("Expected an object with country, subdivision and dates", "holidays")
        _check_keys(rules, {"country", "subdivision", "dates"}, "holidays.")
        dates = rules.get("dates") or []
        if not isinstance(dates, list):
            raise _invalid("Expected a list of dates (YYYY-MM-DD)", "holidays.dates")
        return cls.create(
            data["timezone"],
            hours,
            country=rules.get("country"),
            subdivision=rules.get("subdivision"),
            custom_holidays=dates,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON form, e.g. for a jsonb column: every weekday, shifts as ["HH:MM", "HH:MM"], ISO dates."""
        return {
            "timezone": self.timezone,
            "hours": {
                name: [[_clock(s.start), _clock(s.end)] for s in shifts]
                for name, shifts in zip(WEEKDAYS, self.hours, strict=True)
            },
            "holidays": {
                "country": self.holidays.country,
                "subdivision": self.holidays.subdivision,
                "dates": sorted(day.isoformat() for day in self.holidays.dates),
            },
        }

    # -- questions ---------------------------------------------------------------------------------------------

    def is_holiday(self, day: date) -> bool:
        """Whether the local `day` is a whole day off (a public or a custom holiday)."""
        return day in self.holidays

    def is_open(self, at: datetime) -> bool:
        """Whether `at` is business time; a shift includes its start and excludes its end."""
        at = _as_utc(at, "at")
        start, _ = next(self._intervals_from(at))
        return start <= at

    def next_open(self, at: datetime) -> datetime:
        """`at` itself when open, else the start of the next shift (UTC)."""
        at = _as_utc(at, "at")
        start, _ = next(self._intervals_from(at))
        return max(start, at)

    def intervals(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The shifts, as UTC [start, end) intervals in order, that overlap [start, end) (not clipped to it)."""
        start, end = _as_utc(start, "start"), _as_utc(end, "end")
        if start >= end:
            return
        for interval in self._intervals_from(start):
            if interval[0] >= end:
                return
            yield interval

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The first instant by which `duration` of business time has elapsed since `start` (UTC).

        A clock started outside business hours starts at the next opening. The result of a positive duration is
        open or is the end of a shift (a duration that ends at 13:00 is due at 13:00, not when the next shift
        opens); `add(start, timedelta(0))` is `start`. `add(a, d1 + d2) == add(add(a, d1), d2)`.
        """
        due = self.add_with_pauses(start, duration, ())
        assert due is not None  # only an open pause leaves the due time undefined
        return due

    def add_with_pauses(self, start: datetime, duration: timedelta, pauses: Iterable[Pause]) -> datetime | None:
        """Like `add`, but business time inside `pauses` does not count (the SLA clock stops while a thread is PENDING).

        Pauses may overlap, touch or begin before `start`. None when an open pause (its end None) stops the clock
        before `duration` has elapsed: the due time is unknown until the pause ends.
        """
        start = _as_utc(start, "start")
        if duration < _ZERO:
            raise ValueError(f"duration must not be negative, got {duration}")
        if not duration:
            return start
        remaining = duration
        for begin, end in self._running(start, _merge_pauses(pauses)):
            if end - begin >= remaining:
                return begin + remaining
            remaining -= end - begin
        return None

    def business_time_between(self, start: datetime, end: datetime, pauses: Iterable[Pause] = ()) -> timedelta:
        """The business time in [start, end), less any inside `pauses`; negative when `end` is before `start`."""
        start, end = _as_utc(start, "start"), _as_utc(end, "end")
        if end < start:
            return -self.business_time_between(end, start, pauses)
        total = _ZERO
        for begin, stop in self._running(start, _merge_pauses(pauses)):
            if begin >= end:
                break
            total += min(stop, end) - begin
        return total

    # -- the walk ----------------------------------------------------------------------------------------------

    def _intervals_from(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The non-empty shifts that end after `at`, as UTC intervals in order; endless.

        Starts with `at`'s local day: a shift of an earlier day ends by the first instant the clock reads that day's
        00:00, which is no later than `at`. A day of exactly 24 hours has no transition (no zone has two in a day
        that cancel out), so its shifts are offsets from its midnight; the others map each wall time.
        """
        day = at.astimezone(self._zone).date()
        midnight = self._instant(day, 0)
        closed_days = 0
        while True:
            next_midnight = self._next_midnight(day, midnight)
            opened = False
            if not self.is_holiday(day):
                uniform = next_midnight - midnight == _ONE_DAY
                for (start, stop), shift in zip(self._offsets[day.weekday()], self.hours[day.weekday()], strict=True):
                    if uniform:
                        begin, end = midnight + start, midnight + stop
                    else:
                        begin, end = self._instant(day, shift.start), self._instant(day, shift.end)
                    if begin < end:
                        opened = True
                        if end > at:
                            yield begin, end
            closed_days = 0 if opened else closed_days + 1
            if closed_days > _MAX_CLOSED_DAYS:
                raise ValueError(
                    f"Calendar {self.timezone} has no business hours in the {_MAX_CLOSED_DAYS} days to {day}"
                )
            day, midnight = day + _ONE_DAY, next_midnight

    def _running(self, start: datetime, pauses: Sequence[Pause]) -> Iterator[tuple[datetime, datetime]]:
        """The business time from `start` on outside `pauses` (merged, in order), as UTC intervals; stops at an
        open pause, else endless."""
        index = 0
        for begin, end in self._intervals_from(start):
            begin = max(begin, start)
            while begin < end:
                while index < len(pauses) and (stop := pauses[index][1]) is not None and stop <= begin:
                    index += 1
                if index == len(pauses) or pauses[index][0] >= end:
                    yield begin, end
                    break
                pause_start, pause_end = pauses[index]
                if pause_start > begin:
                    yield begin, pause_start
                if pause_end is None:
                    return
                begin = pause_end

    def _next_midnight(self, day: date, midnight: datetime) -> datetime:
        """`_instant(day + 1 day, 0)`, cheaply in the common case: 24 hours after `midnight`, the first 00:00."""
        candidate = midnight + _ONE_DAY
        local = candidate.astimezone(self._zone)
        if local.fold == 0 and local.time() == time(0) and local.date() == day + _ONE_DAY:
            return candidate
        return self._instant(day + _ONE_DAY, 0)

    def _instant(self, day: date, minutes: int) -> datetime:
        """The first instant (UTC) at which the zone's clock reads `minutes` after the local midnight of `day` or later."""
        if minutes == _MINUTES_PER_DAY:
            day, minutes = day + _ONE_DAY, 0
        wall = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60)  # naive: a wall time
        instant = wall.replace(tzinfo=self._zone).astimezone(UTC)  # fold=0: the first occurrence
        if instant.astimezone(self._zone).replace(tzinfo=None) == wall:
            return instant
        return self._gap_end(wall)

    def _gap_end(self, wall: datetime) -> datetime:
        """The transition that skips over `wall` (a wall time in a spring-forward gap), found by bisection."""
        one, other = (wall.replace(tzinfo=self._zone, fold=fold).astimezone(UTC) for fold in (0, 1))
        # at `low` the clock still reads less than `wall`, at `high` already more; transitions fall on whole seconds
        low, high = int(min(one, other).timestamp()), int(max(one, other).timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, self._zone).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, UTC)


def _load_zone(name: object) -> ZoneInfo:
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise _invalid(f"Unknown time zone {name!r}; expected an IANA name such as 'Asia/Kolkata'", "timezone")


def _check_day(shifts: tuple[Shift, ...], path: str) -> tuple[Shift, ...]:
    """The day's shifts sorted, after checking each and that none overlap (errors name the shift as given)."""
    for i, shift in enumerate(shifts):
        if not isinstance(shift, Shift):
            raise _invalid(f"Expected a Shift, got {shift!r}", f"{path}.{i}")
        if not isinstance(shift.start, int) or not isinstance(shift.end, int):
            raise _invalid(f"A shift's start and end are minutes after midnight, got {shift.start!r}", f"{path}.{i}")
        if not 0 <= shift.start < _MINUTES_PER_DAY:
            raise _invalid(f"A shift starts between 00:00 and 23:59, not at minute {shift.start}", f"{path}.{i}.start")
        if not shift.start < shift.end <= _MINUTES_PER_DAY:
            if shift.end <= shift.start:
                message = f"Shift {shift} ends before it starts; split a shift across midnight at 24:00"
            else:
                message = f"A shift ends by 24:00, not at minute {shift.end}"
            raise _invalid(message, f"{path}.{i}.end")
    order = sorted(range(len(shifts)), key=lambda i: (shifts[i].start, shifts[i].end))
    for before, after in itertools.pairwise(order):
        if shifts[after].start < shifts[before].end:
            raise _invalid(
                f"Shift {shifts[after]} overlaps {shifts[before]} ({path}.{before})", f"{path}.{after}.start"
            )
    return tuple(shifts[i] for i in order)


def _parse_shift(shift: object, path: str) -> Shift:
    if isinstance(shift, Shift):
        return shift
    if not isinstance(shift, list | tuple) or len(shift) != 2:
        raise _invalid(f"Expected a [start, end] pair such as ['09:00', '13:00'], got {shift!r}", path)
    return Shift.parse(shift[0], shift[1], path=path)


def _parse_date(value: object, path: str) -> date:
    if isinstance(value, datetime):
        raise _invalid(f"Expected a date, got the datetime {value!r}", path)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _invalid(f"{value!r} is not a date; expected 'YYYY-MM-DD'", path)


def _check_keys(data: Mapping[str, Any], allowed: set[str], prefix: str, required: Iterable[str] = ()) -> None:
    for key in data:
        if key not in allowed:
            raise _invalid(f"Unknown key {key!r}; expected {', '.join(sorted(allowed))}", f"{prefix}{key}")
    for key in required:
        if key not in data:
            raise _invalid(f"Missing {key!r}", f"{prefix}{key}")


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def _merge_pauses(pauses: Iterable[Pause]) -> list[Pause]:
    """The pauses in UTC, sorted, the overlapping and touching ones merged, the empty ones dropped."""
    spans: list[Pause] = []
    for i, (start, end) in enumerate(pauses):
        start = _as_utc(start, f"pauses[{i}] start")
        if end is not None:
            end = _as_utc(end, f"pauses[{i}] end")
            if end < start:
                raise ValueError(f"pauses[{i}] ends ({end}) before it starts ({start})")
            if end == start:
                continue
        spans.append((start, end))
    spans.sort(key=lambda span: span[0])
    merged: list[Pause] = []
    for start, end in spans:
        if merged:
            last_start, last_end = merged[-1]
            if last_end is None:
                break
            if start <= last_end:
                merged[-1] = (last_start, None if end is None else max(end, last_end))
                continue
        merged.append((start, end))
    return merged
