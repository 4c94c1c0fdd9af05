"""The built-in composer: a grounded draft from the context's facts alone, with neither key nor network."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence

from banxway.enums import Channel, ComposeTone, Direction
from banxway.integrations.ai.base import (
    ComposeContext,
    ComposeDelta,
    ComposeUsage,
    _day,
    _first_name,
    _join,
    _person,
    _zone,
    estimate_tokens,
)
from banxway.integrations.ai.prompts import render_compose_prompt


class BuiltinComposer:
    """Drafts written here from the context's facts alone (no key, no network): a greeting, the answers to what the
    customer's last message asks (the shipment's values, "we are checking" for what the context does not hold),
    the agent's instructions, the relevant open actions and the signature. Deterministic for a context and a
    variant: 0 the standard draft, 1 a shorter one, 2 one that leads with the answer."""

    name = "builtin"

    def __init__(self, *, word_delay: float = 0.03) -> None:
        self.word_delay = word_delay

    def draft(self, context: ComposeContext, variant: int = 0) -> str:
        """The whole text of one variant, as the stream yields it."""
        return _BuiltinDraft(context, variant % 3).text()

    async def stream(self, context: ComposeContext, *, variants: int) -> AsyncIterator[ComposeDelta | ComposeUsage]:
        if variants < 1:
            raise ValueError(f"variants must be at least 1, not {variants}")
        texts = [self.draft(context, v) for v in range(variants)]
        words = [re.findall(r"\s*\S+\s*", text) or [text] for text in texts]
        for position in range(max(len(w) for w in words)):
            for variant, pieces in enumerate(words):
                if position < len(pieces) and pieces[position]:
                    yield ComposeDelta(variant=variant, text=pieces[position])
            await asyncio.sleep(self.word_delay)
        prompt = sum(estimate_tokens(m["content"]) for m in render_compose_prompt(context))
        yield ComposeUsage(prompt, sum(estimate_tokens(t) for t in texts))


# -- the built-in draft ------------------------------------------------------------------------------------------

# What a customer's message asks about, by the words that ask it; answered in the order the customer asked.
_TOPICS: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern, re.IGNORECASE)
    for name, pattern in {
        "eta": r"\beta\b|arriv|\breach(es|ed)?\b|when will\b[^.?!]*\b(come|get|land|be delivered)",
        "etd": r"\betd\b|\bdepart|\bsail|\bleav(e|es|ing)\b|\bship(ped)? out\b|\bdispatch",
        "status": r"\bwhere(\s+is|\s+are|'s)\b|\bstatus\b|\btrack|\bupdates?\b|\bnews\b|\bwhereabouts\b",
        "vessel": r"\bvessel\b|\bvoyage\b|\bship name\b|\bflight\b",
        "container": r"\bcontainers?\b|\bcntrs?\b|\b[A-Z]{4}\d{7}\b",
        "bl": r"\bb/?l\b|\bbill of lading\b|\b[hm]bl\b",
        "awb": r"\bawb\b|\bair ?way ?bill\b",
        "booking": r"\bbooking\b",
        "documents": r"\bdocuments?\b|\bdocs?\b|\bpacking list\b|\bcertificate\b|\bshipping bill\b",
        "invoice": r"\binvoice|\bbilling\b|\bpayment\b|\bcharges\b|\bdebit note\b",
        "delay": r"\bdelay|\blate\b|\bpostpone|\bbehind schedule\b|\bheld up\b|\bstuck\b",
        "customs": r"\bcustoms\b|\bclearance\b|\bduty\b",
    }.items()
}
_SHIPMENT_TOPICS = {"eta", "etd", "status", "vessel", "container", "bl", "awb", "booking", "delay", "customs"}
_COPY_WORDS = re.compile(r"\bcop(y|ies)\b|\bpdf\b|\battach|\bscan|\boriginals?\b|\bdraft\b", re.IGNORECASE)
_SEND_WORDS = re.compile(r"\b(share|send|forward|email|mail)\b", re.IGNORECASE)
_NUMBER_WORDS = re.compile(r"\b(numbers?|nos?\.?|#)(?!\w)", re.IGNORECASE)
_CONTAINER_NUMBER = re.compile(r"\b[A-Z]{4}\d{7}\b")
_ACTION_TOPICS: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern, re.IGNORECASE)
    for name, pattern in {
        "eta": r"\beta\b|arriv",
        "etd": r"\betd\b|depart|sail",
        "bl": r"\bb/?l\b|bill of lading",
        "awb": r"\bawb\b|air ?way ?bill",
        "booking": r"\bbooking\b",
        "documents": r"\bdoc|certificate|packing list",
        "invoice": r"invoice|payment|billing|charges",
        "customs": r"customs|clearance|\bduty\b",
        "delay": r"delay",
        "container": r"container",
    }.items()
}
_MILESTONES = {  # type: (verb, preposition before the location)
    "BOOKED": ("was booked", " at "),
    "EMPTY_PICKUP": ("had its empty container picked up", " at "),
    "GATE_IN": ("was gated in", " at "),
    "LOADED": ("was loaded on board", " at "),
    "DEPARTED": ("departed", " "),
    "TRANSSHIPMENT": ("reached the transshipment port", " "),
    "ARRIVED": ("arrived", " at "),
    "DISCHARGED": ("was discharged", " at "),
    "CUSTOMS_CLEARED": ("cleared customs", " at "),
    "GATE_OUT": ("was gated out", " at "),
    "DELIVERED": ("was delivered", " at "),
    "EMPTY_RETURNED": ("had its empty container returned", " at "),
}
_STATUSES = {
    "DRAFT": "is being booked",
    "BOOKED": "is booked",
    "IN_TRANSIT": "is in transit",
    "ARRIVED": "has arrived",
    "CUSTOMS_HOLD": "is held at customs",
    "DELIVERED": "has been delivered",
    "CANCELLED": "is cancelled",
}
_PENDING_ITEMS = {
    "eta": "the arrival date",
    "etd": "the departure date",
    "status": "the current status",
    "vessel": "the vessel details",
    "container": "the container numbers",
    "bl": "the BL number",
    "awb": "the AWB number",
    "booking": "the booking number",
    "documents": "the documents you asked for",
    "invoice": "the invoice",
    "delay": "whether there is any delay",
    "customs": "the customs status",
}
_NUMBER_LABELS = {"bl": "BL", "awb": "AWB", "booking": "booking"}
_OPENERS = {ComposeTone.FORMAL: "Thank you for your message.", ComposeTone.FRIENDLY: "Thanks for getting in touch!"}
_CLOSINGS = {
    ComposeTone.FORMAL: "Please let us know if you need anything further.",
    ComposeTone.FRIENDLY: "Let us know if there is anything else we can help with.",
}
_SIGN_OFFS = {
    ComposeTone.FORMAL: "Kind regards,",
    ComposeTone.FRIENDLY: "Best regards,",
    ComposeTone.CONCISE: "Regards,",
}
_SMS_LIMIT = 300


class _BuiltinDraft:
    """One variant of a built-in draft: 0 standard, 1 shorter, 2 leads with the answer."""

    def __init__(self, context: ComposeContext, variant: int) -> None:
        self.c = context
        self.variant = variant
        self.short = variant == 1
        self.zone = _zone(context.timezone)
        self.s = context.shipment
        last = next((m for m in reversed(context.history) if m.direction is Direction.INBOUND), None)
        self.asked = last.body if last else ""
        found = {name: p.search(self.asked) for name, p in _TOPICS.items()}
        self.topics = sorted((n for n, m in found.items() if m), key=lambda n: found[n].start())  # type: ignore[union-attr]
        named = list(dict.fromkeys(_CONTAINER_NUMBER.findall(self.asked)))
        on_board = set(self.s.container_numbers) if self.s else set()
        self.named = [n for n in named if n in on_board]
        self.unknown_containers = [n for n in named if n not in on_board]
        if self.named and not {"eta", "etd", "status"} & set(self.topics):
            self.topics.insert(self.topics.index("container"), "status")
        if self.unknown_containers and not self.named and self.s is not None:  # asked about another box
            self.topics = [t for t in self.topics if t not in {"eta", "etd", "status", "vessel", "delay", "customs"}]
            self.topics = self.topics if "container" in self.topics else ["container", *self.topics]
        self.answers: list[str] = []
        self.pending: list[str] = []
        self.said: set[str] = set()

    # -- the parts --

    def text(self) -> str:
        if self.s is None:
            self._without_shipment()
        else:
            for topic in self.topics:
                getattr(self, f"_{topic}")()
            if not self.topics and not self.asked and not self.c.instructions.strip():
                self._status()
        if self.asked and not self.answers and not self.pending and not self.c.instructions.strip():
            self.answers.append("We have noted your message and will revert shortly.")
        return self._layout()

    def _what(self) -> tuple[str, str]:
        """The subject of a fact and its 'be': in full the first time, then 'It' / 'They'."""
        assert self.s is not None
        plural = len(self.named) > 1
        if "subject" in self.said:
            return ("They", "are") if plural else ("It", "is")
        self.said.add("subject")
        if self.named:
            return ("Containers " if plural else "Container ") + _join(self.named), "are" if plural else "is"
        return f"Your shipment {self.s.reference}", "is"

    def _asks_copy(self) -> bool:
        """Whether the customer asks for a document itself ('share the BL copy'), not only its number."""
        if _COPY_WORDS.search(self.asked):
            return True
        return bool(_SEND_WORDS.search(self.asked)) and not _NUMBER_WORDS.search(self.asked)

    def _wait(self, topic: str, item: str | None = None) -> None:
        self.pending.append(item or _PENDING_ITEMS[topic])

    def _without_shipment(self) -> None:
        for topic in self.topics:
            if topic == "container" and self.unknown_containers:
                self._wait(topic, "container " + _join(self.unknown_containers))
            elif topic not in ("bl", "awb", "booking") or not self._asks_copy():
                self._wait(topic)
            else:
                self._wait(topic, f"the {_NUMBER_LABELS[topic]} copy")
        if set(self.topics) & _SHIPMENT_TOPICS and not self.unknown_containers:
            self.answers.append(
                "We could not find a shipment linked to this conversation: please share the booking, BL or container"
                " number so that we can check it quickly."
            )

    def _eta(self) -> None:
        s = self.s
        assert s is not None
        if "eta" in self.said:
            return
        self.said.add("eta")
        to = f" at {s.destination}" if s.destination else ""
        if s.ata:
            what, _ = self._what()
            self.answers.append(f"{what} arrived{to} on {_day(s.ata, self.zone)}.")
        elif s.eta:
            what, be = self._what()
            if self.short:
                self.answers.append(f"ETA{to.replace(' at', '')}: {_day(s.eta, self.zone)}.")
            else:
                self.answers.append(f"{what} {be} expected to arrive{to} on {_day(s.eta, self.zone)}.")
        else:
            self._wait("eta")

    def _etd(self) -> None:
        s = self.s
        assert s is not None
        origin = f" {s.origin}" if s.origin else ""
        if "etd" in self.said:
            return
        self.said.add("etd")
        if s.atd:
            what, _ = self._what()
            self.answers.append(f"{what} departed{origin} on {_day(s.atd, self.zone)}.")
        elif s.etd:
            what, be = self._what()
            self.answers.append(f"{what} {be} scheduled to depart{origin} on {_day(s.etd, self.zone)}.")
        else:
            self._wait("etd")

    def _status(self) -> None:
        s = self.s
        assert s is not None
        done = [m for m in s.milestones if m.actual_at]
        latest = max(done, key=lambda m: m.actual_at) if done else None  # type: ignore[arg-type,return-value]
        what, _ = self._what()
        if latest is not None and latest.actual_at is not None:
            verb, preposition = _MILESTONES.get(latest.type, (latest.type.replace("_", " ").lower(), " at "))
            where = preposition + latest.location if latest.location else ""
            same = {"DEPARTED": "etd", "ARRIVED": "eta"}.get(latest.type)
            if same not in self.said:  # not when the departure or arrival is already told
                self.said.add(same or latest.type)
                self.answers.append(f"{what} {verb}{where} on {_day(latest.actual_at, self.zone)}.")
        else:
            self.answers.append(f"{what} {_STATUSES.get(s.status, 'is ' + s.status.replace('_', ' ').lower())}.")
        if s.vessel and s.atd and not s.ata and not self.short and "vessel" not in self.topics:
            self._vessel()
        if not s.ata and s.eta and "eta" not in self.topics:
            self._eta()

    def _vessel(self) -> None:
        s = self.s
        assert s is not None
        if "vessel" in self.said:
            return
        self.said.add("vessel")
        carrier = f" ({s.carrier})" if s.carrier else ""
        if s.mode.upper().startswith("AIR") and s.flight_number:
            self.answers.append(f"The flight is {s.flight_number}{carrier}.")
        elif s.vessel:
            voyage = f", voyage {s.voyage}" if s.voyage else ""
            self.answers.append(f"The vessel is {s.vessel}{voyage}{carrier}.")
        else:
            self._wait("vessel")

    def _container(self) -> None:
        s = self.s
        assert s is not None
        if self.unknown_containers:
            what = "container " + _join(self.unknown_containers)
            self.answers.append(f"We could not find {what} on shipment {s.reference}.")
            self._wait("container", what)
        elif not self.named:
            if s.container_numbers:
                plural = len(s.container_numbers) > 1
                label = "The container numbers are" if plural else "The container number is"
                self.answers.append(f"{label} {_join(s.container_numbers)}.")
            else:
                self._wait("container")

    def _number(self, topic: str, label: str, value: str | None) -> None:
        if value:
            self.answers.append(f"The {label} number is {value}.")
        if self._asks_copy():
            self._wait(topic, f"the {label} copy")
        elif not value:
            self._wait(topic)

    def _bl(self) -> None:
        self._number("bl", _NUMBER_LABELS["bl"], self.s.bl_number if self.s else None)

    def _awb(self) -> None:
        self._number("awb", _NUMBER_LABELS["awb"], self.s.awb_number if self.s else None)

    def _booking(self) -> None:
        self._number("booking", _NUMBER_LABELS["booking"], self.s.booking_number if self.s else None)

    def _documents(self) -> None:
        self._wait("documents")

    def _invoice(self) -> None:
        self._wait("invoice")

    def _delay(self) -> None:
        s = self.s
        assert s is not None
        notes = [m.note for m in s.milestones if m.note and re.search(r"delay|late|postpone", m.note, re.IGNORECASE)]
        if notes:
            self.answers.append(f"The latest note from the carrier: {notes[-1].rstrip('.')}.")
        if s.ata or s.eta:
            self._eta()
        if not notes:
            self._wait("delay")

    def _customs(self) -> None:
        s = self.s
        assert s is not None
        cleared = next((m for m in s.milestones if m.type == "CUSTOMS_CLEARED" and m.actual_at), None)
        what, be = self._what()
        if cleared is not None and cleared.actual_at is not None:
            self.answers.append(f"{what} cleared customs on {_day(cleared.actual_at, self.zone)}.")
        elif s.status == "CUSTOMS_HOLD":
            self.answers.append(f"{what} {be} held at customs.")
            self._wait("customs", "the reason for the hold")
        else:
            self._wait("customs")

    # -- the words around the facts --

    def _pending_sentence(self) -> str | None:
        if not self.pending:
            return None
        items = _join(list(dict.fromkeys(self.pending)))
        if self.short:
            return f"We are checking {items} and will revert."
        return f"As for {items}, we are checking and will revert shortly."

    def _instructions(self) -> list[str]:
        sentences = []
        for clause in re.split(r"(?<=[.!?;])\s+|\n+", self.c.instructions.strip()):
            sentence = _adapt_instruction(clause)
            if sentence:
                sentences.append(sentence)
        if sentences and self.c.tone is ComposeTone.FORMAL and not self.short:
            first = sentences[0]
            if not first.startswith(("Could you", "We ")):
                sentences[0] = "Please note that " + _lower_first(first)
        return sentences

    def _actions(self) -> str | None:
        if self.short:
            return None
        topics = set(self.topics)
        relevant = [
            a for a in self.c.open_actions if any(_ACTION_TOPICS[t].search(a) for t in topics & _ACTION_TOPICS.keys())
        ]
        if not relevant:
            return None
        return "Also open on our side: " + "; ".join(_lower_first(a.rstrip(".")) for a in relevant) + "."

    def _greeting(self) -> str:
        full, first = _person(self.c.contact_name), _first_name(self.c.contact_name)
        if self.c.tone is ComposeTone.FORMAL:
            if full:
                return f"Dear {full},"
            return f"Dear {self.c.customer_name} team," if self.c.customer_name else "Dear Sir or Madam,"
        return f"Hi {first}," if first else "Hello,"

    def _layout(self) -> str:
        tone, channel = self.c.tone, self.c.channel
        brief = self.short or channel is Channel.SMS
        opener = _OPENERS.get(tone) if self.asked and not brief else None
        closing = _CLOSINGS.get(tone) if not brief else None
        answers = " ".join(self.answers) or None
        pending = self._pending_sentence()
        instructions = " ".join(self._instructions()) or None
        actions = self._actions()
        if self.variant == 2:  # the answer first; the thanks at the end
            body = [answers, instructions, pending, actions, opener and "Thank you for your patience."]
        elif self.short:
            body = [" ".join(p for p in (answers, pending, instructions) if p) or None]
        else:
            body = [opener, answers, pending, instructions, actions, closing]
        paragraphs = [p for p in body if p]
        agent = _first_name(self.c.agent_name) or self.c.organization_name
        if channel is Channel.SMS:
            return _fit_sms(self._greeting(), paragraphs, f"- {agent}")
        if channel is Channel.EMAIL:
            signature = self.c.signature.strip() or f"{self.c.agent_name}\n{self.c.organization_name}"
            return "\n\n".join([self._greeting(), *paragraphs, f"{_SIGN_OFFS[tone]}\n{signature}"])
        return "\n\n".join([self._greeting(), *paragraphs, agent])


def _adapt_instruction(clause: str) -> str | None:
    """The agent's instruction as a sentence to the customer: 'tell them the vessel is delayed' -> 'The vessel is
    delayed.', 'ask them to send the invoice' -> 'Could you please send the invoice?'."""
    text = clause.strip().rstrip(".;!").strip()
    text = re.sub(r"^(please|pls|kindly)\s+", "", text, flags=re.IGNORECASE)
    if not text:
        return None
    them = r"(them|him|her|the customer|customer|the client|client)"
    ask = re.match(rf"^ask\s+{them}\s+(?P<how>(to|for|whether|if|about)\s+)?(?P<rest>.+)$", text, re.IGNORECASE)
    text = re.sub(
        rf"^((tell|inform|let|remind|update|notify)\s+{them}(\s+know)?|say|mention|confirm|explain)(\s+(that|about))?\s+",
        "",
        text,
        flags=re.IGNORECASE,
    )
    apology = re.match(r"^apologi[sz]e\s+(to\s+\w+\s+)?(for\s+)?(?P<rest>.+)$", text, re.IGNORECASE)
    text = _to_you(text)
    if ask:
        rest = _to_you(ask.group("rest"))
        how = (ask.group("how") or "").split()
        verb = {"to": "", "for": "share ", "whether": "confirm whether ", "if": "confirm whether "}.get(
            how[0].lower() if how else "", "tell us about " if how else "share "
        )
        return f"Could you please {verb}{rest}?"
    if apology:
        return f"We apologise for {_to_you(apology.group('rest'))}."
    return text[0].upper() + text[1:] + ("" if text.endswith("?") else ".")


def _lower_first(text: str) -> str:
    """'Send BL copy' -> 'send BL copy', but 'BL copy' stays."""
    return text[0].lower() + text[1:] if text[:2].istitle() else text


def _to_you(text: str) -> str:
    """The customer in the third person ('their container', 'they are') addressed instead ('your', 'you are')."""
    words = {"they": "you", "them": "you", "their": "your", "theirs": "yours", "themselves": "yourselves"}
    text = re.sub(r"\bthey're\b", "you're", text, flags=re.IGNORECASE)
    return re.sub(r"\b(they|them|their|theirs|themselves)\b", lambda m: words[m.group(1).lower()], text)


def _fit_sms(greeting: str, paragraphs: Sequence[str], sign: str) -> str:
    """At most 300 characters: the greeting on a line, then as many sentences as fit, and the sign."""
    sentences = [s for p in paragraphs for s in re.split(r"(?<=[.!?])\s+", p) if s]
    text = greeting + "\n"
    for sentence in sentences:
        if len(text) + 1 + len(sentence) + 1 + len(sign) > _SMS_LIMIT:
            if text.endswith("\n"):  # not even one answer fits whole: cut it at a word
                room = _SMS_LIMIT - len(text) - len(sign) - 2
                text += sentence[:room].rsplit(" ", 1)[0] + "…"
            break
        text += ("" if text.endswith("\n") else " ") + sentence
    return f"{text} {sign}"
