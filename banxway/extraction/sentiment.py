"""Sentiment: a weighted multilingual lexicon with negation, intensifiers, emoji and punctuation."""

from __future__ import annotations

import math
import re

from banxway.enums import Sentiment
from banxway.extraction.patterns import _alternation

# --- sentiment ---------------------------------------------------------------------------------------------------

# weight: words and phrases (their inflections written out), English, Spanish, German, French, Portuguese, Hinglish
_LEXICON_TABLE = (
    (1.5, "excellent, excelente, ausgezeichnet, exzellent, outstanding, superb"),
    (
        1.2,
        "awesome, amazing, fantastic, wonderful, well done, kudos, brilliant, great job, great work, genial, ótimo,"
        " ótima, otimo, fantástico, fantastique, hervorragend",
    ),
    (
        1.0,
        "great, happy, perfect, pleased, satisfied, love, merry christmas, congratulations, perfecto, perfecta,"
        " contento, contenta, contentos, satisfecho, satisfecha, satisfechos, super, perfekt, zufrieden,"
        " parfait, parfaite, satisfait, satisfaite, satisfaits, contente, ravie, ravis,"
        " perfeito, perfeita, satisfeito, satisfeita, satisfeitos, badhiya, khush",
    ),
    (
        0.8,
        "appreciate, appreciated, glad, smooth, smoothly, helpful, prosperous, reibungslos, reibungslose,"
        " reibungslosen, freuen, merci beaucoup, muchas gracias, muito obrigado, muito obrigada",
    ),
    (0.6, "many thanks, thanks a lot, thank you so much, vielen dank, dhanyavad, shukriya, best wishes"),
    (0.5, "good"),
    (
        0.3,
        "thanks, thank you, thank u, thx, gracias, danke, merci, obrigado, obrigada, fine, quick, quickly,"
        " promptly, on time",
    ),
    (0.0, "good morning, good afternoon, good evening, good day, no problem"),
    (-0.3, "unfortunately, leider, malheureusement, infelizmente, desafortunadamente"),
    (
        -0.4,
        "problem, problema, problème, delay, delayed, delays, retraso, verspätung, verzögerung, retard, atraso, stuck",
    ),
    (-0.5, "wrong, stopped, nobody, personne ne"),
    (
        -0.4,
        "still not, still waiting, no update, no updates, no information, keine information, sin información,"
        " sem informação, todavía no, toujours pas, immer noch nicht, ainda não, bothered",
    ),
    (-0.7, "lost, mal, losing"),
    (
        -1.0,
        "poor, bad, complaint, mess, damaged, escalate, overcharged, no response, no reply, no answer,"
        " keine antwort, sin respuesta, sem resposta, pas de réponse, nadie responde, ninguém responde, queja,"
        " reclamación, beschwerde, plainte, réclamation, reclamação, schlecht, mauvais, ruim, endommagé,"
        " endommagée, endommagés, beschädigt, dañado, dañada, danificado, danificada, pareshan, pareshaan",
    ),
    (-1.2, "annoyed, upset, irritated, molesto, molesta, molestos, ärgerlich, verärgert, gussa"),
    (
        -1.5,
        "disappointed, disappointing, frustrated, frustrating, angry, ridiculous, useless, not happy,"
        " decepcionado, decepcionada, decepcionados, enttäuscht, enttäuschend, unzufrieden, déçu, déçue, déçus,"
        " déçues, mécontent, mécontente, mécontents, mécontentes, insatisfeito, insatisfeita, insatisfeitos,"
        " insatisfecho, insatisfecha, absurdo, absurd, frustrante, frustrado, frustrada",
    ),
    (-1.8, "terrible, horrible, fed up, incompetent, bekaar, bekar, scandalous, outrageous, ghatiya"),
    (
        -2.0,
        "unacceptable, worst, pathetic, furious, disgusting, shameful, inaceptable, inaceptables, pésimo, pésima,"
        " inakzeptabel, katastrophal, inacceptable, inadmissible, catastrophique, inaceitável, inaceitavel,"
        " péssimo, péssima, bakwas",
    ),
)
_LEXICON = {word.strip(): weight for weight, words in _LEXICON_TABLE for word in words.split(",")}
_EMOJI = {"😡": -1.5, "😠": -1.2, "🤬": -1.8, "😞": -0.8, "😟": -0.8, "😢": -0.8, "🙁": -0.6, "👎": -1.0,
          "👍": 0.6, "🙏": 0.3, "😊": 0.8, "🙂": 0.5, "😀": 0.8, "😃": 0.8, "❤": 1.0, "👏": 0.8, "🎉": 0.8}  # fmt: skip
_LEXICON_RE = re.compile(rf"(?<![\w'])(?:{_alternation(_LEXICON)})(?![\w'])", re.IGNORECASE)
_NEGATION_WORDS = (
    "not no never dont don't isnt isn't wasnt wasn't hardly nicht kein keine nie nunca ni pas jamais não nao nahi nahin"
)
_INTENSIFIER_WORDS = (
    "very really extremely so totally absolutely too completely highly muy sehr extrem absolut très vraiment"
    " extrêmement muito bahut bohot much"
)
_NEGATORS = frozenset(_NEGATION_WORDS.split())
_INTENSIFIERS = frozenset(_INTENSIFIER_WORDS.split())


def _sentiment(text: str, language: str) -> float:
    total = 0.0
    for m in _LEXICON_RE.finditer(text):
        weight = _LEXICON[re.sub(r"\s+", " ", m[0]).casefold()]
        clause = re.split(r"[.!?;,\n]", text[max(0, m.start() - 40) : m.start()])[-1]
        before = [w.casefold() for w in re.findall(r"[\w']+", clause)][-3:]
        after = [w.casefold() for w in re.findall(r"[\w']+", text[m.end() : m.end() + 20])][:2]
        negated = any(w in _NEGATORS or w.endswith("n't") for w in before) or (
            language == "hi" and any(w in ("nahi", "nahin", "na") for w in after)
        )
        if negated and not m[0].casefold().startswith(("not ", "no ")):
            weight = -0.8 * weight
        if any(w in _INTENSIFIERS for w in before[-2:]):
            weight *= 1.5
        if len(m[0]) >= 4 and m[0].isupper():
            weight *= 1.5
        total += weight
    total += sum(weight * text.count(emoji) for emoji, weight in _EMOJI.items())
    if "!!" in text and total:
        total *= 1.3
    total -= 0.4 * min(2, text.count("??"))  # impatience
    return math.tanh(total / 2)


def _sentiment_of(score: float) -> Sentiment:
    if score <= -0.2:
        return Sentiment.NEGATIVE
    if score >= 0.2:
        return Sentiment.POSITIVE
    return Sentiment.NEUTRAL
