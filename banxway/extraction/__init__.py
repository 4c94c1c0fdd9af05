"""The rule-based message analyser: language, sentiment, intent and the freight entities of a message.

Pure and deterministic (no I/O, no clock but `date.today()` when no `reference_date` is given), built on the
standard library and `banxway.enums` only, so that it runs anywhere and gives the same answer every time.
`merge` lays an optional LLM extractor's answer over it without letting the LLM invent entities.

Which part of a message counts:
* intent, sentiment and language are judged on the subject and the body's *new part*: the body without quoted
  history (lines starting with ">", everything after "On ... wrote:", "-----Original Message-----" or a
  "From: ... Sent: ..." block), without the sign-off and signature ("--", "Regards,", "Thanks & Regards", a lone
  "Thanks," followed by a few name lines, ...) and without disclaimers;
* entities come from the subject and the same new part, so that a quoted container number, an address in a
  signature or a phone number in it never counts twice or at all. Forwarded content ("---------- Forwarded
  message ---------") is new (its From/Date/Subject/To header lines are not). When nothing is left of the body
  (a bare forward, only a signature), the whole body counts.

Romanised Hindi (Hinglish) is reported as "hi", like Devanagari Hindi; "und" when a text is too short to judge.

Layout: `analyser` (`analyse`, `merge`, `Analysis`), `text` (the new part, the language), `sentiment`, `intent`,
`entities` (`Entity` and the assembly of the extractors: `numbers`, `dates`, `ports`, `goods`) and `patterns`.
"""

from __future__ import annotations

from banxway.extraction.analyser import Analysis, analyse, merge
from banxway.extraction.entities import Entity, Source
from banxway.extraction.numbers import container_check_digit, is_valid_awb, is_valid_container
from banxway.extraction.ports import PORTS

ANALYSER_VERSION = "rules-1"

__all__ = [
    "ANALYSER_VERSION",
    "PORTS",
    "Analysis",
    "Entity",
    "Source",
    "analyse",
    "container_check_digit",
    "is_valid_awb",
    "is_valid_container",
    "merge",
]
