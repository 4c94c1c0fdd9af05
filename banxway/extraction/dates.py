"""Dates: written out, numeric, cued, relative and weekdays, resolved against a reference date."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta

from banxway.extraction.patterns import _alternation

# --- dates -------------------------------------------------------------------------------------------------------

_MONTHS = {
    1: "jan january januar jänner janvier janv enero ene janeiro",
    2: "feb february februar février fevrier févr fevr febrero fevereiro fev",
    3: "mar march märz maerz mär mars marzo março marco",
    4: "apr april avril avr abril abr",
    5: "may mai mayo maio",
    6: "jun june juni juin junio junho",
    7: "jul july juli juillet juil julio julho",
    8: "aug august août aout agosto",
    9: "sep sept september septembre septiembre setiembre setembro",
    10: "oct october oktober okt octobre octubre outubro",
    11: "nov november novembre noviembre novembro",
    12: "dec december dezember dez décembre decembre déc diciembre dic dezembro",
}
_MONTH_BY_NAME = {name: number for number, names in _MONTHS.items() for name in names.split()}
_ENGLISH_MONTHS = "january february march april may june july august september october november december"
_MONTH_EN = _alternation([*_ENGLISH_MONTHS.split(), *(name[:3] for name in _ENGLISH_MONTHS.split()), "sept"])
_MONTH_ANY = _alternation(_MONTH_BY_NAME)
_ORDINAL = r"(?:st|nd|rd|th|er|º|°)?"
_DAY_MONTH = re.compile(
    rf"(?<![\w.,/-])(\d{{1,2}}){_ORDINAL}\.?[ \t]*(?:(?:-|/|de|of)[ \t]*)?({_MONTH_ANY})(?:\.(?=[ \t]*\d{{4}}))?"
    rf"(?![\w])(?:[ \t]*(?:-|/|,|de)?[ \t]*(\d{{4}})(?![\w]))?",
    re.IGNORECASE,
)
_DAY_MONTH_SHORT_YEAR = re.compile(rf"(?<![\w.,/-])(\d{{1,2}})-({_MONTH_ANY})-(\d{{2}})(?![\w-])", re.IGNORECASE)
_MONTH_DAY = re.compile(
    rf"(?<![\w])({_MONTH_EN})\.?[ \t]+(\d{{1,2}})(?:st|nd|rd|th)?(?![\w])(?:,?[ \t]+(\d{{4}})(?![\w]))?",
    re.IGNORECASE,
)
_ISO_DATE = re.compile(r"(?<![\w/.-])(\d{4})([-/])(\d{1,2})\2(\d{1,2})(?![\w/-])")
_NUMERIC_DATE = re.compile(r"(?<![\w/.:-])(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})(?![\w/-]|\.\d)")
_CUED_DAY_MONTH = re.compile(
    r"\b(?:on|by|eta|etd|before|until|till|from|dated|due|am|le|el|vom|ab)[ \t:]+(\d{1,2})/(\d{1,2})(?![\w/]|\.\d)",
    re.IGNORECASE,
)
_CUED_ORDINAL = re.compile(r"\b(on|by|before|until|till|from|dated)[ \t]+(\d{1,2})(?:st|nd|rd|th)(?![\w])", re.I)
_RELATIVE_DAY = re.compile(r"\b(day[ \t]+after[ \t]+tomorrow|today|tomorrow|yesterday)\b", re.IGNORECASE)
_WEEKDAYS = {
    0: "monday montag lunes lundi segunda-feira",
    1: "tuesday dienstag martes mardi terça-feira terca-feira",
    2: "wednesday mittwoch miércoles miercoles mercredi quarta-feira",
    3: "thursday donnerstag jueves jeudi quinta-feira",
    4: "friday freitag viernes vendredi sexta-feira",
    5: "saturday samstag sonnabend sábado sabado samedi",
    6: "sunday sonntag domingo dimanche",
}
_WEEKDAY_BY_NAME = {name: number for number, names in _WEEKDAYS.items() for name in names.split()}
_NEXT = r"next|coming|nächste[nmr]?|naechste[nmr]?|kommende[nmr]?|próxim[oa]|proxim[oa]|prochain"
_LAST = r"last|previous|past|letzte[nmr]?|vergangene[nmr]?|pasad[oa]|últim[oa]|ultim[oa]|passad[oa]|dernier"
_WEEKDAY = re.compile(
    rf"(?<![\w-])(?:(?:({_NEXT}|{_LAST}|this|este|esta|diesen)[ \t]+))?({_alternation(_WEEKDAY_BY_NAME)})"
    rf"(?:[ \t]+({_NEXT}|{_LAST}|que[ \t]+viene))?(?![\w-])",
    re.IGNORECASE,
)
_WEEKDAY_GLUE = re.compile(r"[ \t,]*(?:(?:the|le|den|der|el|o)[ \t]+)?")
_PAST_CUE = re.compile(
    r"\b(?:was|were|had|did|arrived|sailed|departed|left|came|went|received|happened|supposed|war|hatte|wurde"
    r"|était|fue|foi|tha|thi|hua)\b",
    re.IGNORECASE,
)
_FUTURE_CUE = re.compile(r"\b(?:will|shall|going to|gonna|wird|va|vai|hoga|until|till|by)\b", re.IGNORECASE)


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _nearest_year(month: int, day: int, reference: date) -> date | None:
    """The date with that month and day closest to `reference` (a year before, the same year, or a year after)."""
    candidates = [
        d for y in (reference.year, reference.year + 1, reference.year - 1) if (d := _safe_date(y, month, day))
    ]
    return min(candidates, key=lambda d: abs((d - reference).days)) if candidates else None


def _year(text: str | None) -> int | None:
    if not text:
        return None
    return int(text) + 2000 if len(text) == 2 else int(text)


def _sentence_before(text: str, start: int) -> str:
    cut = max(text.rfind(mark, 0, start) for mark in ".!?\n")
    return text[cut + 1 : start]


def _dates(text: str, reference: date) -> list[tuple[str, int, int]]:
    found = list(_explicit_dates(text, reference))
    ends = {end for _, _, end in found}
    starts = {start for _, start, _ in found}
    for m in _WEEKDAY.finditer(text):
        after = m.end() + len(_WEEKDAY_GLUE.match(text, m.end())[0])
        before = text[: m.start()].rstrip(" \t,(")
        if after in starts or len(before) in ends:
            continue  # "jueves 11 de marzo", "14 Dec (Monday)": the weekday is part of the date
        weekday = _WEEKDAY_BY_NAME[m[2].casefold()]
        modifier = (m[1] or m[3] or "").casefold()
        ahead = (weekday - reference.weekday()) % 7
        if re.fullmatch(_NEXT + r"|que[ \t]+viene", modifier):
            day = reference + timedelta(days=ahead or 7)
        elif re.fullmatch(_LAST, modifier):
            day = reference - timedelta(days=(reference.weekday() - weekday) % 7 or 7)
        else:
            preceding = _sentence_before(text, m.start())
            past = not modifier and _PAST_CUE.search(preceding) and not _FUTURE_CUE.search(preceding)
            day = (
                reference - timedelta(days=(reference.weekday() - weekday) % 7 or 7)
                if past
                else (reference + timedelta(days=ahead))
            )
        found.append((day.isoformat(), m.start(), m.end()))
    return found


def _explicit_dates(text: str, reference: date) -> Iterator[tuple[str, int, int]]:
    for m in _ISO_DATE.finditer(text):
        if found := _safe_date(int(m[1]), int(m[3]), int(m[4])):
            yield found.isoformat(), m.start(), m.end()
    for m in _NUMERIC_DATE.finditer(text):
        first, second, year = int(m[1]), int(m[3]), _year(m[4])
        day, month = (second, first) if first <= 12 < second else (first, second)  # dd/mm unless impossible
        if year and (found := _safe_date(year, month, day)):
            yield found.isoformat(), m.start(), m.end()
    for pattern in (_DAY_MONTH, _DAY_MONTH_SHORT_YEAR):
        for m in pattern.finditer(text):
            month = _MONTH_BY_NAME[m[2].casefold()]
            year = _year(m[3])
            found = _safe_date(year, month, int(m[1])) if year else _nearest_year(month, int(m[1]), reference)
            if found:
                yield found.isoformat(), m.start(), m.end()
    for m in _MONTH_DAY.finditer(text):
        if m[1].casefold() in ("may", "mar") and not m[1][0].isupper():
            continue  # "you may 2 ..." is no date
        month, year = _MONTH_BY_NAME[m[1].casefold()], _year(m[3])
        found = _safe_date(year, month, int(m[2])) if year else _nearest_year(month, int(m[2]), reference)
        if found:
            yield found.isoformat(), m.start(), m.end()
    for m in _CUED_DAY_MONTH.finditer(text):
        first, second = int(m[1]), int(m[2])
        day, month = (second, first) if first <= 12 < second else (first, second)
        if found := _nearest_year(month, day, reference):
            yield found.isoformat(), m.start(1), m.end(2)
    for m in _CUED_ORDINAL.finditer(text):  # "by 17th": that day of this month, the next or the last
        day, deadline = int(m[2]), m[1].casefold() in ("by", "before", "until", "till")
        candidates = []
        for shift in (-1, 0, 1, 2):
            month_index = reference.year * 12 + reference.month - 1 + shift
            if found := _safe_date(month_index // 12, month_index % 12 + 1, day):
                candidates.append(found)
        candidates = [d for d in candidates if d >= reference] if deadline else candidates
        if candidates:
            found = min(candidates, key=lambda d: (abs((d - reference).days), d < reference))
            yield found.isoformat(), m.start(2), m.end()
    for m in _RELATIVE_DAY.finditer(text):
        word = m[1].casefold()
        shift = {"today": 0, "tomorrow": 1, "yesterday": -1}.get(word, 2)
        yield (reference + timedelta(days=shift)).isoformat(), m.start(), m.end()
