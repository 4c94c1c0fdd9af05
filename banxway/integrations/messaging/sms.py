"""How many SMS segments a text takes (3GPP TS 23.038).

A text of GSM-7 characters fits 160 in one segment, 153 per segment once split (the rest carries the
concatenation header); a character of the extension table ({ } [ ] ~ \\ | ^ € and form feed) costs two
and is never split across segments. Any other character makes the whole text UCS-2: 70 in one segment,
67 per segment once split, characters outside the BMP (emoji) taking two code units.
"""

from __future__ import annotations

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


def encoding(text: str) -> str:
    """GSM-7 or UCS-2."""
    return "GSM-7" if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text) else "UCS-2"


def _units(text: str) -> list[int]:
    """Each character's size in the text's encoding's units (septets or UTF-16 code units)."""
    if encoding(text) == "GSM-7":
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def segments(text: str) -> int:
    """The number of segments `text` is sent in (an empty text still takes one)."""
    units = _units(text)
    single, multi = (160, 153) if encoding(text) == "GSM-7" else (70, 67)
    if sum(units) <= single:
        return 1
    count, used = 1, 0
    for size in units:  # a two-unit character never straddles two segments
        if used + size > multi:
            count, used = count + 1, 0
        used += size
    return count
