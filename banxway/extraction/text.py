"""The text of a message: its new part (without quoted history, sign-off, signature and disclaimers; see the
package docstring) and its language."""

from __future__ import annotations

import re

from banxway.extraction.ports import _PORT_NAME

# --- the new part of a message ---------------------------------------------------------------------------------

_ON_WROTE_START = re.compile(r"^\s*(On|Am|Le|El|Em|Op|Il)\s", re.IGNORECASE)
_ON_WROTE = re.compile(
    r"^\s*(?:On\s.+\swrote|Am\s.+\sschrieb|Le\s.+\sa\s+écrit|El\s.+\sescribió|Em\s.+\sescreveu|Op\s.+\sschreef"
    r"|Il\s.+\sha\s+scritto)\s*:\s*$",
    re.IGNORECASE | re.DOTALL,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|Mensagem original"
    r"|Messaggio originale)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_FORWARD_MARKER = re.compile(
    r"^\s*(?:-{2,}\s*(?:Forwarded message|Weitergeleitete Nachricht|Message transféré|Mensaje reenviado"
    r"|Mensagem encaminhada)\s*-{2,}|Begin forwarded message:)\s*$",
    re.IGNORECASE,
)
_HEADER_LINE = re.compile(
    r"^\s*\*?(?:From|Sent|Date|To|Cc|Subject|Von|Gesendet|Datum|An|Betreff|De|Envoyé|Para|Enviado|Asunto|Objet"
    r"|Assunto|À)\s*:",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(?:From|Von|De|Da)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_SENT = re.compile(r"^\s*\*?(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado|Inviato)\s*:\*?\s*\S", re.IGNORECASE)
_SEPARATOR_LINE = re.compile(r"^\s*_{8,}\s*$")
_SIGN_OFF = re.compile(
    r"^\s*(?:--|—|(?:best|kind|warm|warmest|many|with)\s+regards|regards|rgds|br|best|cheers|sincerely"
    r"|yours\s+(?:sincerely|faithfully|truly)|thanks\s*(?:&|and)\s*(?:best\s+|kind\s+)?(?:regards|rgds)"
    r"|saludos(?:\s+cordiales)?|un\s+saludo|atentamente|cordialmente|mit\s+freundlichen\s+grüßen"
    r"|(?:freundliche|viele|beste|liebe)\s+grüße|mfg|(?:danke\s+und\s+)?gruß|(?:bien\s+)?cordialement"
    r"|bien\s+à\s+vous|salutations|atenciosamente|abraços|sent\s+from\s+my\s+\w+(?:\s+\w+)?)\s*[,.!]*\s*$",
    re.IGNORECASE,
)
# "Thanks," alone on a line is a sign-off when only a few (name, title, phone) lines follow it.
_THANKS_LINE = re.compile(
    r"^\s*(?:thanks|thank\s+you|thx|many\s+thanks|merci(?:\s+d'avance)?|gracias|danke|vielen\s+dank"
    r"|obrigad[oa]|dhanyavad|shukriya)\s*[,.!]*\s*$",
    re.IGNORECASE,
)
_NAME_LINE = re.compile(r"^\s*[A-ZÀ-Ý][^\W\d_]*\.?(?:[ \t]+[A-ZÀ-Ý][^\W\d_]*\.?){1,3}\s*$")
_DISCLAIMER = re.compile(
    r"^\s*(?:disclaimer|confidentiality\s+notice|this\s+e-?mail\s+(?:and|\(and|message|is|may)"
    r"|the\s+information\s+(?:contained\s+)?in\s+this)",
    re.IGNORECASE,
)


def _quote_header_at(lines: list[str], index: int) -> bool:
    line = lines[index]
    if _ORIGINAL_MESSAGE.match(line) or _SEPARATOR_LINE.match(line):
        return _ORIGINAL_MESSAGE.match(line) is not None or any(
            _HEADER_FROM.match(following) for following in lines[index + 1 : index + 3]
        )
    if _HEADER_FROM.match(line) and any(_HEADER_SENT.match(following) for following in lines[index + 1 : index + 5]):
        return True
    if _ON_WROTE_START.match(line):
        for span in (1, 2, 3):
            candidate = " ".join(part.strip() for part in lines[index : index + span])
            if len(candidate) <= 500 and _ON_WROTE.match(candidate):
                return True
    return False


def _new_part(text: str) -> list[tuple[int, int]]:
    """The (start, end) character ranges of the lines of `text` that are its new part (see the module docstring);
    the whole text when nothing would be left."""
    lines = text.split("\n")
    starts, offset = [], 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    kept: list[int] = []
    index, in_forward_header = 0, False
    while index < len(lines):
        line = lines[index].rstrip("\r")
        stripped = line.strip()
        if in_forward_header:
            if not stripped or not _HEADER_LINE.match(line):
                in_forward_header = False
            index += 1
            continue
        if _FORWARD_MARKER.match(line):
            in_forward_header = True
            index += 1
            continue
        if _quote_header_at(lines, index) or _DISCLAIMER.match(line) or _SIGN_OFF.match(line):
            break
        if _THANKS_LINE.match(line):
            rest = [following for following in lines[index + 1 :] if following.strip()]
            if rest and len(rest) <= 6 and all(len(following) <= 80 for following in rest):
                break
        if not stripped.startswith(">") and stripped:
            kept.append(index)
        index += 1
    if len(kept) > 1:  # a closing name block without a sign-off ("Vikram Singh / Purchase Head, Apex Auto")
        blank = max((i for i in range(kept[-1]) if not lines[i].strip()), default=-1)
        block = [i for i in kept if i > blank]
        if (
            blank > kept[0]
            and len(block) <= 4
            and _NAME_LINE.match(lines[block[0]])
            and not _PORT_NAME.search(lines[block[0]])
            and all(len(lines[i]) <= 60 and not lines[i].rstrip().endswith((".", "?", "!", ":")) for i in block)
        ):
            kept = [i for i in kept if i < blank]
    ranges = [(starts[i], starts[i] + len(lines[i].rstrip("\r"))) for i in kept]
    return ranges or [(0, len(text))]


def _joined(text: str, ranges: list[tuple[int, int]]) -> str:
    return "\n".join(text[start:end] for start, end in ranges)


# --- language ----------------------------------------------------------------------------------------------------

_STOP_WORDS = {
    "en": "the and is are to of for please pls plz we you u ur our your this that with have has will can be on in it"
    " my not what when where kindly hi hello dear thanks thank thx need let know us me i from at as by an a was"
    " been do does any all yet still send share can could would should which there their they how about ok sir",
    "es": "el la los las de del que y en por para con un una unos es no se su al lo como más pero hola buenos"
    " buenas días gracias favor estimado estimados necesitamos cuando cuanto cuánto dónde donde está este esta"
    " envío saludos muy ya le les nos me mi mis usted ustedes tenemos todavía según",
    "pt": "o a os as de do da dos das que e em no na por para com um uma não é se nosso nossa olá oi bom boa dia"
    " obrigado obrigada favor prezado prezados quando onde está você vocês ainda já mais muito pelo pela seu sua"
    " qual podem isso aos há",
    "de": "der die das und ist nicht ein eine zu mit für von den dem auf wir sie ich bitte danke sehr geehrte"
    " geehrter guten tag wann wo noch sind haben hat unser unsere ihre ihr wie auch es im bei vielen dank"
    " grüße hallo uns laut hätte sollen kurze zusammen diese",
    "fr": "le la les de des du et est un une pour avec dans nous vous pas ne que qui sur au aux bonjour merci votre"
    " notre nos vos cordialement quand où il elle sont ce cette mais très bien madame monsieur svp en à toujours"
    " pouvez faire parvenir",
    "hi": "hai hain ka ki ke ko kya kab kahan nahi nahin bhai ji aur se mein mai kar karo kijiye karna hoga hua tha"
    " raha rahe abhi jaldi aap aapki aapne hum humara mera kripya dhanyavad shukriya bhejo bhej chahiye batao"
    " bataye kitna kaise wala wali gaya gayi diya dena lena acha accha theek thik yaar kal aaj kyun kyu haan"
    " lagega tak pe par wajah bahut do din hoga ho jayega wahi chalega na yeh koi bhi rakho",
}
_STOP_SETS = {language: frozenset(words.split()) for language, words in _STOP_WORDS.items()}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_SCRIPTS = (  # (language, first, last code point)
    ("hi", 0x0900, 0x097F),
    ("ar", 0x0600, 0x06FF),
    ("zh", 0x4E00, 0x9FFF),
    ("ja", 0x3040, 0x30FF),
    ("ko", 0xAC00, 0xD7AF),
    ("ru", 0x0400, 0x04FF),
    ("th", 0x0E00, 0x0E7F),
    ("el", 0x0370, 0x03FF),
    ("he", 0x0590, 0x05FF),
)
_LANGUAGE_HINTS = (  # (language, pattern, weight per occurrence)
    ("es", re.compile(r"[ñ¿¡]|ción\b"), 1.5),
    ("pt", re.compile(r"ção\b|ções\b|[ãõ]"), 1.5),
    ("de", re.compile(r"[ßäöü]|\b\w+ung\b"), 0.7),
    ("fr", re.compile(r"[èêœù]|\b[ldjnqs]'"), 1.0),
)


def _language(text: str) -> str:
    letters = [c for c in text if c.isalpha()]
    if letters:
        counts: dict[str, int] = {}
        for c in letters:
            point = ord(c)
            for language, low, high in _SCRIPTS:
                if low <= point <= high:
                    counts[language] = counts.get(language, 0) + 1
                    break
        if counts:
            language, count = max(counts.items(), key=lambda item: item[1])
            if count >= 0.3 * len(letters) or count >= 4:
                return "ja" if language == "zh" and counts.get("ja") else language
    words = [w.casefold() for w in _WORD.findall(text)]
    scores = dict.fromkeys(_STOP_SETS, 0.0)
    for word in words:
        owners = [language for language, stop in _STOP_SETS.items() if word in stop]
        for language in owners:
            scores[language] += (1.5 if language == "hi" else 1.0) / len(owners)
    lowered = text.casefold()
    for language, pattern, weight in _LANGUAGE_HINTS:
        scores[language] += weight * min(3, len(pattern.findall(lowered)))
    best = max(scores, key=lambda language: scores[language])
    if scores[best] < 1.0 or (len(words) < 2 and scores[best] < 1.5):
        return "und"
    return best
