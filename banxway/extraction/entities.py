"""The entities of a message: the `Entity` found, and their assembly from the extractors of each kind (overlaps
resolved by precedence, in order of appearance)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from banxway.enums import EntityKind
from banxway.extraction.dates import _dates
from banxway.extraction.goods import _commodities, _incoterms
from banxway.extraction.numbers import _awbs, _bills_of_lading, _bookings, _containers, _volumes, _weights
from banxway.extraction.ports import _ports

Source = Literal["SUBJECT", "BODY"]


@dataclass(frozen=True, slots=True)
class Entity:
    kind: EntityKind
    # normalised: CONTAINER "MSCU1234566", AWB "176-12345675", BL/BOOKING upper case without spaces, PORT the
    # UN/LOCODE "INNSA", DATE ISO "2026-12-14", INCOTERM "FOB" (C&F/CNF: "CFR"), WEIGHT "12500 KG" / "12.5 T" /
    # "2000 LB", VOLUME "28.5 CBM", COMMODITY lower case as written ("cotton yarn")
    value: str
    text: str  # exactly as written: source_text[start:end] == text
    source: Source
    start: int
    end: int


# --- entity assembly ---------------------------------------------------------------------------------------------

_PRECEDENCE = (
    EntityKind.CONTAINER,
    EntityKind.AWB,
    EntityKind.BILL_OF_LADING,
    EntityKind.BOOKING,
    EntityKind.DATE,
    EntityKind.WEIGHT,
    EntityKind.VOLUME,
    EntityKind.INCOTERM,
    EntityKind.PORT,
    EntityKind.COMMODITY,
)
_Extractor = Callable[[str, date], Iterable[tuple[str, int, int]]]
_EXTRACTORS: tuple[tuple[EntityKind, _Extractor], ...] = (
    (EntityKind.CONTAINER, lambda text, _: _containers(text)),
    (EntityKind.AWB, lambda text, _: _awbs(text)),
    (EntityKind.BILL_OF_LADING, lambda text, _: _bills_of_lading(text)),
    (EntityKind.BOOKING, lambda text, _: _bookings(text)),
    (EntityKind.DATE, _dates),
    (EntityKind.WEIGHT, lambda text, _: _weights(text)),
    (EntityKind.VOLUME, lambda text, _: _volumes(text)),
    (EntityKind.INCOTERM, lambda text, _: _incoterms(text)),
    (EntityKind.PORT, lambda text, _: _ports(text)),
    (EntityKind.COMMODITY, lambda text, _: _commodities(text)),
)


def _inside(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(low <= start and end <= high for low, high in ranges)


def _resolve(candidates: list[Entity]) -> list[Entity]:
    """Overlapping candidates: the kind earlier in _PRECEDENCE wins, then the longer; same spans collapse."""
    rank = {kind: i for i, kind in enumerate(_PRECEDENCE)}
    kept: list[Entity] = []
    for entity in sorted(candidates, key=lambda e: (rank[e.kind], e.start - e.end, e.start)):
        if all(
            entity.end <= other.start or other.end <= entity.start for other in kept if other.source == entity.source
        ):
            kept.append(entity)
    return kept


def _sorted(entities: Iterable[Entity]) -> tuple[Entity, ...]:
    rank = {kind: i for i, kind in enumerate(_PRECEDENCE)}
    unique = {(e.kind, e.value, e.source, e.start): e for e in entities}
    return tuple(sorted(unique.values(), key=lambda e: (e.source != "SUBJECT", e.start, e.end, rank[e.kind])))


def _entities(parts: list[tuple[Source, str, list[tuple[int, int]]]], reference: date) -> tuple[Entity, ...]:
    candidates: list[Entity] = []
    for source, text, ranges in parts:
        for kind, extract in _EXTRACTORS:
            for value, start, end in extract(text, reference):
                if _inside(ranges, start, end):
                    candidates.append(Entity(kind, value, text[start:end], source, start, end))
    # a BL or booking number named once with its cue counts wherever else it is written
    numbers = {e.text: e for e in candidates if e.kind in (EntityKind.BILL_OF_LADING, EntityKind.BOOKING)}
    for source, text, ranges in parts:
        for token, named in numbers.items():
            for m in re.finditer(rf"(?<![\w-]){re.escape(token)}(?![\w-])", text):
                if _inside(ranges, m.start(), m.end()):
                    candidates.append(Entity(named.kind, named.value, m[0], source, m.start(), m.end()))
    return _sorted(_resolve(candidates))
