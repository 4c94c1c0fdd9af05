"""The rule-based message analyser (banxway.extraction): check digits, entities, intent, sentiment, language,
merging an LLM's answer, and the labelled corpus's targets (the same as bench/extract.py's)."""

from __future__ import annotations

import ast
import string
import sys
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from banxway import extraction
from banxway.enums import EntityKind, Intent, Sentiment
from banxway.extraction import (
    analyse,
    container_check_digit,
    is_valid_awb,
    is_valid_container,
    merge,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.extract import TARGETS, load_corpus, run  # noqa: E402

DEC_10 = date(2026, 12, 10)  # a Thursday

owners = st.builds(
    lambda letters, category: letters + category,
    st.text(string.ascii_uppercase, min_size=3, max_size=3),
    st.sampled_from("UJZ"),
)
serials = st.text(string.digits, min_size=6, max_size=6)


def found(analysis, kind: EntityKind) -> list[str]:
    return [e.value for e in analysis.entities if e.kind is kind]


# --- check digits ------------------------------------------------------------------------------------------------


def test_container_check_digit_of_the_iso_6346_example():
    assert container_check_digit("CSQU305438") == 3
    assert is_valid_container("CSQU3054383")
    assert is_valid_container("csqu 305438-3")
    assert not is_valid_container("CSQU3054384")


def test_container_check_digit_remainder_10_gives_0():
    # M=24, S=30, C=13, U=32 weighted 1, 2, 4, 8, then 6 * 512: 24 + 60 + 52 + 256 + 3072 = 3464 = 11 * 314 + 10
    assert container_check_digit("MSCU000006") == 0
    assert is_valid_container("MSCU0000060")


def test_container_check_digit_rejects_what_is_not_an_owner_code_and_serial():
    with pytest.raises(ValueError, match="HELLO"):
        container_check_digit("HELLO12345")
    assert not is_valid_container("MSCA1234566")  # the category letter must be U, J or Z
    assert not is_valid_container("MSCU123456")
    assert not is_valid_container("")


@given(owners, serials)
def test_the_computed_digit_makes_a_valid_number_and_any_other_an_invalid_one(owner, serial):
    digit = container_check_digit(owner + serial)
    assert is_valid_container(f"{owner}{serial}{digit}")
    assert is_valid_container(f"{owner} {serial}-{digit}")
    for other in set(range(10)) - {digit}:
        assert not is_valid_container(f"{owner}{serial}{other}")


def test_awb_check_digit_is_the_serial_mod_7():
    # 1234567 = 7 * 176366 + 5
    for number in ("176-12345675", "176 1234 5675", "17612345675", "020-12345675"):
        assert is_valid_awb(number), number
    assert not is_valid_awb("176-12345670")
    assert not is_valid_awb("176-1234567")
    assert not is_valid_awb("176-1234567A")


@given(st.integers(0, 999), st.integers(0, 9_999_999))
def test_awb_only_the_serial_mod_7_is_valid(prefix, serial):
    head = f"{prefix:03d}{serial:07d}"
    assert is_valid_awb(f"{head}{serial % 7}")
    for other in set(range(10)) - {serial % 7}:
        assert not is_valid_awb(f"{head}{other}")


# --- entities ----------------------------------------------------------------------------------------------------


def test_containers_are_found_however_written_and_only_with_a_valid_check_digit():
    # given
    body = "Containers MSCU 123456-6, csqu3054383 and MSCU1234565 (typo) please."
    # when
    analysis = analyse(body, reference_date=DEC_10)
    # then
    assert found(analysis, EntityKind.CONTAINER) == ["MSCU1234566", "CSQU3054383"]
    assert [e.text for e in analysis.entities] == ["MSCU 123456-6", "csqu3054383"]


def test_a_phone_number_in_a_signature_is_not_an_awb():
    # given: 022-28501233 has a valid mod-7 digit and the canonical AWB shape
    body = "Please share the status of our shipment.\n\nBest regards,\nAnita Desai\nPhone: 022-28501233\n"
    # then
    assert found(analyse(body, reference_date=DEC_10), EntityKind.AWB) == []
    assert found(analyse("Call me on 022-28501233 today", reference_date=DEC_10), EntityKind.AWB) == []
    assert found(analyse("MAWB 022-28501233 status?", reference_date=DEC_10), EntityKind.AWB) == ["022-28501233"]
    assert found(analyse("pls call 09820012344", reference_date=DEC_10), EntityKind.AWB) == []  # valid, no cue


def test_awbs_near_a_cue_or_in_canonical_form():
    analysis = analyse("HAWB 17612345675 and 020-12345675; AWB 176-12345670 is a typo", reference_date=DEC_10)
    assert found(analysis, EntityKind.AWB) == ["176-12345675", "020-12345675"]


def test_bills_of_lading_and_bookings_come_from_their_cues_not_from_thread_references():
    # given
    subject = "[BX-2026-0042] BL draft for booking no. 234567891"
    body = "Please check B/L No.: MEDUJ1234567 and shipment SHP-10293. Booking 234567891 is confirmed."
    # when
    analysis = analyse(body, subject, reference_date=DEC_10)
    # then
    assert found(analysis, EntityKind.BILL_OF_LADING) == ["MEDUJ1234567"]
    assert found(analysis, EntityKind.BOOKING) == ["234567891", "234567891"]
    assert all("BX-2026" not in e.text and "SHP" not in e.text for e in analysis.entities)


def test_ports_by_locode_and_by_name_and_no_bare_words():
    analysis = analyse(
        "Rate Nhava Sheva (INNSA) to jebel ali, via HELLO and Tema; el tema es otro.", reference_date=DEC_10
    )
    assert found(analysis, EntityKind.PORT) == ["INNSA", "INNSA", "AEJEA", "GHTEM"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("ETD 14 Dec", "2026-12-14"),
        ("ready on 5 Jan", "2027-01-05"),  # the nearest 5 January to 10 December 2026
        ("14/12/2026", "2026-12-14"),
        ("04/12/2026", "2026-12-04"),  # dd/mm first
        ("12/24/2026", "2026-12-24"),  # mm/dd when dd/mm is impossible
        ("14.12.2026", "2026-12-14"),
        ("2026-12-14", "2026-12-14"),
        ("Dec 14th", "2026-12-14"),
        ("22 de diciembre", "2026-12-22"),
        ("next Monday", "2026-12-14"),
        ("last Friday", "2026-12-04"),
        ("by tomorrow", "2026-12-11"),
    ],
)
def test_dates_resolve_against_the_reference_date(text, value):
    assert found(analyse(text, reference_date=DEC_10), EntityKind.DATE) == [value]


def test_weights_volumes_and_incoterms_are_normalised():
    # given
    body = "2x40HC, 12,500 kg + 12.5 MT + 2000 lbs, 28.5 cbm / 28 m³, terms C&F or fob, not FOBS"
    # when
    analysis = analyse(body, reference_date=DEC_10)
    # then
    assert found(analysis, EntityKind.WEIGHT) == ["12500 KG", "12.5 T", "2000 LB"]
    assert found(analysis, EntityKind.VOLUME) == ["28.5 CBM", "28 CBM"]
    assert found(analysis, EntityKind.INCOTERM) == ["CFR", "FOB"]


def test_commodities_from_the_list_and_from_a_cue():
    analysis = analyse("Commodity: coir pith blocks\nalso 2 pallets of Cotton Yarn", reference_date=DEC_10)
    assert found(analysis, EntityKind.COMMODITY) == ["coir pith blocks", "cotton yarn"]


# --- quoted history, intent, sentiment, language -----------------------------------------------------------------

QUOTED_REPLY = """Thanks, the rate is fine - please go ahead and book 1x40HC on the next vessel.

Regards,
Tom

On Tue, Dec 8, 2026 at 4:12 PM Priya <priya@example.com> wrote:
> This is unacceptable!!! Container TGHU6825541 is still not delivered, worst service ever.
"""


def test_quoted_history_counts_for_neither_intent_sentiment_nor_entities():
    analysis = analyse(QUOTED_REPLY, "RE: Complaint", reference_date=DEC_10)
    assert analysis.intent is Intent.BOOKING
    assert analysis.sentiment is not Sentiment.NEGATIVE
    assert found(analysis, EntityKind.CONTAINER) == []
    # the same text unquoted is a complaint
    complaint = analyse(QUOTED_REPLY.split("wrote:\n> ")[1], reference_date=DEC_10)
    assert complaint.intent is Intent.COMPLAINT
    assert complaint.sentiment is Sentiment.NEGATIVE
    assert found(complaint, EntityKind.CONTAINER) == ["TGHU6825541"]


@pytest.mark.parametrize(
    ("subject", "body", "intent"),
    [
        ("Quote request", "Please quote 1x40HC Mundra to Hamburg", Intent.QUOTE_REQUEST),
        (None, "cotización para 1x20 de Valencia a Shanghai por favor", Intent.QUOTE_REQUEST),
        (None, "Bitte um ein Angebot für 2x40HC", Intent.QUOTE_REQUEST),
        (None, "Please book 2x20GP on the next sailing", Intent.BOOKING),
        (None, "bhai container kahan hai? kab aayega?", Intent.TRACKING),
        (None, "Where is my container? ETA?", Intent.TRACKING),
        (None, "Please send the draft BL and the certificate of origin", Intent.DOCUMENTS),
        (None, "Your invoice has the THC twice, please send a credit note", Intent.INVOICE),
        (None, "Die Rechnung ist falsch", Intent.INVOICE),
        (None, "Customs clearance is held, what is the duty for this HS code?", Intent.CUSTOMS),
        (None, "This is unacceptable, still not delivered and no reply from your team!!", Intent.COMPLAINT),
        (None, "Merry Christmas and a happy new year!", Intent.OTHER),
    ],
)
def test_intent(subject, body, intent):
    analysis = analyse(body, subject, reference_date=DEC_10)
    assert analysis.intent is intent
    assert 0.0 <= analysis.intent_confidence <= 1.0


def test_sentiment_with_negation_and_intensifiers():
    happy = analyse("Very happy with the service, thank you!", reference_date=DEC_10)
    unhappy = analyse("We are not happy with the service.", reference_date=DEC_10)
    no_estoy = analyse("No estoy contento con el servicio.", reference_date=DEC_10)
    neutral = analyse("Please send the packing list.", reference_date=DEC_10)
    assert happy.sentiment is Sentiment.POSITIVE and happy.sentiment_score > 0.2
    assert unhappy.sentiment is Sentiment.NEGATIVE and unhappy.sentiment_score < -0.2
    assert no_estoy.sentiment is Sentiment.NEGATIVE
    assert neutral.sentiment is Sentiment.NEUTRAL and neutral.sentiment_score == 0.0
    shouting = analyse("UNACCEPTABLE!!!", reference_date=DEC_10)
    assert -1.0 <= shouting.sentiment_score < unhappy.sentiment_score


@pytest.mark.parametrize(
    ("body", "language"),
    [
        ("Please send the rates for next week", "en"),
        ("Necesitamos una cotización para el envío", "es"),
        ("Wir bitten um ein Angebot für die Sendung", "de"),
        ("Pouvez-vous nous envoyer le devis pour le conteneur", "fr"),
        ("Precisamos de uma cotação para o contêiner", "pt"),
        ("bhai rate kya hai, jaldi batao", "hi"),
        ("कृपया स्थिति बताएं", "hi"),
        ("集装箱什么时候到港", "zh"),
        ("ok", "und"),
    ],
)
def test_language(body, language):
    assert analyse(body, reference_date=DEC_10).language == language


def test_analyse_is_deterministic_given_the_reference_date():
    message = "Container MSCU1234566 arrives next Monday at Hamburg"
    assert analyse(message, reference_date=DEC_10) == analyse(message, reference_date=DEC_10)
    later = analyse(message, reference_date=date(2026, 12, 15))
    assert found(later, EntityKind.DATE) == ["2026-12-21"]


# --- merge -------------------------------------------------------------------------------------------------------


def test_merge_keeps_only_llm_entities_that_are_in_the_text_and_valid():
    # given
    subject = "Status MSCU1234566"
    body = "Where is container TGHU6825541 going to Nhava Sheva? Also MSCU1234565."
    rules = analyse(body, subject, reference_date=DEC_10)
    # when
    merged = merge(
        rules,
        body=body,
        subject=subject,
        intent=Intent.COMPLAINT,
        language="EN",
        sentiment=Sentiment.NEGATIVE,
        entities=[
            (EntityKind.CONTAINER, "TGHU6825541"),  # the rules found it too: collapses
            (EntityKind.CONTAINER, "MSCU1234565"),  # in the text, bad check digit: dropped
            (EntityKind.CONTAINER, "CSQU3054383"),  # valid, not in the text: dropped
            (EntityKind.PORT, "Nhava Sheva"),
            (EntityKind.COMMODITY, "container"),  # in the text: an LLM's word is taken
        ],
    )
    # then
    assert merged.intent is Intent.COMPLAINT
    assert merged.intent_confidence == 0.5  # the LLM against the rules
    assert merged.language == "en"
    assert merged.sentiment is Sentiment.NEGATIVE and merged.sentiment_score < 0
    containers = [(e.value, e.source) for e in merged.entities if e.kind is EntityKind.CONTAINER]
    assert containers == [("MSCU1234566", "SUBJECT"), ("TGHU6825541", "BODY")]
    assert set(rules.entities) <= set(merged.entities)
    assert ("COMMODITY", "container", 9) in [(e.kind.value, e.value, e.start) for e in merged.entities]
    for entity in merged.entities:
        text = subject if entity.source == "SUBJECT" else body
        assert text[entity.start : entity.end] == entity.text


def test_merge_without_an_llm_answer_is_the_rules():
    rules = analyse("Please quote 1x40HC FOB Mundra", reference_date=DEC_10)
    assert merge(rules, body="Please quote 1x40HC FOB Mundra", subject=None) == rules
    agreeing = merge(rules, body="Please quote 1x40HC FOB Mundra", subject=None, intent=rules.intent)
    assert agreeing.intent_confidence >= rules.intent_confidence


# --- the module and the corpus -----------------------------------------------------------------------------------


def test_the_analyser_is_pure():
    files = sorted(Path(extraction.__file__).parent.glob("*.py"))
    assert len(files) > 1
    for file in files:
        tree = ast.parse(file.read_text(encoding="utf-8"))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and not node.level
        }
        allowed = set(sys.stdlib_module_names) | {"__future__", "banxway"}
        assert {name.split(".")[0] for name in imported} <= allowed, file.name
        ours = {name for name in imported if name.startswith("banxway")}
        assert all(name == "banxway.enums" or name.startswith("banxway.extraction") for name in ours), (file, ours)


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def test_the_corpus_is_labelled_consistently(corpus):
    assert len(corpus) >= 70
    assert sum(message["language"] != "en" for message in corpus) >= 10
    for message in corpus:
        for label in message["entities"]:
            text = message["subject"] if label["source"] == "SUBJECT" else message["body"]
            assert label["text"] in text, (message["id"], label)
            if label["kind"] == "CONTAINER":
                assert is_valid_container(label["value"]), (message["id"], label)
            if label["kind"] == "AWB":
                assert is_valid_awb(label["value"]), (message["id"], label)
        for label in message["absent"]:
            assert label["text"] in message["body"], (message["id"], label)


def test_every_entity_span_is_exact(corpus):
    for message in corpus:
        analysis = analyse(message["body"], message["subject"], reference_date=message["reference_date"])
        keys = [(e.kind, e.value, e.source, e.start) for e in analysis.entities]
        assert len(keys) == len(set(keys)), message["id"]
        for entity in analysis.entities:
            text = message["subject"] if entity.source == "SUBJECT" else message["body"]
            assert text[entity.start : entity.end] == entity.text, (message["id"], entity)
        for label in message["absent"]:
            assert all(e.text != label["text"] for e in analysis.entities), (message["id"], label)


def test_the_corpus_meets_the_targets(corpus):
    report = run(corpus)
    assert report.failures() == [], report.misses
    assert {what for what, _ in TARGETS} == {"CONTAINER", "AWB", "intent"}
