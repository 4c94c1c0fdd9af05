"""What is shipped and on which terms: Incoterms and commodities."""

from __future__ import annotations

import re
from collections.abc import Iterator

from banxway.extraction.patterns import _alternation

# --- Incoterms ---------------------------------------------------------------------------------------------------

_INCOTERM = re.compile(
    r"(?<![\w&+])(EXW|FCA|CPT|CIP|DAP|DPU|DDP|FAS|FOB|CFR|CIF|CNF|C[ \t]?&[ \t]?F|C\+F)(?![\w&+])", re.I
)
_LOWER_CASE_INCOTERMS = ("FOB", "CIF", "EXW", "DDP", "DAP", "CFR", "CNF", "FCA", "C&F")


def _incoterms(text: str) -> Iterator[tuple[str, int, int]]:
    for m in _INCOTERM.finditer(text):
        term = re.sub(r"[ \t]", "", m[1]).upper()
        if m[1] != m[1].upper() and term not in _LOWER_CASE_INCOTERMS:
            continue
        yield ("CFR" if term in ("CNF", "C&F", "C+F") else term), m.start(), m.end()


# --- commodities -------------------------------------------------------------------------------------------------

_COMMODITY_NAMES = """
textiles|textile|home textiles|cotton yarn|polyester yarn|yarn|cotton|cotton bales|raw cotton|fabrics|fabric
garments|readymade garments|apparel|clothing|knitwear|denim|towels|bed linen|carpets|rugs|jute|jute bags
leather goods|leather|footwear|shoes|handicrafts|toys|furniture|wooden furniture|auto parts|automotive parts
auto components|spare parts|engine parts|machine parts|machinery|industrial machinery|pumps|valves|bearings
castings|forgings|gearboxes|hand tools|tools|electrical equipment|transformers|cables|electronics|laptops
mobile phones|smartphones|led lights|solar panels|batteries|lithium batteries|chemicals|organic chemicals
dyes|pigments|paints|resins|pvc resin|polymers|plastic granules|granules|fertilizer|fertilizers|fertiliser
pharmaceuticals|pharma|medicines|medical equipment|medical devices|cosmetics|perfumes|rice|basmati rice|wheat
sugar|pulses|spices|tea|coffee|coffee beans|cashew nuts|cashews|frozen shrimp|shrimp|seafood|frozen fish
frozen chicken|meat|fruits|fresh fruits|grapes|mangoes|onions|vegetables|olive oil|wine|ceramic tiles|tiles
vitrified tiles|sanitary ware|marble|granite|glassware|steel coils|steel pipes|steel|stainless steel
aluminium|aluminum|copper|scrap|metal scrap|paper|kraft paper|plywood|timber|wood pellets|tyres|tires
kitchenware|household goods|personal effects|coir|coir pith
hilo de algodón|algodón|textiles|maquinaria|repuestos|autopartes|productos químicos|muebles|baldosas cerámicas
azulejos|café|café en grano|frutas|vino|aceite de oliva|calzado|juguetes|ropa|prendas
maschinen|maschinenteile|ersatzteile|chemikalien|textilien|möbel|garn|kunststoffgranulat|fliesen|stahlcoils
elektronik|kaffee|autoteile|spielzeug|bekleidung
vêtements|pièces automobiles|pièces détachées|meubles|produits chimiques|machines|textiles|carrelage|café vert
jouets|médicaments|cosmétiques|vin
peças automotivas|autopeças|máquinas|móveis|produtos químicos|algodão|café em grãos|calçados|têxteis|roupas
peças|piezas|pièces
"""
_COMMODITY_LIST = {name.casefold() for name in re.split(r"[|\n]", _COMMODITY_NAMES) if name}
_COMMODITY = re.compile(rf"(?<![\w-])(?:{_alternation(sorted(_COMMODITY_LIST))})(?![\w-])", re.IGNORECASE)
# German compounds on a goods noun: "Elektronikbauteile", "Kunststoffgranulat", "Büromöbel"
_GERMAN_COMPOUND = re.compile(
    r"(?<![\w-])[A-ZÄÖÜ][a-zäöüß]+(?:teile|bauteile|granulat|maschinen|möbel|fliesen|chemikalien|textilien|garne?"
    r"|waren|geräte|ersatzteile)(?![\w-])"
)
_COMMODITY_CUE = re.compile(
    r"\b(?:commodity|commodities|goods|description[ \t]+of[ \t]+goods|cargo[ \t]+description|product|ware"
    r"|mercanc[ií]a|mercadoria|marchandises?|produit)[ \t]*:[ \t]*([^\W\d][^\n,;.()/:\d]{1,60}?)[ \t]*(?=[\n,;.()/]|$)",
    re.IGNORECASE,
)


def _commodities(text: str) -> Iterator[tuple[str, int, int]]:
    for pattern in (_COMMODITY, _GERMAN_COMPOUND):
        for m in pattern.finditer(text):
            yield re.sub(r"\s+", " ", m[0]).casefold(), m.start(), m.end()
    for m in _COMMODITY_CUE.finditer(text):
        phrase = m[1].strip()
        if 1 <= len(phrase.split()) <= 5:
            yield re.sub(r"\s+", " ", phrase).casefold(), m.start(1), m.start(1) + len(phrase)
