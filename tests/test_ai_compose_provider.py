"""The AI compose providers (banxway.integrations.ai): the OpenAI-compatible composer driven through the real `openai`
client against a local stand-in server (tests/standins/openai_server.py), the built-in composer, history fitting,
the versioned prompts (snapshots) and the LLM extraction."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from banxway.enums import Channel, ComposeTone, Direction, EntityKind, Intent, Sentiment
from banxway.integrations.ai import (
    COMPOSE_PROMPT_VERSION,
    EXTRACT_PROMPT_VERSION,
    AIError,
    BuiltinComposer,
    ComposeContext,
    ComposeDelta,
    ComposeUsage,
    HistoryMessage,
    LlmEntity,
    MilestoneFact,
    OpenAIComposer,
    ShipmentFacts,
    compose_provider,
    estimate_tokens,
    extract_response_format,
    extract_with_llm,
    fit_history,
    render_compose_prompt,
    render_extract_prompt,
)
from tests.standins.openai_server import OpenAIStandIn, openai_standin

__all__ = ["openai_standin"]  # the fixture, imported for the tests below

IST = ZoneInfo("Asia/Kolkata")
SIGNATURE = "Rahul Mehta\nCustomer Service\nAcme Freight Pvt Ltd\n+91 22 4000 1234"


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


SHIPMENT = ShipmentFacts(
    reference="SHP-2026-0107",
    mode="SEA_FCL",
    status="IN_TRANSIT",
    origin="Nhava Sheva (INNSA)",
    destination="Rotterdam (NLRTM)",
    carrier="MSC",
    vessel="MSC AURORA",
    voyage="612W",
    flight_number=None,
    container_numbers=("MSCU1234565", "MSCU7654320"),
    bl_number="MEDUNS123456",
    awb_number=None,
    booking_number="BKG-77812",
    etd=at(2026, 11, 20, 12, 30),
    eta=at(2026, 12, 13, 20, 0),  # Sun 13 Dec in UTC, Mon 14 Dec 01:30 in Kolkata
    atd=at(2026, 11, 20, 21, 0),
    ata=None,
    milestones=(
        MilestoneFact("GATE_IN", at(2026, 11, 18, 4, 0), at(2026, 11, 18, 5, 45), "Nhava Sheva (INNSA)", None),
        MilestoneFact("LOADED", at(2026, 11, 20, 6, 0), at(2026, 11, 20, 9, 10), "Nhava Sheva (INNSA)", None),
        MilestoneFact(
            "DEPARTED", at(2026, 11, 20, 12, 30), at(2026, 11, 20, 21, 0), "Nhava Sheva (INNSA)", "Sailed a tide late"
        ),
        MilestoneFact("ARRIVED", at(2026, 12, 13, 20, 0), None, "Rotterdam (NLRTM)", None),
    ),
)


def message(direction: Direction, channel: Channel, author: str, when: datetime, body: str, subject: str | None = None):
    return HistoryMessage(direction, channel, author, when, subject, body)


def context(**changes: object) -> ComposeContext:
    base = ComposeContext(
        organization_name="Acme Freight",
        signature=SIGNATURE,
        agent_name="Rahul Mehta",
        thread_reference="BX-2026-0042",
        thread_subject="Shipment SHP-2026-0107 / PO 4471",
        channel=Channel.EMAIL,
        contact_name="Priya Sharma",
        preferred_channel=Channel.EMAIL,
        customer_name="Tata Textiles",
        history=(),
        shipment=SHIPMENT,
        open_actions=(),
        instructions="",
        tone=ComposeTone.FORMAL,
        now=datetime(2026, 12, 2, 15, 0, tzinfo=IST),
        timezone="Asia/Kolkata",
    )
    return replace(base, **changes)


EMAIL_ETA_AND_BL = context(
    history=(
        message(
            Direction.OUTBOUND,
            Channel.EMAIL,
            "Rahul Mehta",
            at(2026, 11, 21, 6, 0),
            "Dear Priya,\n\nYour container left Nhava Sheva last night.\n\nKind regards,\nRahul",
            "Shipment SHP-2026-0107 / PO 4471",
        ),
        message(
            Direction.INBOUND,
            Channel.EMAIL,
            "Priya Sharma",
            at(2026, 12, 2, 4, 0),
            "Hi Rahul,\n\nWhen will it arrive? And please share the BL copy, our bank needs it.\n\nThanks,\nPriya",
            "Re: Shipment SHP-2026-0107 / PO 4471",
        ),
    ),
    open_actions=("Send BL copy to customer (due 2026-12-03 17:00)", "Collect payment for INV-2211"),
)
WHATSAPP_WHERE_IS = context(
    channel=Channel.WHATSAPP,
    preferred_channel=Channel.WHATSAPP,
    tone=ComposeTone.FRIENDLY,
    thread_subject=None,
    history=(
        message(Direction.INBOUND, Channel.WHATSAPP, "Priya Sharma", at(2026, 12, 1, 11, 0), "Hello"),
        message(
            Direction.OUTBOUND, Channel.WHATSAPP, "Rahul Mehta", at(2026, 12, 1, 11, 5), "Hi Priya, how can I help?"
        ),
        message(
            Direction.INBOUND,
            Channel.WHATSAPP,
            "Priya Sharma",
            at(2026, 12, 2, 9, 0),
            "where is my container MSCU1234565?",
        ),
    ),
)
NO_SHIPMENT = context(
    shipment=None,
    contact_name=None,
    tone=ComposeTone.FRIENDLY,
    thread_subject="Invoice for November",
    history=(
        message(
            Direction.INBOUND,
            Channel.EMAIL,
            "Customer",
            at(2026, 12, 2, 6, 30),
            "Hello, can you send us the invoice for November? Our accounts team is asking.",
            "Invoice for November",
        ),
    ),
)


async def collect(stream: AsyncIterator[ComposeDelta | ComposeUsage], variants: int) -> tuple[list[str], list[object]]:
    texts = [""] * variants
    items: list[object] = []
    async for item in stream:
        items.append(item)
        if isinstance(item, ComposeDelta):
            texts[item.variant] += item.text
    return texts, items


def composer(standin: OpenAIStandIn, **options: float) -> OpenAIComposer:
    return OpenAIComposer(api_key=standin.api_key, base_url=standin.base_url, model="gpt-test", **options)  # type: ignore[arg-type]


# -- the OpenAI-compatible composer ----------------------------------------------------------------------------


async def test_two_variants_stream_and_end_with_the_servers_usage(openai_standin: OpenAIStandIn) -> None:
    # given
    variants = ["Dear Priya, it arrives on Mon 14 Dec 2026.", "Hi Priya,\nETA Rotterdam: Mon 14 Dec 2026."]
    openai_standin.reply_next(variants, usage=(812, 37))
    # when
    texts, items = await collect(composer(openai_standin).stream(EMAIL_ETA_AND_BL, variants=2), 2)
    # then
    assert texts == variants
    assert {item.variant for item in items[:-1] if isinstance(item, ComposeDelta)} == {0, 1}
    assert all(isinstance(item, ComposeDelta) and item.text for item in items[:-1])
    assert items[-1] == ComposeUsage(prompt_tokens=812, completion_tokens=37)
    [request] = openai_standin.requests
    assert request.json["model"] == "gpt-test"
    assert request.json["n"] == 2
    assert request.json["stream"] is True
    assert request.json["stream_options"] == {"include_usage": True}
    assert request.json["messages"] == render_compose_prompt(EMAIL_ETA_AND_BL)
    assert request.headers["authorization"] == f"Bearer {openai_standin.api_key}"


async def test_a_429_with_a_short_retry_after_is_waited_out(openai_standin: OpenAIStandIn) -> None:
    # given
    openai_standin.fail_next(429, retry_after=1)
    openai_standin.reply_next("Noted, we are checking.")
    # when
    started = time.monotonic()
    texts, _ = await collect(composer(openai_standin).stream(EMAIL_ETA_AND_BL, variants=1), 1)
    # then
    assert texts == ["Noted, we are checking."]
    assert [r.status for r in openai_standin.requests] == [429, 200]
    assert openai_standin.requests[1].at - openai_standin.requests[0].at >= 1.0
    assert time.monotonic() - started >= 1.0


async def test_a_429_with_a_long_retry_after_fails_at_once(openai_standin: OpenAIStandIn) -> None:
    # given
    openai_standin.fail_next(429, retry_after=60)
    # when
    started = time.monotonic()
    with pytest.raises(AIError) as caught:
        await collect(composer(openai_standin).stream(EMAIL_ETA_AND_BL, variants=1), 1)
    # then
    assert caught.value.code == "AI_RATE_LIMITED" and caught.value.transient
    assert caught.value.retry_after == 60
    assert time.monotonic() - started < 1.0
    assert len(openai_standin.requests) == 1


async def test_429s_are_retried_up_to_max_attempts(openai_standin: OpenAIStandIn) -> None:
    # given: retry-after-ms, as OpenAI sends it
    openai_standin.fail_next(429, retry_after_ms=50, times=3)
    # when
    with pytest.raises(AIError) as caught:
        await collect(composer(openai_standin, max_attempts=3).stream(EMAIL_ETA_AND_BL, variants=1), 1)
    # then
    assert caught.value.code == "AI_RATE_LIMITED"
    assert caught.value.retry_after == pytest.approx(0.05)
    assert [r.status for r in openai_standin.requests] == [429, 429, 429]


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [(500, "AI_UNAVAILABLE", True), (503, "AI_UNAVAILABLE", True), (400, "AI_REFUSED", False)],
)
async def test_http_errors_map_to_codes(openai_standin: OpenAIStandIn, status: int, code: str, transient: bool) -> None:
    # given
    openai_standin.fail_next(status)
    # when
    with pytest.raises(AIError) as caught:
        await collect(composer(openai_standin).stream(EMAIL_ETA_AND_BL, variants=1), 1)
    # then
    assert (caught.value.code, caught.value.transient) == (code, transient)
    assert len(openai_standin.requests) == 1  # not retried here


async def test_a_wrong_key_is_refused(openai_standin: OpenAIStandIn) -> None:
    wrong = OpenAIComposer(api_key="sk-wrong", base_url=openai_standin.base_url, model="gpt-test")
    with pytest.raises(AIError) as caught:
        await collect(wrong.stream(EMAIL_ETA_AND_BL, variants=1), 1)
    assert caught.value.code == "AI_REFUSED" and not caught.value.transient
    assert openai_standin.requests[0].status == 401


async def test_an_unreachable_server_is_unavailable(openai_standin: OpenAIStandIn) -> None:
    closed = OpenAIComposer(api_key="sk-x", base_url="http://127.0.0.1:9/v1", model="gpt-test", connect_timeout=1)
    with pytest.raises(AIError) as caught:
        await collect(closed.stream(EMAIL_ETA_AND_BL, variants=1), 1)
    assert caught.value.code == "AI_UNAVAILABLE" and caught.value.transient


@pytest.mark.parametrize("abrupt", [True, False], ids=["connection-dropped", "ended-without-finish"])
async def test_a_cut_stream_is_unavailable_never_a_short_draft(openai_standin: OpenAIStandIn, abrupt: bool) -> None:
    # given
    openai_standin.reply_next(["one two three four five six seven", "uno dos tres cuatro cinco seis"])
    openai_standin.cut_next(after_chunks=5, abrupt=abrupt)
    items: list[object] = []

    async def consume() -> None:
        async for item in composer(openai_standin).stream(EMAIL_ETA_AND_BL, variants=2):
            items.append(item)

    # when
    with pytest.raises(AIError) as caught:
        await consume()
    # then
    assert caught.value.code == "AI_UNAVAILABLE" and caught.value.transient
    assert items and not any(isinstance(item, ComposeUsage) for item in items)  # never a completed draft
    assert openai_standin.requests[0].chunks_sent == 5


async def test_a_slow_first_token_times_out(openai_standin: OpenAIStandIn) -> None:
    # given
    openai_standin.slow_first_token(3)
    # when
    started = time.monotonic()
    with pytest.raises(AIError) as caught:
        await collect(composer(openai_standin, read_timeout=0.5).stream(EMAIL_ETA_AND_BL, variants=1), 1)
    # then
    assert caught.value.code == "AI_TIMEOUT" and caught.value.transient
    assert 0.4 < time.monotonic() - started < 2.5


async def test_cancelling_the_consumer_stops_the_upstream_request(openai_standin: OpenAIStandIn) -> None:
    # given: a long, slow stream
    openai_standin.reply_next("word " * 200)
    openai_standin.chunk_delay = 0.05
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in composer(openai_standin).stream(EMAIL_ETA_AND_BL, variants=1):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    # when
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # then
    [request] = openai_standin.requests
    disconnected_at = await openai_standin.wait_for_disconnect(request, timeout=2)
    assert disconnected_at - cancelled_at < 1.0
    assert request.chunks_sent < 50


async def test_closing_the_iterator_stops_the_upstream_request(openai_standin: OpenAIStandIn) -> None:
    # given
    openai_standin.reply_next("word " * 200)
    openai_standin.chunk_delay = 0.05
    stream = composer(openai_standin).stream(EMAIL_ETA_AND_BL, variants=1)
    assert isinstance(await anext(stream), ComposeDelta)
    # when
    closed_at = time.monotonic()
    await stream.aclose()  # type: ignore[attr-defined]
    # then
    disconnected_at = await openai_standin.wait_for_disconnect(openai_standin.requests[0], timeout=2)
    assert disconnected_at - closed_at < 1.0


# -- the built-in composer -------------------------------------------------------------------------------------


async def builtin_drafts(ctx: ComposeContext, variants: int = 3) -> list[str]:
    texts, items = await collect(BuiltinComposer(word_delay=0).stream(ctx, variants=variants), variants)
    assert isinstance(items[-1], ComposeUsage) and not any(isinstance(i, ComposeUsage) for i in items[:-1])
    assert items[-1].completion_tokens == sum(estimate_tokens(t) for t in texts)
    assert texts == [BuiltinComposer().draft(ctx, v) for v in range(variants)]  # the stream is the full render
    return texts


async def test_builtin_email_answers_the_eta_and_the_bl_from_the_facts() -> None:
    drafts = await builtin_drafts(EMAIL_ETA_AND_BL)
    for draft in drafts:
        assert draft.startswith("Dear Priya Sharma,\n")
        assert "Mon 14 Dec 2026" in draft and "Sun 13 Dec" not in draft  # the ETA, in the context's timezone
        assert "MEDUNS123456" in draft  # the BL number
        assert re.search(r"checking[^.]*BL copy|BL copy[^.]*checking", draft)  # no copy in the context: we check
        assert draft.endswith("Kind regards,\n" + SIGNATURE)
    assert "send BL copy to customer (due 2026-12-03 17:00)" in drafts[0]  # the relevant open action
    assert "INV-2211" not in drafts[0]  # not the unrelated one
    assert len(set(drafts)) == 3 and len(drafts[1]) < len(drafts[0])  # three wordings, the second shorter
    assert drafts[2].split("\n\n")[1].startswith("Your shipment SHP-2026-0107 is expected")  # leads with the answer


async def test_builtin_whatsapp_says_where_the_container_is() -> None:
    drafts = await builtin_drafts(WHATSAPP_WHERE_IS)
    for draft in drafts:
        assert draft.startswith("Hi Priya,\n")
        assert "MSCU1234565" in draft and "MSCU7654320" not in draft  # the one asked about
        assert "departed Nhava Sheva (INNSA) on Sat 21 Nov 2026" in draft  # 21:00 UTC is the 21st in Kolkata
        assert "Mon 14 Dec 2026" in draft
        assert draft.endswith("\n\nRahul")
        assert "Customer Service" not in draft  # no signature block on WhatsApp
        assert len(draft) < 500


async def test_builtin_without_a_shipment_invents_nothing() -> None:
    drafts = await builtin_drafts(NO_SHIPMENT)
    for draft in drafts:
        assert draft.startswith("Hello,\n")
        assert "checking the invoice" in draft or "As for the invoice, we are checking" in draft
        assert not re.search(r"\d", draft.removesuffix(SIGNATURE))  # no date, no number
        assert draft.endswith(SIGNATURE)


async def test_builtin_asks_for_a_reference_when_a_shipment_question_has_no_shipment() -> None:
    ctx = replace(WHATSAPP_WHERE_IS, shipment=None)
    [draft] = await builtin_drafts(ctx, 1)
    assert "We are checking" in draft or "we are checking" in draft
    assert "MSCU1234565" in draft
    assert "Mon 14 Dec" not in draft


async def test_builtin_follows_the_instructions_and_fits_an_sms() -> None:
    ctx = replace(
        WHATSAPP_WHERE_IS,
        channel=Channel.SMS,
        tone=ComposeTone.CONCISE,
        instructions="Tell them the vessel is delayed by 2 days. Ask them to send the packing list",
    )
    drafts = await builtin_drafts(ctx)
    for draft in drafts:
        assert len(draft) <= 300
        assert draft.startswith("Hi Priya,\n") and draft.endswith(" - Rahul")
        assert "MSCU1234565" in draft
    assert "The vessel is delayed by 2 days." in drafts[1]
    assert "Could you please send the packing list?" in drafts[1]


async def test_builtin_formal_instructions_and_an_unknown_name() -> None:
    ctx = replace(EMAIL_ETA_AND_BL, contact_name=None, instructions="tell them their vessel is delayed by 2 days")
    draft = BuiltinComposer().draft(ctx)
    assert draft.startswith("Dear Tata Textiles team,\n")
    assert "Please note that your vessel is delayed by 2 days." in draft


async def test_builtin_with_an_empty_history_still_drafts() -> None:
    ctx = replace(EMAIL_ETA_AND_BL, history=(), contact_name=None, customer_name=None, open_actions=())
    [draft] = await builtin_drafts(ctx, 1)
    assert draft.startswith("Dear Sir or Madam,\n")
    assert "SHP-2026-0107" in draft and "Mon 14 Dec 2026" in draft
    assert draft == BuiltinComposer().draft(ctx)  # deterministic


AIR_BOOKED = replace(
    SHIPMENT,
    mode="AIR",
    status="BOOKED",
    carrier="Emirates",
    vessel=None,
    voyage=None,
    flight_number="EK 512",
    container_numbers=(),
    bl_number=None,
    awb_number="176-12345675",
    atd=None,
    eta=None,
    milestones=(),
)


@pytest.mark.parametrize("shipment", [SHIPMENT, AIR_BOOKED, None], ids=["sea", "air-booked", "none"])
def test_builtin_drafts_any_context_within_its_channel(shipment: ShipmentFacts | None) -> None:
    asks = [
        "",
        "Is there a delay? Customs status? Please send the invoice, the AWB number and the flight.",
        "when does it sail, where is ABCU1234560 and what's the booking no? " * 8,
    ]
    builtin = BuiltinComposer()
    for body, channel, tone in itertools.product(asks, list(Channel), list(ComposeTone)):
        history = (message(Direction.INBOUND, channel, "Priya Sharma", at(2026, 12, 2, 4, 0), body),) if body else ()
        ctx = replace(
            EMAIL_ETA_AND_BL,
            shipment=shipment,
            channel=channel,
            tone=tone,
            history=history,
            instructions="ask them for the packing list. " * 6,
        )
        for variant in range(3):
            draft = builtin.draft(ctx, variant)
            assert draft == builtin.draft(ctx, variant)
            assert "None" not in draft and "{" not in draft and "  " not in draft
            if channel is Channel.SMS:
                assert len(draft) <= 300
            if shipment is not AIR_BOOKED:
                assert "176-12345675" not in draft  # the AWB number comes from the air shipment only
        if shipment is AIR_BOOKED and "AWB number" in body:
            assert "176-12345675" in builtin.draft(ctx, 0)
            assert "AWB copy" not in builtin.draft(ctx, 0)  # the number was asked for, not the document


def test_compose_provider_needs_a_key_for_the_api() -> None:
    assert isinstance(compose_provider(api_key=None, base_url=None, model="gpt-x"), BuiltinComposer)
    assert isinstance(compose_provider(api_key="", base_url=None, model="gpt-x"), BuiltinComposer)
    provider = compose_provider(api_key="sk-1", base_url="http://127.0.0.1:1/v1", model="gpt-x")
    assert isinstance(provider, OpenAIComposer) and provider.name == "gpt-x"
    assert BuiltinComposer().name == "builtin"


# -- history ----------------------------------------------------------------------------------------------------


def conversation(sizes: list[tuple[Direction, int]]) -> tuple[HistoryMessage, ...]:
    return tuple(
        message(direction, Channel.EMAIL, "X", at(2026, 12, 1, index), f"m{index} " + "word " * (chars // 5))
        for index, (direction, chars) in enumerate(sizes)
    )


def tokens(history: tuple[HistoryMessage, ...]) -> int:
    return sum(estimate_tokens(m.body) + estimate_tokens(m.subject or "") for m in history)


def test_fit_history_keeps_the_newest_within_the_budget_oldest_first() -> None:
    # given: 10 messages of ~100 tokens, the customer's last at index 8
    history = conversation([(Direction.INBOUND if i % 2 == 0 else Direction.OUTBOUND, 400) for i in range(10)])
    # when
    fitted = fit_history(history, 370)
    # then
    assert tokens(fitted) <= 370
    assert [m.at for m in fitted] == sorted(m.at for m in fitted)
    assert fitted[-3:] == history[-3:]
    assert fitted[0].body.endswith("…") and history[6].body.startswith(fitted[0].body[:-1])  # cut short
    assert len(fitted) == 4


def test_fit_history_drops_rather_than_cuts_to_a_stub() -> None:
    history = conversation([(Direction.INBOUND, 400), (Direction.OUTBOUND, 400), (Direction.INBOUND, 400)])
    fitted = fit_history(history, 230)  # 30 tokens left for the first: dropped
    assert fitted == history[1:]


def test_fit_history_keeps_the_last_inbound_whole_over_the_budget() -> None:
    history = conversation([(Direction.INBOUND, 400), (Direction.INBOUND, 8000), (Direction.OUTBOUND, 400)])
    fitted = fit_history(history, 100)
    assert fitted == (history[1],)
    assert fit_history((), 100) == ()
    assert fit_history(history[2:], 1000) == history[2:]  # no inbound at all


# -- prompts -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ctx", [EMAIL_ETA_AND_BL, WHATSAPP_WHERE_IS, NO_SHIPMENT], ids=["email-eta-bl", "whatsapp-where", "no-shipment"]
)
def test_compose_prompt(ctx: ComposeContext, snapshot) -> None:
    assert COMPOSE_PROMPT_VERSION == "compose-v1"
    assert render_compose_prompt(ctx) == snapshot
    assert render_compose_prompt(ctx) == render_compose_prompt(ctx)


def test_extract_prompt(snapshot) -> None:
    assert EXTRACT_PROMPT_VERSION == "extract-v1"
    messages = render_extract_prompt(subject="Re: BL for MSCU1234565", body="Please send the BL, FOB Nhava Sheva.")
    assert messages == snapshot(name="messages")
    assert extract_response_format() == snapshot(name="response_format")


# -- extraction --------------------------------------------------------------------------------------------------

ANALYSIS = {
    "language": "en",
    "sentiment": "NEGATIVE",
    "sentiment_score": -0.6,
    "intent": "TRACKING",
    "entities": [
        {"kind": "CONTAINER", "text": "MSCU1234565"},
        {"kind": "PORT", "text": "Rotterdam"},
        {"kind": "CONTAINER", "text": "MSCU1234565"},
    ],
}


async def extract(standin: OpenAIStandIn, body: str = "Where is MSCU1234565? It should be in Rotterdam by now!"):
    return await extract_with_llm(
        api_key=standin.api_key, base_url=standin.base_url, model="gpt-test", subject="Delay?", body=body
    )


async def test_extract_with_llm_parses_the_json_reply(openai_standin: OpenAIStandIn) -> None:
    # given
    openai_standin.reply_next(json.dumps(ANALYSIS), usage=(300, 40))
    # when
    result = await extract(openai_standin)
    # then
    assert result.language == "en"
    assert (result.sentiment, result.sentiment_score, result.intent) == (Sentiment.NEGATIVE, -0.6, Intent.TRACKING)
    assert result.entities == (LlmEntity(EntityKind.CONTAINER, "MSCU1234565"), LlmEntity(EntityKind.PORT, "Rotterdam"))
    assert result.usage == ComposeUsage(300, 40)
    [request] = openai_standin.requests
    response_format = request.json["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert set(schema["required"]) == set(schema["properties"]) and schema["additionalProperties"] is False
    assert "stream" not in request.json
    assert request.json["messages"][1]["content"].endswith("Where is MSCU1234565? It should be in Rotterdam by now!")


@pytest.mark.parametrize(
    "reply",
    [
        "Sure! The intent is tracking.",
        json.dumps({**ANALYSIS, "intent": "SHOPPING"}),
        json.dumps({**ANALYSIS, "sentiment_score": 7}),
        json.dumps({k: v for k, v in ANALYSIS.items() if k != "entities"}),
    ],
    ids=["not-json", "unknown-intent", "score-out-of-range", "missing-field"],
)
async def test_extract_with_llm_rejects_output_off_the_schema(openai_standin: OpenAIStandIn, reply: str) -> None:
    openai_standin.reply_next(reply)
    with pytest.raises(AIError) as caught:
        await extract(openai_standin)
    assert caught.value.code == "AI_INVALID_OUTPUT" and not caught.value.transient


async def test_extract_with_llm_maps_errors(openai_standin: OpenAIStandIn) -> None:
    openai_standin.fail_next(429, retry_after=20)
    with pytest.raises(AIError) as caught:
        await extract(openai_standin)
    assert (caught.value.code, caught.value.retry_after) == ("AI_RATE_LIMITED", 20)
    openai_standin.fail_next(502)
    with pytest.raises(AIError) as caught:
        await extract(openai_standin)
    assert caught.value.code == "AI_UNAVAILABLE"


async def test_extract_with_llm_accepts_the_emptiest_valid_reply(openai_standin: OpenAIStandIn) -> None:
    result = await extract(openai_standin, body="")  # the stand-in answers the schema's smallest instance
    assert (result.language, result.sentiment, result.intent, result.entities) == (None, None, None, ())
