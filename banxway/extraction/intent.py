"""Intent: weighted multilingual patterns per intent, the subject of a reply counting less, and a confidence."""

from __future__ import annotations

import math
import re

from banxway.enums import Intent

# --- intent ------------------------------------------------------------------------------------------------------

_INTENT_RULES: dict[Intent, tuple[tuple[str, float], ...]] = {
    Intent.QUOTE_REQUEST: (
        (r"quot(?:e|es|ation|ations)", 2.0),
        (r"(?:send|share|give|provide|need|want|offer|quote)(?: [\w'-]+){0,4}? (?:quote|quotation|rates?|charges|prices?|costs?)", 2.0), (r"quote request|request for quot\w+|rfq", 3.0), (r"rates?", 1.5),
        (r"pricing|price|prices", 1.2), (r"best rate|freight charges|how much|cost|costs|offer", 1.0),
        (r"(?:thanks|thank you) for (?:the|your)(?: \w+)? (?:quote|quotation|rates?|offer)", -2.5),
        (r"cotizaci[oó]n|cotizar|presupuesto|tarifa|cu[aá]nto cuesta|precio", 2.0),
        (r"angebot\w*|frachtrate\w*|was kostet|preis\w*", 2.0), (r"devis|tarif|cotation|combien|meilleur prix", 2.0),
        (r"cota[cç][aã]o|or[cç]amento|pre[cç]o|frete", 1.5), (r"kitna lagega|kitna hoga|rate kya|rate bhejo|kitna", 2.0),
        (r"रेट|भाव|किराया|कितना", 2.0),
    ),
    Intent.BOOKING: (
        (r"book|go ahead and book|please book|want to book|to book|book us|book karo|book kar do", 2.5),
        (r"booking request|booking confirm\w*|confirm(?:ed)? (?:the )?booking|confirm the space|block (?:the )?space", 3.0),
        (r"booking|bookings|bkg", 0.8), (r"space|allocation|reserve|reserved", 1.5), (r"go ahead|proceed", 1.5),
        (r"(?:rate|quote|offer|price) (?:is )?(?:fine|ok|okay|acceptable|approved|final)|final rate|confirm karo", 2.0),
        (r"cut-?off|si cut-?off|vgm cut-?off|sailing|next available vessel|next vessel", 1.0),
        (r"roll(?:ed)?(?: over)?|postpone|reschedule|shift|cancel|amend(?:ment)?", 1.5),
        (r"pick-?up|stuffing|cargo (?:will be |is )?ready|ready on|ready by", 1.0),
        (r"reserva|reservar|reserven|espacio", 2.5), (r"buchen|buchung\w*", 2.5), (r"r[eé]server|r[eé]servation|l'espace", 2.5),
        (r"espa[cç]o", 1.5), (r"booking kar|booking kar do|book kar", 2.5),
    ),
    Intent.TRACKING: (
        (r"where is|where's|wheres|where are|whr is|wher is|where r", 2.5),
        (r"gate[ds]?[ -]?(?:in|out)|loaded|on ?board|picked up|out for delivery|kya ho raha", 1.5), (r"status|location|tracking|track|trace", 1.5), (r"eta|etd", 1.5),
        (r"arrival notice", 3.0), (r"arriv(?:al|e|ed|ing)|reached|discharged|departed|sailed|transship\w*", 1.5),
        (r"any (?:update|news)|update|latest|in transit|flight details|vessel", 1.0),
        (r"d[oó]nde est[aá]|estado|seguimiento|rastreo|llegada|cu[aá]ndo llega", 2.0),
        (r"wo ist|sendungsstatus|sendungsverfolgung|ankunft|ankommen|wann kommt", 2.5),
        (r"o[uù] (?:est|en est)|suivi|statut|arriv[ée]e", 2.5),
        (r"onde est[aá]|rastreamento|chegada|previs[aã]o de chegada|j[aá] saiu|quando chega", 2.5),
        (r"kahan hai|kaha hai|kab aayega|kab ayega|kab tak|kab pahu\w*|pahu[nm]?ch\w*|status batao|status kya", 2.5),
        (r"कहाँ|कहां|कब|पहुं\w*|स्थिति", 2.5), (r"أين|متى|وصول", 2.5), (r"哪里|什么时候|到港|到达|状态", 2.5),
    ),
    Intent.DOCUMENTS: (
        (r"draft (?:bl|b/l|bill of lading)|(?:bl|b/l) draft|bl copy", 3.0), (r"documents?|docs|paperwork", 1.5),
        (r"certificate of origin|coo|packing list|telex release|seaway bill|original (?:bl|b/l)|obl", 2.5),
        (r"(?:bl|b/l) (?:d[eé]finitif|final|original)|final (?:bl|b/l)|insurance certificate", 2.5),
        (r"commercial invoice|shipping instructions|msds|sds|dg declaration|phytosanitary|fumigation certificate", 2.0),
        (r"surrender(?:ed)?|delivery order|pod copy|proof of delivery|send the pod|vgm", 2.0), (r"draft", 1.0),
        (r"documentos|certificado de origen|lista de empaque|borrador", 2.5),
        (r"dokumente|unterlagen|ursprungszeugnis|packliste|entwurf", 2.5),
        (r"projet de connaissement|connaissement|certificat d'origine|liste de colisage", 2.5),
        (r"certificado de origem|romaneio", 2.5),
    ),
    Intent.INVOICE: (
        (r"(?<!commercial )invoices?|debit note|credit note|overcharged?|overcharging|remittance|refund", 2.5),
        (r"payment|paid|billing|outstanding|bank details|charged|charges|accounts", 1.2),
        (r"factura|pago|cobro|nota de d[eé]bito", 2.5), (r"rechnung|zahlung|gutschrift|berechnet", 2.5),
        (r"facture|paiement|note de d[eé]bit", 2.5), (r"fatura|pagamento|boleto|cobran[cç]a", 2.5),
        (r"paisa|bill(?! of)", 1.0),
    ),
    Intent.CUSTOMS: (
        (r"customs|clearance|bill of entry|shipping bill|hs code|tariff code|icegate|boe", 2.5),
        (r"dut(?:y|ies)|cleared|examination|inspection|cha|igst|vat|hmrc|assessment|anti-dumping", 1.5),
        (r"held|hold", 0.8), (r"aduana|despacho|arancel\w*|impuestos|c[oó]digo hs", 2.5),
        (r"zoll\w*|verzollung|einfuhrabgaben", 2.5), (r"douane|d[eé]douanement|droits de douane", 2.5),
        (r"alf[aâ]ndega|desembara[cç]o|aduaneir[oa]|ncm|liberado", 2.0),
    ),
    Intent.COMPLAINT: (
        (r"complaint|complain|formal complaint|escalat\w+", 2.5),
        (r"unacceptable|worst service|poor service|pathetic|fed up|disappointed|ridiculous", 2.0),
        (r"queja|reclamaci[oó]n|inaceptable|beschwerde|inakzeptabel|r[eé]clamation|plainte|inacceptable", 2.0),
        (r"reclama[cç][aã]o|inaceit[aá]vel|p[eé]ssimo atendimento|bakwas|ghatiya|bekaa?r service", 2.0),
        (r"m[eé]content\w*|inadmissible|insatisf\w+|unzufrieden|decepcionad\w+|d[eé]çu\w*|entt[aä]uscht", 2.0),
        (r"chang\w+ (?:de |of |our )?(?:transitaire|forwarder|provider)|switch\w* (?:to another )?forwarder", 2.0),
        (r"losing (?:customers|business|orders)|last time we use", 2.0),
    ),
    Intent.OTHER: (
        (r"(?:thanks|thank you|thank u|thx|many thanks) (?:for|so much|a lot)|well received|much appreciated", 1.5),
        (r"(?:thanks|thank you|thank u|thx) for (?:the|your) (?:update|info|information|help|support)", 1.5),
        (r"noted", 1.0),
        (r"out of (?:the )?office|automatic reply|auto-?reply|merry christmas|new year|season'?s greetings", 3.0),
        (r"diwali|eid mubarak|meeting|visit|introduc\w+|congratulations|annual contract", 1.5),
        (r"vielen dank f[uü]r|merci pour|gracias por|obrigad[oa] pel[oa]|dhanyavad|shukriya", 1.5),
    ),
}  # fmt: skip
_INTENT_PATTERNS = {
    intent: tuple(
        (re.compile(rf"(?<![\w/-])(?:{pattern})(?![\w/-])" if pattern.isascii() else pattern, re.IGNORECASE), weight)
        for pattern, weight in rules
    )
    for intent, rules in _INTENT_RULES.items()
}
_SERVICE_FAILURE = re.compile(
    r"\b(?:delay\w*|late|not (?:yet )?(?:arrived|received|delivered|updated)|still (?:not|waiting)|no (?:update|reply"
    r"|response|news)|nobody|missed|rolled|damaged|lost|wrong|mistake|error|failed|shortage|not delivered"
    r"|retraso|no ha llegado|sin respuesta|nadie|da[ñn]ad[oa]|perdid[oa]|verspätung|nicht angekommen|keine antwort"
    r"|beschädigt|fehler|retard|pas arriv[ée]|pas de r[ée]ponse|endommag[ée]s?|erreur|perdu|atraso|n[aã]o chegou"
    r"|sem resposta|ningu[eé]m|danificad[oa]|parado|nahi aaya|koi update nahi|jawab nahi)\b",
    re.IGNORECASE,
)
_REQUEST = re.compile(
    r"\?|\b(?:please|pls|plz|kindly|can you|could you|need|por favor|bitte|merci de|svp|favor|karo|kar do|bhejo"
    r"|batao|chahiye)\b",
    re.IGNORECASE,
)
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|aw|wg|tr|rv|res|enc)\s*:\s*|\[[^\]]*\]\s*)+", re.IGNORECASE)


def _intent(subject: str, body: str, score: float) -> tuple[Intent, float]:
    stripped = _REPLY_PREFIX.sub("", subject)
    subject_weight = 0.5 if stripped != subject.lstrip() else 1.5  # a reply's subject is the thread's old topic
    scores = dict.fromkeys(Intent, 0.0)
    scores[Intent.OTHER] = 1.0  # the prior: nothing else found
    for text, factor in ((stripped, subject_weight), (body, 1.0)):
        for intent, patterns in _INTENT_PATTERNS.items():
            for pattern, weight in patterns:
                scores[intent] += factor * weight * min(2, len(pattern.findall(text)))
    both = f"{stripped}\n{body}"
    if score <= -0.45 and _SERVICE_FAILURE.search(both):
        scores[Intent.COMPLAINT] += 3.0
    if score >= 0.4 and not _REQUEST.search(body):
        scores[Intent.OTHER] += 3.0  # gratitude, no request
    ranked = sorted(scores.items(), key=lambda item: (-item[1], list(Intent).index(item[0])))
    (best, top), second = ranked[0], max(ranked[1][1], 0.0)
    margin = (top - second) / top if top > 0 else 0.0
    confidence = 0.3 + 0.7 * margin * (1 - math.exp(-top / 2.5))
    return best, round(min(1.0, max(0.0, confidence)), 3)
