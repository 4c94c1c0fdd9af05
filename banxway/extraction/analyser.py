"""The analyser: `analyse` a message by the rules, and `merge` an LLM extractor's answer over their `Analysis`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from banxway.enums import EntityKind, Intent, Sentiment
from banxway.extraction.entities import _EXTRACTORS, Entity, Source, _entities, _inside, _sorted
from banxway.extraction.intent import _intent
from banxway.extraction.numbers import _SEPARATORS, is_valid_awb, is_valid_container
from banxway.extraction.ports import _AIRPORTS, _PORT_BY_NAME, PORTS
from banxway.extraction.sentiment import _sentiment, _sentiment_of
from banxway.extraction.text import _joined, _language, _new_part


@dataclass(frozen=True, slots=True)
class Analysis:
    language: str  # ISO 639-1 ("en", "es", "de", "fr", "pt", "hi", "zh", "ar", ...) or "und"
    sentiment: Sentiment
    sentiment_score: float  # -1.0 .. 1.0
    intent: Intent
    intent_confidence: float  # 0 .. 1
    entities: tuple[Entity, ...]  # in order of appearance, subject first


# --- the analyser ------------------------------------------------------------------------------------------------


def analyse(body: str, subject: str | None = None, *, reference_date: date | None = None) -> Analysis:
    """Language, sentiment, intent and entities of a message (see the module docstring for what counts)."""
    reference = reference_date or date.today()
    subject = subject or ""
    ranges = _new_part(body)
    new_text = _joined(body, ranges)
    language = _language(f"{new_text}\n{subject}" if len(new_text) < 40 else new_text)
    score = round(_sentiment(f"{subject}\n{new_text}", language), 3)
    intent, confidence = _intent(subject, new_text, score)
    parts: list[tuple[Source, str, list[tuple[int, int]]]] = [("SUBJECT", subject, [(0, len(subject))])]
    parts.append(("BODY", body, ranges))
    return Analysis(
        language=language,
        sentiment=_sentiment_of(score),
        sentiment_score=score,
        intent=intent,
        intent_confidence=confidence,
        entities=_entities(parts, reference),
    )


# --- merging an LLM's answer -------------------------------------------------------------------------------------


def _normalise(kind: EntityKind, text: str, reference: date) -> str | None:
    """The value of an entity written as `text`, or None when it is not one (a bad check digit, an unknown port)."""
    compact = re.sub(r"\s+", "", text)
    if kind is EntityKind.CONTAINER:
        number = _SEPARATORS.sub("", text).upper()
        return number if is_valid_container(number) else None
    if kind is EntityKind.AWB:
        digits = _SEPARATORS.sub("", text)
        return f"{digits[:3]}-{digits[3:]}" if is_valid_awb(digits) else None
    if kind in (EntityKind.BILL_OF_LADING, EntityKind.BOOKING):
        return (
            compact.upper()
            if re.fullmatch(r"[A-Za-z0-9/-]{4,30}", compact) and any(c.isdigit() for c in compact)
            else None
        )
    if kind is EntityKind.PORT:
        name = re.sub(r"\s+", " ", text.strip())
        if name.upper() in PORTS and name == name.upper():
            return name
        return _PORT_BY_NAME.get(name.casefold()) or _AIRPORTS.get(name)
    if kind is EntityKind.COMMODITY:
        return re.sub(r"\s+", " ", text.strip()).casefold() or None
    extract = dict(_EXTRACTORS)[kind]
    found = [(value, start, end) for value, start, end in extract(text.strip(), reference)]
    whole = [value for value, start, end in found if start == 0 and end == len(text.strip())]
    return whole[0] if whole else None


def _occurrences(text: str, needle: str) -> list[tuple[int, int]]:
    for flags in (0, re.IGNORECASE):
        pattern = re.compile(
            rf"(?<![\w]){re.escape(needle)}(?![\w])" if needle[0].isalnum() else re.escape(needle), flags
        )
        spans = [(m.start(), m.end()) for m in pattern.finditer(text)]
        if spans:
            return spans
    return []


def merge(
    rules: Analysis,
    *,
    body: str,
    subject: str | None,
    language: str | None = None,
    sentiment: Sentiment | None = None,
    sentiment_score: float | None = None,
    intent: Intent | None = None,
    entities: Iterable[tuple[EntityKind, str]] = (),
    reference_date: date | None = None,
) -> Analysis:
    """`rules` with an LLM extractor's answer laid over it: its language, sentiment and intent replace the rules'
    when given; each of its entities, (kind, text as written), is kept only where that text occurs in the subject
    or the body (in the new part when it occurs there, anywhere otherwise) and makes a valid value (a right check
    digit for containers and AWBs, a known port, a date that parses, ...); the rules' entities always stay."""
    reference = reference_date or date.today()
    subject = subject or ""
    merged_language = language.strip().lower() if language and language.strip() else rules.language
    score = rules.sentiment_score
    if sentiment_score is not None:
        score = round(max(-1.0, min(1.0, float(sentiment_score))), 3)
    merged_sentiment = sentiment or _sentiment_of(score)
    if sentiment is not None and sentiment_score is None and _sentiment_of(score) is not sentiment:
        score = {Sentiment.POSITIVE: 0.5, Sentiment.NEUTRAL: 0.0, Sentiment.NEGATIVE: -0.5}[sentiment]
    merged_intent, confidence = rules.intent, rules.intent_confidence
    if intent is not None:
        # the same answer twice is surer than either; a different one is the LLM's word against the rules'
        confidence = round((1 + confidence) / 2, 3) if intent is rules.intent else 0.5
        merged_intent = intent
    found = list(rules.entities)
    body_ranges = _new_part(body)
    for kind, text in entities:
        kind = EntityKind(kind)
        needle = (text or "").strip()
        if not needle:
            continue
        value = _normalise(kind, needle, reference)
        if value is None:
            continue
        for source, source_text, ranges in (("SUBJECT", subject, [(0, len(subject))]), ("BODY", body, body_ranges)):
            spans = _occurrences(source_text, needle)
            live = [span for span in spans if _inside(ranges, *span)]
            for start, end in live or spans:
                found.append(Entity(kind, value, source_text[start:end], source, start, end))  # type: ignore[arg-type]
    return Analysis(
        language=merged_language,
        sentiment=merged_sentiment,
        sentiment_score=score,
        intent=merged_intent,
        intent_confidence=confidence,
        entities=_sorted(found),
    )
