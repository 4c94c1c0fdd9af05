"""The freight entities in a shipment document's text (`document_entities`: the message analyser's extractors over
the whole text) and a document's type from its file name (`guess_type`, for a file filed without one). Pure, as the
rest of the package; the text itself is read by `banxway.integrations.pdf_text`.
"""

from __future__ import annotations

import re
from datetime import date

from banxway.extraction.entities import Entity, _entities

MAX_ENTITIES = 200


def document_entities(text: str, *, reference_date: date | None = None) -> tuple[Entity, ...]:
    """The freight entities in a document's whole text (containers, BL, AWB and booking numbers, ports, dates,
    ...), each (kind, value) once at its first place, at most MAX_ENTITIES."""
    found = _entities([("BODY", text, [(0, len(text))])], reference_date or date.today())
    seen: set[tuple[str, str]] = set()
    kept: list[Entity] = []
    for entity in found:
        key = (entity.kind.name, entity.value)
        if key not in seen:
            seen.add(key)
            kept.append(entity)
        if len(kept) >= MAX_ENTITIES:
            break
    return tuple(kept)


# A file name's words → the type it most likely is (first match wins); anything else is OTHER.
_TYPE_WORDS = (
    ("HOUSE_BL", r"house[ _-]?(bl|b/l|bill)|\bhbl\b|\bhbol\b"),
    ("AIR_WAYBILL", r"air[ _-]?way[ _-]?bill|\bawb\b|\bmawb\b|\bhawb\b"),
    ("BILL_OF_LADING", r"bill[ _-]?of[ _-]?lading|\bb/?l\b|\bmbl\b|\bbol\b|\bobl\b"),
    ("COMMERCIAL_INVOICE", r"invoice|\binv\b|\bci\b"),
    ("PACKING_LIST", r"packing|\bpl\b"),
    ("CERTIFICATE_OF_ORIGIN", r"certificate[ _-]?of[ _-]?origin|\bcoo\b|\bco\b"),
    ("CUSTOMS_DECLARATION", r"customs|bill[ _-]?of[ _-]?entry|shipping[ _-]?bill|\bboe\b|\bsb\b|declaration"),
    ("DELIVERY_ORDER", r"delivery[ _-]?order|\bdo\b"),
)


def guess_type(filename: str) -> str:
    """The name of the DocumentType a file name suggests ("Draft BL MAEU123.pdf" → BILL_OF_LADING), else OTHER."""
    name = re.sub(r"[_.]+", " ", filename.lower())
    for type_name, pattern in _TYPE_WORDS:
        if re.search(pattern, name):
            return type_name
    return "OTHER"
