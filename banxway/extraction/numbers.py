"""The numbers of a message: ISO 6346 container numbers and air waybill numbers (with their check digits), bill of
lading and booking numbers, weights and volumes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation

# --- check digits ------------------------------------------------------------------------------------------------

# ISO 6346 letter values: A=10 upwards, skipping the multiples of 11 (11, 22, 33).
_LETTER_VALUES = {
    letter: value
    for letter, value in zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", [v for v in range(10, 39) if v % 11], strict=True)
}
_CONTAINER_SHAPE = re.compile(r"[A-Z]{3}[UJZR]\d{6}")  # R: the reefer category of the older editions
_SEPARATORS = re.compile(r"[\s\-]")


def container_check_digit(owner_and_serial: str) -> int:
    """The ISO 6346 check digit of an owner code + serial ("MSCU123456"; only the first 10 characters count,
    spaces and dashes are ignored); a remainder of 10 gives 0."""
    head = _SEPARATORS.sub("", owner_and_serial).upper()[:10]
    if not _CONTAINER_SHAPE.fullmatch(head):
        raise ValueError(f"Container owner code and serial {owner_and_serial!r} is not 3 letters + U/J/Z/R + 6 digits")
    total = sum((_LETTER_VALUES[c] if c.isalpha() else int(c)) << i for i, c in enumerate(head))
    return total % 11 % 10


def is_valid_container(number: str) -> bool:
    """An ISO 6346 container number ("MSCU1234566", "MSCU 123456-6") whose check digit is right."""
    compact = _SEPARATORS.sub("", number).upper()
    if len(compact) != 11 or not compact[10].isdigit() or not _CONTAINER_SHAPE.fullmatch(compact[:10]):
        return False
    return container_check_digit(compact) == int(compact[10])


def is_valid_awb(number: str) -> bool:
    """An air waybill number: 3-digit airline prefix + 7-digit serial + check digit (the serial mod 7);
    "176-12345675", "176 1234 5675" and "17612345675" are the same valid number."""
    compact = _SEPARATORS.sub("", number)
    if len(compact) != 11 or not compact.isascii() or not compact.isdigit():
        return False
    return int(compact[3:10]) % 7 == int(compact[10])


# --- numbers, weights, volumes -----------------------------------------------------------------------------------

_NUMBER = (  # 12,500 / 12.500 / 12 500 / 1,25,000 (Indian lakh grouping) / 12.5 / 12,5
    r"(?<![\w.,/-])(\d{1,3}(?:(?:,\d{3})+|(?:\.\d{3})+|(?:[ \u00a0]\d{3})+)(?:[.,]\d+)?|\d{1,2}(?:,\d{2})+,\d{3}"
    r"|\d+(?:[.,]\d+)?)"
)
_WEIGHT = re.compile(
    _NUMBER + r"[ \t]*(kgs?|kilos?|kilograms?|kilogrammes?|quilos?|lbs?|pounds?|mts?|t|tons?|tonnes?|toneladas?"
    r"|tonnen|tn)(?![\w])",
    re.IGNORECASE,
)
_VOLUME = re.compile(
    _NUMBER + r"[ \t]*(cbms?|m3|m³|cu\.?[ \t]?m|cubic[ \t]+met(?:er|re)s?|kubikmeter|m[eè]tres?[ \t]+cubes?"
    r"|metros?[ \t]+c[úu]bicos?)(?![\w])",
    re.IGNORECASE,
)
_WEIGHT_UNITS = {"k": "KG", "q": "KG", "l": "LB", "p": "LB"}


def _number(text: str) -> Decimal | None:
    raw = text.replace("\u00a0", "").replace(" ", "")
    if "," in raw and "." in raw:
        decimal_mark = "," if raw.rfind(",") > raw.rfind(".") else "."
    elif raw.count(",") + raw.count(".") == 1:
        mark = "," if "," in raw else "."
        decimal_mark = "" if len(raw) - raw.index(mark) - 1 == 3 else mark  # "12,500" / "24.000": thousands
    else:
        decimal_mark = ""
    thousands = {",", "."} - {decimal_mark}
    cleaned = "".join(c for c in raw if c not in thousands).replace(",", ".")
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


def _quantity(number: Decimal, unit: str) -> str:
    text = f"{number.normalize():f}"
    return f"{text} {unit}"


def _weights(text: str) -> Iterator[tuple[str, int, int]]:
    for m in _WEIGHT.finditer(text):
        if (number := _number(m[1])) is not None:
            yield _quantity(number, _WEIGHT_UNITS.get(m[2][0].casefold(), "T")), m.start(), m.end()


def _volumes(text: str) -> Iterator[tuple[str, int, int]]:
    for m in _VOLUME.finditer(text):
        if (number := _number(m[1])) is not None:
            yield _quantity(number, "CBM"), m.start(), m.end()


# --- containers, AWBs, bills of lading, bookings -----------------------------------------------------------------

_CONTAINER = re.compile(
    r"(?<![A-Za-z0-9])([A-Za-z]{3}[UJZRujzr])[ \t\-]?(\d{3}[ \t]?\d{3})[ \t\-]?\(?(\d)\)?(?![A-Za-z0-9])"
)
_AWB = re.compile(r"(?<![\d+\-/.,])(\d{3})(?:[ \t]?-[ \t]?|[ \t])?(\d{4})[ \t]?(\d{4})(?![\d\-/])")
_AWB_CANONICAL = re.compile(r"\d{3}-\d{8}")
_AWB_CUE = re.compile(
    r"\b(?:[MH]?AWBs?|air[ \t]*way[ \t]*bills?|airway[ \t]*bills?|air[ \t]*waybills?|LTA|guía[ \t]+aérea"
    r"|Luftfrachtbrief|conhecimento[ \t]+aéreo)\b",
    re.IGNORECASE,
)
_PHONE_CUE = re.compile(
    r"(?:\b(?:tel|ph|phone|mob|mobile|cell|fax|call|whatsapp|contact|reach)\b\.?|\+)[^\n\d]{0,12}$", re.I
)
_FILLER = (
    r"(?:[ \t]*(?:no\.?|nos\.?|nr\.?|nº|n°|num\.?|número|numero|nummer|number|#|ref\.?|reference|id|is|:|-)[ \t]*){0,3}"
)
_TOKEN = r"([A-Za-z0-9]{6,20})(?![\w-])"
_BL = re.compile(
    r"(?<![\w/])(?:[MHO]?B/?L|B\.L\.|BOL|MB/L|HB/L|bills?[ \t]+of[ \t]+lading|sea[ \t]*way[ \t]*bill|SWB"
    r"|conocimiento(?:[ \t]+de[ \t]+embarque)?|Konnossement|connaissement|conhecimento(?:[ \t]+de[ \t]+embarque)?)"
    r"(?![\w/])[ \t]*" + _FILLER + r"[ \t]*" + _TOKEN,
    re.IGNORECASE,
)
_CARRIER_BL = re.compile(
    r"(?<![\w-])((?:MAEU|MEDU|HLCU|CMDU|COSU|OOLU|ONEY|EGLV|YMLU|HDMU|ZIMU|SUDU|APLU|ANNU|WHLC|KKLU|PCIU|SMLM"
    r"|NYKS|MOLU|HMMU|ESPU|GOSU|SEAU|MCPU|CHNJ)[A-Z0-9]{6,14})(?![\w-])"
)
_BOOKING = re.compile(
    r"(?<![\w/])(?:booking(?:[ \t]+(?:confirmation|conf\.?|request))?|bkg|bkng|reserva|reservación|réservation"
    r"|buchung(?:snummer|sbestätigung)?)(?![\w])[ \t]*" + _FILLER + r"[ \t]*" + _TOKEN,
    re.IGNORECASE,
)


def _has_digits(token: str, at_least: int = 5) -> bool:
    return sum(c.isdigit() for c in token) >= at_least


def _containers(text: str) -> Iterator[tuple[str, int, int]]:
    for m in _CONTAINER.finditer(text):
        number = (m[1] + m[2] + m[3]).replace(" ", "").replace("\t", "").upper()
        if is_valid_container(number):
            yield number, m.start(), m.end()


def _awbs(text: str) -> Iterator[tuple[str, int, int]]:
    for m in _AWB.finditer(text):
        digits = m[1] + m[2] + m[3]
        if not is_valid_awb(digits):
            continue
        before = text[max(0, m.start() - 40) : m.start()]
        cued = _AWB_CUE.search(before) is not None
        if cued or (_AWB_CANONICAL.fullmatch(m[0]) and not _PHONE_CUE.search(before)):
            yield f"{digits[:3]}-{digits[3:]}", m.start(), m.end()


def _cued_tokens(pattern: re.Pattern[str], text: str) -> Iterator[tuple[str, int, int]]:
    for m in pattern.finditer(text):
        token = m[1]
        if _has_digits(token) and not is_valid_container(token):
            yield token.upper(), m.start(1), m.end(1)


def _bills_of_lading(text: str) -> Iterator[tuple[str, int, int]]:
    yield from _cued_tokens(_BL, text)
    for m in _CARRIER_BL.finditer(text):
        token = m[1]
        if _has_digits(token) and not (len(token) == 11 and _CONTAINER_SHAPE.fullmatch(token[:10])):
            yield token, m.start(), m.end()


def _bookings(text: str) -> Iterator[tuple[str, int, int]]:
    yield from _cued_tokens(_BOOKING, text)
